"""AttentionTransfer: attention maps by hand, normalisation, cross-resolution upsampling, stages and names."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from distill_helpers import clip_batch, out, record_logs, tiny_reskd

from reskd_lightning import AttentionTransfer, ModelOutput


def frame(values: list[list[float]]) -> torch.Tensor:
    """One clip, one channel, one frame: ``[1, 1, 1, h, w]``."""
    return torch.tensor(values).view(1, 1, 1, len(values), len(values[0]))


def at(student: torch.Tensor, teacher: torch.Tensor, **kwargs) -> float:
    return AttentionTransfer(**kwargs)(out(student), out(teacher), {}).item()


def test_attention_transfer_by_hand_on_a_2x2_frame() -> None:
    # The loss is |u - v|^2 / (h w) for the unit-normalised attention vectors u, v: (2 - 2 cos(u, v)) / 4 here.
    # p=2: student |f|^2 = (4, 0, 0, 0) -> (1, 0, 0, 0); teacher (1, 1, 1, 1) -> (.5, .5, .5, .5); cos = 1/2.
    assert at(frame([[2.0, 0.0], [0.0, 0.0]]), frame([[1.0, 1.0], [1.0, 1.0]])) == pytest.approx(0.25, rel=1e-6)
    # p=1 keeps magnitudes: |f| = (1, 0, 0, 1) -> (1, 0, 0, 1) / sqrt 2 against the uniform map; cos = 1/sqrt 2.
    student = frame([[1.0, 0.0], [0.0, -1.0]])
    assert at(student, frame([[1.0, 1.0], [1.0, 1.0]]), p=1.0) == pytest.approx((2 - math.sqrt(2)) / 4, rel=1e-6)
    assert AttentionTransfer().weight == 500.0  # beta / 2 of the paper's code


def test_attention_transfer_is_zero_for_identical_maps_and_ignores_the_widths() -> None:
    teacher = torch.randn(2, 16, 3, 7, 7)
    assert at(teacher.clone(), teacher) == pytest.approx(0.0, abs=1e-7)
    # An 8-channel student whose channel mean of f^2 equals the teacher's: the same attention, no adapter needed.
    student = teacher.pow(2).mean(1, keepdim=True).sqrt().expand(2, 8, 3, 7, 7)
    assert at(student, teacher) == pytest.approx(0.0, abs=1e-7)


def test_attention_transfer_is_invariant_to_the_scale_of_a_map() -> None:
    student, teacher = torch.randn(2, 8, 2, 4, 4), torch.randn(2, 16, 2, 7, 7)
    reference = at(student, teacher)
    assert reference > 0
    assert at(3.0 * student, teacher) == pytest.approx(reference, rel=1e-5)
    assert at(student, 0.1 * teacher) == pytest.approx(reference, rel=1e-5)


def test_the_students_attention_map_is_upsampled_to_the_teachers_size() -> None:
    # A 2x2 student attention map with one hot corner, and a 4x4 teacher whose attention map is exactly that
    # corner upsampled bilinearly: AT is zero with bilinear upsampling and not with nearest.
    student_attention = torch.tensor([[1.0, 0.0], [0.0, 0.0]]).view(1, 1, 2, 2)
    upsampled = F.interpolate(student_attention, size=(4, 4), mode="bilinear", align_corners=False)
    student, teacher = student_attention.sqrt().view(1, 1, 1, 2, 2), upsampled.sqrt().view(1, 1, 1, 4, 4)
    assert at(student, teacher) == pytest.approx(0.0, abs=1e-7)
    assert at(student, teacher, mode="nearest") > 1e-3
    # ResKD's case: a 4x4 student map at 112 px against a 7x7 teacher map at 224 px.
    assert math.isfinite(at(torch.randn(2, 8, 2, 4, 4), torch.randn(2, 8, 2, 7, 7), mode="bicubic"))


def test_attention_transfer_sends_gradients_to_the_student_only() -> None:
    student = torch.randn(2, 8, 2, 4, 4, requires_grad=True)
    teacher = torch.randn(2, 16, 2, 7, 7, requires_grad=True)
    term = AttentionTransfer()(out(student), out(teacher), {})
    term.backward()
    assert term.dtype == torch.float32
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_stage_taps_are_unfolded_and_summed_over_stages() -> None:
    # TSN's stages come as [N*T, C, h, w]; two stages give the sum of the per-stage terms.
    s3, t3 = torch.randn(4, 8, 4, 4), torch.randn(4, 16, 7, 7)
    s4, t4 = torch.randn(4, 16, 2, 2), torch.randn(4, 32, 4, 4)
    logits = torch.zeros(2, 3)
    student = ModelOutput(None, logits, {"backbone.layer3": s3, "backbone.layer4": s4})  # type: ignore[arg-type]
    teacher = ModelOutput(None, logits, {"backbone.layer3": t3, "backbone.layer4": t4})  # type: ignore[arg-type]
    unfold = lambda x: x.view(2, 2, *x.shape[1:]).transpose(1, 2)  # noqa: E731
    both = AttentionTransfer(stages=["backbone.layer3", "backbone.layer4"])(student, teacher, {})
    assert both.item() == pytest.approx(at(unfold(s3), unfold(t3)) + at(unfold(s4), unfold(t4)), rel=1e-5)
    # Video Swin stages are channels-last [N, T, h, w, C]: the same numbers once C is moved.
    last = lambda x: unfold(x).permute(0, 2, 3, 4, 1)  # noqa: E731
    swin_s = ModelOutput(None, logits, {"stage": last(s3)})  # type: ignore[arg-type]
    swin_t = ModelOutput(None, logits, {"stage": last(t3)})  # type: ignore[arg-type]
    term = AttentionTransfer(stages=["stage"], channels_last=True)(swin_s, swin_t, {})
    assert term.item() == pytest.approx(at(unfold(s3), unfold(t3)), rel=1e-5)


def test_frame_counts_must_match() -> None:
    shapes = r"student \(2, 4, 2, 4, 4\) and teacher \(2, 4, 3, 7, 7\)"
    with pytest.raises(ValueError, match=r"agree in batch and frames.*" + shapes):
        at(torch.randn(2, 4, 2, 4, 4), torch.randn(2, 4, 3, 7, 7))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(stages=["backbone.layer3", "backbone.layer4"], teacher_stages=["backbone.layer4"]),
         r"pair up one to one, got 2 stages .* and 1 teacher_stages"),
        (dict(teacher_stages=["backbone.layer4"]), r"teacher_stages \['backbone.layer4'\] needs the matching student"),
        (dict(stages="backbone.layer3"), r"stages must be a list of module paths or None, got 'backbone.layer3'"),
        (dict(stages=[]), r"stages must be a non-empty list of module paths"),
        (dict(p=0), r"AttentionTransfer: p must be > 0, got 0"),
        (dict(mode="linear"), r"AttentionTransfer: mode must be one of .* got 'linear'"),
    ],
)  # fmt: skip
def test_attention_transfer_names_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AttentionTransfer(**kwargs)


def test_default_names_include_the_stages() -> None:
    assert AttentionTransfer().name == "attention_transfer"
    assert AttentionTransfer(stages=["backbone.layer3"]).name == "attention_transfer_backbone_layer3"
    two = AttentionTransfer(stages=["backbone.layer3", "backbone.layer4"])
    assert two.name == "attention_transfer_backbone_layer3_backbone_layer4"
    assert two.student_taps == two.teacher_taps == ("backbone.layer3", "backbone.layer4")
    other = AttentionTransfer(stages=["backbone.layer3"], teacher_stages=["backbone.layer4"])
    assert (other.student_taps, other.teacher_taps) == (("backbone.layer3",), ("backbone.layer4",))
    assert AttentionTransfer().student_taps == ()


def test_two_instances_on_different_stages_coexist_in_one_module() -> None:
    layer3, layer4 = AttentionTransfer(stages=["backbone.layer3"]), AttentionTransfer(stages=["backbone.layer4"])
    assert layer3.state_key != layer4.state_key
    module = tiny_reskd([layer3, layer4])
    names = [d.name for d in module.distillers]
    assert names == ["attention_transfer_backbone_layer3", "attention_transfer_backbone_layer4"]


def test_a_stage_that_does_not_exist_lists_the_networks_modules() -> None:
    message = r"attention_transfer_backbone_layer9: the student .* no submodule 'backbone.layer9'"
    with pytest.raises(ValueError, match=message):
        tiny_reskd([AttentionTransfer(stages=["backbone.layer9"])])


def test_attention_transfer_trains_a_student_inside_reskd_module(monkeypatch: pytest.MonkeyPatch) -> None:
    distiller = AttentionTransfer(stages=["backbone.layer3"])
    module = tiny_reskd([distiller], student_resolution=32, teacher_resolution=64)  # layer3: 2x2 vs 4x4
    logged = record_logs(module, monkeypatch)
    batch = clip_batch(size=64)
    loss = module.training_step(batch, 0)
    loss.backward()
    assert loss.isfinite()
    key = "train/distill/attention_transfer_backbone_layer3"
    assert key in logged and math.isfinite(logged[key]) and logged[key] > 0
    assert all(p.grad is None for p in module.teacher.parameters())
    # The term alone reaches the student's body up to layer3 and nothing after it.
    module.zero_grad(set_to_none=True)
    clips = batch["clips"]
    term = distiller(module._run("student", clips[32]), module.teacher_forward(clips[64]), batch)
    term.backward()
    assert term.item() == pytest.approx(logged[key], rel=1e-5)
    assert module.student.backbone.layer3[0].conv1.weight.grad.abs().sum() > 0
    assert module.student.backbone.layer4[0].conv1.weight.grad is None
    assert all(p.grad is None for p in module.teacher.parameters())
