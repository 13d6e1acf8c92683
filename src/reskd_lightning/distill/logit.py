"""Hinton's logit distillation: KL between temperature-softened class distributions."""

from __future__ import annotations

from typing import Any, Mapping

import torch.nn.functional as F
from torch import Tensor

from ..models.recognizer import ModelOutput
from .base import DistillationLoss


def kd_kl_div(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """``T^2 * KL(softmax(t / T) || softmax(s / T))``, averaged over the batch."""
    log_p_s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
    return F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean") * temperature**2


class LogitKD(DistillationLoss):
    """Knowledge distillation on the class logits (Hinton et al.), scaled by ``T^2``.

    Not used by the paper for CNNs (its ablation finds the feature loss better), but a standard baseline and
    stackable with :class:`FeatureMapKD`.

    Args:
        weight: multiplier of the term.
        temperature: softening temperature ``T`` (> 0).
        name: log/checkpoint name (``train/distill/<name>``).

    Configure from LightningCLI::

        trainer:
          callbacks:
            - class_path: reskd_lightning.LogitKD
              init_args:
                weight: 1.0
                temperature: 4.0
    """

    def __init__(self, weight: float = 1.0, temperature: float = 4.0, name: str | None = None) -> None:
        super().__init__(weight=weight, name=name)
        if temperature <= 0:
            raise ValueError(f"LogitKD: temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def forward(self, student: ModelOutput, teacher: ModelOutput, batch: Mapping[str, Any]) -> Tensor:
        if student.logits.shape != teacher.logits.shape:
            raise ValueError(
                f"{self.name}: student logits {tuple(student.logits.shape)} and teacher logits "
                f"{tuple(teacher.logits.shape)} differ; both must classify the same classes"
            )
        return kd_kl_div(student.logits, teacher.logits, self.temperature)
