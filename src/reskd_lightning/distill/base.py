"""The contract of a distillation loss: a Lightning callback that the module pulls a loss term from."""

from __future__ import annotations

import re
from typing import Any, Mapping

import pytorch_lightning as pl
from torch import Tensor, nn

from ..models.recognizer import ModelOutput


def _snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


class DistillationLoss(pl.Callback):
    """Base class of every distiller: a callback that contributes ``weight * term`` to the student's loss.

    Lightning callbacks cannot change a loss, so the module pulls: in ``setup(stage="fit")`` the distiller
    registers itself with the :class:`~reskd_lightning.ResKDModule`, and each ``training_step`` calls
    ``term = distiller(student_out, teacher_out, batch)``, adds ``distiller.current_weight * term`` to the
    loss and logs ``term`` as ``train/distill/<name>``. Learnable parts (returned by
    :meth:`learnable_modules`) are attached to the module, so Lightning moves, wraps, optimises and
    checkpoints them. The same object may instead be passed as ``ResKDModule(distillers=[...])``.

    Subclasses implement :meth:`forward`. ``name`` makes an instance unique (its ``state_key``), so two
    instances of one class coexist when their names differ.

    Args:
        weight: multiplier of the term in the total loss (>= 0).
        name: the name the term is logged and checkpointed under; defaults to the class name in snake case.
    """

    def __init__(self, weight: float = 1.0, name: str | None = None) -> None:
        super().__init__()
        if not isinstance(weight, (int, float)) or weight < 0:
            raise ValueError(f"{type(self).__name__}: weight must be a number >= 0, got {weight!r}")
        if name is not None and (not name or not re.fullmatch(r"[A-Za-z0-9_\-]+", name)):
            raise ValueError(
                f"{type(self).__name__}: name must be letters, digits, '_' or '-' (it is a log key), got {name!r}"
            )
        self.weight = float(weight)
        self.name = name or _snake_case(type(self).__name__)

    @property
    def state_key(self) -> str:
        return self._generate_state_key(name=self.name)

    @property
    def current_weight(self) -> float:
        """The weight applied now; schedules override this."""
        return self.weight

    def learnable_modules(self) -> nn.Module | None:
        """Modules with parameters to train with the student (an adapter); ``None`` when there are none."""
        return None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        register = getattr(pl_module, "register_distiller", None)
        if register is None:
            raise TypeError(
                f"{type(self).__name__} is a distillation callback; it needs a ResKDModule (or a module with "
                f"`register_distiller`), got {type(pl_module).__name__}"
            )
        register(self)

    def forward(self, student: ModelOutput, teacher: ModelOutput, batch: Mapping[str, Any]) -> Tensor:
        """The unweighted loss term, a scalar tensor."""
        raise NotImplementedError

    def __call__(self, student: ModelOutput, teacher: ModelOutput, batch: Mapping[str, Any]) -> Tensor:
        return self.forward(student, teacher, batch)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, weight={self.weight})"
