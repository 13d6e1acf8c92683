"""DecoupledKD: the published TCKD and NCKD by hand, its options, its errors, and one step inside ResKDModule."""

from __future__ import annotations

import math

import pytest
import torch
from distill_helpers import clip_batch, out, record_logs, tiny_reskd

from reskd_lightning import DecoupledKD, LogitKD
from reskd_lightning.distill import LinearWarmup

# Two clips, three classes; the labelled classes are 0 and 2.
STUDENT = [[2.0, 1.0, 0.0], [0.5, 0.0, 1.5]]
TEACHER = [[3.0, 0.0, 1.0], [0.0, 1.0, 2.0]]
LABELS = [0, 2]


def softmax(z: list[float]) -> list[float]:
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q))


def tckd_nckd_by_hand(temperature: float) -> tuple[float, float]:
    """TCKD: KL of the binary [p(gt), 1 - p(gt)]; NCKD: KL of the softmax over the other two classes."""
    tckd = nckd = 0.0
    for s, t, y in zip(STUDENT, TEACHER, LABELS):
        p_s, p_t = softmax([v / temperature for v in s]), softmax([v / temperature for v in t])
        tckd += kl([p_t[y], 1 - p_t[y]], [p_s[y], 1 - p_s[y]]) / len(LABELS) * temperature**2
        others = lambda z: softmax([v / temperature for i, v in enumerate(z) if i != y])  # noqa: E731
        nckd += kl(others(t), others(s)) / len(LABELS) * temperature**2
    return tckd, nckd


def dkd(distiller: DecoupledKD) -> float:
    batch = {"label": torch.tensor(LABELS)}
    return distiller(out(logits=torch.tensor(STUDENT)), out(logits=torch.tensor(TEACHER)), batch).item()


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_dkd_is_alpha_tckd_plus_beta_nckd_by_hand(temperature: float) -> None:
    tckd, nckd = tckd_nckd_by_hand(temperature)
    assert (tckd, nckd) == pytest.approx({1.0: (0.0422416, 0.3597602), 2.0: (0.0629271, 0.3823325)}[temperature])
    assert dkd(DecoupledKD(temperature=temperature)) == pytest.approx(tckd + 8 * nckd, rel=1e-5)
    assert dkd(DecoupledKD(alpha=0.0, beta=1.0, temperature=temperature)) == pytest.approx(nckd, rel=1e-5)
    assert dkd(DecoupledKD(alpha=1.0, beta=0.0, temperature=temperature)) == pytest.approx(tckd, rel=1e-5)
    assert dkd(DecoupledKD(alpha=0.5, beta=3.0, temperature=temperature)) == pytest.approx(
        0.5 * tckd + 3 * nckd, rel=1e-5
    )


def test_dkd_decomposes_hintons_kd_as_the_paper_states() -> None:
    # For one clip: KD = TCKD + (1 - p_t(gt)) * NCKD, with the same temperature and T^2 scaling.
    student, teacher = torch.randn(1, 7), torch.randn(1, 7)
    batch = {"label": torch.tensor([3])}
    tckd = DecoupledKD(alpha=1.0, beta=0.0)(out(logits=student), out(logits=teacher), batch)
    nckd = DecoupledKD(alpha=0.0, beta=1.0)(out(logits=student), out(logits=teacher), batch)
    kd = LogitKD(temperature=4.0)(out(logits=student), out(logits=teacher), {})
    p_gt = (teacher / 4.0).softmax(-1)[0, 3]
    assert kd.item() == pytest.approx((tckd + (1 - p_gt) * nckd).item(), rel=1e-4)


def test_dkd_is_zero_for_equal_logits() -> None:
    logits = torch.randn(4, 6) * 3
    batch = {"label": torch.tensor([0, 5, 2, 2])}
    term = DecoupledKD()(out(logits=logits), out(logits=logits.clone()), batch)
    assert term.item() == pytest.approx(0.0, abs=1e-5)


def test_dkd_sends_gradients_to_the_student_only_and_computes_in_float32() -> None:
    student = torch.randn(3, 5, requires_grad=True)
    teacher = torch.randn(3, 5, requires_grad=True)
    term = DecoupledKD()(out(logits=student), out(logits=teacher), {"label": torch.tensor([1, 0, 4])})
    term.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None
    labels = {"label": torch.tensor([1, 0, 4])}
    half = DecoupledKD()(out(logits=student.half()), out(logits=teacher.bfloat16()), labels)
    assert half.dtype == torch.float32 and half.isfinite()


def test_dkd_stays_finite_when_a_softmax_saturates() -> None:
    # At T=1 the teacher is certain of class 0 (p = 1 in float32); TCKD must not take log(0).
    teacher = torch.tensor([[200.0, 0.0, 0.0]])
    student = torch.tensor([[0.0, 200.0, 0.0]])
    tckd = DecoupledKD(beta=0.0, temperature=1.0)
    term = tckd(out(logits=student), out(logits=teacher), {"label": torch.tensor([0])})
    assert term.item() == pytest.approx(200.0, rel=1e-5)  # KL([1, 0] || [p_s(gt), ...]) = -log p_s(gt) = 200


def test_dkd_needs_one_class_id_per_clip() -> None:
    logits = torch.randn(2, 3)
    multi_hot = torch.tensor([[1, 0, 1], [0, 1, 0]])
    with pytest.raises(ValueError, match=r"DKD needs one class id per clip .* labels of shape \(2, 3\)"):
        DecoupledKD()(out(logits=logits), out(logits=logits), {"label": multi_hot})
    with pytest.raises(KeyError, match=r"needs the class ids in batch\['label'\]"):
        DecoupledKD()(out(logits=logits), out(logits=logits), {})
    with pytest.raises(ValueError, match=r"student logits \(2, 3\) and teacher logits \(2, 4\) differ"):
        DecoupledKD()(out(logits=logits), out(logits=torch.zeros(2, 4)), {"label": torch.tensor([0, 1])})


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: DecoupledKD(alpha=-1), r"DecoupledKD: alpha must be a number >= 0, got -1"),
        (lambda: DecoupledKD(beta="8"), r"DecoupledKD: beta must be a number >= 0, got '8'"),
        (lambda: DecoupledKD(temperature=0), r"DecoupledKD: temperature must be > 0, got 0"),
        (lambda: DecoupledKD(weight=-2), r"DecoupledKD: weight must be a number >= 0, got -2"),
    ],
)
def test_dkd_names_bad_arguments(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_dkd_defaults_and_the_papers_warm_up() -> None:
    distiller = DecoupledKD(weight_schedule=LinearWarmup(warmup=20))
    assert (distiller.name, distiller.alpha, distiller.beta, distiller.temperature) == ("decoupled_kd", 1.0, 8.0, 4.0)
    distiller.update_progress(step=0, epoch=5.0)
    assert distiller.current_weight == pytest.approx(0.25)
    assert DecoupledKD().state_key != DecoupledKD(name="dkd_t2", temperature=2.0).state_key


def test_dkd_trains_a_student_inside_reskd_module(monkeypatch: pytest.MonkeyPatch) -> None:
    module = tiny_reskd([DecoupledKD()])
    logged = record_logs(module, monkeypatch)
    loss = module.training_step(clip_batch(), 0)
    loss.backward()
    assert loss.isfinite()
    assert [d.name for d in module.distillers] == ["decoupled_kd"]
    assert "train/distill/decoupled_kd" in logged and math.isfinite(logged["train/distill/decoupled_kd"])
    assert module.student.cls_head.fc.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in module.teacher.parameters())
