"""Distillation on class distributions: Hinton's logit KD and the paper's per-location logit-map KD."""

from __future__ import annotations

from typing import Any, Literal, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.recognizer import ModelOutput
from ..views import INTERPOLATION_MODES, resize_frames
from .base import SoftTargetLoss
from .schedules import Schedule


def kd_kl_div(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """``T^2 * KL(softmax(t / T) || softmax(s / T))``, averaged over the batch."""
    log_p_s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
    return F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean") * temperature**2


class LogitKD(SoftTargetLoss):
    """Knowledge distillation on the class logits (Hinton et al.), scaled by ``T^2``.

    Not used by the paper for CNNs (its ablation finds the feature loss better), but a standard baseline and
    stackable with :class:`FeatureMapKD`.

    Args:
        weight: multiplier of the term.
        temperature: softening temperature ``T`` (> 0).
        name: log/checkpoint name (``train/distill/<name>``).
        weight_schedule: how the weight changes over training.
        temperature_schedule: how the temperature changes over training (a factor of ``temperature``).

    Configure from LightningCLI::

        trainer:
          callbacks:
            - class_path: reskd_lightning.LogitKD
              init_args:
                weight: 1.0
                temperature: 4.0
    """

    def __init__(
        self,
        weight: float = 1.0,
        temperature: float = 4.0,
        name: str | None = None,
        weight_schedule: Schedule | None = None,
        temperature_schedule: Schedule | None = None,
    ) -> None:
        super().__init__(weight, temperature, name, weight_schedule, temperature_schedule)

    def forward(self, student: ModelOutput, teacher: ModelOutput, batch: Mapping[str, Any]) -> Tensor:
        self.check_same_classes(student.logits, teacher.logits)
        return kd_kl_div(student.logits, teacher.logits, self.current_temperature)


def logit_map_of(network: nn.Module, features: Tensor) -> Tensor:
    """``network``'s classifier at every location of ``features``: ``[N, C, T, h, w]`` -> ``[N, K, T, h, w]``."""
    if hasattr(network, "logit_map"):
        return network.logit_map(features)
    head = getattr(network, "cls_head", None)
    if head is not None and hasattr(head, "logit_map"):
        return head.logit_map(features)
    raise TypeError(
        f"{type(network).__name__} has no `logit_map(features)` method nor a `cls_head.logit_map`: LogitMapKD needs "
        "the classifier applied at every location of the feature map"
    )


class LogitMapKD(SoftTargetLoss):
    """The paper's distillation for transformer pairs (Video Swin-B -> Swin-S): per-location logit maps.

    Each network's own classifier is applied at every location of its last feature map (so the widths may
    differ: Swin-B's 1024 channels, Swin-S's 768), the student's logit map is upsampled to the teacher's
    spatial size (e.g. 4x4 at 112 px -> 7x7 at 224 px), and the two are compared location by location by
    the KL divergence of their temperature-softened class distributions.

    Reductions, over the ``L = N * T * h * w`` locations (at the teacher's size) and ``K`` classes, with
    ``p_t = softmax(t / T)`` and ``log p_s = log_softmax(s / T)`` per location:

    * ``"mean"`` (the paper's code): ``T^2 * sum(p_t * (log p_t - log p_s)) / (L * K)``, the pointwise KL
      averaged over every location *and* class (``nn.KLDivLoss()``'s element-wise mean), times ``T^2``. The
      official Swin head computes ``w * T * T * nn.KLDivLoss()(log_softmax(fc_s(up(f_s)) / T),
      softmax(fc_t(f_t) / T))`` with ``T = 2`` and ``w = 200`` (``mmaction/models/heads/grkd_3d_head.py``
      lines 123-132 and ``configs/myconfig/rkd/rkd_swins_32x2x1_60e_k400.py`` of CVMI-Lab/ResKD).
    * ``"batchmean"``: ``T^2 * sum(p_t * (log p_t - log p_s)) / L``, the KL of each location's distributions
      (summed over classes) averaged over locations, times ``T^2``: Hinton's KD at every location. It is
      ``K`` times ``"mean"``, so a weight meant for ``"mean"`` must be divided by ``K`` (200 / 400 = 0.5 for
      Kinetics-400) to give the same loss.

    The official code upsamples the student's feature map (bilinear, ``align_corners=False``) and then applies
    the classifier; this upsamples the student's logit map instead, which is the same (the classifier is
    linear and the bilinear weights of each output location sum to 1). Both classifiers are applied without
    dropout, as in the official head.

    Args:
        weight: multiplier of the term (200 in the paper's Swin-B -> Swin-S recipe).
        temperature: softening temperature ``T`` (2 in the paper).
        reduction: "mean" (the paper's) or "batchmean" (see above).
        mode: interpolation used to upsample the student's logit map.
        name: log/checkpoint name (``train/distill/<name>``).
        weight_schedule, temperature_schedule: how the weight and the temperature change over training.

    Configure from LightningCLI::

        trainer:
          callbacks:
            - class_path: reskd_lightning.LogitMapKD
              init_args: {weight: 200, temperature: 2.0}
    """

    def __init__(
        self,
        weight: float = 200.0,
        temperature: float = 2.0,
        reduction: Literal["mean", "batchmean"] = "mean",
        mode: str = "bilinear",
        name: str | None = None,
        weight_schedule: Schedule | None = None,
        temperature_schedule: Schedule | None = None,
    ) -> None:
        super().__init__(weight, temperature, name, weight_schedule, temperature_schedule)
        if reduction not in ("mean", "batchmean"):
            raise ValueError(f"LogitMapKD: reduction must be 'mean' or 'batchmean', got {reduction!r}")
        if mode not in INTERPOLATION_MODES:
            raise ValueError(f"LogitMapKD: mode must be one of {', '.join(INTERPOLATION_MODES)}, got {mode!r}")
        self.reduction = reduction
        self.mode = mode
        self._networks: tuple[nn.Module, nn.Module] | None = None

    def bind(self, student: nn.Module, teacher: nn.Module) -> None:
        """Keep the student and the teacher, whose classifiers make the logit maps."""
        for role, network in (("student", student), ("teacher", teacher)):
            if not hasattr(network, "logit_map") and not hasattr(getattr(network, "cls_head", None), "logit_map"):
                raise TypeError(
                    f"{self.name}: the {role} ({type(network).__name__}) has no `logit_map(features)` method nor a "
                    "`cls_head.logit_map`; LogitMapKD applies each network's classifier at every location"
                )
        self._networks = (student, teacher)

    def forward(self, student: ModelOutput, teacher: ModelOutput, batch: Mapping[str, Any]) -> Tensor:
        if self._networks is None:
            raise RuntimeError(
                f"{self.name}: LogitMapKD needs the networks' classifiers; register it with a ResKDModule (as a "
                "trainer callback or in `distillers=`) or call `bind(student, teacher)` first"
            )
        if student.features is None or teacher.features is None:
            raise ValueError(f"{self.name}: LogitMapKD needs feature maps; the student or teacher gave none")
        student_net, teacher_net = self._networks
        s = logit_map_of(student_net, student.features)
        with torch.no_grad():
            t = logit_map_of(teacher_net, teacher.features.detach())
        return logit_map_kl(s, t, self.current_temperature, self.reduction, self.mode, self.name)


def logit_map_kl(
    student_map: Tensor, teacher_map: Tensor, temperature: float, reduction: str = "mean", mode: str = "bilinear",
    where: str = "logit_map_kd",
) -> Tensor:  # fmt: skip
    """``T^2`` times the KL between per-location class distributions of two logit maps ``[N, K, T, h, w]``.

    The student's map is upsampled to the teacher's ``h, w`` with ``mode``; ``reduction`` ``"mean"`` (the paper's
    code) averages over locations x classes, ``"batchmean"`` sums over classes and averages over locations
    (``K`` times larger); see :class:`LogitMapKD`.
    """
    if reduction not in ("mean", "batchmean"):
        raise ValueError(f"{where}: reduction must be 'mean' or 'batchmean', got {reduction!r}")
    if student_map.shape[:3] != teacher_map.shape[:3]:
        raise ValueError(
            f"{where}: the logit maps must agree in batch, classes and frames; got student {tuple(student_map.shape)} "
            f"and teacher {tuple(teacher_map.shape)}"
        )
    s = resize_frames(student_map.float(), tuple(teacher_map.shape[-2:]), mode)
    k = s.shape[1]
    log_p_s = F.log_softmax(s.movedim(1, -1).reshape(-1, k) / temperature, dim=-1)
    log_p_t = F.log_softmax(teacher_map.detach().float().movedim(1, -1).reshape(-1, k) / temperature, dim=-1)
    # official: mmaction/models/heads/grkd_3d_head.py:131 (CVMI-Lab/ResKD): w * T * T * nn.KLDivLoss()(...), whose
    # "mean" is over locations x classes. Summed here and divided, as torch's own "mean" warns it will change.
    kl = F.kl_div(log_p_s, log_p_t, log_target=True, reduction="sum") * temperature**2
    return kl / log_p_s.numel() if reduction == "mean" else kl / log_p_s.shape[0]
