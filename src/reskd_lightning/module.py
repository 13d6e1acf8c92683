"""ResKDModule: a frozen high-resolution teacher teaching a low-resolution student."""

from __future__ import annotations

import copy
import functools
import logging
import os
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from pytorch_lightning.utilities.rank_zero import rank_zero_deprecation
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torchmetrics import MeanMetric

from .distill.base import DistillationLoss
from . import student_export
from .global_batch import per_device_batch_size
from .speed import (
    TEACHER_DTYPES,
    CompileTarget,
    TeacherPrecision,
    cast_except_norms,
    check_speed_options,
    clip_in_format,
    compiles,
    to_channels_last,
    to_float32,
)
from .finite import NonFiniteGuard, NonFiniteLossError, NonFiniteMode, nonfinite_tensors
from .metrics import average_views, evaluation_metrics
from .models.recognizer import ModelOutput, as_model_output
from .models.weights import CLASSIFIER_PREFIX, WeightsMismatchError, check_state_dict, load_weights
from .optim import (
    EpochScheduleWithWarmup,
    ParamGroups,
    apply_group_multipliers,
    cosine_per_epoch,
    linear_scaled_lr_factor,
    paper_sgd,
)
from .quiet import QuietIntendedWarnings
from .views import IMAGENET_MEAN, IMAGENET_STD, attach_views, batch_size_of
from .data.dataset import UNREADABLE_KEY

ModelSpec = nn.Module | Callable[[int], nn.Module]

TEACHER_PREFIX = "teacher."
DISTILL_PREFIX = "distill_modules."
#: Where checkpoints keep every registered distiller's schedule progress (``state_key -> schedule_state()``).
DISTILLERS_KEY = "distillers"
#: Where checkpoints keep the number of batches skipped for non-finite values (``on_nonfinite: skip``).
NONFINITE_KEY = "nonfinite_skipped"

TeacherMode = Literal["train", "bn_train", "eval"]
TEACHER_MODES: tuple[str, ...] = ("train", "bn_train", "eval")
#: The deprecated ``teacher_bn_mode`` values and the ``teacher_mode`` each meant.
TEACHER_BN_MODE_ALIASES: dict[str, str] = {"train": "bn_train", "eval": "eval"}
TeacherWeights = Literal["all", "backbone"]


def resolve_teacher_mode(teacher_mode: str, teacher_bn_mode: str | None) -> str:
    """The teacher's mode from ``teacher_mode`` and the deprecated ``teacher_bn_mode`` (old checkpoints keep it in
    their hyper-parameters): ``teacher_bn_mode`` "train" is ``teacher_mode`` "bn_train", "eval" is "eval"; it
    applies when ``teacher_mode`` is left at its default "bn_train", and another ``teacher_mode`` that disagrees
    with it raises."""
    if teacher_mode not in TEACHER_MODES:
        raise ValueError(f"teacher_mode must be one of {', '.join(map(repr, TEACHER_MODES))}, got {teacher_mode!r}")
    if teacher_bn_mode is None:
        return teacher_mode
    if teacher_bn_mode not in TEACHER_BN_MODE_ALIASES:
        raise ValueError(f"teacher_bn_mode (deprecated) must be 'train' or 'eval', got {teacher_bn_mode!r}")
    aliased = TEACHER_BN_MODE_ALIASES[teacher_bn_mode]
    if teacher_mode not in ("bn_train", aliased):
        raise ValueError(
            f"teacher_bn_mode={teacher_bn_mode!r} (deprecated; it means teacher_mode={aliased!r}) contradicts "
            f"teacher_mode={teacher_mode!r}: set only teacher_mode (when overriding a checkpoint's "
            "hyper-parameters, also pass teacher_bn_mode=None)"
        )
    rank_zero_deprecation(
        f"ResKDModule's teacher_bn_mode is deprecated: teacher_bn_mode: {teacher_bn_mode} is teacher_mode: {aliased} "
        "(BatchNorm only in train mode; teacher_mode: train runs the whole teacher in train mode, as the paper's code)"
    )
    return aliased


def _build(spec: ModelSpec | None, num_classes: int | None, role: str) -> nn.Module | None:
    if spec is None or isinstance(spec, nn.Module):
        return spec
    if not callable(spec):
        raise TypeError(f"{role} must be an nn.Module or a callable taking num_classes, got {type(spec).__name__}")
    if num_classes is None:
        raise ValueError(
            f"num_classes is needed to build the {role} from {spec!r}: set `data.num_classes` in the config "
            "(linked to the model) or pass num_classes"
        )
    return spec(num_classes)


def _checked_settings(
    num_classes: int | None,
    student_resolution: int,
    teacher_resolution: int,
    has_teacher: bool,
    teacher_ckpt: str | None,
    teacher_mode: str,
    teacher_weights: str,
    teacher_bn_mode: str | None,
    metric: str,
    lr_base_batch_size: int | None,
    allow_student_above_teacher: bool = False,
) -> str:
    """Refuse bad ResKDModule arguments, naming them; the teacher's mode resolved (:func:`resolve_teacher_mode`)."""
    if lr_base_batch_size is not None and (not isinstance(lr_base_batch_size, int) or lr_base_batch_size <= 0):
        raise ValueError(f"lr_base_batch_size must be a positive number of videos or None, got {lr_base_batch_size!r}")
    if metric not in ("accuracy", "mAP"):
        raise ValueError(f"metric must be 'accuracy' or 'mAP', got {metric!r}")
    teacher_mode = resolve_teacher_mode(teacher_mode, teacher_bn_mode)
    if teacher_weights not in ("all", "backbone"):
        raise ValueError(f"teacher_weights must be 'all' or 'backbone', got {teacher_weights!r}")
    for key, value in (("student_resolution", student_resolution), ("teacher_resolution", teacher_resolution)):
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{key} must be a positive number of pixels, got {value!r}")
    if num_classes is not None and num_classes <= 0:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    if teacher_ckpt is not None and not has_teacher:
        raise ValueError(f"teacher_ckpt={teacher_ckpt!r} is set but no teacher network is given")
    if has_teacher and student_resolution > teacher_resolution and not allow_student_above_teacher:
        raise ValueError(
            f"student_resolution {student_resolution} is above teacher_resolution {teacher_resolution}: ResKD teaches "
            "a low-resolution student from a high-resolution teacher; swap the two, or set "
            "allow_student_above_teacher: true to distil upwards on purpose"
        )
    return teacher_mode


log = logging.getLogger(__name__)


def _has_videos(batch: Mapping[str, Any]) -> bool:
    """False for an evaluation batch whose videos were all unreadable (``collate_readable`` left none)."""
    return "video" in batch or "clips" in batch


class ResKDModule(pl.LightningModule):
    """Train a student on low-resolution clips, taught by a frozen teacher that sees the same clips at high
    resolution (ResKD); with no teacher, train a plain recognizer (a teacher stage or a low-resolution
    baseline).

    The teacher is frozen: ``requires_grad_(False)``, run under ``no_grad``, out of the optimiser, and kept in
    ``teacher_mode`` across Lightning's train/eval switches (``module.train()``/``module.eval()``):

    * ``"train"`` (the paper's code: ``mmaction/models/backbones/rkd.py`` of CVMI-Lab/ResKD comments out the
      teacher's ``.eval()`` and runs it under ``no_grad``): every teacher submodule in train mode. BatchNorm normalises with the batch's statistics and updates its running statistics; dropout
      and stochastic depth (drop-path, e.g. Video Swin's 0.1) are active, so the teacher's output is random.
      Its classifier's dropout then also reaches the teacher's pooled ``logits`` (LogitKD, DecoupledKD read
      them); LogitMapKD's per-location logit maps never use dropout.
    * ``"bn_train"`` (the default): BatchNorm layers in train mode (batch statistics, running statistics
      updated), everything else in eval mode: no dropout, no drop-path, a deterministic teacher for networks
      without BatchNorm (Video Swin, MViT).
    * ``"eval"``: all eval: running statistics used and left unchanged, no dropout, no drop-path.

    With ``teacher_weights="backbone"`` only the teacher's backbone comes from ``teacher_ckpt`` (as the paper's
    code loads only ``backbone.*`` keys): every key but the classifier's (``cls_head.*``) must match, and the
    classifier stays as initialised (a teacher trained on other classes), so distillers that read the
    teacher's classifier (``uses_teacher_logits``) are refused.

    Distillers (see :class:`~reskd_lightning.distill.DistillationLoss` for the contract) see only the two
    networks. Their learnable parts (adapters) belong to this module, in ``distill_modules[name]``, and their
    schedules' progress is saved once, in ``checkpoint["distillers"]``, for trainer-callback and ``distillers=``
    distillers alike.

    The teacher is left out of checkpoints (``save_teacher=False``) and reloaded from ``teacher_ckpt`` when the
    module is built again, so resuming works. Validation and test run the student alone at ``student_resolution``, averaging softmax over test
    views (``video`` of shape ``[N, V, C, T, H, W]``).

    Batches are dicts with ``label`` and either ``clips`` (views keyed by resolution, made by
    :class:`~reskd_lightning.VideoDataModule`) or ``video`` (uint8 or normalised float ``[N, C, T, H, W]``),
    from which the module makes the views on the device itself.

    Args:
        student: the network trained, or a callable ``num_classes -> network`` (how LightningCLI passes a
            ``class_path`` without ``num_classes``). Returns a ModelOutput, ``(features, logits)`` or logits.
        teacher: the frozen network, or such a callable; ``None`` trains the student alone.
        num_classes: number of classes (required when a network is given as a callable).
        student_resolution: short side of the student's view.
        teacher_resolution: short side of the teacher's view.
        teacher_ckpt: weights for the teacher: our Lightning checkpoint of a teacher-stage run or a state dict.
        teacher_mode: "train" (the paper's code), "bn_train" or "eval": what runs in train mode (see above).
        teacher_weights: "all" (every key of ``teacher_ckpt``, the classifier included) or "backbone" (all but the
            classifier ``cls_head.*``, which stays as initialised; see above).
        teacher_bn_mode: deprecated alias kept so that old checkpoints load: "train" is ``teacher_mode``
            "bn_train", "eval" is "eval" (used when ``teacher_mode`` is left at "bn_train"; a contradicting
            ``teacher_mode`` raises).
        distillers: distillation losses used in addition to those found in ``trainer.callbacks``.
        optimizer: optimiser factory for the student's (and distillers') parameters; default: the paper's SGD.
        lr_scheduler: schedule factory; default: per-epoch cosine to 0 over ``trainer.max_epochs``.
        label_smoothing: of the cross-entropy.
        mean, std: normalisation of uint8 ``video`` batches (0..255 scale).
        interpolation, antialias: how views are resized (paper: bilinear, no antialias).
        save_teacher: keep the teacher's weights in checkpoints.
        metric: "accuracy" (logs ``acc1``, ``acc5`` and ``mean_class_acc``, mmaction2's mean class accuracy) or
            "mAP" (the paper's: per-class average precision over videos, classes without positives dropped,
            mean; for multi-label sets such as ActivityNet and FCVID; targets are multi-hot vectors or class ids).
        param_groups: how parameters are split into optimiser groups (the paper's CNN recipes: biases 2x lr and
            no weight decay, norm layers no weight decay); ``None``: one group.
        lr_base_batch_size: the global batch the configured lr is meant for (the paper: 0.01 for 64 videos); the
            lr is scaled linearly to the run's global batch (per-device batch x devices x accumulation).
            ``None``: the lr is used as given.
        allow_student_above_teacher: accept a student resolution above the teacher's (refused by default: it is
            usually two values swapped in a config).
        on_nonfinite: a NaN or infinite loss term (CE or a distiller's) or gradient: "raise" stops training
            before the weights change, naming the epoch, step, videos and term; "skip" leaves the batch out
            (logged as ``train/nonfinite_skipped``), up to ``max_nonfinite_batches`` in a run. Checkpoints with
            non-finite weights are never written.
        channels_last, compile, teacher_precision: opt-in speed switches (:mod:`reskd_lightning.speed`):
            channels-last layout for both networks; ``torch.compile`` of "student", "teacher" or "both"
            (in place, checkpoints unchanged); the teacher's weights in "bf16" or "16" with its forward under
            autocast in that dtype, normalisation layers in float32 ("same": as the trainer's precision).

    Configure from LightningCLI::

        model:
          student:
            class_path: reskd_lightning.models.TSN
            init_args: {backbone: resnet50, pretrained: IMAGENET1K_V1}
          teacher:
            class_path: reskd_lightning.models.TSN
            init_args: {backbone: resnet152}
          teacher_ckpt: work_dirs/tsn_r152-224_16x1_200e_anet/teacher.ckpt
          teacher_mode: train        # the paper's code: the whole teacher in train mode
          teacher_weights: backbone  # FeatureMapKD reads features only: the classifier may have other classes
          student_resolution: 112
          teacher_resolution: 224
        trainer:
          callbacks:
            - class_path: reskd_lightning.FeatureMapKD
              init_args: {weight: 100}
    """

    # long: a quarter of it is the signature (the LightningCLI arguments, one a line); the body sets up in order
    # (checks, hyper-parameters, networks, distillers, metrics), each part short.
    def __init__(
        self,
        student: ModelSpec,
        teacher: ModelSpec | None = None,
        num_classes: int | None = None,
        student_resolution: int = 112,
        teacher_resolution: int = 224,
        teacher_ckpt: str | None = None,
        teacher_mode: TeacherMode = "bn_train",
        teacher_weights: TeacherWeights = "all",
        teacher_bn_mode: Literal["train", "eval"] | None = None,
        distillers: Sequence[DistillationLoss] = (),
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        label_smoothing: float = 0.0,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        interpolation: str = "bilinear",
        antialias: bool = False,
        save_teacher: bool = False,
        metric: Literal["accuracy", "mAP"] = "accuracy",
        param_groups: ParamGroups | None = None,
        lr_base_batch_size: int | None = None,
        allow_student_above_teacher: bool = False,
        on_nonfinite: NonFiniteMode = "raise",
        max_nonfinite_batches: int = 10,
        channels_last: bool = False,
        compile: CompileTarget = "none",
        teacher_precision: TeacherPrecision = "same",
    ) -> None:
        super().__init__()
        teacher_mode = _checked_settings(
            num_classes, student_resolution, teacher_resolution, teacher is not None, teacher_ckpt, teacher_mode,
            teacher_weights, teacher_bn_mode, metric, lr_base_batch_size, allow_student_above_teacher,
        )  # fmt: skip
        check_speed_options(compile, teacher_precision)
        # Lists, as VideoDataModule saves them: Lightning refuses to log a DataModule's and a model's
        # hyperparameters side by side when one key holds a list in one and a tuple in the other.
        mean, std = [float(m) for m in mean], [float(s) for s in std]
        # Networks given as modules are saved with the state dict, not as hyper-parameters. Factories that pickle
        # (a class, or LightningCLI's partial of a class_path without num_classes) are kept, so that
        # load_from_checkpoint can rebuild the networks; a lambda is not.
        unsaved = [
            name
            for name, net in (("student", student), ("teacher", teacher))
            if net is not None and not isinstance(net, (type, functools.partial))
        ]
        if num_classes is None and isinstance(student, nn.Module):
            # saved resolved, so a DataModule's num_classes logged beside it agrees (Lightning refuses two values)
            num_classes = getattr(student, "num_classes", None)
        self.save_hyperparameters(ignore=unsaved + ["distillers"])
        # Checkpoints keep the resolved mode, not the deprecated alias.
        self.hparams["teacher_mode"], self.hparams["teacher_bn_mode"] = teacher_mode, None

        self.student = _build(student, num_classes, "student")
        self.teacher = _build(teacher, num_classes, "teacher")
        self.num_classes = num_classes or getattr(self.student, "num_classes", None)
        if self.num_classes is None:
            raise ValueError("num_classes is not given and the student has no `num_classes` attribute")
        self.teacher_mode = teacher_mode
        self.teacher_weights = teacher_weights
        if self.teacher is not None:
            if teacher_ckpt:
                self._load_teacher(teacher_ckpt)
            self.teacher.requires_grad_(False)
        self.student_resolution = student_resolution
        self.teacher_resolution = teacher_resolution
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.label_smoothing = label_smoothing
        self.view_options = dict(mean=tuple(mean), std=tuple(std), mode=interpolation, antialias=antialias)
        self.save_teacher = save_teacher
        self.param_groups = param_groups
        self.lr_base_batch_size = lr_base_batch_size
        self.nonfinite = NonFiniteGuard(on_nonfinite, max_nonfinite_batches)
        self._apply_speed_switches(channels_last, compile, teacher_precision)

        # Learnable parts of distillers (adapters) live here, and only here (their one owner), so Lightning moves,
        # wraps, optimises and saves them; a distiller reads its own through `DistillationLoss.learnable`.
        self.distill_modules = nn.ModuleDict()
        self._distillers: list[DistillationLoss] = []
        # Intermediate maps the distillers read: hooks on the networks' submodules fill these during training.
        self._taps: dict[str, dict[str, Tensor]] = {"student": {}, "teacher": {}}
        self._tap_hooks: dict[tuple[str, str], Any] = {}
        self._capture = False
        for distiller in distillers:
            self.register_distiller(distiller)

        self.metric = metric
        # top-1/top-5 and mean class accuracy, or the paper's mAP (classes without positives dropped); synced
        # over DDP ranks, each video counted once (VideoDataModule's evaluation_sampler).
        self.val_metrics = evaluation_metrics(metric, self.num_classes).clone(prefix="val/")
        self.test_metrics = self.val_metrics.clone(prefix="test/")
        # val/loss: the mean over all videos, from sums that add up over ranks. Lightning's own sync_dist mean
        # floors its integer video count when ranks hold different numbers of videos (Lightning issue #21859).
        self.val_loss = MeanMetric()
        self._failed_videos: dict[str, int] = {}  # unreadable videos of this process, per stage, this epoch
        self._apply_teacher_mode()

    # ----------------------------------------------------------------------------------------- distillers
    @property
    def distillers(self) -> tuple[DistillationLoss, ...]:
        """The registered distillers, in registration order."""
        return tuple(self._distillers)

    def register_distiller(self, distiller: DistillationLoss) -> None:
        """Add a distiller (called by its ``setup``); registering the same object twice is a no-op."""
        if not isinstance(distiller, DistillationLoss):
            raise TypeError(f"distillers must be DistillationLoss instances, got {type(distiller).__name__}")
        if any(d is distiller for d in self._distillers):
            return
        if any(d.name == distiller.name for d in self._distillers):
            raise ValueError(
                f"two distillers are named {distiller.name!r}; give each a distinct `name` "
                f"(registered: {[d.name for d in self._distillers]})"
            )
        if self.teacher is None:
            raise ValueError(f"distiller {distiller.name!r} needs a teacher, but ResKDModule has teacher=None")
        if self.teacher_weights == "backbone" and distiller.uses_teacher_logits:
            raise ValueError(
                f"distiller {distiller.name!r} ({type(distiller).__name__}) reads the teacher's classifier "
                "(uses_teacher_logits=True), but ResKDModule has teacher_weights='backbone', which leaves the "
                "teacher's classifier as initialised: use teacher_weights: all with a teacher checkpoint of "
                f"{self.num_classes} classes, or distillers that read only features (FeatureMapKD, AttentionTransfer)"
            )
        # The distiller sees the two networks and the store of its learnable parts, nothing else of the module.
        distiller.attach(self.student, self.teacher, self.distill_modules)
        for role, paths in (("student", distiller.student_taps), ("teacher", distiller.teacher_taps)):
            for path in paths:
                self._add_tap(role, path)
        self._distillers.append(distiller)

    def _add_tap(self, role: str, path: str) -> None:
        if (role, path) in self._tap_hooks:
            return
        network: nn.Module = getattr(self, role)
        try:
            submodule = network.get_submodule(path)
        except AttributeError as err:
            raise ValueError(
                f"the {role} ({type(network).__name__}) has no submodule {path!r}; its top-level modules are "
                f"{[name for name, _ in network.named_children()]}"
            ) from err

        def capture(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if self._capture:
                self._taps[role][path] = output

        self._tap_hooks[(role, path)] = submodule.register_forward_hook(capture)

    def _run(self, role: str, clip: Tensor) -> ModelOutput:
        """The student or the teacher on a clip, with the intermediate maps the distillers asked for."""
        self._taps[role] = {}
        self._capture = any(r == role for r, _ in self._tap_hooks)
        clip = clip_in_format(clip, self.channels_last)
        try:
            if role == "student":
                out = as_model_output(self.student(clip))
            elif self.teacher_dtype is not None:  # weights in the compute dtype: run it under autocast in that dtype
                with torch.autocast(clip.device.type, dtype=self.teacher_dtype):
                    out = as_model_output(self.teacher(clip))
            else:
                out = as_model_output(self.teacher(clip))
        finally:
            self._capture = False
        taps, self._taps[role] = self._taps[role], {}
        out = out._replace(taps=taps) if taps else out
        return to_float32(out) if role == "teacher" and self.teacher_dtype is not None else out

    def _apply_speed_switches(self, channels_last: bool, compile: str, teacher_precision: str) -> None:
        """The opt-in speed switches (:mod:`reskd_lightning.speed`), on the networks as built and loaded."""
        self.channels_last = bool(channels_last)
        self.compile_target = compile
        self.teacher_dtype = TEACHER_DTYPES.get(teacher_precision) if self.teacher is not None else None
        for role, net in (("student", self.student), ("teacher", self.teacher)):
            if net is None:
                continue
            if self.channels_last:
                to_channels_last(net)
            if role == "teacher" and self.teacher_dtype is not None:
                cast_except_norms(net, self.teacher_dtype)
            if compiles(compile, role):
                # in place: the parameter names (and checkpoints) stay as they are. Static shapes: training's are
                # fixed (the last incomplete batch is dropped); evaluation's few others compile once each.
                net.compile(dynamic=False)

    def _update_distiller_progress(self, batch_idx: int) -> None:
        trainer = self._trainer
        if trainer is None:
            return
        batches = trainer.num_training_batches
        fraction = batch_idx / batches if isinstance(batches, int) and batches > 0 else 0.0
        total_steps = trainer.estimated_stepping_batches
        total_steps = int(total_steps) if total_steps not in (None, float("inf")) else None
        total_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
        for distiller in self._distillers:
            distiller.update_progress(self.global_step, self.current_epoch + fraction, total_steps, total_epochs)

    # ---------------------------------------------------------------------------------------------- teacher
    def _load_teacher(self, teacher_ckpt: str) -> None:
        """``teacher_ckpt`` into the teacher: every key, or all but the classifier (``teacher_weights``)."""
        assert self.teacher is not None
        skip: tuple[str, ...] = ()
        if self.teacher_weights == "backbone":
            if not any(k.startswith(CLASSIFIER_PREFIX) for k in self.teacher.state_dict()):
                raise ValueError(
                    f"teacher_weights='backbone' loads all but the teacher's classifier, but the teacher "
                    f"({type(self.teacher).__name__}) has no {CLASSIFIER_PREFIX}* keys; use teacher_weights: all"
                )
            skip = (CLASSIFIER_PREFIX,)
        try:
            load_weights(self.teacher, teacher_ckpt, skip=skip)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"teacher_ckpt {teacher_ckpt!r} does not exist: train the teacher stage first (a `reskd fit` "
                "run without a teacher writes it) or point teacher_ckpt at a state dict of the teacher"
            ) from err
        except WeightsMismatchError as err:
            if not any(k.startswith(CLASSIFIER_PREFIX) for k in err.keys):
                raise
            raise ValueError(
                f"{err}\nThe teacher's classifier ({CLASSIFIER_PREFIX}*) in {teacher_ckpt} does not fit the teacher "
                f"built for {getattr(self.teacher, 'num_classes', self.num_classes)} classes. If the distillers only read the teacher's features "
                "(FeatureMapKD, AttentionTransfer; the paper's CNN recipes load only the teacher's backbone), set "
                "`teacher_weights: backbone` to load everything but the classifier."
            ) from err

    def _apply_teacher_mode(self) -> None:
        if self.teacher is None:
            return
        if self.teacher_mode == "train":
            self.teacher.train()
            return
        self.teacher.eval()
        if self.teacher_mode == "bn_train":
            for m in self.teacher.modules():
                if isinstance(m, _BatchNorm):
                    m.train()

    def train(self, mode: bool = True) -> "ResKDModule":
        """Switch the student's mode; the teacher stays in ``teacher_mode`` whatever Lightning asks."""
        super().train(mode)
        self._apply_teacher_mode()
        return self

    @torch.no_grad()
    def teacher_forward(self, clip: Tensor) -> ModelOutput:
        """The frozen teacher on its view, without building a graph (with the taps distillers asked for)."""
        if self.teacher is None:
            raise RuntimeError("this ResKDModule has no teacher")
        return self._run("teacher", clip)

    # ---------------------------------------------------------------------------------------- student alone
    def student_only(self) -> "ResKDModule":
        """A new ResKDModule around a deep copy of the student, without teacher and distillers: what training,
        timing or scoring the student alone uses (``benchmark``'s student step, a low-resolution baseline).

        The copy carries none of this module's forward hooks (the taps distillers asked for). The new module
        has this module's settings but those of the teacher and the distillers: ``num_classes``, both
        resolutions, ``optimizer``, ``lr_scheduler``, ``param_groups``, ``lr_base_batch_size``,
        ``label_smoothing``, the views' ``mean``/``std``/``interpolation``/``antialias`` and ``metric``. It is on
        the student's device, in this module's train/eval mode; this module is left as it is.
        """
        # A deep copy would copy the taps' hooks with the submodules: take them off (through their handles) for
        # the copy, and put them back.
        taps = list(self._tap_hooks)
        for handle in self._tap_hooks.values():
            handle.remove()
        self._tap_hooks = {}
        try:
            student = copy.deepcopy(self.student)
        finally:
            for role, path in taps:
                self._add_tap(role, path)
        options = self.view_options
        alone = ResKDModule(
            student,
            num_classes=self.num_classes,
            student_resolution=self.student_resolution,
            teacher_resolution=self.teacher_resolution,
            optimizer=self.optimizer_factory,
            lr_scheduler=self.lr_scheduler_factory,
            label_smoothing=self.label_smoothing,
            mean=options["mean"],
            std=options["std"],
            interpolation=options["mode"],
            antialias=options["antialias"],
            metric=self.metric,
            param_groups=self.param_groups,
            lr_base_batch_size=self.lr_base_batch_size,
            channels_last=self.channels_last,
            compile="student" if compiles(self.compile_target, "student") else "none",
        )
        device = next(self.student.parameters(), torch.empty(0, device=self.device)).device
        return alone.to(device).train(self.training)

    # ---------------------------------------------------------------------------------------------- steps
    def _resolutions(self, with_teacher: bool) -> list[int]:
        return [self.student_resolution] + ([self.teacher_resolution] if with_teacher else [])

    def forward(self, clip: Tensor) -> ModelOutput:
        """The student on a clip already at its resolution."""
        return as_model_output(self.student(clip))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor | None:
        distill = bool(self._distillers)
        attach_views(batch, self._resolutions(distill), **self.view_options)
        clips = batch["clips"]
        labels = batch["label"]
        student_out = self._run("student", clips[self.student_resolution]) if distill else self(
            clips[self.student_resolution]
        )
        ce = F.cross_entropy(student_out.logits.float(), labels, label_smoothing=self.label_smoothing)
        terms, raw = {"ce": ce}, {}  # weighted terms of the loss; each distiller's unweighted term
        if distill:
            self._update_distiller_progress(batch_idx)
            teacher_out = self.teacher_forward(clips[self.teacher_resolution])
            for distiller in self._distillers:
                raw[distiller.name] = distiller(student_out, teacher_out, batch)
                terms[distiller.name] = distiller.current_weight * raw[distiller.name]
        self._log_failed_videos(batch, "train")
        if self.nonfinite.check_terms(terms, self._step_description(batch, batch_idx), self._any_rank):
            self.log("train/nonfinite_skipped", float(self.nonfinite.skipped), on_step=True, on_epoch=False)
            return None  # Lightning skips the backward pass and the optimiser step
        loss = ce
        for name in raw:
            loss = loss + terms[name]
        log = dict(on_step=True, on_epoch=True, batch_size=labels.shape[0])
        # the progress bar shows each term of the loss (its step value), not only their weighted sum
        for distiller in self._distillers if distill else ():
            self.log(f"train/distill/{distiller.name}", raw[distiller.name].detach(), prog_bar=True, **log)
            if distiller.weight_schedule is not None:
                self.log(f"train/distill/{distiller.name}_weight", distiller.current_weight, on_step=True, on_epoch=False)
        self.log("train/ce", ce.detach(), prog_bar=True, **log)
        self.log("train/loss", loss.detach(), prog_bar=True, **log)
        return loss

    def _any_rank(self, flag: bool) -> bool:
        """True on every process when ``flag`` is True on any (one process: ``flag``)."""
        trainer = self._trainer
        if trainer is None or trainer.world_size <= 1:
            return flag
        return bool(trainer.strategy.reduce_boolean_decision(flag, all=False))

    def _step_description(self, batch: Mapping[str, Any] | None, batch_idx: int) -> str:
        """Where a training step is, for errors: epoch, global step, batch and its videos (paths when known)."""
        where = f"epoch {self.current_epoch}, global step {self.global_step}, batch {batch_idx}"
        if batch is None or "index" not in batch:
            return where
        indices = torch.as_tensor(batch["index"]).reshape(-1).tolist()
        records = getattr(getattr(self.trainer.train_dataloader, "dataset", None), "records", None)
        if records is not None and all(0 <= i < len(records) for i in indices):
            return f"{where} (videos {[getattr(records[i], 'path', i) for i in indices]})"
        return f"{where} (dataset indices {indices})"

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # After backward (and AMP's unscaling) and before the step. Under fp16 AMP the GradScaler skips the steps
        # with infinite gradients by design (that is how it finds its scale): it decides, not this check.
        if getattr(self.trainer.precision_plugin, "scaler", None) is not None:
            return
        where = self._step_description(None, self.trainer.fit_loop.epoch_loop.batch_idx)
        if self.nonfinite.check_gradients(self.named_parameters(), where, self._any_rank):
            optimizer.zero_grad(set_to_none=True)  # torch's optimisers leave parameters without gradients alone
            self.log("train/nonfinite_skipped", float(self.nonfinite.skipped), on_step=True, on_epoch=False)

    def _log_failed_videos(self, batch: dict[str, Any], stage: str) -> None:
        """Per epoch: unreadable videos the loader replaced (training's ``retries``) or left out of the batch
        (evaluation's ``unreadable`` indices, never scored); their sum is reported at the epoch's end."""
        if UNREADABLE_KEY in batch:  # evaluation (its readable videos' ``retries`` are 0)
            failed = torch.tensor(float(torch.as_tensor(batch[UNREADABLE_KEY]).numel()))
        elif "retries" in batch:
            failed = torch.as_tensor(batch["retries"]).sum().float()
        else:
            return
        self._failed_videos[stage] = self._failed_videos.get(stage, 0) + int(failed)
        if stage == "predict":
            return  # Lightning logs no metric in predict; the epoch's count is reported at its end
        size = batch_size_of(batch) if ("video" in batch or "clips" in batch) else max(1, int(failed))
        self.log(
            f"{stage}/failed_videos", failed, on_step=False, on_epoch=True, reduce_fx="sum", sync_dist=True,
            batch_size=size,
        )  # fmt: skip

    def _report_failed_videos(self, stage: str) -> None:
        """At an epoch's end: how many unreadable videos (all processes) were replaced or left out, if any."""
        local = self._failed_videos.pop(stage, 0)
        total = int(self.trainer.strategy.reduce(torch.tensor(float(local), device=self.device), reduce_op="sum"))
        if total and self.trainer.is_global_zero:
            what = "replaced by other records" if stage == "train" else "left out of the metrics and predictions"
            log.warning(  # a log record every epoch (a Python warning with the same text would show once)
                f"{stage}: {total} unreadable video(s) this epoch were {what} (each is named in a warning above; "
                "`reskd check-data --config <your config>` lists them all)"
            )

    def _targets(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """(metric target, loss target): class ids for accuracy; multi-hot ints and a distribution for mAP."""
        labels = batch["label"]
        if self.metric == "accuracy":
            if labels.dim() != 1:
                raise ValueError(
                    f"metric 'accuracy' needs one class id per video, got labels of shape {tuple(labels.shape)}; "
                    "multi-label data (multi-hot targets) are evaluated with metric: mAP"
                )
            return labels, labels
        hot = labels if labels.dim() == 2 else F.one_hot(labels, self.num_classes)
        hot = hot.float()
        return hot.long(), hot / hot.sum(-1, keepdim=True).clamp_min(1)

    def evaluation_targets(self, batch: Mapping[str, Any]) -> Tensor:
        """The targets the module's metric scores a batch against: class ids (accuracy) or multi-hot (mAP)."""
        return self._targets(batch)[0]  # type: ignore[arg-type]

    def eval_probabilities(self, batch: dict[str, Any]) -> Tensor:
        """Class probabilities ``[N, K]`` of the student alone, as validation, test and predict score videos.

        ``batch`` holds ``video`` (uint8 or normalised float ``[N, C, T, H, W]``, or ``[N, V, C, T, H, W]`` with
        ``V`` test views) or ready ``clips``; the student's view at ``student_resolution`` is made (and added to
        ``batch["clips"]``) as in a step. With views, the softmax is averaged over them. The module's current
        mode applies (call ``eval()`` first for inference) and gradients are not disabled here.
        """
        attach_views(batch, [self.student_resolution], **self.view_options)
        clip = batch["clips"][self.student_resolution]
        if clip.dim() == 6:
            return average_views(self(clip.flatten(0, 1)).logits, num_views=clip.shape[1])
        return average_views(self(clip).logits, num_views=1)

    def on_validation_epoch_start(self) -> None:
        # MeanMetric adds to its state tensors in place, and under ddp_spawn on CPU the workers' copies share those
        # tensors' memory with the launching process: fresh ones each epoch keep a later run from inheriting sums.
        self.val_loss.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._log_failed_videos(batch, "val")
        if not _has_videos(batch):
            return
        probs = self.eval_probabilities(batch)
        target, loss_target = self._targets(batch)
        loss = F.nll_loss(probs.clamp_min(1e-8).log(), loss_target) if loss_target.dim() == 1 else (
            -(loss_target * probs.clamp_min(1e-8).log()).sum(-1).mean()
        )  # fmt: skip
        self.val_metrics.update(probs, target)
        n = probs.shape[0]
        self.val_loss.update(loss.detach(), weight=n)
        self.log("val/loss", self.val_loss, on_epoch=True, batch_size=n)
        self.log_dict(self.val_metrics, on_epoch=True, prog_bar=True, batch_size=n)

    def _per_video(self, batch: dict[str, Any], probs: Tensor) -> dict[str, Tensor]:
        """What test and predict return per video: ``probs`` (softmax averaged over views), and the batch's
        ``index`` (dataset position) and ``label`` when it has them; read by ``VideoPredictionWriter``."""
        out = {"probs": probs}
        for key in ("index", "label"):
            if key in batch:
                out[key] = torch.as_tensor(batch[key], device=probs.device)
        return out

    def _no_videos(self) -> dict[str, Tensor]:
        """What test and predict return for a batch whose videos were all unreadable: no rows."""
        empty = torch.zeros(0, dtype=torch.long, device=self.device)
        return {"probs": torch.zeros(0, self.num_classes, device=self.device), "index": empty, "label": empty}

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Tensor]:
        self._log_failed_videos(batch, "test")
        if not _has_videos(batch):
            return self._no_videos()
        probs = self.eval_probabilities(batch)
        self.test_metrics.update(probs, self._targets(batch)[0])
        self.log_dict(self.test_metrics, on_epoch=True, batch_size=probs.shape[0])
        return self._per_video(batch, probs)

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Tensor]:
        self._log_failed_videos(batch, "predict")
        if not _has_videos(batch):
            return self._no_videos()
        return self._per_video(batch, self.eval_probabilities(batch))

    def on_train_epoch_end(self) -> None:
        self._report_failed_videos("train")

    def on_validation_epoch_end(self) -> None:
        self._report_failed_videos("val")

    def on_test_epoch_end(self) -> None:
        self._report_failed_videos("test")

    def on_predict_epoch_end(self) -> None:
        self._report_failed_videos("predict")

    # ------------------------------------------------------------------------------------------ optimizer
    def trainable_parameters(self) -> list[nn.Parameter]:
        """Student and distiller parameters; never the teacher's."""
        params = list(self.student.parameters()) + list(self.distill_modules.parameters())
        return [p for p in params if p.requires_grad]

    def global_batch_size(self) -> int:
        """Videos per optimiser step over all devices: per-device batch x devices x gradient accumulation."""
        trainer = self.trainer
        per_device = per_device_batch_size(getattr(trainer, "datamodule", None))
        if per_device is None:
            raise ValueError(
                f"lr_base_batch_size={self.lr_base_batch_size} asks to scale the lr by the global batch, but the "
                "per-device batch size is unknown: use a DataModule with a `batch_size` (hyper-)parameter or set "
                "lr_base_batch_size: null and give the lr for your batch"
            )
        return per_device * trainer.world_size * trainer.accumulate_grad_batches

    def _optimizer_steps_per_epoch(self) -> int | None:
        """Optimiser steps in one training epoch of the attached trainer (None without a trainer or an epoch budget)."""
        trainer = self._trainer
        max_epochs = getattr(trainer, "max_epochs", None)
        if trainer is None or not max_epochs or max_epochs < 1:
            return None
        total = trainer.estimated_stepping_batches
        if total in (None, float("inf")):
            return None
        return max(1, int(total) // max_epochs)

    def configure_optimizers(self) -> Any:
        if self.param_groups is not None:
            params: Any = self.param_groups({"student": self.student, "distill_modules": self.distill_modules})
        else:
            params = self.trainable_parameters()
        optimizer = self.optimizer_factory(params) if self.optimizer_factory else paper_sgd(params)
        lr_scale = 1.0
        if self.lr_base_batch_size is not None:
            global_batch = self.global_batch_size()
            lr_scale = linear_scaled_lr_factor(self.lr_base_batch_size, global_batch)
            rank_zero_info(
                f"lr scaled by {global_batch}/{self.lr_base_batch_size} = {lr_scale:g} for a global batch of "
                f"{global_batch} videos (the configured lr is for {self.lr_base_batch_size})"
            )
        apply_group_multipliers(optimizer, lr_scale=lr_scale)
        if self.lr_scheduler_factory is not None:
            scheduler = self.lr_scheduler_factory(optimizer)
            steps_per_epoch = self._optimizer_steps_per_epoch()
            if isinstance(scheduler, EpochScheduleWithWarmup) and steps_per_epoch is not None:
                # mmcv's warm-up moves at every iteration, the regular schedule at every epoch
                scheduler.step_per_iteration(steps_per_epoch)
                return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        else:
            max_epochs = self.trainer.max_epochs if self._trainer is not None else None
            if not max_epochs or max_epochs < 0:
                return optimizer  # no epoch budget to anneal over
            scheduler = cosine_per_epoch(optimizer, max_epochs)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def configure_callbacks(self) -> list[pl.Callback]:
        """A :class:`~reskd_lightning.quiet.QuietIntendedWarnings` when the Trainer has none, so that a plain
        ``Trainer`` (your own project, a notebook) does not warn about the frozen teacher's eval mode either; the
        one ``reskd`` adds (or yours) is left as it is."""
        if self._trainer is None or any(isinstance(c, QuietIntendedWarnings) for c in self.trainer.callbacks):
            return []
        return [QuietIntendedWarnings()]

    # ---------------------------------------------------------------------------------------- checkpoints
    def on_fit_start(self) -> None:
        if self.teacher is not None and not self._distillers:
            rank_zero_warn("ResKDModule has a teacher but no distiller: the teacher is not run and teaches nothing")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        bad = nonfinite_tensors(checkpoint["state_dict"])
        if bad:  # raised before the file is written: the last good checkpoint stays as it is
            raise NonFiniteLossError(
                f"refusing to save a checkpoint with non-finite weights ({len(bad)} tensors, e.g. {bad[:3]}) at epoch "
                f"{self.current_epoch}, global step {self.global_step}"
            )
        # The one place schedules' progress is saved, for trainer-callback and `distillers=` distillers alike
        # (their Lightning callback state is empty).
        checkpoint[DISTILLERS_KEY] = {d.state_key: d.schedule_state() for d in self._distillers}
        checkpoint[NONFINITE_KEY] = self.nonfinite.skipped
        if not self.save_teacher:
            state = checkpoint["state_dict"]
            for key in [k for k in state if k.startswith(TEACHER_PREFIX)]:
                del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Checkpoints written before the progress was saved only here also hold it as callback state (the same
        # values; DistillationLoss.load_state_dict reads it there).
        self.nonfinite.skipped = int(checkpoint.get(NONFINITE_KEY, 0))
        states = checkpoint.get(DISTILLERS_KEY, {})
        for distiller in self._distillers:
            if distiller.state_key in states:
                distiller.load_schedule_state(states[distiller.state_key])

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Load a checkpoint that may lack the teacher (restored from ``teacher_ckpt`` instead).

        Any other missing key, and any unexpected key, raises when ``strict`` (a
        :class:`~reskd_lightning.models.weights.WeightsMismatchError`, a ``RuntimeError`` as torch's); distiller
        modules of a fit checkpoint are tolerated in a run that has no such distillers (validation, test).
        """
        own = self.state_dict()
        if strict:
            check_state_dict(
                own, state_dict, "checkpoint", type(self).__name__, ignore_missing=(TEACHER_PREFIX,),
                ignore_unexpected=(DISTILL_PREFIX,),
                hint=f"only {TEACHER_PREFIX}* keys may be missing and {DISTILL_PREFIX}* keys be extra",
            )  # fmt: skip
        return super().load_state_dict({k: v for k, v in state_dict.items() if k in own}, strict=False, assign=assign)

    def export_student(
        self, path: str | os.PathLike, data: Mapping[str, Any] | None = None, class_names: Sequence[str] | None = None
    ) -> Path:
        """Write the student alone, atomically (:func:`reskd_lightning.student_export.export_student`): its weights,
        class path and init arguments, ``num_classes``, ``student_resolution`` and view options; no teacher,
        optimiser or distiller state. ``data`` (the run's ``VideoDataModule`` hyper-parameters) and
        ``class_names`` let ``reskd predict`` score videos with it; ``reskd export`` fills both from a checkpoint."""
        return student_export.export_student(self, path, data=data, class_names=class_names)

    @classmethod
    def load_student(cls, path: str | os.PathLike, model: nn.Module | None = None) -> student_export.ExportedStudent:
        """The student of an exported file, in eval mode, with its resolution, view options and test settings
        (:func:`reskd_lightning.student_export.load_student`; ``model``: the network to load the weights into when
        the file does not know how to build it)."""
        return student_export.load_student(path, model=model)
