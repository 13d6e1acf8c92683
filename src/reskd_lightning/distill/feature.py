"""ResKD's loss for CNN pairs: MSE between the upsampled student feature map and the teacher's."""

from __future__ import annotations

from typing import Any, Mapping

import torch.nn.functional as F
from torch import Tensor

from ..models.recognizer import ModelOutput
from .base import DistillationLoss


def upsample_feature_map(features: Tensor, size: tuple[int, int], mode: str = "bilinear") -> Tensor:
    """Resize a feature map ``[N, C, T, h, w]`` to ``size`` frame by frame (``align_corners=False``)."""
    if tuple(features.shape[-2:]) == tuple(size):
        return features
    n, c, t, h, w = features.shape
    frames = features.transpose(1, 2).reshape(n * t, c, h, w)
    kwargs: dict[str, Any] = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    frames = F.interpolate(frames, size=size, mode=mode, **kwargs)
    return frames.reshape(n, t, c, *size).transpose(1, 2)


class FeatureMapKD(DistillationLoss):
    """The paper's distillation for CNN pairs (TSN/TSM/SlowOnly): ``MSE(up(student_map), teacher_map)``.

    The student's last feature map (e.g. 4x4 at 112 px) is bilinearly upsampled to the teacher's (7x7 at
    224 px) and compared by mean squared error; there is no adapter, so both maps need the same channels and
    the same number of frames. The paper weighs it 100 against cross-entropy.

    Args:
        weight: multiplier of the term (100 in the paper).
        mode: interpolation used to upsample the student's map.
        name: log/checkpoint name (``train/distill/<name>``).

    Configure from LightningCLI::

        trainer:
          callbacks:
            - class_path: reskd_lightning.FeatureMapKD
              init_args:
                weight: 100
    """

    def __init__(self, weight: float = 100.0, mode: str = "bilinear", name: str | None = None) -> None:
        super().__init__(weight=weight, name=name)
        if mode not in ("bilinear", "bicubic", "nearest", "area"):
            raise ValueError(f"FeatureMapKD: mode must be bilinear, bicubic, nearest or area, got {mode!r}")
        self.mode = mode

    def forward(self, student: ModelOutput, teacher: ModelOutput, batch: Mapping[str, Any]) -> Tensor:
        s, t = student.features, teacher.features
        if s is None or t is None:
            raise ValueError(f"{self.name}: FeatureMapKD needs feature maps; the student or teacher gave none")
        if s.dim() != 5 or t.dim() != 5:
            raise ValueError(
                f"{self.name}: expected 5-D feature maps [N, C, T, h, w], got student {tuple(s.shape)} and "
                f"teacher {tuple(t.shape)}"
            )
        if s.shape[:3] != t.shape[:3]:
            raise ValueError(
                f"{self.name}: student and teacher maps must agree in batch, channels and frames; got student "
                f"{tuple(s.shape)} and teacher {tuple(t.shape)} (an adapter for different widths is not built in)"
            )
        s = upsample_feature_map(s.float(), tuple(t.shape[-2:]), self.mode)
        return F.mse_loss(s, t.detach().float())
