"""The contract of a distillation loss: a Lightning callback that the module pulls a loss term from."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Mapping

import pytorch_lightning as pl
from torch import Tensor, nn

from ..models.recognizer import ModelOutput
from .schedules import Progress, Schedule

if TYPE_CHECKING:
    from ..module import ResKDModule


def _snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


class DistillationLoss(pl.Callback):
    """Base class of every distiller: a callback that contributes ``current_weight * term`` to the student's loss.

    Lightning callbacks cannot change a loss, so the module pulls: in ``setup(stage="fit")`` the distiller
    registers itself with the :class:`~reskd_lightning.ResKDModule`, and each ``training_step`` calls
    ``term = distiller(student_out, teacher_out, batch)``, adds ``distiller.current_weight * term`` to the
    loss and logs ``term`` as ``train/distill/<name>``. Learnable parts (returned by
    :meth:`learnable_modules`) are attached to the module, so Lightning moves, wraps, optimises and
    checkpoints them. The same object may instead be passed as ``ResKDModule(distillers=[...])``.

    Intermediate maps: a distiller lists module paths in :attr:`student_taps` / :attr:`teacher_taps`
    (``"backbone.layer3"``); the module captures those submodules' outputs during the forward passes and hands
    them over in ``ModelOutput.taps``.

    Schedules: ``weight_schedule`` scales the weight with training progress (linear warm-up, cosine, ...). The
    progress is the distiller's ``state_dict``, so a resumed run continues the schedule.

    Subclasses implement :meth:`forward`. ``name`` makes an instance unique (its ``state_key``), so two
    instances of one class coexist when their names differ.

    Teacher's classifier: :attr:`uses_teacher_logits` says whether the term reads the teacher's classifier
    (its ``logits``, or its logit map as LogitMapKD). It is ``True`` unless a subclass says otherwise, the safe
    default for a user's distiller: a module whose teacher classifier is not loaded
    (``ResKDModule(teacher_weights="backbone")``) refuses such a distiller rather than let it learn from a
    random classifier. A distiller that reads only feature maps or taps sets ``uses_teacher_logits = False``.

    Args:
        weight: multiplier of the term in the total loss (>= 0).
        name: the name the term is logged and checkpointed under; defaults to the class name in snake case.
        weight_schedule: how the weight changes over training; ``None``: constant.
    """

    #: Whether :meth:`forward` reads the teacher's classifier output (logits or logit maps); see above.
    uses_teacher_logits: bool = True

    def __init__(self, weight: float = 1.0, name: str | None = None, weight_schedule: Schedule | None = None) -> None:
        super().__init__()
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ValueError(f"{type(self).__name__}: weight must be a number >= 0, got {weight!r}")
        if name is not None and (not name or not re.fullmatch(r"[A-Za-z0-9_\-]+", name)):
            raise ValueError(
                f"{type(self).__name__}: name must be letters, digits, '_' or '-' (it is a log key), got {name!r}"
            )
        self._check_schedule("weight_schedule", weight_schedule)
        self.weight = float(weight)
        self.name = name or self.default_name()
        self.weight_schedule = weight_schedule
        self.progress = Progress()

    def default_name(self) -> str:
        """The name used when none is given: the class name in snake case."""
        return _snake_case(type(self).__name__)

    def _check_schedule(self, key: str, schedule: Schedule | None) -> None:
        if schedule is not None and not isinstance(schedule, Schedule):
            raise TypeError(
                f"{type(self).__name__}: {key} must be a reskd_lightning.distill.Schedule (Constant, LinearWarmup, "
                f"Cosine) or None, got {type(schedule).__name__}"
            )

    @property
    def state_key(self) -> str:
        return self._generate_state_key(name=self.name)

    # ------------------------------------------------------------------------------------------ schedules
    def scheduled(self, base: float, schedule: Schedule | None) -> float:
        """``base`` scaled by ``schedule`` at the current progress."""
        return base if schedule is None else base * schedule.factor(self.progress)

    @property
    def current_weight(self) -> float:
        """The weight applied now."""
        return self.scheduled(self.weight, self.weight_schedule)

    def update_progress(
        self, step: int, epoch: float, total_steps: int | None = None, total_epochs: int | None = None
    ) -> None:
        """Called by the module before each training step with the trainer's position."""
        self.progress = Progress(int(step), float(epoch), total_steps, total_epochs)

    def state_dict(self) -> dict[str, Any]:
        return {"progress": self.progress.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        progress = state_dict.get("progress")
        if progress is not None:
            self.progress = Progress(**progress)

    # ------------------------------------------------------------------------------------ the module side
    @property
    def student_taps(self) -> tuple[str, ...]:
        """Module paths in the student whose outputs this distiller reads from ``ModelOutput.taps``."""
        return ()

    @property
    def teacher_taps(self) -> tuple[str, ...]:
        """Module paths in the teacher whose outputs this distiller reads from ``ModelOutput.taps``."""
        return ()

    def bind(self, module: "ResKDModule") -> None:
        """Called once when the distiller is registered, before :meth:`learnable_modules`: look at the
        networks (their widths, their heads). The default does nothing."""

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



class SoftTargetLoss(DistillationLoss):
    """A distiller on temperature-softened class distributions (LogitKD, LogitMapKD, DecoupledKD): the
    ``temperature``, its schedule and validation.

    Args:
        weight, name, weight_schedule: as for :class:`DistillationLoss`.
        temperature: softening temperature ``T`` (> 0).
        temperature_schedule: how the temperature changes over training (a factor of ``temperature``).
    """

    uses_teacher_logits = True  # soft targets come from the teacher's classifier

    def __init__(
        self,
        weight: float,
        temperature: float,
        name: str | None = None,
        weight_schedule: Schedule | None = None,
        temperature_schedule: Schedule | None = None,
    ) -> None:
        super().__init__(weight=weight, name=name, weight_schedule=weight_schedule)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ValueError(f"{type(self).__name__}: temperature must be > 0, got {temperature!r}")
        self._check_schedule("temperature_schedule", temperature_schedule)
        self.temperature = float(temperature)
        self.temperature_schedule = temperature_schedule

    @property
    def current_temperature(self) -> float:
        """The temperature applied now."""
        return self.scheduled(self.temperature, self.temperature_schedule)

    def check_same_classes(self, student_logits: Tensor, teacher_logits: Tensor) -> None:
        """Raise naming both shapes when the two networks do not classify the same classes."""
        if student_logits.shape != teacher_logits.shape:
            raise ValueError(
                f"{self.name}: student logits {tuple(student_logits.shape)} and teacher logits "
                f"{tuple(teacher_logits.shape)} differ; both must classify the same classes"
            )


def tapped(output: ModelOutput, path: str | None, role: str, distiller: str) -> Tensor:
    """The map a distiller asked for: the last feature map when ``path`` is None, else the captured tap."""
    if path is None:
        if output.features is None:
            raise ValueError(f"{distiller}: needs the {role}'s feature map, but the {role} returned only logits")
        return output.features
    taps = output.taps or {}
    if path not in taps:
        raise KeyError(
            f"{distiller}: the {role}'s output of {path!r} was not captured (captured: {sorted(taps)}); "
            "is the distiller registered with the ResKDModule?"
        )
    return taps[path]


def as_feature_map(x: Tensor, batch_size: int, channels_last: bool = False, where: str = "") -> Tensor:
    """A tapped output as ``[N, C, T, h, w]``.

    2-D networks (TSN, TSM) run frames as a batch, so their stages give ``[N*T, C, h, w]``: unfolded here.
    Transformer stages (Video Swin) are channels-last ``[N, T, h, w, C]``: ``channels_last=True`` moves C.
    """
    if x.dim() == 4:
        if x.shape[0] % batch_size:
            raise ValueError(
                f"{where}: a 4-D map {tuple(x.shape)} should be [N*T, C, h, w] with N={batch_size} clips; "
                f"{x.shape[0]} is not a multiple of {batch_size}"
            )
        x = x.reshape(batch_size, x.shape[0] // batch_size, *x.shape[1:])  # [N, T, C, h, w] (or [N, T, h, w, C])
        return x.permute(0, 4, 1, 2, 3) if channels_last else x.transpose(1, 2)
    if x.dim() == 5:
        return x.permute(0, 4, 1, 2, 3) if channels_last else x
    raise ValueError(f"{where}: expected a 4-D [N*T, C, h, w] or 5-D [N, C, T, h, w] map, got shape {tuple(x.shape)}")
