"""How much a video network costs: multiply-adds, parameters and measured throughput.

Multiply-adds (MACs) are what efficient-video papers call "FLOPs" (ResNet-50 at 224 px: 4.1 G). They are
counted with ``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions; normalisation,
activations and pooling are not counted, as in those tables) and reported per video: one clip of ``frames``
frames at ``resolution`` pixels, a single view.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class Efficiency:
    """The cost of one network on one clip size."""

    name: str
    resolution: int
    frames: int
    gmacs: float
    params_m: float

    def row(self) -> str:
        """One line of the ``reskd flops`` table."""
        return f"{self.name:<16} {self.resolution:>6} {self.frames:>6} {self.gmacs:>10.2f} {self.params_m:>10.2f}"


TABLE_HEADER = f"{'model':<16} {'res':>6} {'frames':>6} {'GMACs':>10} {'params(M)':>10}"


def _clip(resolution: int, frames: int, batch: int = 1, channels: int = 3) -> torch.Tensor:
    for name, value in (("resolution", resolution), ("frames", frames), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return torch.randn(batch, channels, frames, resolution, resolution)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode, and afterwards every submodule back in its own mode (a teacher whose BatchNorm
    alone trains stays so)."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for m, training in modes.items():
            m.training = training


def count_macs(model: nn.Module, resolution: int, frames: int) -> int:
    """Multiply-adds of ``model`` on one clip ``[1, 3, frames, resolution, resolution]`` (eval mode)."""
    with eval_mode(model), FlopCounterMode(display=False) as counter, torch.no_grad():
        model(_clip(resolution, frames))
    return counter.get_total_flops() // 2  # the counter counts a multiply-add as 2 FLOPs


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def efficiency(model: nn.Module, resolution: int, frames: int, name: str | None = None) -> Efficiency:
    """GMACs per video and parameters (millions) of ``model`` at one clip size."""
    return Efficiency(
        name=name or type(model).__name__,
        resolution=resolution,
        frames=frames,
        gmacs=count_macs(model, resolution, frames) / 1e9,
        params_m=count_parameters(model) / 1e6,
    )


def throughput(
    model: nn.Module, resolution: int, frames: int, batch: int = 4, warmup: int = 2, iters: int = 5
) -> float:
    """Clips per second of ``model`` in eval mode under ``no_grad`` (median of ``iters`` timed batches)."""
    clip = _clip(resolution, frames, batch)
    times = []
    with eval_mode(model), torch.no_grad():
        for i in range(warmup + iters):
            start = time.perf_counter()
            model(clip)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return batch / statistics.median(times)
