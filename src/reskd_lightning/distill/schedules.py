"""Schedules of a distiller's weight or temperature over training (constant, linear warm-up, cosine).

A schedule maps training progress to a factor of a base value: ``value = base * schedule.factor(progress)``.
Progress is counted in optimiser steps or in (fractional) epochs, and is the distiller's own state, so a
resumed run continues the schedule where it stopped.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

Unit = Literal["epoch", "step"]


@dataclass
class Progress:
    """Where training is: optimiser ``step``, fractional ``epoch``, and the run's totals (``None``: unknown)."""

    step: int = 0
    epoch: float = 0.0
    total_steps: int | None = None
    total_epochs: int | None = None

    def at(self, unit: Unit) -> float:
        return float(self.step) if unit == "step" else float(self.epoch)

    def total(self, unit: Unit) -> int | None:
        return self.total_steps if unit == "step" else self.total_epochs

    def state_dict(self) -> dict:
        return asdict(self)


class Schedule:
    """Base class: a factor of the base value as a function of training progress.

    Args:
        unit: "epoch" (fractional epochs) or "step" (optimiser steps).
    """

    def __init__(self, unit: Unit = "epoch") -> None:
        if unit not in ("epoch", "step"):
            raise ValueError(f"{type(self).__name__}: unit must be 'epoch' or 'step', got {unit!r}")
        self.unit = unit

    def factor(self, progress: Progress) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """The base value throughout.

    Configure from LightningCLI (a distiller's ``weight_schedule``)::

        weight_schedule: {class_path: reskd_lightning.distill.Constant}
    """

    def factor(self, progress: Progress) -> float:
        return 1.0


class LinearWarmup(Schedule):
    """From ``start_factor x base`` to the base value linearly over ``warmup`` units, then constant.

    Decoupled KD, for one, warms its loss up over the first 20 epochs.

    Args:
        warmup: length of the warm-up, in ``unit`` (> 0).
        start_factor: factor at progress 0, in [0, 1].
        unit: "epoch" or "step".

    Configure from LightningCLI::

        weight_schedule:
          class_path: reskd_lightning.distill.LinearWarmup
          init_args: {warmup: 20, unit: epoch}
    """

    def __init__(self, warmup: float, start_factor: float = 0.0, unit: Unit = "epoch") -> None:
        super().__init__(unit)
        if not warmup > 0:
            raise ValueError(f"LinearWarmup: warmup must be > 0 {unit}s, got {warmup!r}")
        if not 0.0 <= start_factor <= 1.0:
            raise ValueError(f"LinearWarmup: start_factor must be in [0, 1], got {start_factor!r}")
        self.warmup = float(warmup)
        self.start_factor = float(start_factor)

    def factor(self, progress: Progress) -> float:
        done = min(progress.at(self.unit) / self.warmup, 1.0)
        return self.start_factor + (1.0 - self.start_factor) * done


class Cosine(Schedule):
    """Half a cosine from the base value to ``final_factor x base`` over ``total`` units (the run's length by
    default), then ``final_factor``.

    Args:
        final_factor: factor at the end (>= 0; above 1 makes the value grow).
        total: length in ``unit``; ``None`` takes the run's ``max_epochs`` or its estimated steps.
        unit: "epoch" or "step".

    Configure from LightningCLI (a temperature annealed from 4 to 1)::

        temperature: 4.0
        temperature_schedule:
          class_path: reskd_lightning.distill.Cosine
          init_args: {final_factor: 0.25}
    """

    def __init__(self, final_factor: float = 0.0, total: float | None = None, unit: Unit = "epoch") -> None:
        super().__init__(unit)
        if final_factor < 0:
            raise ValueError(f"Cosine: final_factor must be >= 0, got {final_factor!r}")
        if total is not None and not total > 0:
            raise ValueError(f"Cosine: total must be > 0 {unit}s or None (the run's length), got {total!r}")
        self.final_factor = float(final_factor)
        self.total = None if total is None else float(total)

    def factor(self, progress: Progress) -> float:
        total = self.total if self.total is not None else progress.total(self.unit)
        if not total or total <= 0:
            return 1.0  # the run's length is not known yet (before fit): the base value
        done = min(progress.at(self.unit) / total, 1.0)
        return self.final_factor + (1.0 - self.final_factor) * 0.5 * (1.0 + math.cos(math.pi * done))
