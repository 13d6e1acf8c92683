"""FeatureMapKD and LogitKD against hand-computed values, and the callback side of every distiller."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from distill_helpers import out

from reskd_lightning import DistillationLoss, FeatureMapKD, LogitKD


def test_feature_map_kd_upsamples_bilinearly_then_takes_the_mean_squared_error() -> None:
    # The student map f(y, x) = 2y + x on a 2x2 grid; bilinear (align_corners=False) to 3x3 samples it at
    # y, x in {0, 0.5, 1}: [[0, .5, 1], [1, 1.5, 2], [2, 2.5, 3]]. Against a zero teacher map the MSE is the
    # mean of the squares: (0 + .25 + 1 + 1 + 2.25 + 4 + 4 + 6.25 + 9) / 9 = 37 / 12.
    student = torch.tensor([[0.0, 1.0], [2.0, 3.0]]).view(1, 1, 1, 2, 2)
    teacher = torch.zeros(1, 1, 1, 3, 3)
    loss = FeatureMapKD()(out(student), out(teacher), {})
    assert loss.item() == pytest.approx(37 / 12, rel=1e-6)
    assert FeatureMapKD().weight == 100.0  # the paper's weight


def test_feature_map_kd_is_zero_for_matching_maps_and_compares_every_frame() -> None:
    teacher = torch.randn(2, 8, 3, 7, 7)
    assert FeatureMapKD()(out(teacher.clone()), out(teacher), {}).item() == 0.0
    shifted = teacher.clone()
    shifted[:, :, 2] += 1.0  # one frame of three off by one everywhere
    assert FeatureMapKD()(out(shifted), out(teacher), {}).item() == pytest.approx(1 / 3, rel=1e-6)


def test_feature_map_kd_sends_gradients_to_the_student_only() -> None:
    student = torch.randn(2, 4, 2, 4, 4, requires_grad=True)
    teacher = torch.randn(2, 4, 2, 7, 7, requires_grad=True)
    FeatureMapKD()(out(student), out(teacher), {}).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None
    # Maps of one size are not resized: the gradient is the MSE's own, 2 (s - t) / numel.
    same = torch.randn(2, 4, 2, 7, 7, requires_grad=True)
    FeatureMapKD()(out(same), out(teacher), {}).backward()
    torch.testing.assert_close(same.grad, 2 * (same - teacher).detach() / same.numel())


def test_feature_map_kd_names_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match=r"feature_map_kd: .*student \(2, 4, 2, 4, 4\) and teacher \(2, 8, 2, 7, 7\)"):
        FeatureMapKD()(out(torch.zeros(2, 4, 2, 4, 4)), out(torch.zeros(2, 8, 2, 7, 7)), {})
    with pytest.raises(ValueError, match="needs the student's feature map, but the student returned only logits"):
        FeatureMapKD()(out(None), out(torch.zeros(1, 1, 1, 1, 1)), {})


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_logit_kd_matches_the_kl_divergence_by_hand(temperature: float) -> None:
    # Teacher logits (ln 3, 0), student (0, 0): p_t = softmax((ln 3 / T, 0)), p_s uniform.
    a = 3 ** (1 / temperature)
    p_t = (a / (1 + a), 1 / (1 + a))
    expected = temperature**2 * sum(p * math.log(p / 0.5) for p in p_t)
    teacher = torch.tensor([[math.log(3.0), 0.0]] * 2)
    loss = LogitKD(temperature=temperature)(out(logits=torch.zeros(2, 2)), out(logits=teacher), {})
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert expected == pytest.approx({1.0: 0.130812, 2.0: 0.145363}[temperature], abs=1e-6)


def test_logit_kd_is_zero_for_equal_logits_and_rejects_other_classes() -> None:
    logits = torch.randn(3, 5)
    assert LogitKD()(out(logits=logits), out(logits=logits.clone()), {}).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match=r"student logits \(3, 5\) and teacher logits \(3, 6\)"):
        LogitKD()(out(logits=logits), out(logits=torch.zeros(3, 6)), {})


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: FeatureMapKD(weight=-1), r"weight must be a number >= 0, got -1"),
        (lambda: LogitKD(temperature=0), r"temperature must be > 0, got 0"),
        (lambda: FeatureMapKD(mode="linear"), r"FeatureMapKD: mode must be bilinear, bicubic, nearest or area, got 'linear'"),
        (lambda: LogitKD(name="a b"), r"name must be letters, digits, '_' or '-' \(it is a log key\), got 'a b'"),
    ],
)
def test_distillers_validate_their_arguments(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_state_key_is_unique_per_name() -> None:
    assert FeatureMapKD().state_key != FeatureMapKD(name="stage4").state_key
    assert FeatureMapKD().state_key == FeatureMapKD(weight=5).state_key  # the name is what makes it unique
    assert FeatureMapKD().state_key == "FeatureMapKD{'name': 'feature_map_kd'}"
    assert isinstance(FeatureMapKD(), DistillationLoss)


def test_setup_refuses_a_module_that_cannot_register_distillers() -> None:
    with pytest.raises(TypeError, match="FeatureMapKD is a distillation callback; it needs a ResKDModule"):
        FeatureMapKD().setup(pl.Trainer(logger=False), pl.LightningModule(), "fit")
