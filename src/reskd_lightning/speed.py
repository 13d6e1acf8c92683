"""Opt-in speed switches for the two networks of a ResKD run; none changes results beyond floating-point tolerance.

The frozen teacher is most of a ResKD step's compute (a TSN-R152 forward at 224 px is ~3.5x a TSN-R50 forward and
backward at 112 px), so the switches aim at it first:

* ``channels_last``: the convolution weights (and the clips fed in) in channels-last memory layout
  (``torch.channels_last`` for 2-D convolutions, ``channels_last_3d`` for 3-D ones), which cuDNN's tensor-core
  kernels and oneDNN on CPUs run faster;
* ``compile``: ``torch.compile`` of the student, the teacher or both, in place (``nn.Module.compile``, so
  parameter names and checkpoints stay the same), the teacher's train-mode BatchNorm and ``no_grad`` kept;
* ``teacher_precision``: the teacher's weights held in ``bf16`` or ``16`` (float16) and its forward run under
  autocast in that dtype whatever the trainer's precision, its normalisation layers kept in float32 (as apex's
  ``keep_batchnorm_fp32``); its outputs come back as float32 for the distillers.

And the Trainer's own ``benchmark: true`` (cuDNN's autotuner) for the fixed clip shapes of training.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _NormBase

CompileTarget = Literal["none", "student", "teacher", "both"]
TeacherPrecision = Literal["same", "bf16", "16"]
TEACHER_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "16": torch.float16}
#: Normalisation layers kept in float32 when the teacher's weights are cast (their statistics need it).
NORM_LAYERS: tuple[type[nn.Module], ...] = (_NormBase, nn.LayerNorm, nn.GroupNorm)


def check_speed_options(compile: str, teacher_precision: str) -> None:
    """Refuse unknown values, naming them."""
    if compile not in ("none", "student", "teacher", "both"):
        raise ValueError(f"compile must be 'none', 'student', 'teacher' or 'both', got {compile!r}")
    if teacher_precision not in ("same", "bf16", "16"):
        raise ValueError(f"teacher_precision must be 'same', 'bf16' or '16', got {teacher_precision!r}")


def memory_format_of(tensor: Tensor) -> torch.memory_format | None:
    """The channels-last format for a 4-D or 5-D tensor; None for other ranks."""
    return {4: torch.channels_last, 5: torch.channels_last_3d}.get(tensor.dim())


def to_channels_last(network: nn.Module) -> nn.Module:
    """Every 4-D and 5-D parameter and buffer of ``network`` in channels-last layout, in place (values unchanged;
    ``Module.to(memory_format=...)`` refuses networks holding both ranks, e.g. a SlowFast)."""
    for tensor in [*network.parameters(), *network.buffers()]:
        fmt = memory_format_of(tensor)
        if fmt is not None:
            tensor.data = tensor.data.contiguous(memory_format=fmt)
    return network


def clip_in_format(clip: Tensor, channels_last: bool) -> Tensor:
    """``clip`` in channels-last layout when ``channels_last`` (a no-op for other ranks)."""
    fmt = memory_format_of(clip) if channels_last else None
    return clip.contiguous(memory_format=fmt) if fmt is not None else clip


def cast_except_norms(network: nn.Module, dtype: torch.dtype) -> nn.Module:
    """``network``'s floating-point parameters and buffers in ``dtype``, except those of normalisation layers."""
    for module in network.modules():
        if isinstance(module, NORM_LAYERS):
            continue
        for name, tensor in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]:
            if tensor.is_floating_point():
                tensor.data = tensor.data.to(dtype)
    return network


def to_float32(value: Any) -> Any:
    """Floating-point tensors in a (nested) output as float32; anything else as it is."""
    if isinstance(value, Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, dict):
        return {k: to_float32(v) for k, v in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(to_float32(v) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(to_float32(v) for v in value)
    return value


def compiles(target: str, role: str) -> bool:
    """Whether ``compile: target`` compiles the ``role`` network ("student" or "teacher")."""
    return target in (role, "both")
