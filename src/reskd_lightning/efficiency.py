"""How much a video network costs: multiply-adds, parameters, and measured time (the one timer of the package).

Multiply-adds (MACs) are what efficient-video papers call "FLOPs" (ResNet-50 at 224 px: 4.1 G). They are
counted with ``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions; normalisation,
activations and pooling are not counted, as in those tables) and reported per video: one clip of ``frames``
frames at ``resolution`` pixels, a single view.

Time is measured by :func:`time_repeats` (median of repeats after a warm-up, CUDA synchronised around each
call): :func:`measure_inference` times a network's forward pass (clips/s and latency), and
:mod:`reskd_lightning.benchmark` times training steps with it.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from .views import normalize_video


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


def random_clip(resolution: int, frames: int, batch: int = 1, channels: int = 3) -> Tensor:
    """A random float clip ``[batch, channels, frames, resolution, resolution]`` (what the counts and
    :func:`measure_inference` of a bare network are fed)."""
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
        model(random_clip(resolution, frames))
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


# ------------------------------------------------------------------------------------------------- timing
@dataclass(frozen=True)
class Timing:
    """Repeated timings of one measurement: wall-clock seconds per batch and, on the CPU, the process's CPU
    seconds (all threads), which other processes' load disturbs less than the wall clock."""

    name: str
    network: str
    resolution: int
    frames: int
    batch: int
    seconds: tuple[float, ...]
    cpu_seconds: tuple[float, ...] = ()

    @property
    def median_s(self) -> float:
        """Median seconds per batch."""
        return statistics.median(self.seconds)

    @property
    def clips_per_s(self) -> float:
        """Clips per second at the median time."""
        return self.batch / self.median_s

    def row(self, **extra: Any) -> dict[str, Any]:
        """A table row: median and fastest batch in ms, clips/s, plus ``extra`` columns."""
        return {
            "measurement": self.name,
            "network": self.network,
            "resolution": self.resolution,
            "frames": self.frames,
            "batch": self.batch,
            "median_ms": 1e3 * self.median_s,
            "min_ms": 1e3 * min(self.seconds),
            "clips_per_s": self.clips_per_s,
            **({"cpu_ms": 1e3 * statistics.median(self.cpu_seconds)} if self.cpu_seconds else {}),
            **extra,
        }


def device_of(module: nn.Module) -> torch.device:
    """The device of ``module``'s first parameter (the CPU for a module without parameters)."""
    param = next(module.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def describe(network: nn.Module) -> str:
    """A short name for a network: its class, and its backbone when it says (``TSN-resnet50``)."""
    backbone = getattr(network, "backbone_name", None)
    return type(network).__name__ + (f"-{backbone}" if backbone else "")


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``dtype`` on ``device``'s type, or nothing when ``dtype`` is None."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def _timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, float]:
    """Wall-clock and process CPU seconds taken by ``fn()``, with CUDA synchronised before and after."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, time.process_time() - cpu_start


def time_repeats(
    fns: Mapping[str, Callable[[], Any]], device: torch.device | str, warmup: int = 2, iters: int = 5
) -> dict[str, tuple[tuple[float, ...], tuple[float, ...]]]:
    """Time each of ``fns`` ``warmup + iters`` times, interleaved repeat by repeat (so a change of load on the
    machine hits them alike), and keep the last ``iters``: ``{key: (wall seconds, CPU seconds)}``.

    CUDA is synchronised before and after each call, so a GPU's queued work is inside its time. CPU seconds are
    kept on the CPU only (they say nothing about a GPU's work), else ``()``.
    """
    if warmup < 0 or iters < 1:
        raise ValueError(f"need warmup >= 0 and iters >= 1, got warmup={warmup}, iters={iters}")
    device = torch.device(device)
    times: dict[str, list[tuple[float, float]]] = {key: [] for key in fns}
    for i in range(warmup + iters):
        for key, fn in fns.items():
            seconds = _timed(fn, device)
            if i >= warmup:
                times[key].append(seconds)
    return {
        key: (tuple(w for w, _ in t), tuple(c for _, c in t) if device.type == "cpu" else ())
        for key, t in times.items()
    }


def measure_inference(
    network: nn.Module,
    clip: Tensor,
    *,
    warmup: int = 2,
    iters: int = 5,
    name: str = "inference",
    autocast_dtype: torch.dtype | None = None,
) -> Timing:
    """Time ``network(clip)`` in eval mode under ``no_grad`` on the network's device.

    ``clip`` is ``[N, C, T, H, W]``, normalised float (a uint8 clip is normalised with ImageNet statistics
    first, untimed); the latency is per batch of N, ``clips_per_s`` the throughput. The network's train/eval
    flags (every submodule's) are restored afterwards.
    """
    device = device_of(network)
    clip = normalize_video(clip.to(device))

    def forward() -> None:
        with autocast(device, autocast_dtype):
            network(clip)

    with eval_mode(network), torch.no_grad():
        seconds, cpu_seconds = time_repeats({name: forward}, device, warmup, iters)[name]
    n, _, t, h, w = clip.shape
    return Timing(name, describe(network), min(h, w), t, n, seconds, cpu_seconds)
