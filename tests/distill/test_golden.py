"""Every distiller's value on fixed inputs, against numbers saved in ``golden.json`` (torchdistill-style).

A change of any distiller's numbers fails here. The inputs come from seeded generators and the values are
computed on one thread, so they do not depend on the machine's thread count. A few of the saved values are
also recomputed in float64 NumPy from the published definitions, so the file is not only self-consistent.

After an intended change of numbers, regenerate the file and review its diff::

    python tests/distill/test_golden.py --regenerate
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest
import torch
from torch import Tensor

from reskd_lightning import AttentionTransfer, DecoupledKD, FeatureMapKD, LogitKD, LogitMapKD, ModelOutput
from reskd_lightning.models.heads import ClsHead

GOLDEN = Path(__file__).with_name("golden.json")
LAYERS = ("backbone.layer3", "backbone.layer4")


# ------------------------------------------------------------------------------------------------- inputs
def randn(g: torch.Generator, *shape: int, scale: float = 1.0) -> Tensor:
    return torch.randn(*shape, generator=g) * scale


def feature_maps(seed: int, student_channels: int = 8, teacher_channels: int = 8) -> tuple[Tensor, Tensor]:
    """A student map at 4x4 and a teacher map at 7x7 (112 px vs 224 px), 2 clips of 2 frames."""
    g = torch.Generator().manual_seed(seed)
    return randn(g, 2, student_channels, 2, 4, 4), randn(g, 2, teacher_channels, 2, 7, 7)


def stage_taps(seed: int) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Two stages of a 2-D network as its hooks capture them, ``[N*T, C, h, w]`` with N=2, T=2; widths differ."""
    g = torch.Generator().manual_seed(seed)
    student = {LAYERS[0]: randn(g, 4, 8, 4, 4), LAYERS[1]: randn(g, 4, 16, 2, 2)}
    teacher = {LAYERS[0]: randn(g, 4, 16, 7, 7), LAYERS[1]: randn(g, 4, 32, 4, 4)}
    return student, teacher


def class_logits(seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Student and teacher logits ``[4, 10]`` and class ids ``[4]``."""
    g = torch.Generator().manual_seed(seed)
    return randn(g, 4, 10, scale=3.0), randn(g, 4, 10, scale=3.0), torch.randint(0, 10, (4,), generator=g)


def heads_and_maps(seed: int) -> tuple[ClsHead, ClsHead, Tensor, Tensor]:
    """Classifiers of different widths (8 and 16 channels, 5 classes) and their networks' last feature maps."""
    g = torch.Generator().manual_seed(seed)
    heads = []
    for width in (8, 16):
        head = ClsHead(width, 5, dropout=0.0)
        with torch.no_grad():
            head.fc.weight.copy_(randn(g, 5, width, scale=0.5))
            head.fc.bias.copy_(randn(g, 5, scale=0.1))
        heads.append(head)
    return heads[0], heads[1], randn(g, 2, 8, 2, 4, 4), randn(g, 2, 16, 2, 7, 7)


def outputs(student: Tensor, teacher: Tensor) -> tuple[ModelOutput, ModelOutput]:
    zeros = torch.zeros(student.shape[0], 5)
    return ModelOutput(student, zeros), ModelOutput(teacher, zeros)


def logit_outputs(student: Tensor, teacher: Tensor) -> tuple[ModelOutput, ModelOutput]:
    return ModelOutput(None, student), ModelOutput(None, teacher)  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------------------- cases
CASES: dict[str, Callable[[], Tensor]] = {}


def case(name: str) -> Callable[[Callable[[], Tensor]], Callable[[], Tensor]]:
    def register(fn: Callable[[], Tensor]) -> Callable[[], Tensor]:
        CASES[name] = fn
        return fn

    return register


@case("feature_map_kd/last_map")
def feature_map_kd_last_map() -> Tensor:
    return FeatureMapKD()(*outputs(*feature_maps(1)), {})


@case("feature_map_kd/stage_tap")
def feature_map_kd_stage_tap() -> Tensor:
    student, teacher = stage_taps(2)
    zeros = torch.zeros(2, 5)
    s = ModelOutput(None, zeros, {LAYERS[0]: student[LAYERS[0]][:, :8]})  # type: ignore[arg-type]
    t = ModelOutput(None, zeros, {LAYERS[0]: teacher[LAYERS[0]][:, :8]})  # type: ignore[arg-type]
    return FeatureMapKD(stage=LAYERS[0])(s, t, {})


@case("feature_map_kd/bicubic")
def feature_map_kd_bicubic() -> Tensor:
    return FeatureMapKD(mode="bicubic")(*outputs(*feature_maps(3)), {})


@case("logit_kd/T1")
def logit_kd_t1() -> Tensor:
    s, t, _ = class_logits(4)
    return LogitKD(temperature=1.0)(*logit_outputs(s, t), {})


@case("logit_kd/T4")
def logit_kd_t4() -> Tensor:
    s, t, _ = class_logits(4)
    return LogitKD(temperature=4.0)(*logit_outputs(s, t), {})


def logit_map_kd(reduction: str) -> Tensor:
    student_head, teacher_head, s, t = heads_and_maps(5)
    distiller = LogitMapKD(temperature=2.0, reduction=reduction)  # type: ignore[arg-type]
    distiller.bind(student_head, teacher_head)  # the classifiers, as a module binds it to its two networks
    return distiller(*outputs(s, t), {})


@case("logit_map_kd/mean")
def logit_map_kd_mean() -> Tensor:
    return logit_map_kd("mean")


@case("logit_map_kd/batchmean")
def logit_map_kd_batchmean() -> Tensor:
    return logit_map_kd("batchmean")


@case("decoupled_kd/default")
def decoupled_kd_default() -> Tensor:
    s, t, labels = class_logits(6)
    return DecoupledKD()(*logit_outputs(s, t), {"label": labels})


@case("decoupled_kd/alpha2_beta0.5_T2")
def decoupled_kd_varied() -> Tensor:
    s, t, labels = class_logits(6)
    return DecoupledKD(alpha=2.0, beta=0.5, temperature=2.0)(*logit_outputs(s, t), {"label": labels})


@case("attention_transfer/last_map")
def attention_transfer_last_map() -> Tensor:
    return AttentionTransfer()(*outputs(*feature_maps(7, student_channels=8, teacher_channels=16)), {})


@case("attention_transfer/two_stages")
def attention_transfer_two_stages() -> Tensor:
    student, teacher = stage_taps(8)
    zeros = torch.zeros(2, 5)
    s = ModelOutput(None, zeros, student)  # type: ignore[arg-type]
    t = ModelOutput(None, zeros, teacher)  # type: ignore[arg-type]
    return AttentionTransfer(stages=list(LAYERS))(s, t, {})


def compute_all() -> dict[str, float]:
    return {name: CASES[name]().item() for name in sorted(CASES)}


# -------------------------------------------------------------------------------------------------- tests
@pytest.fixture()
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def golden() -> dict[str, float]:
    return json.loads(GOLDEN.read_text())


def test_golden_file_covers_every_case(golden: dict[str, float]) -> None:
    assert sorted(golden) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_distiller_matches_its_golden_value(name: str, golden: dict[str, float], one_thread: None) -> None:
    value = CASES[name]()
    assert value.dtype == torch.float32 and value.dim() == 0
    assert value.item() == pytest.approx(golden[name], rel=1e-5)


# ------------------------------------------------------------ independent float64 NumPy references
def np64(x: Tensor) -> np.ndarray:
    return x.detach().double().numpy()


def bilinear(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize the last two axes bilinearly with half-pixel centres (``align_corners=False``)."""

    def matrix(n_in: int, n_out: int) -> np.ndarray:
        src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, None)
        i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        m = np.zeros((n_out, n_in))
        np.add.at(m, (np.arange(n_out), i0), 1 - (src - i0))
        np.add.at(m, (np.arange(n_out), i1), src - i0)
        return m

    return matrix(x.shape[-2], size[0]) @ x @ matrix(x.shape[-1], size[1]).T


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def kl_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``KL(p || q)`` of each row; terms with ``p = 0`` are 0."""
    p_safe, q_safe = np.where(p > 0, p, 1.0), np.where(p > 0, q, 1.0)
    return np.where(p > 0, p * (np.log(p_safe) - np.log(q_safe)), 0.0).sum(axis=-1)


def numpy_attention(f: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """Zagoruyko & Komodakis' ``at(x) = normalize(x.pow(2).mean(1))`` per frame of ``[N, C, T, h, w]``."""
    a = (f**2).mean(axis=1)
    if size is not None:
        a = bilinear(a, size)
    a = a.reshape(*a.shape[:2], -1)
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def unfold(tap: np.ndarray, n: int) -> np.ndarray:
    """``[N*T, C, h, w]`` -> ``[N, C, T, h, w]``."""
    return tap.reshape(n, -1, *tap.shape[1:]).transpose(0, 2, 1, 3, 4)


def ref_feature_map_kd_last_map() -> float:
    s, t = map(np64, feature_maps(1))
    return float(((bilinear(s, (7, 7)) - t) ** 2).mean())


def ref_logit_kd_t4() -> float:
    s, t, _ = map(np64, class_logits(4))
    p_t = np.exp(log_softmax(t / 4))
    return float(kl_rows(p_t, np.exp(log_softmax(s / 4))).mean() * 16)


def ref_logit_map_kd_batchmean() -> float:
    student_head, teacher_head, s, t = heads_and_maps(5)

    def logit_map(head: ClsHead, f: Tensor) -> np.ndarray:  # [N, K, T, h, w]
        bias = np64(head.fc.bias)[:, None, None, None]
        return np.einsum("kc,nctyx->nktyx", np64(head.fc.weight), np64(f)) + bias

    s_map = bilinear(logit_map(student_head, s), (7, 7))
    t_map = logit_map(teacher_head, t)
    rows = lambda m: np.moveaxis(m, 1, -1).reshape(-1, 5) / 2.0  # noqa: E731
    p_t = np.exp(log_softmax(rows(t_map)))
    return float(kl_rows(p_t, np.exp(log_softmax(rows(s_map)))).mean() * 4)


def ref_logit_map_kd_mean_official() -> float:
    """The official Swin head's expression, in its own order: upsample the student's *feature* map, then apply
    each network's classifier at every location (no dropout), then ``w_loss_kd * T * T * nn.KLDivLoss()`` whose
    ``reduction='mean'`` averages over locations x classes (without ``w_loss_kd``: the weight is applied by the
    module)."""
    student_head, teacher_head, s, t = heads_and_maps(5)
    temperature = 2.0  # official: mmaction/models/heads/grkd_3d_head.py:123 (CVMI-Lab/ResKD): T = 2
    # official: mmaction/models/backbones/rkd.py:64-67 (CVMI-Lab/ResKD): the student's [N, C, T, h, w] features
    # reshaped to [N*C, T, h, w] and F.interpolate(size=(7, 7), mode='bilinear') (align_corners=False).
    rebuild_x = bilinear(np64(s), (7, 7))
    # official: grkd_3d_head.py:124-130: permute to channels last, flatten locations, fc_cls / fc_cls_t per row.
    rows = lambda f: np.moveaxis(f, 1, -1).reshape(-1, f.shape[1])  # noqa: E731
    logit_map = rows(rebuild_x) @ np64(student_head.fc.weight).T + np64(student_head.fc.bias)
    logit_map_t = rows(np64(t)) @ np64(teacher_head.fc.weight).T + np64(teacher_head.fc.bias)
    # official: grkd_3d_head.py:45 nn.KLDivLoss(reduction='mean') and :131 T * T * kd_loss(log_softmax(logit_map / T,
    # dim=1), softmax(logit_map_t / T, dim=1)): mean of target * (log(target) - input) over every element.
    log_p_s = log_softmax(logit_map / temperature)
    p_t = np.exp(log_softmax(logit_map_t / temperature))
    pointwise = p_t * (np.log(p_t) - log_p_s)
    return float(temperature * temperature * pointwise.mean())


def ref_decoupled_kd(alpha: float, beta: float, temperature: float) -> float:
    """The reference implementation's ``dkd_loss`` (mdistiller), step by step."""
    s, t, labels = class_logits(6)
    s, t, y = np64(s) / temperature, np64(t) / temperature, labels.numpy()
    gt = np.eye(10)[y]
    p_s, p_t = np.exp(log_softmax(s)), np.exp(log_softmax(t))
    binary = lambda p: np.stack([(p * gt).sum(1), (p * (1 - gt)).sum(1)], axis=1)  # noqa: E731
    tckd = kl_rows(binary(p_t), binary(p_s)).mean() * temperature**2
    masked = lambda z: np.exp(log_softmax(z - 1000 * gt))  # noqa: E731
    nckd = kl_rows(masked(t), masked(s)).mean() * temperature**2
    return float(alpha * tckd + beta * nckd)


def ref_attention_transfer_last_map() -> float:
    s, t = map(np64, feature_maps(7, student_channels=8, teacher_channels=16))
    return float(((numpy_attention(s, (7, 7)) - numpy_attention(t)) ** 2).mean())


def ref_attention_transfer_two_stages() -> float:
    student, teacher = stage_taps(8)
    total = 0.0
    for layer in LAYERS:
        s, t = unfold(np64(student[layer]), 2), unfold(np64(teacher[layer]), 2)
        total += float(((numpy_attention(s, t.shape[-2:]) - numpy_attention(t)) ** 2).mean())
    return total


REFERENCES: dict[str, Callable[[], float]] = {
    "feature_map_kd/last_map": ref_feature_map_kd_last_map,
    "logit_kd/T4": ref_logit_kd_t4,
    "logit_map_kd/batchmean": ref_logit_map_kd_batchmean,
    "logit_map_kd/mean": ref_logit_map_kd_mean_official,
    "decoupled_kd/default": lambda: ref_decoupled_kd(1.0, 8.0, 4.0),
    "decoupled_kd/alpha2_beta0.5_T2": lambda: ref_decoupled_kd(2.0, 0.5, 2.0),
    "attention_transfer/last_map": ref_attention_transfer_last_map,
    "attention_transfer/two_stages": ref_attention_transfer_two_stages,
}


def test_logit_map_kd_default_is_the_official_value_and_batchmean_is_k_times_it(golden: dict[str, float]) -> None:
    # official: mmaction/models/heads/grkd_3d_head.py:131 (CVMI-Lab/ResKD): w_loss_kd * T * T * nn.KLDivLoss()(...),
    # mean over locations x classes; T = 2 (grkd_3d_head.py:123).
    assert LogitMapKD().reduction == "mean" and LogitMapKD().temperature == 2.0
    # official: configs/myconfig/rkd/rkd_swins_32x2x1_60e_k400.py:7 (CVMI-Lab/ResKD): w_loss_kd=200.0
    assert LogitMapKD().weight == 200.0
    assert golden["logit_map_kd/mean"] == pytest.approx(ref_logit_map_kd_mean_official(), rel=1e-5)
    num_classes = 5  # heads_and_maps: 5 classes
    assert golden["logit_map_kd/batchmean"] == pytest.approx(num_classes * golden["logit_map_kd/mean"], rel=1e-5)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_golden_value_agrees_with_a_float64_numpy_reference(name: str, golden: dict[str, float]) -> None:
    expected = REFERENCES[name]()
    assert math.isfinite(expected) and expected > 0
    assert golden[name] == pytest.approx(expected, rel=1e-5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regenerate", action="store_true", help=f"recompute every case and write {GOLDEN.name}")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    values = compute_all()
    if args.regenerate:
        GOLDEN.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
        print(f"wrote {len(values)} golden values to {GOLDEN}")
    else:
        print(json.dumps(values, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
