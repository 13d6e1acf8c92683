"""Every figure the package draws: the key-finding analysis's two plots and the benchmark's bar chart.

Figures are ``matplotlib.figure.Figure`` objects (no pyplot, no GUI backend), written as PNGs by
:func:`reskd_lightning.reporting.save_plot`. The functions read plain table rows and results, so this module
imports neither the analysis nor the benchmark.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .reporting import save_plot

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: How each analysis mode (A-E, see :data:`reskd_lightning.analysis.ANALYSIS_MODES`) is drawn.
ANALYSIS_STYLES: dict[str, dict[str, Any]] = {
    "A": dict(color="black", marker="s", markersize=8),
    "B": dict(color="tab:red", marker="o"),
    "C": dict(color="tab:blue", marker="^"),
    "D": dict(color="tab:gray", marker="v", linestyle="--"),
    "E": dict(color="tab:green", marker="*", markersize=16),
}


# ------------------------------------------------------------------------------------------- analysis
def _points(rows: Sequence[Mapping[str, Any]], mode: str) -> list[Mapping[str, Any]]:
    done = [r for r in rows if r["mode"] == mode and r["value"] is not None]
    return sorted(done, key=lambda r: r["resolution"])


def _modes(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """``{mode: "(mode) description"}`` of the rows' modes, in order."""
    return {r["mode"]: f"({r['mode']}) {r['description']}" for r in sorted(rows, key=lambda r: r["mode"])}


def _analysis_axes(rows: Sequence[Mapping[str, Any]]) -> tuple["Figure", "Axes", str, list[Mapping[str, Any]]]:
    """A figure and its axes for the analysis, its metric's name and A's points (B's high-resolution end)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 5.2), layout="constrained")  # constrained: room for the legend below the axes
    metric = next((r["metric"] for r in rows if r["value"] is not None), "metric")
    return fig, fig.add_subplot(), metric, _points(rows, "A")


def _finish(ax: "Axes", ylabel: str, title: str) -> None:
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    # Below the axes, not in them: a legend inside may cover points and their labels.
    ax.figure.legend(loc="outside lower center", ncols=2, fontsize=7, frameon=False)


def accuracy_vs_resolution(rows: Sequence[Mapping[str, Any]]) -> "Figure":
    """One line per analysis mode: its metric at each input resolution (B at the high resolution is A)."""
    fig, ax, metric, high = _analysis_axes(rows)
    for mode, label in _modes(rows).items():
        points = _points(rows, mode)
        if mode == "B" and points and high:
            points = points + high  # B at the high resolution is A
        if not points:
            continue
        ax.plot([p["resolution"] for p in points], [p["value"] for p in points], label=label,
                **ANALYSIS_STYLES[mode])  # fmt: skip
    ax.set_xlabel("input resolution (px, short side)")
    _finish(ax, metric, f"{metric} vs resolution")
    return fig


#: Marker radius (points) of the student's highlighted star in :func:`accuracy_vs_gmacs` (area 260 pt²).
_STAR_RADIUS = 8.0


def accuracy_vs_gmacs(rows: Sequence[Mapping[str, Any]]) -> "Figure":
    """Each analysis mode's points at their cost in GMACs (multiply-adds), labelled with their resolution, the
    ResKD student (E) highlighted. Points of one cost and resolution (B, C and E at a low resolution) share one
    label; labels are placed where they overlap neither another label nor a marker."""
    fig, ax, metric, high = _analysis_axes(rows)
    labels: dict[tuple[float, str], tuple[float, bool]] = {}  # (cost, text) -> (highest value, bold)
    markers: list[tuple[float, float, float]] = []  # (cost, value, radius in points)
    for mode, label in _modes(rows).items():
        points = _points(rows, mode) + (high if mode == "B" and _points(rows, "B") else [])
        points = sorted(points, key=lambda p: p["gmacs"])
        if not points:
            continue
        style = dict(ANALYSIS_STYLES[mode])
        if mode == "D":  # one cost (A's) for every resolution: points, no line
            style["linestyle"] = "none"
        x, y = [p["gmacs"] for p in points], [p["value"] for p in points]
        if mode == "E":
            ax.scatter(x, y, s=260, marker="*", color="tab:green", edgecolors="black", zorder=5, label=label)
        else:
            ax.plot(x, y, label=label, **style)
        radius = _STAR_RADIUS if mode == "E" else style.get("markersize", 6.0) / 2
        for p in points:
            markers.append((p["gmacs"], p["value"], radius))
            if mode == "B" and p in high:
                continue  # A's point, labelled as A
            key = (p["gmacs"], str(p["resolution"]))
            value, bold = labels.get(key, (p["value"], False))
            labels[key] = (max(value, p["value"]), bold or mode == "E")
    costs = [r["gmacs"] for r in rows if r["gmacs"]]
    if costs and max(costs) / min(costs) > 10:
        ax.set_xscale("log")
    ax.set_xlabel("GMACs per video (multiply-adds; one clip, one view)")
    _finish(ax, metric, f"{metric} vs cost (labels: resolution in px)")
    label_points(ax, [(x, y, text, bold) for (x, text), (y, bold) in labels.items()], markers)
    return fig


def label_points(
    ax: "Axes", labels: Sequence[tuple[float, float, str, bool]], markers: Sequence[tuple[float, float, float]] = ()
) -> None:
    """Write each ``(x, y, text, bold)`` of ``labels`` next to its point, at the first of a few places around
    it (then further up or down) where it overlaps no label placed before and no marker ``(x, y, radius in
    points)``. The figure's layout is computed first and then kept, so the places stay free when it is saved."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.transforms import Bbox

    fig = ax.figure
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # the layout engine places the axes and the legend ...
    fig.set_layout_engine("none")  # ... once: labels are placed in these coordinates
    renderer = canvas.get_renderer()
    px = fig.dpi / 72  # pixels per point

    def box(x: float, y: float, radius: float) -> Bbox:
        cx, cy = ax.transData.transform((x, y))
        return Bbox.from_extents(cx - radius * px, cy - radius * px, cx + radius * px, cy + radius * px)

    taken = [box(x, y, r) for x, y, r in markers]
    inside = ax.get_window_extent(renderer)
    for x, y, text, bold in labels:
        gap = 2 + max((r for mx, my, r in markers if (mx, my) == (x, y)), default=3.0)
        note = ax.annotate(text, (x, y), xytext=(0, 0), textcoords="offset points", fontsize=7,
                           fontweight="bold" if bold else "normal")  # fmt: skip
        places = _label_offsets(gap)
        for dx, dy in places + places[:1]:  # none free: the first place
            note.set_position((dx, dy))
            note.set_horizontalalignment("left" if dx > 0 else "right")
            note.set_verticalalignment("bottom" if dy >= 0 else "top")
            extent = note.get_window_extent(renderer).padded(1)
            within = inside.contains(extent.x0, extent.y0) and inside.contains(extent.x1, extent.y1)
            if within and not any(extent.overlaps(other) for other in taken):
                break
        taken.append(note.get_window_extent(renderer).padded(1))


def _label_offsets(gap: float) -> list[tuple[float, float]]:
    """Places (offset in points) tried for a label: the four diagonals, then up and down in label heights."""
    places = [(gap, gap / 2), (-gap, gap / 2), (gap, -gap / 2), (-gap, -gap / 2)]
    for step in range(1, 12):
        for sign in (1, -1):
            places += [(gap, sign * (gap / 2 + 9 * step)), (-gap, sign * (gap / 2 + 9 * step))]
    return places


def plot_analysis(rows: Sequence[Mapping[str, Any]], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``accuracy_vs_resolution.png`` and ``accuracy_vs_gmacs.png`` of the analysis table ``rows``
    (:func:`reskd_lightning.analysis.analyze`) into ``out_dir``; returns ``{name: path}``."""
    out_dir = Path(out_dir)
    return {
        "accuracy_vs_resolution": save_plot(accuracy_vs_resolution(rows), out_dir / "accuracy_vs_resolution.png"),
        "accuracy_vs_gmacs": save_plot(accuracy_vs_gmacs(rows), out_dir / "accuracy_vs_gmacs.png"),
    }


# ------------------------------------------------------------------------------------------ benchmark
def _step_bars(ax: "Axes", result: Any, target: float) -> None:
    """The training-step panel: student step, teacher forward, their sum and the ResKD step, with the target."""
    ms = {key: 1e3 * t.median_s for key, t in result.steps.items()}
    student = ms["student_step"]
    heights = [student]
    ax.bar("student\nstep", student, width=0.6, color="tab:blue")
    if "reskd_step" in ms:
        teacher, both = ms["teacher_forward"], ms["student_step"] + ms["teacher_forward"]
        ax.bar("teacher\nforward", teacher, width=0.6, color="tab:orange")
        ax.bar("student step\n+ teacher fwd", student, width=0.6, color="tab:blue")
        ax.bar("student step\n+ teacher fwd", teacher, bottom=student, width=0.6, color="tab:orange")
        ax.bar("ResKD\nstep", ms["reskd_step"], width=0.6, color="tab:green" if result.passed else "tab:red")
        heights += [teacher, both, ms["reskd_step"]]
        ax.axhline(target * both, color="black", linestyle="--", linewidth=1,
                   label=f"target: {target:g} x (student step + teacher forward)")  # fmt: skip
        ax.legend(loc="upper left", fontsize=8)
    for x, height in enumerate(heights):
        ax.annotate(f"{height:.0f}", (x, height), ha="center", va="bottom", fontsize=9,
                    bbox=dict(facecolor="white", edgecolor="none", pad=1))  # readable over the target line
    ax.set_ylim(0, 1.3 * max(heights + [target * sum(heights[:2])]))
    ax.set_ylabel("ms per step (median)")
    ax.set_title("training step" + (f": ResKD / (student + teacher) = {result.ratio:.3f}" if result.ratio else ""))


def plot_benchmark(result: Any, title: str = "", target: float = 1.1) -> "Figure":
    """The benchmark's figure: inference clips/s (left) and training-step times (right) with the target line
    ``target x (student step + teacher forward)``. ``result`` is a
    :class:`reskd_lightning.benchmark.BenchmarkResult`."""
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
    _step_bars(right, result, target)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
