"""A recipe's global batch on any number of GPUs and nodes: gradient accumulation from the world size.

The paper's recipes were run on 8 GPUs (e.g. 8 videos x 8 GPUs = 64 videos per optimiser step).
:class:`GlobalBatch` keeps that global batch wherever the recipe runs: per-device batch x processes
(``trainer.world_size``: devices x nodes) x accumulated steps = ``size``, with the accumulation computed at the
start of ``fit``; or, with ``keep_by: scale_lr``, it leaves the batch as it comes and the module scales the lr
linearly to it (``ResKDModule(lr_base_batch_size=...)``). Either way it logs the arithmetic at the start, and says
so when ``size`` cannot be kept exactly (then the lr follows the global batch actually used).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn

KeepBy = Literal["accumulate", "scale_lr"]


def per_device_batch_size(datamodule: Any) -> int | None:
    """Videos per device per step of a DataModule (its ``batch_size`` hyper-parameter or attribute), or None."""
    size = getattr(getattr(datamodule, "hparams", None), "batch_size", None) or getattr(datamodule, "batch_size", None)
    return size if isinstance(size, int) else None


@dataclass(frozen=True)
class BatchPlan:
    """How a global batch is made: ``per_device`` videos x ``processes`` x ``accumulate`` steps = ``global_batch``."""

    per_device: int
    processes: int
    accumulate: int
    target: int

    @property
    def global_batch(self) -> int:
        return self.per_device * self.processes * self.accumulate

    @property
    def exact(self) -> bool:
        return self.global_batch == self.target

    def describe(self) -> str:
        got = (
            f"{self.per_device} videos x {self.processes} process(es) x {self.accumulate} accumulated step(s) = "
            f"{self.global_batch} videos per optimiser step"
        )
        return got + (f" (the recipe's {self.target})" if self.exact else f", not the recipe's {self.target}")


def plan_global_batch(target: int, per_device: int, processes: int, keep_by: KeepBy = "accumulate") -> BatchPlan:
    """The accumulation that brings ``per_device x processes`` closest to ``target`` (at least 1 step; ties
    round up, so the global batch is never smaller than asked), or 1 step with ``keep_by="scale_lr"``."""
    for key, value in (("size", target), ("batch_size", per_device), ("world size", processes)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"GlobalBatch: {key} must be a positive integer, got {value!r}")
    if keep_by not in ("accumulate", "scale_lr"):
        raise ValueError(f"GlobalBatch: keep_by must be 'accumulate' or 'scale_lr', got {keep_by!r}")
    if keep_by == "scale_lr":
        return BatchPlan(per_device, processes, 1, target)
    step = per_device * processes
    low = max(1, target // step)
    high = max(1, math.ceil(target / step))
    accumulate = low if abs(low * step - target) < abs(high * step - target) else high
    return BatchPlan(per_device, processes, accumulate, target)


class GlobalBatch(pl.Callback):
    """Keep a recipe's global batch (``size`` videos per optimiser step) on any number of GPUs and nodes.

    ``keep_by: accumulate`` sets ``trainer.accumulate_grad_batches`` at the start of ``fit`` from the per-device
    batch (``data.batch_size``) and the world size, so ``reskd fit --config RECIPE`` runs as it is on 1 GPU, 8,
    or 4 nodes of 8; ``keep_by: scale_lr`` accumulates nothing and lets the module scale the lr to the global
    batch it gets (set ``model.lr_base_batch_size`` to ``size``). The plan is logged at the start; a global
    batch that cannot be met exactly (e.g. 64 on 3 GPUs of 8 videos) is warned about, and the lr, when
    ``lr_base_batch_size`` is set, follows the batch used. Giving ``trainer.accumulate_grad_batches`` as well
    is refused (one of the two decides).

    Configure from LightningCLI (the paper's 8 videos x 8 GPUs)::

        trainer:
          callbacks:
            - class_path: reskd_lightning.GlobalBatch
              init_args: {size: 64}   # keep_by: scale_lr to scale the lr instead of accumulating
        data:
          init_args: {batch_size: 8}
    """

    def __init__(self, size: int, keep_by: KeepBy = "accumulate") -> None:
        plan_global_batch(size, 1, 1, keep_by)  # checks the arguments now, not at the start of fit
        self.size = size
        self.keep_by = keep_by
        self.plan: BatchPlan | None = None  # the plan of the last fit

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, keep_by={self.keep_by!r})"

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        per_device = per_device_batch_size(trainer.datamodule)
        if per_device is None:
            raise ValueError(
                "GlobalBatch needs the per-device batch size: use a DataModule with a `batch_size` (hyper-)parameter"
            )
        ours = self.plan.accumulate if self.plan is not None and self.keep_by == "accumulate" else 1
        if self.keep_by == "accumulate" and trainer.accumulate_grad_batches not in (1, ours):
            raise ValueError(
                f"trainer.accumulate_grad_batches={trainer.accumulate_grad_batches} and GlobalBatch(size={self.size}) "
                "both set the accumulation: remove one (GlobalBatch computes it from the number of GPUs)"
            )
        if self.keep_by == "accumulate":
            self.plan = plan_global_batch(self.size, per_device, trainer.world_size)
            trainer.accumulate_grad_batches = self.plan.accumulate
        else:  # the accumulation stays as configured; the module scales the lr to the batch it makes
            self.plan = BatchPlan(per_device, trainer.world_size, trainer.accumulate_grad_batches, self.size)
        base = getattr(pl_module, "lr_base_batch_size", None)
        lr = (
            f"; the lr is scaled by {self.plan.global_batch}/{base}" if base and base != self.plan.global_batch
            else "; the lr is used as configured" if base else "; the lr is used as configured (no lr_base_batch_size)"
        )  # fmt: skip
        if self.plan.exact:
            rank_zero_info(f"global batch: {self.plan.describe()}{lr}")
        else:
            rank_zero_warn(f"global batch: {self.plan.describe()}: it cannot be kept exactly on this layout{lr}")
        if self.keep_by == "scale_lr" and not base:
            rank_zero_warn(
                "GlobalBatch(keep_by='scale_lr') without model.lr_base_batch_size: nothing scales the lr; set "
                f"lr_base_batch_size: {self.size}"
            )
