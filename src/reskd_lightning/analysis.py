"""The paper's key finding as a tool: is low-resolution accuracy lost to the frames or to the architecture?

On one dataset, five ways of recognising a video at resolution ``r`` are evaluated (Ma et al., NeurIPS 2022,
Sec. 3):

* **A** a network trained at the high resolution (e.g. 224 px), evaluated there;
* **B** the same network fed lower-resolution views (``r`` px);
* **C** a network trained at ``r``, evaluated at ``r``;
* **D** the clip resized to ``r`` and back up to the high resolution (bilinear both ways, as the views are
  made), into A's network: the information-loss control. If D stays close to A while B drops, the small frames
  kept the information and it is the architecture that does not fit the input scale;
* **E** the ResKD student at its resolution ``r``.

Every mode is evaluated with a real ``Trainer.validate`` (or ``test``) of a :class:`ResKDModule` wrapping the
network, so the metric is the module's own (``val/acc1`` or ``val/mAP``) and synced across devices. Views are
bilinear resizes of the same decoded, cropped clip, made with the DataModule's normalisation and
interpolation for every mode. The cost of a mode is its network's multiply-adds (:func:`count_macs`) on one
clip, one view, at its input resolution; D costs A's network at the high resolution.

Library use (notebooks, tests)::

    rows = analyze(datamodule, high="runs/teacher.ckpt", low_res={112: "runs/baseline_112.ckpt"},
                   students={112: "runs/reskd_112.ckpt"}, resolutions=[224, 160, 112, 96, 72])
    paths = write_analysis(rows, "runs/analysis/anet", loggers=trainer.loggers)

Command line (``reskd analyze``)::

    reskd analyze --config configs/anet.yaml --high teacher.ckpt --low-res 112=baseline.ckpt \\
        --student 112=student.ckpt --resolutions 224 160 112 96 72 [--limit-batches 50] [--data.batch_size 4]
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Mapping, Sequence

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_info, rank_zero_only, rank_zero_warn
from torch import Tensor, nn

from .efficiency import count_macs
from .models.weights import adapt_state_dict, extract_state_dict, load_checkpoint, load_state_dict_checked
from .module import ResKDModule
from .views import resize_clip, resize_frames

#: The modes of the analysis, by letter (the CSV's ``mode`` column), and what each evaluates.
MODES: dict[str, str] = {
    "A": "high-res network, high-res input",
    "B": "high-res network, low-res input",
    "C": "network trained at low res",
    "D": "low-res frames upsampled into the high-res network",
    "E": "ResKD student",
}

#: Columns of the table, in order.
COLUMNS = ("mode", "description", "resolution", "metric", "value", "gmacs", "checkpoint", "note")

#: What the analysis's networks can be given as: a checkpoint path, a network, or a ResKDModule (its student).
Source = str | os.PathLike | nn.Module


# ------------------------------------------------------------------------------------------------ mode D
def round_trip(clip: Tensor, resolution: int, mode: str = "bilinear", antialias: bool = False) -> Tensor:
    """``clip`` ``[..., C, T, H, W]`` resized to short side ``resolution`` and back to its own ``H x W``.

    The way down is exactly the view of that resolution (:func:`~reskd_lightning.views.resize_clip`); the way
    up interpolates the same way to the original size. At the clip's own resolution it is the identity.
    """
    height, width = clip.shape[-2:]
    low = resize_clip(clip, resolution, mode=mode, antialias=antialias)
    return resize_frames(low, (height, width), mode)


class RoundTrip(nn.Module):
    """Mode D: ``network`` fed its high-resolution view after a round trip through ``resolution`` px.

    Wrapped in a :class:`ResKDModule` at the high resolution, it evaluates A's network on frames that lost
    whatever a ``resolution``-px frame cannot hold, at A's input size.
    """

    def __init__(self, network: nn.Module, resolution: int, mode: str = "bilinear", antialias: bool = False):
        super().__init__()
        if not isinstance(resolution, int) or resolution <= 0:
            raise ValueError(f"resolution must be a positive number of pixels, got {resolution!r}")
        self.network = network
        self.resolution = resolution
        self.mode = mode
        self.antialias = antialias
        self.num_classes = getattr(network, "num_classes", None)

    def forward(self, clip: Tensor) -> Any:
        return self.network(round_trip(clip, self.resolution, self.mode, self.antialias))


# ------------------------------------------------------------------------------------------ networks in
@dataclasses.dataclass
class Run:
    """A trained network and the resolution it is evaluated at (``checkpoint``: where it came from)."""

    network: nn.Module
    resolution: int | None
    checkpoint: str = ""


def _build_from_spec(spec: Any, num_classes: int | None, source: str) -> nn.Module:
    """A network from a ``ResKDModule`` network spec: a module, a ``num_classes -> module`` callable, or a
    LightningCLI ``{class_path, init_args}`` (``init_args`` without ``num_classes``)."""
    if isinstance(spec, nn.Module):
        return spec
    if isinstance(spec, Mapping) or hasattr(spec, "class_path"):
        from jsonargparse import ArgumentParser, Namespace

        from .module import ModelSpec

        parser = ArgumentParser(exit_on_error=False)
        parser.add_argument("--network", type=ModelSpec)
        value = spec.as_dict() if isinstance(spec, Namespace) else dict(spec)
        cfg = parser.parse_object({"network": value})
        instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
        spec = instantiate(cfg).network
        if isinstance(spec, nn.Module):
            return spec
    if callable(spec):
        if num_classes is None:
            raise ValueError(f"{source}: the number of classes is unknown; give the DataModule's num_classes")
        return spec(num_classes)
    raise ValueError(
        f"{source} holds a plain state dict and no network was given to load it into: give the config's "
        f"model.student (or model.teacher for the high-resolution network), got {spec!r}"
    )


def load_run(
    path: str | os.PathLike,
    resolution: int | None = None,
    network: Any = None,
    num_classes: int | None = None,
) -> Run:
    """A trained network from a checkpoint: our Lightning checkpoint (the network is rebuilt from its
    hyper-parameters), an exported student, a plain state dict or an mmaction2 checkpoint (built from
    ``network``, a ``ResKDModule``-style spec, and loaded with every key checked).

    Only the trained network (a run's ``student.*``) is read: a ResKD checkpoint's teacher is not rebuilt, so
    its ``teacher_ckpt`` need not exist. ``resolution`` defaults to the one the run trained at.
    """
    source = str(path)
    checkpoint = load_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters") or {}
    num_classes = hparams.get("num_classes") or checkpoint.get("num_classes") or num_classes
    spec = hparams.get("student") if hparams.get("student") is not None else network
    net = _build_from_spec(spec, num_classes, source)
    state = adapt_state_dict(net, extract_state_dict(checkpoint, source=source), source)
    load_state_dict_checked(net, state, source)
    trained_at = hparams.get("student_resolution") or checkpoint.get("resolution")
    if resolution is not None and trained_at is not None and int(trained_at) != resolution:
        rank_zero_warn(f"{source} was trained at {trained_at} px; evaluated at {resolution} px as asked")
    if resolution is None and trained_at is not None:
        resolution = int(trained_at)
    return Run(net.eval(), resolution, source)


def _entries(runs: Mapping[int, Source] | Iterable[Any] | None) -> list[tuple[int | None, Source]]:
    """``{r: source}``, ``[source, ...]`` or ``[(r, source), ...]`` as ``(r or None, source)`` pairs."""
    if runs is None:
        return []
    if isinstance(runs, Mapping):
        return [(int(r) if r is not None else None, s) for r, s in runs.items()]
    if isinstance(runs, (str, os.PathLike, nn.Module)):
        runs = [runs]
    return [(e[0], e[1]) if isinstance(e, tuple) else (None, e) for e in runs]


def _resolve(
    mode: str, resolution: int | None, source: Source, network: Any, num_classes: int | None
) -> Run | str:
    """The run of one source, or the reason it is left out (a missing checkpoint)."""
    if isinstance(source, ResKDModule):
        return Run(source.student, resolution or source.student_resolution, f"<{type(source).__name__}>")
    if isinstance(source, nn.Module):
        if resolution is None and mode not in "ABD":
            raise ValueError(f"mode {mode}: a network given as a module needs its resolution: {{r: network}}")
        return Run(source, resolution, f"<{type(source).__name__}>")
    if not Path(source).is_file():
        return f"left out: checkpoint {str(source)!r} does not exist"
    run = load_run(source, resolution, network, num_classes)
    if run.resolution is None and mode not in "ABD":
        raise ValueError(f"{source} does not say its resolution: give it as r=CKPT ({{r: path}} in Python)")
    return run


# ------------------------------------------------------------------------------------------ evaluation
def _view_options(datamodule: pl.LightningDataModule) -> dict[str, Any]:
    """Normalisation and interpolation of the DataModule's views (ResKDModule's defaults if it has none)."""
    hp = getattr(datamodule, "hparams", {}) or {}
    keys = ("mean", "std", "interpolation", "antialias")
    return {k: hp[k] for k in keys if k in hp}


@contextlib.contextmanager
def _views(datamodule: pl.LightningDataModule, resolutions: Sequence[int]) -> Iterator[None]:
    """Make the DataModule's device-side views exactly ``resolutions`` for a while (no resize for nothing)."""
    hp = getattr(datamodule, "hparams", None)
    if hp is None or "resolutions" not in hp:
        yield  # a DataModule without views: the module makes its own from batch["video"]
        return
    before = hp["resolutions"]
    hp["resolutions"] = sorted(set(resolutions), reverse=True)
    try:
        yield
    finally:
        hp["resolutions"] = before


def metric_name(metric: str, split: str) -> str:
    """The key the module logs its main metric under: ``val/acc1``, ``val/mAP``, ``test/acc1`` ..."""
    return f"{split}/{'mAP' if metric == 'mAP' else 'acc1'}"


def evaluate(
    network: nn.Module,
    resolution: int,
    datamodule: pl.LightningDataModule,
    trainer: pl.Trainer,
    split: Literal["val", "test"] = "val",
    metric: str = "accuracy",
    num_classes: int | None = None,
) -> float:
    """``network``'s metric on ``datamodule``'s ``split`` at ``resolution`` px, through ``trainer``."""
    module = ResKDModule(
        student=network,
        num_classes=num_classes or getattr(network, "num_classes", None),
        student_resolution=resolution,
        teacher_resolution=resolution,
        metric=metric,  # type: ignore[arg-type]
        **_view_options(datamodule),
    )
    with _views(datamodule, [resolution]):
        run = trainer.validate if split == "val" else trainer.test
        results = run(module, datamodule=datamodule, verbose=False)
    return float(results[0][metric_name(metric, split)])


def _frames(datamodule: pl.LightningDataModule) -> int | None:
    settings = getattr(datamodule, "settings", None)
    if isinstance(settings, Mapping) and "num_segments" in settings:
        return int(settings["num_segments"]) * int(settings.get("clip_len") or 1)
    return None


def _round(value: float, digits: int = 4) -> float:
    """``value`` to ``digits`` significant digits (GMACs of tiny and huge networks alike)."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))


def analyze(
    datamodule: pl.LightningDataModule,
    high: Source | None = None,
    low_res: Mapping[int, Source] | Iterable[Any] | None = None,
    students: Mapping[int, Source] | Iterable[Any] | None = None,
    resolutions: Sequence[int] | None = None,
    high_resolution: int | None = None,
    split: Literal["val", "test"] = "val",
    limit_batches: int | float | None = None,
    frames: int | None = None,
    trainer_kwargs: Mapping[str, Any] | None = None,
    network: Any = None,
    high_network: Any = None,
    metric: str | None = None,
) -> list[dict[str, Any]]:
    """Evaluate modes A-E (see :data:`MODES`) on ``datamodule``'s ``split``; one row per mode and resolution.

    Args:
        datamodule: the data (a :class:`VideoDataModule`, or any DataModule whose batches hold ``video``).
        high: the high-resolution network (A, B, D): a checkpoint, a network or a ResKDModule.
        low_res: networks trained at low resolution (C): ``{r: source}``, or checkpoints that know their
            resolution.
        students: ResKD students (E), as ``low_res``.
        resolutions: where B and D are evaluated; default: the high resolution and those of C and E.
        high_resolution: A's input; default: the resolution ``high`` was trained at, else the largest one.
        split: ``val`` (``Trainer.validate``) or ``test`` (``Trainer.test``, multi-view).
        limit_batches: evaluate on this many batches (or this fraction) only.
        frames: frames per clip for the GMACs; default: the DataModule's ``num_segments x clip_len``.
        trainer_kwargs: ``pl.Trainer`` arguments (accelerator, devices, precision, ...); evaluation runs
            without logger, callbacks or checkpointing.
        network: how to build C and E networks from plain state dicts (a ``ResKDModule`` student spec).
        high_network: the same for ``high``; default: ``network``.
        metric: ``accuracy`` or ``mAP``; default: the DataModule's.

    Rows have the keys of :data:`COLUMNS`: ``value`` is the metric in [0, 1] (``None`` for a mode left out,
    with the reason in ``note``), ``gmacs`` the network's multiply-adds per video (one clip, one view).
    A checkpoint path that does not exist leaves its mode out instead of failing.
    """
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    stage = "validate" if split == "val" else "test"
    if getattr(datamodule, "num_classes", 1) is None:
        datamodule.setup(stage)  # a list without num_classes: the labels tell
    num_classes = getattr(datamodule, "num_classes", None)
    metric = metric or getattr(datamodule, "metric", None) or "accuracy"
    frames = frames or _frames(datamodule)
    if frames is None:
        raise ValueError("frames per clip are unknown for this DataModule: pass frames=")
    key = metric_name(metric, split)

    rows: list[dict[str, Any]] = []

    def left_out(mode: str, resolution: int | None, checkpoint: Any, note: str) -> None:
        rows.append(_row(mode, resolution, key, None, None, checkpoint, note))

    high_run: Run | None = None
    if high is None:
        for mode in "ABD":
            left_out(mode, None, "", "left out: no high-resolution checkpoint given (--high)")
    else:
        resolved = _resolve("A", high_resolution, high, high_network or network, num_classes)
        if isinstance(resolved, str):
            for mode in "ABD":
                left_out(mode, high_resolution, str(high), resolved)
        else:
            high_run = resolved
    low_runs: list[tuple[str, Run]] = []
    for mode, given, flag in (("C", low_res, "--low-res"), ("E", students, "--student")):
        entries = _entries(given)
        if not entries:
            left_out(mode, None, "", f"left out: no checkpoint given ({flag})")
        for resolution, source in entries:
            resolved = _resolve(mode, resolution, source, network, num_classes)
            if isinstance(resolved, str):
                left_out(mode, resolution, str(source), resolved)
            else:
                low_runs.append((mode, resolved))

    if high_run is not None:
        high_resolution = high_resolution or high_run.resolution
    if resolutions is None:
        resolutions = [r for r in [high_resolution] + [run.resolution for _, run in low_runs] if r]
    resolutions = sorted({int(r) for r in resolutions}, reverse=True)
    if high_resolution is None:
        if not resolutions:
            raise ValueError("no resolution to evaluate: give resolutions or high_resolution")
        high_resolution = resolutions[0]
    above = [r for r in resolutions if r > high_resolution]
    if above:
        raise ValueError(f"resolutions {above} exceed the high resolution {high_resolution} px")
    crop = (getattr(datamodule, "hparams", {}) or {}).get("crop_size")
    if crop is not None and crop < high_resolution:
        rank_zero_warn(
            f"the data's crop_size {crop} is below the high resolution {high_resolution}: every view is a "
            f"resize of a {crop}-px crop, so the high-resolution view is upsampled; set data.crop_size: "
            f"{high_resolution}"
        )

    # (mode, resolution, network evaluated, its input resolution, network counted, counted at, checkpoint)
    plan: list[tuple[str, int, nn.Module, int, nn.Module, int, str]] = []
    if high_run is not None:
        net, ckpt, high = high_run.network, high_run.checkpoint, high_resolution
        options = _view_options(datamodule)
        how = dict(mode=options.get("interpolation", "bilinear"), antialias=options.get("antialias", False))
        plan.append(("A", high, net, high, net, high, ckpt))
        plan += [("B", r, net, r, net, r, ckpt) for r in resolutions if r < high]
        # D: the high-resolution view, through r px and back, into A's network at A's input size and cost.
        plan += [("D", r, RoundTrip(net, r, **how), high, net, high, ckpt) for r in resolutions]
    for mode, run in low_runs:
        plan.append((mode, run.resolution, run.network, run.resolution, run.network, run.resolution, run.checkpoint))

    trainer = pl.Trainer(
        **{
            **dict(trainer_kwargs or {}),
            "logger": False,
            "callbacks": [],
            "enable_checkpointing": False,
            "enable_model_summary": False,
            **({f"limit_{split}_batches": limit_batches} if limit_batches is not None else {}),
        }
    )
    macs: dict[tuple[int, int], float] = {}
    for mode, resolution, evaluated, evaluated_at, counted, counted_at, ckpt in plan:
        cost = (id(counted), counted_at)
        if cost not in macs:  # before evaluation: the networks are still on the CPU
            macs[cost] = count_macs(counted, counted_at, frames) / 1e9
        value = evaluate(evaluated, evaluated_at, datamodule, trainer, split, metric, num_classes)
        rank_zero_info(f"analyze: ({mode}) {MODES[mode]} at {resolution} px: {key} = {value:.4f}")
        rows.append(_row(mode, resolution, key, round(value, 6), _round(macs[cost]), ckpt, ""))
    return sorted(rows, key=lambda row: (row["mode"], -(row["resolution"] or 0)))


def _row(
    mode: str, resolution: int | None, metric: str, value: Any, gmacs: Any, checkpoint: Any, note: str
) -> dict[str, Any]:
    return dict(
        mode=mode, description=MODES[mode], resolution=resolution, metric=metric, value=value, gmacs=gmacs,
        checkpoint=str(checkpoint), note=note,
    )  # fmt: skip


def left_out_modes(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per mode (and resolution) the analysis left out, with the reason."""
    return [
        f"({row['mode']}) {row['description']}"
        + (f" at {row['resolution']} px" if row["resolution"] else "")
        + f": {str(row['note']).removeprefix('left out: ')}"
        for row in rows
        if row["value"] is None
    ]


# --------------------------------------------------------------------------------------------- outputs
def _styles() -> dict[str, dict[str, Any]]:
    return {
        "A": dict(color="black", marker="s", markersize=8),
        "B": dict(color="tab:red", marker="o"),
        "C": dict(color="tab:blue", marker="^"),
        "D": dict(color="tab:gray", marker="v", linestyle="--"),
        "E": dict(color="tab:green", marker="*", markersize=16),
    }


def _points(rows: Sequence[Mapping[str, Any]], mode: str) -> list[Mapping[str, Any]]:
    done = [r for r in rows if r["mode"] == mode and r["value"] is not None]
    return sorted(done, key=lambda r: r["resolution"])


def plot_analysis(rows: Sequence[Mapping[str, Any]], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``accuracy_vs_resolution.png`` (one line per mode) and ``accuracy_vs_gflops.png`` (each mode's
    points at its cost, the ResKD student's highlighted) into ``out_dir``; returns ``{name: path}``."""
    from matplotlib.figure import Figure

    from .reporting import save_plot

    out_dir = Path(out_dir)
    metric = next((r["metric"] for r in rows if r["value"] is not None), "metric")
    styles = _styles()
    high = _points(rows, "A")

    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.add_subplot()
    for mode in MODES:
        points = _points(rows, mode)
        if mode == "B" and points and high:
            points = points + high  # B at the high resolution is A
        if not points:
            continue
        label = f"({mode}) {MODES[mode]}"
        ax.plot([p["resolution"] for p in points], [p["value"] for p in points], label=label, **styles[mode])
    ax.set_xlabel("input resolution (px, short side)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs resolution")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    by_resolution = save_plot(fig, out_dir / "accuracy_vs_resolution.png")

    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.add_subplot()
    for mode in MODES:
        points = _points(rows, mode) + (high if mode == "B" and _points(rows, "B") else [])
        points = sorted(points, key=lambda p: p["gmacs"])
        if not points:
            continue
        style = dict(styles[mode])
        if mode == "D":  # one cost (A's) for every resolution: points, no line
            style["linestyle"] = "none"
        label = f"({mode}) {MODES[mode]}"
        x, y = [p["gmacs"] for p in points], [p["value"] for p in points]
        if mode == "E":
            ax.scatter(x, y, s=260, marker="*", color="tab:green", edgecolors="black", zorder=5, label=label)
        else:
            ax.plot(x, y, label=label, **style)
        for p in points:
            if mode == "B" and p in high:
                continue  # A's point, labelled as A
            left = mode == "D"  # D's points share A's cost: their labels go to the left of A's
            ax.annotate(f"{p['resolution']}", (p["gmacs"], p["value"]), textcoords="offset points",
                        xytext=(-6 if left else 4, 4), ha="right" if left else "left", fontsize=7,
                        fontweight="bold" if mode == "E" else "normal")
    costs = [r["gmacs"] for r in rows if r["gmacs"]]
    if costs and max(costs) / min(costs) > 10:
        ax.set_xscale("log")
    ax.set_xlabel("GFLOPs per video (multiply-adds; one clip, one view)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs cost (labels: resolution in px)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    by_cost = save_plot(fig, out_dir / "accuracy_vs_gflops.png")
    return {"accuracy_vs_resolution": by_resolution, "accuracy_vs_gflops": by_cost}


def notes(rows: Sequence[Mapping[str, Any]], frames: int | None = None) -> str:
    """The lines under the table: what the modes and the costs are, and what was left out."""
    clip = f"one clip of {frames} frames" if frames else "one clip"
    lines = [f"- ({m}) {d}" for m, d in MODES.items()]
    lines.append(
        f"- gmacs: GFLOPs (multiply-adds) per video, {clip}, one view at the mode's input resolution; "
        "(D) costs (A)'s network at the high resolution"
    )
    lines += [f"- left out: {line}" for line in left_out_modes(rows)]
    return "\n".join(lines) + "\n"


@rank_zero_only
def write_analysis(
    rows: list[dict[str, Any]], out_dir: str | os.PathLike, loggers: Any = None, frames: int | None = None
) -> dict[str, Path]:
    """Write ``analysis.csv``, ``analysis.md`` (table and notes) and the two plots into ``out_dir``, and log
    the table and the plots to ``loggers`` (wandb or CSV, see :mod:`reskd_lightning.reporting`). Rank zero
    only."""
    from .files import write_text_atomic
    from .reporting import log_image, log_table, markdown_table, write_table

    csv_path, md_path = write_table(rows, out_dir, "analysis")
    write_text_atomic(md_path, markdown_table(rows) + "\n" + notes(rows, frames))
    plots = plot_analysis(rows, out_dir)
    log_table(loggers, "analysis/table", rows)
    for name, path in plots.items():
        log_image(loggers, f"analysis/{name}", path)
    return {"csv": csv_path, "md": md_path, **plots}


# ------------------------------------------------------------------------------------------------- CLI
def _run_arg(text: str) -> tuple[int | None, str]:
    """``r=CKPT`` or ``CKPT`` (the checkpoint knows its resolution)."""
    match = re.fullmatch(r"(\d+)=(.+)", text)
    return (int(match.group(1)), match.group(2)) if match else (None, text)


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


def load_config(
    config: str, overrides: Sequence[str] = ()
) -> tuple[Any, dict[str, Any], Any, dict[str, Any]]:
    """A ``reskd`` config's DataModule, Trainer arguments, configured logger (``None`` when the config names
    none) and model section (a dict), with ``--data.*`` / ``--trainer.*`` overrides."""
    from pytorch_lightning.cli import LightningArgumentParser

    from .data import VideoDataModule

    parser = LightningArgumentParser(prog="reskd analyze", exit_on_error=False, default_env=False)
    parser.add_argument("--config", action="config")
    parser.add_lightning_class_args(pl.Trainer, "trainer")
    parser.add_class_arguments(VideoDataModule, "data")
    parser.add_argument("--model", type=dict, default={})
    for key in ("seed_everything", "ckpt_path", "optimizer", "lr_scheduler"):
        parser.add_argument(f"--{key}", type=Any, default=None)
    cfg = parser.parse_args(["--config", config, *overrides])
    cfg.trainer.callbacks = None  # distillers and checkpointing have no part in evaluation
    if not isinstance(cfg.trainer.logger, (list, dict)) and not hasattr(cfg.trainer.logger, "class_path"):
        cfg.trainer.logger = None  # `true` or unset: Lightning's default logger is not "configured"
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    init = instantiate(cfg)
    trainer_kwargs = {k: v for k, v in dict(init.trainer).items() if k not in ("logger", "callbacks")}
    return init.data, trainer_kwargs, init.trainer.logger, dict(cfg.model or {})


def analyze_main(argv: Sequence[str]) -> None:
    """``reskd analyze --config X.yaml --high CKPT [--low-res [r=]CKPT ...] [--student [r=]CKPT ...]
    --resolutions R [R ...]``: the key-finding analysis (modes A-E) as a table and two plots."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="reskd analyze",
        description=analyze_main.__doc__,
        epilog="Modes: " + "; ".join(f"({m}) {d}" for m, d in MODES.items()) + ". Other arguments override "
        "the config (--data.batch_size 4, --trainer.devices 2, --trainer.logger false). A logger in the "
        "config's trainer section also receives the table and the plots.",
    )
    parser.add_argument("--config", required=True, help="a reskd config (its data, trainer, model sections)")
    parser.add_argument("--high", "--ckpt_path", dest="high", default=None,
                        help="checkpoint of the high-resolution network (A, B, D); default: the config's "
                        "model.teacher_ckpt")
    parser.add_argument("--low-res", nargs="+", default=[], metavar="[R=]CKPT",
                        help="networks trained at low resolution (C), e.g. 112=baseline.ckpt")
    parser.add_argument("--student", nargs="+", default=[], metavar="[R=]CKPT", help="ResKD students (E)")
    parser.add_argument("--resolutions", type=int, nargs="+", default=None,
                        help="where B and D are evaluated; default: the high resolution and those of C and E")
    parser.add_argument("--high-resolution", type=int, default=None,
                        help="A's input; default: the resolution the high-resolution network trained at")
    parser.add_argument("--split", choices=["val", "test"], default="val")
    parser.add_argument("--out", default=None, help="output folder; default: runs/analysis/<config stem>")
    parser.add_argument("--limit-batches", type=_number, default=None, help="batches (or fraction) per mode")
    args, overrides = parser.parse_known_args(list(argv))

    datamodule, trainer_kwargs, logger, model = load_config(args.config, overrides)
    high = args.high or model.get("teacher_ckpt")
    rows = analyze(
        datamodule,
        high=high,
        low_res=[_run_arg(a) for a in args.low_res],
        students=[_run_arg(a) for a in args.student],
        resolutions=args.resolutions,
        high_resolution=args.high_resolution,
        split=args.split,
        limit_batches=args.limit_batches,
        trainer_kwargs=trainer_kwargs,
        network=model.get("student"),
        high_network=model.get("teacher") or model.get("student"),
    )
    out = Path(args.out) if args.out else Path("runs") / "analysis" / Path(args.config).stem
    _report(rows, out, logger, _frames(datamodule))


@rank_zero_only
def _report(rows: list[dict[str, Any]], out: Path, logger: Any, frames: int | None) -> None:
    from .reporting import markdown_table

    paths = write_analysis(rows, out, logger, frames)
    print(markdown_table(rows))
    print(notes(rows, frames))
    print("written: " + ", ".join(str(p) for p in paths.values()))
