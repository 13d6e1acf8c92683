"""The contract of a distillation loss: a Lightning callback that the module pulls a loss term from."""

from __future__ import annotations

import inspect
import re
from typing import Any, Mapping

import pytorch_lightning as pl
from torch import Tensor, nn

from ..models.recognizer import ModelOutput
from .schedules import Progress, Schedule


def _snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


class DistillationLoss(pl.Callback):
    """Base class of every distiller: a callback that contributes ``current_weight * term`` to the student's loss.

    DESIGN, the contract between a distiller and :class:`~reskd_lightning.ResKDModule`:

    * Registration. Lightning callbacks cannot change a loss, so the module pulls: in ``setup(stage="fit")`` the
      distiller calls the module's ``register_distiller`` (the same object may instead be passed as
      ``ResKDModule(distillers=[...])``, registered when the module is built). Registering calls
      :meth:`attach` with the two networks and the module's store of learnable parts, nothing else of the
      module. Each ``training_step`` then calls ``term = distiller(student_out, teacher_out, batch)``, adds
      ``distiller.current_weight * term`` to the loss and logs ``term`` as ``train/distill/<name>``.
    * What a distiller sees: :meth:`bind` gets the student and the teacher (``nn.Module``) to check them and
      read what the term needs (widths, stages, classifiers); the networks' outputs come to :meth:`forward`.
    * Learnable parts (an adapter) have one owner, the module: :meth:`build_learnable` makes them new for the
      bound networks, the module keeps them in ``module.distill_modules[name]`` (so Lightning moves, wraps,
      optimises and checkpoints them, under ``distill_modules.<name>.*``), and the distiller reaches them
      through :attr:`learnable`, a look-up in that store, never a copy of its own.
    * Schedule progress has one owner too, the distiller (:attr:`progress`, moved by the module before each
      step with :meth:`update_progress`), and is saved in one place: the module writes every registered
      distiller's :meth:`schedule_state` into ``checkpoint["distillers"][state_key]`` and restores it in
      ``on_load_checkpoint`` (``load_from_checkpoint`` and a resumed fit alike), whether the distiller is a
      trainer callback or a ``distillers=`` entry. Lightning's callback state (:meth:`state_dict`) stays empty;
      checkpoints written before this contract also hold the progress there, which :meth:`load_state_dict`
      still reads (the same values).

    Intermediate maps: a distiller lists module paths in :attr:`student_taps` / :attr:`teacher_taps`
    (``"backbone.layer3"``); the module captures those submodules' outputs during the forward passes and hands
    them over in ``ModelOutput.taps``.

    Schedules: ``weight_schedule`` scales the weight with training progress (linear warm-up, cosine, ...), so a
    resumed run continues the schedule.

    Subclasses implement :meth:`forward`, and :meth:`bind` / :meth:`build_learnable` when they look at the
    networks or learn something. ``name`` makes an instance unique (its ``state_key``), so two instances of one
    class coexist when their names differ. A distiller serves the module it was last registered with.

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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A distiller written for the former contract would silently lose its adapter or fail at registration.
        if "learnable_modules" in cls.__dict__:
            raise TypeError(
                f"{cls.__name__} defines learnable_modules(), which distillers no longer have: return new "
                "learnable parts from build_learnable() and read them back through self.learnable"
            )
        bind = cls.__dict__.get("bind")
        if bind is not None and len(inspect.signature(bind).parameters) == 2:
            raise TypeError(
                f"{cls.__name__}.bind takes one argument (the module, the former contract); distillers are bound "
                "with bind(self, student, teacher): the two networks"
            )

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
        self._store: nn.ModuleDict | None = None

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

    def schedule_state(self) -> dict[str, Any]:
        """The schedules' progress, as the module saves it in ``checkpoint["distillers"][state_key]``."""
        return {"progress": self.progress.state_dict()}

    def load_schedule_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`schedule_state` returned."""
        progress = state.get("progress")
        if progress is not None:
            self.progress = Progress(**progress)

    def state_dict(self) -> dict[str, Any]:
        """Lightning's callback state: empty, so the progress is saved once (by the module, see the class)."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Callback state of a checkpoint written before the module alone saved the progress: the same values
        as its ``checkpoint["distillers"]`` entry."""
        self.load_schedule_state(state_dict)

    # ------------------------------------------------------------------------------------ the module side
    @property
    def student_taps(self) -> tuple[str, ...]:
        """Module paths in the student whose outputs this distiller reads from ``ModelOutput.taps``."""
        return ()

    @property
    def teacher_taps(self) -> tuple[str, ...]:
        """Module paths in the teacher whose outputs this distiller reads from ``ModelOutput.taps``."""
        return ()

    def bind(self, student: nn.Module, teacher: nn.Module) -> None:
        """Look at the two networks when the distiller is registered, before :meth:`build_learnable`: check
        them (stages, widths, heads) and keep what :meth:`forward` reads from them. The default does nothing."""

    def build_learnable(self) -> nn.Module | None:
        """New learnable parts for the bound networks (an adapter), or ``None`` (the default). Called once per
        registration, after :meth:`bind`; the module owns what it returns (see the class)."""
        return None

    def attach(self, student: nn.Module, teacher: nn.Module, store: nn.ModuleDict) -> None:
        """Called by the module that registers this distiller: :meth:`bind` to the networks, put what
        :meth:`build_learnable` makes into the module's ``store`` under :attr:`name`, and read
        :attr:`learnable` from that store from now on."""
        self.bind(student, teacher)
        learnable = self.build_learnable()
        if learnable is not None:
            store[self.name] = learnable
        self._store = store

    @property
    def learnable(self) -> nn.Module | None:
        """This distiller's learnable parts as the module it is registered with holds them (``None`` before
        registration, or when it has none)."""
        store = self._store
        return store[self.name] if store is not None and self.name in store else None

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
