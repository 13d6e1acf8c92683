"""Decoupled knowledge distillation (Zhao et al., CVPR 2022): target-class and non-target-class KD, weighed apart."""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.recognizer import ModelOutput
from .base import SoftTargetLoss
from .schedules import Schedule

# The reference implementation removes the target class from the non-target distribution by subtracting 1000
# from its (temperature-scaled) logit before the softmax.
GT_MASK_OFFSET = 1000.0


def _check_factor(key: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"DecoupledKD: {key} must be a number >= 0, got {value!r}")


def dkd_terms(
    student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, temperature: float
) -> tuple[Tensor, Tensor]:
    """``(TCKD, NCKD)`` of DKD for logits ``[N, K]`` and class ids ``[N]``, each averaged over the batch, times
    ``T^2``, computed in float32 with the teacher detached.

    TCKD is the KL divergence between the teacher's and the student's binary distributions
    ``[p(target), 1 - p(target)]``; NCKD the KL divergence between their distributions over the non-target
    classes (the target logit pushed down by 1000, as in the reference implementation).
    """
    s = student_logits.float() / temperature
    t = teacher_logits.detach().float() / temperature
    gt = F.one_hot(labels.long(), s.shape[1]).bool()

    def binary_log_probs(z: Tensor) -> Tensor:
        # log [p_gt, 1 - p_gt] from log-sum-exps: the same numbers as log(softmax) summed per bin, without the
        # log(0) = -inf a saturated softmax would give.
        lse = torch.logsumexp(z, dim=1, keepdim=True)
        target = z.gather(1, labels.long().view(-1, 1))
        others = torch.logsumexp(z.masked_fill(gt, float("-inf")), dim=1, keepdim=True)
        return torch.cat([target - lse, others - lse], dim=1)

    n = s.shape[0]
    tckd = F.kl_div(binary_log_probs(s), binary_log_probs(t).exp(), reduction="sum") / n
    mask = GT_MASK_OFFSET * gt.float()
    log_p_s = F.log_softmax(s - mask, dim=1)
    p_t = F.softmax(t - mask, dim=1)
    nckd = F.kl_div(log_p_s, p_t, reduction="sum") / n
    return tckd * temperature**2, nckd * temperature**2


class DecoupledKD(SoftTargetLoss):
    """Decoupled knowledge distillation (DKD; Zhao et al., "Decoupled Knowledge Distillation", CVPR 2022).

    Hinton's KD loss splits into a target-class term (TCKD: how sure each network is of the labelled class) and
    a non-target-class term (NCKD: how each spreads the rest over the other classes), which KD couples through
    the teacher's confidence. DKD weighs them apart: ``alpha * TCKD + beta * NCKD``, with ``p = softmax(z / T)``

    - TCKD = ``T^2 * KL([p_t(gt), 1 - p_t(gt)] || [p_s(gt), 1 - p_s(gt)])``, averaged over the batch;
    - NCKD = ``T^2 * KL(p_t(non-target) || p_s(non-target))``, the distributions over the classes other than
      the label (its logit masked out), averaged over the batch.

    It reads the class ids in ``batch["label"]`` (one per clip; multi-label data has no single target class).
    The reference training warms the loss up linearly over the first 20 epochs: a ``weight_schedule``.

    Args:
        weight: multiplier of the term.
        alpha: weight of TCKD (1 in the paper).
        beta: weight of NCKD (8 in the paper's ImageNet and CIFAR settings; tune per teacher).
        temperature: softening temperature ``T`` (4 in the paper).
        name: log/checkpoint name (``train/distill/<name>``); default ``decoupled_kd``.
        weight_schedule: how the weight changes over training (the paper: a 20-epoch linear warm-up).
        temperature_schedule: how the temperature changes over training (a factor of ``temperature``).

    Configure from LightningCLI (the paper's setting, with its warm-up)::

        trainer:
          callbacks:
            - class_path: reskd_lightning.DecoupledKD
              init_args:
                alpha: 1.0
                beta: 8.0
                temperature: 4.0
                weight_schedule:
                  class_path: reskd_lightning.distill.LinearWarmup
                  init_args: {warmup: 20}
    """

    def __init__(
        self,
        weight: float = 1.0,
        alpha: float = 1.0,
        beta: float = 8.0,
        temperature: float = 4.0,
        name: str | None = None,
        weight_schedule: Schedule | None = None,
        temperature_schedule: Schedule | None = None,
    ) -> None:
        super().__init__(weight, temperature, name, weight_schedule, temperature_schedule)
        _check_factor("alpha", alpha)
        _check_factor("beta", beta)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def forward(self, student: ModelOutput, teacher: ModelOutput, batch: Mapping[str, Any]) -> Tensor:
        s, t = student.logits, teacher.logits
        self.check_same_classes(s, t)
        if "label" not in batch:
            raise KeyError(
                f"{self.name}: DecoupledKD needs the class ids in batch['label'], got keys {sorted(batch)}"
            )
        labels = torch.as_tensor(batch["label"], device=s.device)
        if labels.dim() != 1 or labels.is_floating_point() or labels.shape[0] != s.shape[0]:
            raise ValueError(
                f"{self.name}: DKD needs one class id per clip (a [N] integer label with N={s.shape[0]}), got "
                f"labels of shape {tuple(labels.shape)} and dtype {labels.dtype}; multi-hot labels have no single "
                "target class"
            )
        tckd, nckd = dkd_terms(s, t, labels, self.current_temperature)
        return self.alpha * tckd + self.beta * nckd
