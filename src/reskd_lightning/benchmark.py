"""What a ResKD configuration costs on this device: inference and training-step times, measured.

``reskd benchmark --config X.yaml`` builds the config's model (as ``reskd fit`` does, without a Trainer) and
times, on synthetic uint8 clips of the config's shape, on the current device (CUDA if available, else CPU):

* inference (eval, ``no_grad``): clips/s and batch latency of the student at its resolution and of the teacher
  at its own;
* one training step (``zero_grad``, forward, loss, backward, ``optimizer.step``) of the student alone (a
  ``ResKDModule`` without teacher around a copy of the same student), the teacher's forward pass alone
  (``no_grad``, in the module's ``teacher_mode``), and the full ResKD step (``ResKDModule.training_step``
  with the config's distillers, views made from the uint8 clip, backward, step).

Timings are the median of ``iters`` repeats after ``warmup`` (CUDA is synchronised around each); the three
training measurements are interleaved, so a change of load on the machine hits them alike. On the CPU the
process's CPU time is reported too: on a shared machine it measures the work done far more steadily than the
wall clock. The ResKD step should cost no more than the two networks' own work: the target is
``ResKD step <= 1.1 x (student step + teacher forward)`` in wall-clock medians. Steps run outside a Trainer,
so Lightning's loop, its ``self.log`` bookkeeping and gradient clipping are not timed (a few milliseconds,
whatever the networks).

Use the pieces from Python::

    from reskd_lightning.benchmark import measure_inference, measure_training_step, synthetic_batch
    batch = synthetic_batch(2, frames=8, size=224, num_classes=200)
    steps = measure_training_step(module, batch, distillers=[FeatureMapKD()], iters=5)
    steps["reskd_step"].median_s, steps["student_step"].median_s, steps["teacher_forward"].median_s
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import yaml
from pytorch_lightning.loggers import Logger
from torch import Tensor, nn

from .data import VideoDataModule
from .distill.base import DistillationLoss
from .efficiency import count_macs, eval_mode
from .module import ResKDModule
from .reporting import Loggers, log_config, log_image, log_table, markdown_table, save_plot, write_table
from .views import attach_views, normalize_video

#: ResKD step time / (student step time + teacher forward time) must not exceed this.
TARGET_RATIO = 1.1
#: The keys of :func:`measure_training_step`'s timings, in the ratio's order.
STEP_KEYS = ("student_step", "teacher_forward", "reskd_step")


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


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def describe(network: nn.Module) -> str:
    """A short name for a network: its class, and its backbone when it says (``TSN-resnet50``)."""
    backbone = getattr(network, "backbone_name", None)
    return type(network).__name__ + (f"-{backbone}" if backbone else "")


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


def _device_of(module: nn.Module) -> torch.device:
    param = next(module.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
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


def _split(times: list[tuple[float, float]], device: torch.device) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(wall seconds, CPU seconds); CPU time says nothing about a GPU's work, so it is kept for the CPU only."""
    return tuple(w for w, _ in times), (tuple(c for _, c in times) if device.type == "cpu" else ())


def _check_repeats(warmup: int, iters: int) -> None:
    if warmup < 0 or iters < 1:
        raise ValueError(f"need warmup >= 0 and iters >= 1, got warmup={warmup}, iters={iters}")


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
    first, untimed); the latency is per batch of N. The network's train/eval flags are restored afterwards.
    """
    _check_repeats(warmup, iters)
    device = _device_of(network)
    clip = normalize_video(clip.to(device))
    times = []
    with eval_mode(network), torch.no_grad():
        for i in range(warmup + iters):
            with _autocast(device, autocast_dtype):
                seconds = _timed(lambda: network(clip), device)
            if i >= warmup:
                times.append(seconds)
    n, _, t, h, w = clip.shape
    return Timing(name, describe(network), min(h, w), t, n, *_split(times, device))


def _student_only(module: ResKDModule) -> ResKDModule:
    """A ResKDModule without teacher around a copy of ``module``'s student, with the same step settings."""
    options = module.view_options
    student = copy.deepcopy(module.student)
    tap_hooks = {handle.id for handle in module._tap_hooks.values()}
    for m in student.modules():  # the copy drops the ResKD module's taps: the student alone reads none
        for hook_id in tap_hooks:
            m._forward_hooks.pop(hook_id, None)
    return ResKDModule(
        student,
        num_classes=module.num_classes,
        student_resolution=module.student_resolution,
        teacher_resolution=module.teacher_resolution,
        optimizer=module.optimizer_factory,
        label_smoothing=module.label_smoothing,
        mean=options["mean"],
        std=options["std"],
        interpolation=options["mode"],
        antialias=options["antialias"],
        param_groups=module.param_groups,
    ).to(_device_of(module))


def _optimizer(module: ResKDModule) -> torch.optim.Optimizer:
    """The module's own optimiser (its factory and parameter groups); the lr is not scaled (that needs a
    Trainer, and the lr does not change the time of a step)."""
    base_batch, module.lr_base_batch_size = module.lr_base_batch_size, None
    try:
        configured = module.configure_optimizers()
    finally:
        module.lr_base_batch_size = base_batch
    return configured["optimizer"] if isinstance(configured, dict) else configured


def _step_fn(
    module: ResKDModule, optimizer: torch.optim.Optimizer, batch: dict[str, Tensor], autocast_dtype: torch.dtype | None
) -> Callable[[], None]:
    device = _device_of(module)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        fresh = {"video": batch["video"], "label": batch["label"]}  # views are made anew by every step
        with _autocast(device, autocast_dtype):
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
    _check_repeats(warmup, iters)
    for distiller in distillers:
        module.register_distiller(distiller)
    device = _device_of(module)
    batch = {k: v.to(device) for k, v in batch.items() if k in ("video", "label")}
    frames, batch_size = batch["video"].shape[2], batch["video"].shape[0]
    student, s_res, t_res = describe(module.student), module.student_resolution, module.teacher_resolution

    student_module = _student_only(module)
    student_module.train()
    # key -> (row name, network, resolution, the timed function)
    steps: dict[str, tuple[str, str, int, Callable[[], Any]]] = {
        "student_step": ("student step", student, s_res, _step_fn(student_module, _optimizer(student_module), batch,
                                                                  autocast_dtype)),
    }  # fmt: skip
    if module.teacher is not None and module.distillers:  # without a distiller the step never runs the teacher
        teacher = module.teacher
        view = attach_views(dict(batch), [t_res], **module.view_options)["clips"][t_res]

        def teacher_forward() -> None:
            with torch.no_grad(), _autocast(device, autocast_dtype):
                teacher(view)

        steps["teacher_forward"] = ("teacher forward", describe(teacher), t_res, teacher_forward)
        steps["reskd_step"] = ("ResKD step", f"{student} <- {describe(teacher)}", s_res,
                               _step_fn(module, _optimizer(module), batch, autocast_dtype))  # fmt: skip
    module.train()  # the student trains; the teacher keeps teacher_mode

    times: dict[str, list[tuple[float, float]]] = {key: [] for key in steps}
    with warnings.catch_warnings():
        # No Trainer: the module's self.log calls are no-ops that would warn at every step.
        warnings.filterwarnings("ignore", message=".*self.log\\(\\)")
        for i in range(warmup + iters):
            for key, (*_, fn) in steps.items():
                seconds = _timed(fn, device)
                if i >= warmup:
                    times[key].append(seconds)
    return {
        key: Timing(name, network, resolution, frames, batch_size, *_split(times[key], device))
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


def _gmacs(network: nn.Module, resolution: int, frames: int) -> float | None:
    if _device_of(network).type != "cpu":
        return None  # count_macs feeds a CPU clip
    return count_macs(network, resolution, frames) / 1e9  # every submodule's mode is kept


def plot_benchmark(result: BenchmarkResult, title: str = "") -> Any:
    """A matplotlib Figure: inference clips/s (left) and training-step times (right) with the target line."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    left, right = fig.subplots(1, 2)
    names = [t.name.replace(" inference", "") + f"\n{t.resolution} px" for t in result.inference.values()]
    rates = [t.clips_per_s for t in result.inference.values()]
    bars = left.bar(names, rates, color=["tab:blue", "tab:orange"][: len(rates)])
    left.bar_label(bars, fmt="%.2f")
    left.set_ylim(0, 1.15 * max(rates))
    left.set_ylabel("clips / s")
    left.set_title("inference (eval, no_grad)")
    ms = {key: 1e3 * t.median_s for key, t in result.steps.items()}
    student = ms["student_step"]
    heights = [student]
    right.bar("student\nstep", student, width=0.6, color="tab:blue")
    if "reskd_step" in ms:
        teacher, both = ms["teacher_forward"], ms["student_step"] + ms["teacher_forward"]
        right.bar("teacher\nforward", teacher, width=0.6, color="tab:orange")
        right.bar("student step\n+ teacher fwd", student, width=0.6, color="tab:blue")
        right.bar("student step\n+ teacher fwd", teacher, bottom=student, width=0.6, color="tab:orange")
        right.bar("ResKD\nstep", ms["reskd_step"], width=0.6, color="tab:green" if result.passed else "tab:red")
        heights += [teacher, both, ms["reskd_step"]]
        right.axhline(TARGET_RATIO * both, color="black", linestyle="--", linewidth=1,
                      label=f"target: {TARGET_RATIO:g} x (student step + teacher forward)")  # fmt: skip
        right.legend(loc="upper left", fontsize=8)
    for x, height in enumerate(heights):
        right.annotate(f"{height:.0f}", (x, height), ha="center", va="bottom", fontsize=9)
    right.set_ylim(0, 1.3 * max(heights + [TARGET_RATIO * sum(heights[:2])]))
    right.set_ylabel("ms per step (median)")
    right.set_title("training step" + (f": ResKD / (student + teacher) = {result.ratio:.3f}" if result.ratio else ""))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


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
        fig = plot_benchmark(result, title)
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


# ------------------------------------------------------------------------------------------------- the tool
_PRECISIONS = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}


def _autocast_for(precision: Any, device: torch.device) -> tuple[torch.dtype | None, str]:
    """The autocast dtype the config's ``trainer.precision`` means on ``device``, and how to say it."""
    dtype = _PRECISIONS.get(str(precision))
    if dtype is None:
        return None, "fp32"
    if dtype == torch.float16 and device.type != "cuda":
        return None, f"fp32 (the config's precision {precision} needs a GPU)"
    return dtype, f"autocast {str(dtype).removeprefix('torch.')} (precision {precision})"


def _config_cli(config: str, overrides: Sequence[str], random_teacher: bool) -> Any:
    """The config's model, data and callbacks, instantiated as ``reskd fit`` does, without a Trainer."""
    from .cli import ResKDCLI

    class ConfigOnlyCLI(ResKDCLI):
        skipped_teacher_ckpt: str | None = None

        def before_instantiate_classes(self) -> None:
            super().before_instantiate_classes()
            ckpt = self.config.model.teacher_ckpt
            if ckpt and (random_teacher or not Path(ckpt).exists()):
                self.skipped_teacher_ckpt = ckpt
                self.config.model.teacher_ckpt = None

        def instantiate_trainer(self, **kwargs: Any) -> Any:
            return None  # the networks are timed on this device, whatever the config's accelerator and strategy

    return ConfigOnlyCLI(
        ResKDModule,
        VideoDataModule,
        args=["--config", config, *overrides],
        run=False,
        save_config_callback=None,
        parser_kwargs={"default_env": False},
    )


def _as_loggers(logger: Any) -> list[Logger]:
    """The Logger objects of an instantiated ``trainer.logger`` (a logger, a list of them, True/False/None)."""
    if isinstance(logger, Logger):
        return [logger]
    if isinstance(logger, (list, tuple)):
        return [lg for lg in logger if isinstance(lg, Logger)]
    return []


def benchmark_main(argv: Sequence[str]) -> None:
    """``reskd benchmark --config X.yaml``: inference and training-step times of a config on this device."""
    parser = argparse.ArgumentParser(
        prog="reskd benchmark", description=benchmark_main.__doc__, allow_abbrev=False,
        epilog="Other arguments are config overrides, as for `reskd fit` (e.g. --model.student_resolution 112).",
    )  # fmt: skip
    parser.add_argument("--config", required=True, help="a reskd config (LightningCLI YAML)")
    parser.add_argument("--batch", type=int, default=None, help="clips per batch; default: data.batch_size")
    parser.add_argument("--frames", type=int, default=None, help="frames per clip; default: num_segments x clip_len")
    parser.add_argument("--iters", type=int, default=5, help="timed repeats (the median is reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed repeats first")
    parser.add_argument("--out", default=None, help="folder of table and plot; default: runs/benchmark/<config stem>")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument(
        "--random-teacher", action="store_true", help="do not load teacher_ckpt (timings do not depend on weights)"
    )
    parser.add_argument("--logger", action="store_true", help="also log table and plot to the config's trainer.logger")
    args, overrides = parser.parse_known_args(list(argv))
    unknown = [a for a in overrides if a.startswith("-") and not a.startswith("--")]
    if unknown:
        parser.error(f"unrecognised arguments: {unknown}")

    cli = _config_cli(args.config, overrides, args.random_teacher)
    module: ResKDModule = cli.model
    data = cli.datamodule
    settings = data.settings
    frames = args.frames or settings["num_segments"] * settings["clip_len"]
    batch_size = args.batch or data.hparams.batch_size
    size = data.hparams.crop_size
    trainer_cfg = cli.config_init.trainer
    distillers = [c for c in (trainer_cfg.callbacks or []) if isinstance(c, DistillationLoss)]
    device = torch.device(args.device) if args.device else default_device()
    autocast_dtype, precision = _autocast_for(cli.config.trainer.precision, device)
    loggers = _as_loggers(trainer_cfg.logger) if args.logger else []
    if loggers:  # a wandb run of the benchmark keeps the config it measured, as `reskd fit` runs do
        log_config(loggers, yaml.safe_load(cli.parser.dump(cli.config, skip_link_targets=False)))
    out = Path(args.out) if args.out else Path("runs") / "benchmark" / Path(args.config).stem

    where = f"{torch.get_num_threads()} threads" if device.type == "cpu" else torch.cuda.get_device_name(device)
    print(f"reskd benchmark: {args.config} on {device} ({where}), torch {torch.__version__}, {precision}")
    teacher = "no teacher"
    if module.teacher is not None:
        teacher = f"teacher {describe(module.teacher)} at {module.teacher_resolution} px"
        if cli.skipped_teacher_ckpt:
            why = "--random-teacher" if args.random_teacher else "file not found"
            teacher += f" with random weights (teacher_ckpt {cli.skipped_teacher_ckpt} not loaded: {why})"
    print(f"student {describe(module.student)} at {module.student_resolution} px, {teacher}")
    print(f"clips {batch_size} x 3 x {frames} x {size} x {size} (uint8), distillers "
          f"{[d.name for d in distillers] + [d.name for d in module.distillers]}, "
          f"{args.warmup} warm-up + {args.iters} timed repeats, median", flush=True)  # fmt: skip
    result = run_benchmark(
        module, frames=frames, size=size, batch_size=batch_size, distillers=distillers, warmup=args.warmup,
        iters=args.iters, device=device, autocast_dtype=autocast_dtype, out_dir=out, loggers=loggers,
        title=f"{Path(args.config).name} on {device.type}, batch {batch_size}, {frames} frames",
    )  # fmt: skip
    print(markdown_table(result.rows), end="")
    print(result.summary())
    print("wrote " + ", ".join(str(p) for p in result.files))
