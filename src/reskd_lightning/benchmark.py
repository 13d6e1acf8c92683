"""What a ResKD configuration costs on this device: inference and training-step times, measured.

:func:`run_benchmark` times, on synthetic uint8 clips of a config's shape, on the current device (CUDA if
available, else CPU):

* inference (eval, ``no_grad``): clips/s and batch latency of the student at its resolution and of the teacher
  at its own (:func:`reskd_lightning.efficiency.measure_inference`);
* one training step (``zero_grad``, forward, loss, backward, ``optimizer.step``) of the student alone
  (:meth:`ResKDModule.student_only`: a ``ResKDModule`` without teacher around a copy of the same student), the
  teacher's forward pass alone (``no_grad``, in the module's ``teacher_mode``), and the full ResKD step
  (``ResKDModule.training_step`` with the config's distillers, views made from the uint8 clip, backward, step).

Timings are the median of ``iters`` repeats after ``warmup`` (:func:`reskd_lightning.efficiency.time_repeats`:
CUDA is synchronised around each); the three training measurements are interleaved, so a change of load on the
machine hits them alike. On the CPU the process's CPU time is reported too: on a shared machine it measures the
work done far more steadily than the wall clock. The ResKD step should cost no more than the two networks' own
work: the target is ``ResKD step <= 1.1 x (student step + teacher forward)`` in wall-clock medians. Steps run
outside a Trainer, so Lightning's loop, its ``self.log`` bookkeeping and gradient clipping are not timed (a few
milliseconds, whatever the networks).

Command line: ``reskd benchmark --config X.yaml`` (:mod:`reskd_lightning.tools.benchmark`). From Python::

    from reskd_lightning.benchmark import measure_training_step, synthetic_batch
    batch = synthetic_batch(2, frames=8, size=224, num_classes=200)
    steps = measure_training_step(module, batch, distillers=[FeatureMapKD()], iters=5)
    steps["reskd_step"].median_s, steps["student_step"].median_s, steps["teacher_forward"].median_s
"""

from __future__ import annotations

import statistics
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from .distill.base import DistillationLoss
from .efficiency import Timing, autocast, count_macs, describe, device_of, measure_inference, time_repeats
from .module import ResKDModule
from .plots import plot_benchmark
from .reporting import Loggers, log_image, log_table, save_plot, write_table
from .views import attach_views

#: ResKD step time / (student step time + teacher forward time) must not exceed this.
TARGET_RATIO = 1.1
#: The keys of :func:`measure_training_step`'s timings, in the ratio's order.
STEP_KEYS = ("student_step", "teacher_forward", "reskd_step")


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def synthetic_batch(
    batch_size: int, frames: int, size: int, num_classes: int, device: torch.device | str = "cpu", seed: int = 0
) -> dict[str, Tensor]:
    """A training batch as a DataModule yields it: ``video`` uint8 ``[N, 3, T, size, size]`` and ``label``."""
    for key, value in (("batch_size", batch_size), ("frames", frames), ("size", size), ("num_classes", num_classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")
    generator = torch.Generator().manual_seed(seed)
    video = torch.randint(0, 256, (batch_size, 3, frames, size, size), dtype=torch.uint8, generator=generator)
    label = torch.randint(0, num_classes, (batch_size,), generator=generator)
    return {"video": video.to(device), "label": label.to(device)}


def module_optimizer(module: ResKDModule) -> torch.optim.Optimizer:
    """The module's own optimiser (its factory and parameter groups); the lr is not scaled (that needs a
    Trainer, and the lr does not change the time of a step)."""
    base_batch, module.lr_base_batch_size = module.lr_base_batch_size, None
    try:
        configured = module.configure_optimizers()
    finally:
        module.lr_base_batch_size = base_batch
    return configured["optimizer"] if isinstance(configured, dict) else configured


def training_step_fn(
    module: ResKDModule, optimizer: torch.optim.Optimizer, batch: dict[str, Tensor], autocast_dtype: torch.dtype | None
) -> Callable[[], None]:
    """One timed optimiser step of ``module`` on ``batch`` (views made anew each time), as a function."""
    device = device_of(module)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        fresh = {"video": batch["video"], "label": batch["label"]}  # views are made anew by every step
        with autocast(device, autocast_dtype):
            loss = module.training_step(fresh, 0)
        loss.backward()
        optimizer.step()

    return step


def measure_training_step(
    module: ResKDModule,
    batch: dict[str, Tensor],
    *,
    distillers: Sequence[DistillationLoss] = (),
    warmup: int = 2,
    iters: int = 5,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, Timing]:
    """Time one optimiser step of the student alone, the teacher's forward pass, and the full ResKD step.

    ``module`` is a ``ResKDModule`` (on the device to measure on); ``distillers`` (e.g. the config's
    ``trainer.callbacks``) are registered with it as ``setup("fit")`` would. ``batch`` holds ``video``
    (uint8 ``[N, 3, T, H, W]``, see :func:`synthetic_batch`) and ``label``. Returns Timings keyed
    ``student_step`` (a teacher-less ResKDModule around a copy of the student, its views made from the uint8
    video), and, when the module has a teacher and distillers, ``teacher_forward`` (``no_grad``, in
    ``teacher_mode``, on a ready view) and ``reskd_step`` (``module.training_step``: views, student, teacher,
    distillers, backward, step). The measurements are interleaved repeat by repeat. Weights change: measure a
    copy if that matters.
    """
    device = device_of(module)
    for distiller in distillers:
        module.register_distiller(distiller)
    module.to(device)  # parts built on registering (adapters) join the module on its device
    batch = {k: v.to(device) for k, v in batch.items() if k in ("video", "label")}
    frames, batch_size = batch["video"].shape[2], batch["video"].shape[0]
    student, s_res, t_res = describe(module.student), module.student_resolution, module.teacher_resolution

    student_module = module.student_only()  # without the teacher, the distillers and their taps
    student_module.train()
    # key -> (row name, network, resolution, the timed function)
    steps: dict[str, tuple[str, str, int, Callable[[], Any]]] = {
        "student_step": ("student step", student, s_res,
                         training_step_fn(student_module, module_optimizer(student_module), batch, autocast_dtype)),
    }  # fmt: skip
    if module.teacher is not None and module.distillers:  # without a distiller the step never runs the teacher
        teacher = module.teacher
        view = attach_views(dict(batch), [t_res], **module.view_options)["clips"][t_res]

        def teacher_forward() -> None:
            with torch.no_grad(), autocast(device, autocast_dtype):
                teacher(view)

        steps["teacher_forward"] = ("teacher forward", describe(teacher), t_res, teacher_forward)
        steps["reskd_step"] = ("ResKD step", f"{student} <- {describe(teacher)}", s_res,
                               training_step_fn(module, module_optimizer(module), batch, autocast_dtype))  # fmt: skip
    module.train()  # the student trains; the teacher keeps teacher_mode

    with warnings.catch_warnings():
        # No Trainer: the module's self.log calls are no-ops that would warn at every step.
        warnings.filterwarnings("ignore", message=".*self.log\\(\\)")
        times = time_repeats({key: fn for key, (*_, fn) in steps.items()}, device, warmup, iters)
    return {
        key: Timing(name, network, resolution, frames, batch_size, *times[key])
        for key, (name, network, resolution, _) in steps.items()
    }


# ------------------------------------------------------------------------------------------------ report
@dataclass
class BenchmarkResult:
    """The measurements of :func:`run_benchmark`, as table rows, with the overhead ratio and the files."""

    rows: list[dict[str, Any]]
    inference: dict[str, Timing]
    steps: dict[str, Timing]
    ratio: float | None
    passed: bool | None
    files: list[Path] = field(default_factory=list)

    @property
    def paired_ratio(self) -> float | None:
        """The median over repeats of each repeat's own ratio: steadier than ``ratio`` when the load drifts."""
        if self.ratio is None:
            return None
        s, t, r = (self.steps[k].seconds for k in STEP_KEYS)
        return statistics.median(ri / (si + ti) for si, ti, ri in zip(s, t, r))

    @property
    def cpu_ratio(self) -> float | None:
        """The same ratio in process CPU time (CPU runs only): the work done, whatever else the machine runs."""
        if self.ratio is None or not self.steps["reskd_step"].cpu_seconds:
            return None
        s, t, r = (statistics.median(self.steps[k].cpu_seconds) for k in STEP_KEYS)
        return r / (s + t)

    def summary(self) -> str:
        """The ratio line: ``ResKD step / (student step + teacher forward) = 1.02 (target <= 1.10): PASS``."""
        if self.ratio is None:
            return "no teacher or no distiller: only the student's training step was measured"
        return (
            f"ResKD step / (student step + teacher forward) = {self.ratio:.3f} "
            f"(target <= {TARGET_RATIO:.2f}): {'PASS' if self.passed else 'FAIL'}; "
            f"median of the per-repeat ratios {self.paired_ratio:.3f}"
            + (f"; in CPU time {self.cpu_ratio:.3f}" if self.cpu_ratio is not None else "")
        )


def _gmacs(network: torch.nn.Module, resolution: int, frames: int) -> float | None:
    if device_of(network).type != "cpu":
        return None  # count_macs feeds a CPU clip
    return count_macs(network, resolution, frames) / 1e9  # every submodule's mode is kept


def run_benchmark(
    module: ResKDModule,
    *,
    frames: int,
    size: int,
    batch_size: int,
    distillers: Sequence[DistillationLoss] = (),
    warmup: int = 2,
    iters: int = 5,
    device: torch.device | str | None = None,
    autocast_dtype: torch.dtype | None = None,
    out_dir: str | Path | None = None,
    name: str = "benchmark",
    loggers: Loggers = None,
    title: str = "",
) -> BenchmarkResult:
    """Measure inference and training steps of ``module`` on synthetic clips ``[batch, 3, frames, size, size]``.

    The table (one row per measurement, the ratio on the ResKD row) is written to ``out_dir`` as
    ``<name>.csv``/``<name>.md`` with a bar chart ``<name>.png``, and logged to ``loggers`` (wandb table and
    image, or files in a CSV logger's ``log_dir``) under ``<name>/table`` and ``<name>/plot``.
    """
    device = torch.device(device) if device is not None else default_device()
    s_res, t_res = module.student_resolution, module.teacher_resolution
    macs = {"student": _gmacs(module.student, s_res, frames)}
    if module.teacher is not None:
        macs["teacher"] = _gmacs(module.teacher, t_res, frames)
    module.to(device)
    batch = synthetic_batch(batch_size, frames, size, module.num_classes, device)
    views = attach_views(dict(batch), [s_res] + ([t_res] if module.teacher is not None else []), **module.view_options)
    inference = {
        "student": measure_inference(module.student, views["clips"][s_res], warmup=warmup, iters=iters,
                                     name="student inference", autocast_dtype=autocast_dtype),
    }  # fmt: skip
    if module.teacher is not None:
        inference["teacher"] = measure_inference(
            module.teacher, views["clips"][t_res], warmup=warmup, iters=iters, name="teacher inference",
            autocast_dtype=autocast_dtype,
        )  # fmt: skip
    steps = measure_training_step(
        module, batch, distillers=distillers, warmup=warmup, iters=iters, autocast_dtype=autocast_dtype
    )
    ratio = passed = None
    if "reskd_step" in steps:
        ratio = steps["reskd_step"].median_s / (steps["student_step"].median_s + steps["teacher_forward"].median_s)
        passed = ratio <= TARGET_RATIO
    result = BenchmarkResult([], inference, steps, ratio, passed)
    result.rows = _rows(result, macs)
    if out_dir is not None or loggers:
        fig = plot_benchmark(result, title, TARGET_RATIO)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(out_dir) if out_dir is not None else Path(tmp)  # loggers alone: files for them only
            files = [*write_table(result.rows, folder, name), save_plot(fig, folder / f"{name}.png")]
            log_table(loggers, f"{name}/table", result.rows)
            log_image(loggers, f"{name}/plot", files[-1])
        if out_dir is not None:
            result.files = files
    return result


def _rows(result: BenchmarkResult, macs: dict[str, float | None]) -> list[dict[str, Any]]:
    """The table: inference rows (with GMACs per clip), step rows, their sum and the ResKD row with the ratio."""
    steps = result.steps
    rows = [timing.row(gmacs_per_clip=macs[role]) for role, timing in result.inference.items()]
    rows.append(steps["student_step"].row())
    if result.ratio is None:
        return rows
    both = steps["student_step"].median_s + steps["teacher_forward"].median_s
    both_row: dict[str, Any] = {"measurement": "student step + teacher forward", "median_ms": 1e3 * both,
                                "clips_per_s": steps["student_step"].batch / both}  # fmt: skip
    extra: dict[str, Any] = {"ratio": result.ratio}
    if result.cpu_ratio is not None:
        both_row["cpu_ms"] = sum(1e3 * statistics.median(steps[k].cpu_seconds) for k in STEP_KEYS[:2])
        extra["cpu_ratio"] = result.cpu_ratio
    extra["target"] = f"ratio <= {TARGET_RATIO:g}: {'PASS' if result.passed else 'FAIL'}"
    return rows + [steps["teacher_forward"].row(), both_row, steps["reskd_step"].row(**extra)]
