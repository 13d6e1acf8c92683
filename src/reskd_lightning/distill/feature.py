"""ResKD's loss for CNN pairs: MSE between the upsampled student feature map and the teacher's."""

from __future__ import annotations

from typing import Any, Mapping

import torch.nn.functional as F
from torch import Tensor, nn

from ..models.recognizer import ModelOutput
from ..views import INTERPOLATION_MODES, resize_frames
from .base import DistillationLoss, as_feature_map, tapped
from .schedules import Schedule


def output_channels(module: nn.Module) -> int | None:
    """Channels a module's output has, read from its last layer that declares a width (norm, conv, linear)."""
    for m in reversed(list(module.modules())):
        for attr in ("num_features", "out_channels", "out_features"):
            value = getattr(m, attr, None)
            if isinstance(value, int):
                return value
        shape = getattr(m, "normalized_shape", None)
        if shape:
            return int(shape[-1])
    return None


def stage_channels(network: nn.Module, stage: str | None) -> int | None:
    """Channels of ``network``'s map at ``stage`` (``None``: the last feature map, its ``feature_dim``)."""
    if stage is None:
        return getattr(network, "feature_dim", None)
    return output_channels(network.get_submodule(stage))


def check_stage(network: nn.Module, stage: str | None, role: str, distiller: str) -> None:
    """Raise naming the path and the network's top-level children when ``stage`` is not a submodule."""
    if stage is None:
        return
    try:
        network.get_submodule(stage)
    except AttributeError as err:
        children = [name for name, _ in network.named_children()]
        raise ValueError(
            f"{distiller}: the {role} ({type(network).__name__}) has no submodule {stage!r}; its top-level "
            f"modules are {children} (a stage is a dotted path such as 'backbone.layer3')"
        ) from err


class FeatureMapKD(DistillationLoss):
    """The paper's distillation for CNN pairs (TSN/TSM/SlowOnly): ``MSE(up(student_map), teacher_map)``.

    The student's last feature map (e.g. 4x4 at 112 px) is bilinearly upsampled to the teacher's (7x7 at
    224 px) and compared by mean squared error; the paper weighs it 100 against cross-entropy and uses no
    adapter. Options beyond the paper: another stage's map (a module path, e.g. ``backbone.layer3`` of a TSN),
    another upsampling mode, and a learnable 1x1x1 convolution on the student's map when the widths differ
    (``adapter: true``; the module holds it in ``distill_modules[name]``, so it is trained, moved, wrapped by
    DDP and checkpointed with the student; :attr:`adapter` reads it from there).

    Args:
        weight: multiplier of the term (100 in the paper).
        stage: module path of the student's map; ``None``: the last feature map (the paper).
        teacher_stage: module path of the teacher's map; defaults to ``stage``.
        mode: interpolation used to upsample the student's map: bilinear, bicubic, nearest or area.
        adapter: put a learnable 1x1x1 convolution (student channels -> teacher channels) on the student's map.
        student_channels, teacher_channels: widths of the two maps, when they cannot be read from the networks.
        channels_last: the tapped stages' maps are ``[N, T, h, w, C]`` (Video Swin stages).
        name: log/checkpoint name (``train/distill/<name>``); default ``feature_map_kd`` or, with a stage,
            ``feature_map_kd_<stage>``, so two instances on different stages coexist.
        weight_schedule: how the weight changes over training.

    Configure from LightningCLI (the paper's loss, plus a second one on ``layer3`` with an adapter)::

        trainer:
          callbacks:
            - class_path: reskd_lightning.FeatureMapKD
              init_args: {weight: 100}
            - class_path: reskd_lightning.FeatureMapKD
              init_args: {weight: 50, stage: backbone.layer3, adapter: true}
    """

    uses_teacher_logits = False  # feature maps only: a teacher without its classifier will do

    def __init__(
        self,
        weight: float = 100.0,
        stage: str | None = None,
        teacher_stage: str | None = None,
        mode: str = "bilinear",
        adapter: bool = False,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        channels_last: bool = False,
        name: str | None = None,
        weight_schedule: Schedule | None = None,
    ) -> None:
        if mode not in INTERPOLATION_MODES:
            raise ValueError(f"FeatureMapKD: mode must be bilinear, bicubic, nearest or area, got {mode!r}")
        for key, value in (("student_channels", student_channels), ("teacher_channels", teacher_channels)):
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"FeatureMapKD: {key} must be a positive integer or None, got {value!r}")
        self.stage = stage
        self.teacher_stage = teacher_stage if teacher_stage is not None else stage
        super().__init__(weight=weight, name=name, weight_schedule=weight_schedule)
        self.mode = mode
        self.use_adapter = adapter
        self.student_channels = student_channels
        self.teacher_channels = teacher_channels
        self.channels_last = channels_last
        #: Widths of the student's and the teacher's maps, read by :meth:`bind` (``None``: unknown).
        self.widths: tuple[int | None, int | None] = (student_channels, teacher_channels)

    def default_name(self) -> str:
        if self.stage is None and self.teacher_stage is None:
            return "feature_map_kd"
        return "feature_map_kd_" + (self.stage or "features").replace(".", "_")

    @property
    def student_taps(self) -> tuple[str, ...]:
        return () if self.stage is None else (self.stage,)

    @property
    def teacher_taps(self) -> tuple[str, ...]:
        return () if self.teacher_stage is None else (self.teacher_stage,)

    def bind(self, student: nn.Module, teacher: nn.Module) -> None:
        """Check the stages and read the two maps' widths (given ones win); different widths need the adapter."""
        check_stage(student, self.stage, "student", self.name)
        check_stage(teacher, self.teacher_stage, "teacher", self.name)
        s = self.student_channels or stage_channels(student, self.stage)
        t = self.teacher_channels or stage_channels(teacher, self.teacher_stage)
        if self.use_adapter and (s is None or t is None):
            raise ValueError(
                f"{self.name}: cannot read the widths of the student ({s}) and teacher ({t}) maps for the adapter; "
                "set student_channels and teacher_channels"
            )
        if not self.use_adapter and s is not None and t is not None and s != t:
            raise ValueError(
                f"{self.name}: the student's map has {s} channels and the teacher's {t}; set `adapter: true` to "
                "learn a 1x1x1 projection between them"
            )
        self.widths = (s, t)

    def build_learnable(self) -> nn.Module | None:
        """A new 1x1x1 convolution from the student's width to the teacher's, with ``adapter: true``."""
        s, t = self.widths
        if not self.use_adapter or s is None or t is None:
            return None
        return nn.Conv3d(s, t, kernel_size=1)

    @property
    def adapter(self) -> nn.Module | None:
        """The adapter, as the module this distiller is registered with holds it (``None`` before that)."""
        return self.learnable

    def forward(self, student: ModelOutput, teacher: ModelOutput, batch: Mapping[str, Any]) -> Tensor:
        n = student.logits.shape[0]
        s = tapped(student, self.stage, "student", self.name)
        t = tapped(teacher, self.teacher_stage, "teacher", self.name)
        # `channels_last` describes tapped stages; the last feature map is [N, C, T, h, w] by contract.
        if self.stage is not None:
            s = as_feature_map(s, n, self.channels_last, f"{self.name} (student {self.stage})")
        if self.teacher_stage is not None:
            t = as_feature_map(t, n, self.channels_last, f"{self.name} (teacher {self.teacher_stage})")
        if s.dim() != 5 or t.dim() != 5:
            raise ValueError(
                f"{self.name}: expected 5-D feature maps [N, C, T, h, w], got student {tuple(s.shape)} and "
                f"teacher {tuple(t.shape)}"
            )
        adapter = self.adapter
        if adapter is None and self.use_adapter:
            raise RuntimeError(
                f"{self.name}: the adapter is built when the distiller is registered with a ResKDModule (as a "
                "trainer callback or in `distillers=`); it is not registered"
            )
        if adapter is not None:
            s = adapter(s)
        if s.shape[:3] != t.shape[:3]:
            hint = "" if adapter is not None else " (set `adapter: true` for different widths)"
            raise ValueError(
                f"{self.name}: student and teacher maps must agree in batch, channels and frames; got student "
                f"{tuple(s.shape)} and teacher {tuple(t.shape)}{hint}"
            )
        s = resize_frames(s.float(), tuple(t.shape[-2:]), self.mode)
        return F.mse_loss(s, t.detach().float())
