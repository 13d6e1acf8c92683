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

Command line: ``reskd analyze`` (:mod:`reskd_lightning.tools.analyze`)::

    reskd analyze --config configs/anet.yaml --high teacher.ckpt --low-res 112=baseline.ckpt \\
        --student 112=student.ckpt --resolutions 224 160 112 96 72 [--limit-batches 50] [--data.batch_size 4]
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Sequence

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_info, rank_zero_only, rank_zero_warn
from torch import Tensor, nn

from .analysis_modes import ANALYSIS_MODES
from .efficiency import count_macs
from .models.weights import adapt_state_dict, extract_state_dict, load_checkpoint, load_state_dict_checked
from .module import ResKDModule
from .views import resize_clip, resize_frames

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
class NetworkAtResolution:
    """A trained network and the resolution it is evaluated at (``checkpoint``: where it came from)."""

    network: nn.Module
    resolution: int | None
    checkpoint: str = ""


def build_network(spec: Any, num_classes: int | None, source: str) -> nn.Module:
    """A network from a ``ResKDModule`` network spec: a network, a ``num_classes -> network`` factory (what
    :func:`reskd_lightning.tools.config.load_config` makes of a config's ``model.student``), or the
    ``{class_path, init_args}`` that ``reskd fit`` checkpoints keep in their hyper-parameters, rebuilt the way
    Lightning's ``load_from_checkpoint`` rebuilds them."""
    if isinstance(spec, nn.Module):
        return spec
    if isinstance(spec, Mapping) and "class_path" in spec:
        from pytorch_lightning.cli import instantiate_module

        if num_classes is None and "num_classes" not in (spec.get("init_args") or {}):
            raise ValueError(f"{source}: the number of classes is unknown; give the DataModule's num_classes")
        return instantiate_module(ResKDModule, {"student": dict(spec), "num_classes": num_classes}).student
    if callable(spec):
        if num_classes is None:
            raise ValueError(f"{source}: the number of classes is unknown; give the DataModule's num_classes")
        return spec(num_classes)
    raise ValueError(
        f"{source} holds a plain state dict and no network was given to load it into: give the config's "
        f"model.student (or model.teacher for the high-resolution network), got {spec!r}"
    )


def load_network(
    path: str | os.PathLike,
    resolution: int | None = None,
    network: Any = None,
    num_classes: int | None = None,
) -> NetworkAtResolution:
    """A trained network from a checkpoint: our Lightning checkpoint (the network is rebuilt from its
    hyper-parameters), an exported student, a plain state dict or an mmaction2 checkpoint (built from
    ``network``, see :func:`build_network`, and loaded with every key checked).

    Only the trained network (a run's ``student.*``) is read: a ResKD checkpoint's teacher is not rebuilt, so
    its ``teacher_ckpt`` need not exist. ``resolution`` defaults to the one the run trained at.
    """
    source = str(path)
    checkpoint = load_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters") or {}
    num_classes = hparams.get("num_classes") or checkpoint.get("num_classes") or num_classes
    spec = hparams.get("student") if hparams.get("student") is not None else network
    net = build_network(spec, num_classes, source)
    state = adapt_state_dict(net, extract_state_dict(checkpoint, source=source), source)
    load_state_dict_checked(net, state, source)
    trained_at = hparams.get("student_resolution") or checkpoint.get("resolution")
    if resolution is not None and trained_at is not None and int(trained_at) != resolution:
        rank_zero_warn(f"{source} was trained at {trained_at} px; evaluated at {resolution} px as asked")
    if resolution is None and trained_at is not None:
        resolution = int(trained_at)
    return NetworkAtResolution(net.eval(), resolution, source)


def _entries(sources: Mapping[int, Source] | Iterable[Any] | None) -> list[tuple[int | None, Source]]:
    """``{r: source}``, ``[source, ...]`` or ``[(r, source), ...]`` as ``(r or None, source)`` pairs."""
    if sources is None:
        return []
    if isinstance(sources, Mapping):
        return [(int(r) if r is not None else None, s) for r, s in sources.items()]
    if isinstance(sources, (str, os.PathLike, nn.Module)):
        sources = [sources]
    return [(e[0], e[1]) if isinstance(e, tuple) else (None, e) for e in sources]


def _resolve(
    mode: str, resolution: int | None, source: Source, network: Any, num_classes: int | None
) -> NetworkAtResolution | str:
    """The network of one source, or the reason it is left out (a missing checkpoint)."""
    if isinstance(source, ResKDModule):
        resolution = resolution or source.student_resolution
        return NetworkAtResolution(source.student, resolution, f"<{type(source).__name__}>")
    if isinstance(source, nn.Module):
        if resolution is None and mode not in "ABD":
            raise ValueError(f"mode {mode}: a network given as a module needs its resolution: {{r: network}}")
        return NetworkAtResolution(source, resolution, f"<{type(source).__name__}>")
    if not Path(source).is_file():
        return f"left out: checkpoint {str(source)!r} does not exist"
    loaded = load_network(source, resolution, network, num_classes)
    if loaded.resolution is None and mode not in "ABD":
        raise ValueError(f"{source} does not say its resolution: give it as r=CKPT ({{r: path}} in Python)")
    return loaded


# ------------------------------------------------------------------------------------------ evaluation
def _view_options(datamodule: pl.LightningDataModule) -> dict[str, Any]:
    """Normalisation and interpolation of the DataModule's views (ResKDModule's defaults if it has none)."""
    hp = getattr(datamodule, "hparams", {}) or {}
    keys = ("mean", "std", "interpolation", "antialias")
    return {k: hp[k] for k in keys if k in hp}


def _views_at(datamodule: pl.LightningDataModule, resolutions: Sequence[int]) -> contextlib.AbstractContextManager:
    """The DataModule's device-side views made exactly ``resolutions`` for a while (``VideoDataModule.views_at``;
    a DataModule without views: the module makes its own from ``batch["video"]``)."""
    views_at = getattr(datamodule, "views_at", None)
    return views_at(resolutions) if views_at is not None else contextlib.nullcontext()


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
    with _views_at(datamodule, [resolution]):
        run = trainer.validate if split == "val" else trainer.test
        results = run(module, datamodule=datamodule, verbose=False)
    return float(results[0][metric_name(metric, split)])


def frames_per_clip(datamodule: pl.LightningDataModule) -> int | None:
    """Frames of one clip of ``datamodule`` (``num_segments x clip_len``), or None when it does not say."""
    settings = getattr(datamodule, "settings", None)
    if isinstance(settings, Mapping) and "num_segments" in settings:
        return int(settings["num_segments"]) * int(settings.get("clip_len") or 1)
    return None


def _round(value: float, digits: int = 4) -> float:
    """``value`` to ``digits`` significant digits (GMACs of tiny and huge networks alike)."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))


def _networks(
    high: Source | None,
    low_res: Any,
    students: Any,
    high_resolution: int | None,
    network: Any,
    high_network: Any,
    num_classes: int | None,
    key: str,
) -> tuple[NetworkAtResolution | None, list[tuple[str, NetworkAtResolution]], list[dict[str, Any]]]:
    """The high-resolution network (A, B, D), the low-resolution ones as ``(mode, network)`` (C, E), and a
    row for each mode left out (no source given, or a checkpoint that does not exist)."""
    rows: list[dict[str, Any]] = []

    def left_out(mode: str, resolution: int | None, checkpoint: Any, note: str) -> None:
        rows.append(_row(mode, resolution, key, None, None, checkpoint, note))

    high_net: NetworkAtResolution | None = None
    if high is None:
        for mode in "ABD":
            left_out(mode, None, "", "left out: no high-resolution checkpoint given (--high)")
    else:
        resolved = _resolve("A", high_resolution, high, high_network or network, num_classes)
        if isinstance(resolved, str):
            for mode in "ABD":
                left_out(mode, high_resolution, str(high), resolved)
        else:
            high_net = resolved
    low_nets: list[tuple[str, NetworkAtResolution]] = []
    for mode, given, flag in (("C", low_res, "--low-res"), ("E", students, "--student")):
        entries = _entries(given)
        if not entries:
            left_out(mode, None, "", f"left out: no checkpoint given ({flag})")
        for resolution, source in entries:
            resolved = _resolve(mode, resolution, source, network, num_classes)
            if isinstance(resolved, str):
                left_out(mode, resolution, str(source), resolved)
            else:
                low_nets.append((mode, resolved))
    return high_net, low_nets, rows


def _resolutions(
    resolutions: Sequence[int] | None, high_resolution: int | None, low_nets: list[tuple[str, NetworkAtResolution]]
) -> tuple[list[int], int]:
    """Where B and D are evaluated (descending) and the high resolution, checked against each other."""
    if resolutions is None:
        resolutions = [r for r in [high_resolution] + [net.resolution for _, net in low_nets] if r]
    resolutions = sorted({int(r) for r in resolutions}, reverse=True)
    if high_resolution is None:
        if not resolutions:
            raise ValueError("no resolution to evaluate: give resolutions or high_resolution")
        high_resolution = resolutions[0]
    above = [r for r in resolutions if r > high_resolution]
    if above:
        raise ValueError(f"resolutions {above} exceed the high resolution {high_resolution} px")
    return resolutions, high_resolution


#: One evaluation: (mode, resolution, network evaluated, its input resolution, network counted, counted at,
#: checkpoint).
Evaluation = tuple[str, int, nn.Module, int, nn.Module, int, str]


def _plan(
    datamodule: pl.LightningDataModule,
    high_net: NetworkAtResolution | None,
    high: int,
    resolutions: list[int],
    low_nets: list[tuple[str, NetworkAtResolution]],
) -> list[Evaluation]:
    """Every evaluation of the analysis, in order: A, B at each lower resolution, D at each, then C and E."""
    plan: list[Evaluation] = []
    if high_net is not None:
        net, ckpt = high_net.network, high_net.checkpoint
        options = _view_options(datamodule)
        how = dict(mode=options.get("interpolation", "bilinear"), antialias=options.get("antialias", False))
        plan.append(("A", high, net, high, net, high, ckpt))
        plan += [("B", r, net, r, net, r, ckpt) for r in resolutions if r < high]
        # D: the high-resolution view, through r px and back, into A's network at A's input size and cost.
        plan += [("D", r, RoundTrip(net, r, **how), high, net, high, ckpt) for r in resolutions]
    for mode, low in low_nets:
        plan.append((mode, low.resolution, low.network, low.resolution, low.network, low.resolution, low.checkpoint))
    return plan


def _evaluation_trainer(
    trainer_kwargs: Mapping[str, Any] | None, split: str, limit_batches: int | float | None
) -> pl.Trainer:
    """A Trainer for evaluation only: no logger, callbacks, checkpointing or model summary."""
    return pl.Trainer(
        **{
            **dict(trainer_kwargs or {}),
            "logger": False,
            "callbacks": [],
            "enable_checkpointing": False,
            "enable_model_summary": False,
            **({f"limit_{split}_batches": limit_batches} if limit_batches is not None else {}),
        }
    )


def _warn_if_cropped_below(datamodule: pl.LightningDataModule, high_resolution: int) -> None:
    crop = (getattr(datamodule, "hparams", {}) or {}).get("crop_size")
    if crop is not None and crop < high_resolution:
        rank_zero_warn(
            f"the data's crop_size {crop} is below the high resolution {high_resolution}: every view is a "
            f"resize of a {crop}-px crop, so the high-resolution view is upsampled; set data.crop_size: "
            f"{high_resolution}"
        )


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
    """Evaluate modes A-E (see :data:`ANALYSIS_MODES`) on ``datamodule``'s ``split``; one row per mode and
    resolution.

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
        network: how to build C and E networks from plain state dicts (see :func:`build_network`).
        high_network: the same for ``high``; default: ``network``.
        metric: ``accuracy`` or ``mAP``; default: the DataModule's.

    Rows have the keys of :data:`COLUMNS`: ``value`` is the metric in [0, 1] (``None`` for a mode left out,
    with the reason in ``note``), ``gmacs`` the network's multiply-adds per video (one clip, one view).
    A checkpoint path that does not exist leaves its mode out instead of failing.
    """
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    if getattr(datamodule, "num_classes", 1) is None:
        datamodule.setup("validate" if split == "val" else "test")  # a list without num_classes: the labels tell
    num_classes = getattr(datamodule, "num_classes", None)
    metric = metric or getattr(datamodule, "metric", None) or "accuracy"
    frames = frames or frames_per_clip(datamodule)
    if frames is None:
        raise ValueError("frames per clip are unknown for this DataModule: pass frames=")
    key = metric_name(metric, split)
    high_net, low_nets, rows = _networks(
        high, low_res, students, high_resolution, network, high_network, num_classes, key
    )
    if high_net is not None:
        high_resolution = high_resolution or high_net.resolution
    resolutions, high_resolution = _resolutions(resolutions, high_resolution, low_nets)
    _warn_if_cropped_below(datamodule, high_resolution)
    trainer = _evaluation_trainer(trainer_kwargs, split, limit_batches)
    macs: dict[tuple[int, int], float] = {}
    for mode, resolution, evaluated, evaluated_at, counted, counted_at, ckpt in _plan(
        datamodule, high_net, high_resolution, resolutions, low_nets
    ):
        cost = (id(counted), counted_at)
        if cost not in macs:  # before evaluation: the networks are still on the CPU
            macs[cost] = count_macs(counted, counted_at, frames) / 1e9
        value = evaluate(evaluated, evaluated_at, datamodule, trainer, split, metric, num_classes)
        rank_zero_info(f"analyze: ({mode}) {ANALYSIS_MODES[mode]} at {resolution} px: {key} = {value:.4f}")
        rows.append(_row(mode, resolution, key, round(value, 6), _round(macs[cost]), ckpt, ""))
    return sorted(rows, key=lambda row: (row["mode"], -(row["resolution"] or 0)))


def _row(
    mode: str, resolution: int | None, metric: str, value: Any, gmacs: Any, checkpoint: Any, note: str
) -> dict[str, Any]:
    return dict(
        mode=mode, description=ANALYSIS_MODES[mode], resolution=resolution, metric=metric, value=value,
        gmacs=gmacs, checkpoint=str(checkpoint), note=note,
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
def notes(rows: Sequence[Mapping[str, Any]], frames: int | None = None) -> str:
    """The lines under the table: what the modes and the costs are, and what was left out."""
    clip = f"one clip of {frames} frames" if frames else "one clip"
    lines = [f"- ({m}) {d}" for m, d in ANALYSIS_MODES.items()]
    lines.append(
        f"- gmacs: GMACs (multiply-adds) per video, {clip}, one view at the mode's input resolution; "
        "(D) costs (A)'s network at the high resolution"
    )
    lines += [f"- left out: {line}" for line in left_out_modes(rows)]
    return "\n".join(lines) + "\n"


@rank_zero_only
def write_analysis(
    rows: list[dict[str, Any]], out_dir: str | os.PathLike, loggers: Any = None, frames: int | None = None
) -> dict[str, Path]:
    """Write ``analysis.csv``, ``analysis.md`` (table and notes) and the two plots
    (:func:`reskd_lightning.plots.plot_analysis`) into ``out_dir``, and log the table and the plots to
    ``loggers`` (wandb or CSV, see :mod:`reskd_lightning.reporting`). Rank zero only."""
    from .files import write_text_atomic
    from .plots import plot_analysis
    from .reporting import log_image, log_table, markdown_table, write_table

    csv_path, md_path = write_table(rows, out_dir, "analysis")
    write_text_atomic(md_path, markdown_table(rows) + "\n" + notes(rows, frames))
    plots = plot_analysis(rows, out_dir)
    log_table(loggers, "analysis/table", rows)
    for name, path in plots.items():
        log_image(loggers, f"analysis/{name}", path)
    return {"csv": csv_path, "md": md_path, **plots}
