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

    fig = Figure(figsize=(6.4, 4.4))
    metric = next((r["metric"] for r in rows if r["value"] is not None), "metric")
    return fig, fig.add_subplot(), metric, _points(rows, "A")


def _finish(ax: "Axes", ylabel: str, title: str) -> None:
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


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


def accuracy_vs_gflops(rows: Sequence[Mapping[str, Any]]) -> "Figure":
    """Each analysis mode's points at their cost (labels: resolutions), the ResKD student (E) highlighted."""
    fig, ax, metric, high = _analysis_axes(rows)
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
        for p in points:
            if mode == "B" and p in high:
                continue  # A's point, labelled as A
            left = mode == "D"  # D's points share A's cost: their labels go to the left of A's
            ax.annotate(f"{p['resolution']}", (p["gmacs"], p["value"]), textcoords="offset points",
                        xytext=(-6 if left else 4, 4), ha="right" if left else "left", fontsize=7,
                        fontweight="bold" if mode == "E" else "normal")  # fmt: skip
    costs = [r["gmacs"] for r in rows if r["gmacs"]]
    if costs and max(costs) / min(costs) > 10:
        ax.set_xscale("log")
    ax.set_xlabel("GFLOPs per video (multiply-adds; one clip, one view)")
    _finish(ax, metric, f"{metric} vs cost (labels: resolution in px)")
    return fig


def plot_analysis(rows: Sequence[Mapping[str, Any]], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``accuracy_vs_resolution.png`` and ``accuracy_vs_gflops.png`` of the analysis table ``rows``
    (:func:`reskd_lightning.analysis.analyze`) into ``out_dir``; returns ``{name: path}``."""
    out_dir = Path(out_dir)
    return {
        "accuracy_vs_resolution": save_plot(accuracy_vs_resolution(rows), out_dir / "accuracy_vs_resolution.png"),
        "accuracy_vs_gflops": save_plot(accuracy_vs_gflops(rows), out_dir / "accuracy_vs_gflops.png"),
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
        ax.annotate(f"{height:.0f}", (x, height), ha="center", va="bottom", fontsize=9)
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
