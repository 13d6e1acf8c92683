"""Attention transfer (Zagoruyko & Komodakis, ICLR 2017): match where in each frame the networks' activity is."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ..models.recognizer import ModelOutput
from ..views import INTERPOLATION_MODES, resize_frames
from .base import DistillationLoss, as_feature_map, tapped
from .feature import check_stage
from .schedules import Schedule


def attention_map(features: Tensor, p: float = 2.0) -> Tensor:
    """Spatial attention of a feature map ``[N, C, T, h, w]``: the channel mean of ``|f|^p``, ``[N, T, h, w]``."""
    return features.abs().pow(p).mean(dim=1)


def attention_transfer_loss(
    student_map: Tensor, teacher_map: Tensor, p: float = 2.0, mode: str = "bilinear", where: str = "attention_transfer"
) -> Tensor:
    """AT between two feature maps ``[N, C, T, h, w]`` (channels may differ): the student's attention map is
    upsampled to the teacher's ``h, w``, each frame's map is L2-normalised over its locations, and the squared
    differences are averaged over clips, frames and locations."""
    if student_map.shape[0] != teacher_map.shape[0] or student_map.shape[2] != teacher_map.shape[2]:
        raise ValueError(
            f"{where}: student and teacher maps must agree in batch and frames (dims 0 and 2 of [N, C, T, h, w]); "
            f"got student {tuple(student_map.shape)} and teacher {tuple(teacher_map.shape)}"
        )
    a_s = attention_map(student_map.float(), p)
    a_t = attention_map(teacher_map.detach().float(), p)
    a_s = resize_frames(a_s.unsqueeze(1), tuple(a_t.shape[-2:]), mode).squeeze(1)
    a_s = F.normalize(a_s.flatten(2), dim=-1)
    a_t = F.normalize(a_t.flatten(2), dim=-1)
    return (a_s - a_t).pow(2).mean()


def _stage_list(key: str, stages: Sequence[str] | None) -> tuple[str, ...] | None:
    if stages is None:
        return None
    if isinstance(stages, str) or not isinstance(stages, Sequence):
        raise ValueError(f"AttentionTransfer: {key} must be a list of module paths or None, got {stages!r}")
    if not stages or not all(isinstance(s, str) and s for s in stages):
        raise ValueError(
            f"AttentionTransfer: {key} must be a non-empty list of module paths such as ['backbone.layer3'], "
            f"got {list(stages)!r}"
        )
    return tuple(stages)


class AttentionTransfer(DistillationLoss):
    """Attention transfer (AT; Zagoruyko & Komodakis, "Paying More Attention to Attention", ICLR 2017).

    Each network's map is reduced to a spatial attention map per frame, the channel mean of ``|f|^p``; the
    student's is upsampled to the teacher's size (e.g. 4x4 at 112 px -> 7x7 at 224 px), each frame's map is
    L2-normalised over its locations, and the term is the mean squared difference, summed over the stages.
    Attention maps have no channels, so the widths of student and teacher may differ and no adapter is needed.
    The paper's code weighs the sum by ``beta / 2 = 500``, the default weight.

    Args:
        weight: multiplier of the term (500 in the paper's code).
        stages: module paths of the student's maps, e.g. ``[backbone.layer2, backbone.layer3, backbone.layer4]``
            for a TSN; ``None``: the last feature map only.
        teacher_stages: module paths of the teacher's maps, one per student stage; defaults to ``stages``.
        p: exponent of the attention map (2 in the paper).
        mode: interpolation used to upsample the student's attention map: bilinear, bicubic, nearest or area.
        channels_last: the tapped maps are ``[N, T, h, w, C]`` (Video Swin stages).
        name: log/checkpoint name (``train/distill/<name>``); default ``attention_transfer`` or, with stages,
            ``attention_transfer_<stages>`` (e.g. ``attention_transfer_backbone_layer3_backbone_layer4``), so two
            instances on different stages coexist.
        weight_schedule: how the weight changes over training.

    Configure from LightningCLI (AT on the last three stages of a TSN)::

        trainer:
          callbacks:
            - class_path: reskd_lightning.AttentionTransfer
              init_args:
                weight: 500
                stages: [backbone.layer2, backbone.layer3, backbone.layer4]
    """

    uses_teacher_logits = False  # feature maps only: a teacher without its classifier will do

    def __init__(
        self,
        weight: float = 500.0,
        stages: list[str] | None = None,
        teacher_stages: list[str] | None = None,
        p: float = 2.0,
        mode: str = "bilinear",
        channels_last: bool = False,
        name: str | None = None,
        weight_schedule: Schedule | None = None,
    ) -> None:
        student = _stage_list("stages", stages)
        teacher = _stage_list("teacher_stages", teacher_stages)
        if student is None and teacher is not None:
            raise ValueError(
                f"AttentionTransfer: teacher_stages {list(teacher)!r} needs the matching student `stages` "
                "(stages=None compares the last feature maps)"
            )
        if teacher is None:
            teacher = student
        if student is not None and teacher is not None and len(student) != len(teacher):
            raise ValueError(
                f"AttentionTransfer: stages and teacher_stages must pair up one to one, got {len(student)} stages "
                f"{list(student)!r} and {len(teacher)} teacher_stages {list(teacher)!r}"
            )
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not p > 0:
            raise ValueError(f"AttentionTransfer: p must be > 0, got {p!r}")
        if mode not in INTERPOLATION_MODES:
            raise ValueError(f"AttentionTransfer: mode must be one of {', '.join(INTERPOLATION_MODES)}, got {mode!r}")
        self.stages = student
        self.teacher_stages = teacher
        super().__init__(weight=weight, name=name, weight_schedule=weight_schedule)
        self.p = float(p)
        self.mode = mode
        self.channels_last = channels_last

    def default_name(self) -> str:
        if self.stages is None:
            return "attention_transfer"
        return "attention_transfer_" + "_".join(stage.replace(".", "_") for stage in self.stages)

    @property
    def student_taps(self) -> tuple[str, ...]:
        return self.stages or ()

    @property
    def teacher_taps(self) -> tuple[str, ...]:
        return self.teacher_stages or ()

    def bind(self, student: nn.Module, teacher: nn.Module) -> None:
        """Check that every stage is a submodule of its network."""
        for stage, teacher_stage in self._pairs():
            check_stage(student, stage, "student", self.name)
            check_stage(teacher, teacher_stage, "teacher", self.name)

    def _pairs(self) -> list[tuple[str | None, str | None]]:
        if self.stages is None or self.teacher_stages is None:
            return [(None, None)]
        return list(zip(self.stages, self.teacher_stages))

    def _map(self, output: ModelOutput, stage: str | None, role: str, batch_size: int) -> Tensor:
        x = tapped(output, stage, role, self.name)
        if stage is not None:
            x = as_feature_map(x, batch_size, self.channels_last, f"{self.name} ({role} {stage})")
        if x.dim() != 5:
            raise ValueError(
                f"{self.name}: expected a 5-D {role} feature map [N, C, T, h, w], got {tuple(x.shape)}"
            )
        return x

    def forward(self, student: ModelOutput, teacher: ModelOutput, batch: Mapping[str, Any]) -> Tensor:
        n = student.logits.shape[0]
        total: Tensor | None = None
        for stage, teacher_stage in self._pairs():
            s = self._map(student, stage, "student", n)
            t = self._map(teacher, teacher_stage, "teacher", n)
            where = self.name if stage is None else f"{self.name} (stage {stage} / {teacher_stage})"
            term = attention_transfer_loss(s, t, self.p, self.mode, where)
            total = term if total is None else total + term
        assert total is not None
        return total
