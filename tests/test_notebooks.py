"""The notebooks run top to bottom as a user runs them, with their QUICK settings: a failing cell fails CI.

Each notebook's first code cell holds its settings, with the line ``QUICK = False``. The test turns that one
line into ``QUICK = True`` (a few small videos, one epoch of a batch or two; nothing else of the notebook
changes), runs every code cell in order in one namespace, as a Jupyter kernel does, from an empty working
folder (a notebook writes everything under its ``OUT``, relative to it), then checks what the notebook made.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from reskd_lightning import ResKDModule
from reskd_lightning.data import DEMO_CLASSES

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: The line of the first code cell that the test changes, and nothing else.
QUICK_LINE = re.compile(r"^QUICK = False\b", re.MULTILINE)


def is_png(path: Path) -> bool:
    """Whether ``path`` is a PNG file (by its signature)."""
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC


def read_metrics(path: Path) -> dict[str, list[float]]:
    """A CSVLogger's metrics.csv as {column: values}, empty cells left out."""
    columns: dict[str, list[float]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if value:
                    columns.setdefault(key, []).append(float(value))
    return columns


def check_quickstart(ns: dict[str, Any], out: Path) -> None:
    assert all(0.0 <= ns[key] <= 1.0 for key in ("teacher_acc", "student_acc", "baseline_acc"))
    assert Path(ns["TEACHER_CKPT"]).is_file() and Path(ns["TEACHER_CKPT"]).is_relative_to(out.resolve())
    teacher, baseline, student = ns["rows"]
    resolution = ns["resolution"]  # the configs' teacher and student resolutions
    assert (teacher["input (px)"], student["input (px)"]) == (resolution["teacher"], resolution["student"])
    # The same network at the same resolution costs the same; at the student's lower resolution, less.
    assert student["GMACs"] == baseline["GMACs"] < teacher["GMACs"]
    assert [line.split(" ")[0] for line in ns["summary"].lines[:2]] == ["teacher", "student"]
    assert is_png(out / "one_clip_two_resolutions.png") and is_png(out / "accuracy_vs_gmacs.png")
    exported = ResKDModule.load_student(out / "student.pt")
    assert exported.resolution == resolution["student"] and exported.class_names == list(DEMO_CLASSES)


def check_key_finding(ns: dict[str, Any], out: Path) -> None:
    high, mid, low = ns["RESOLUTIONS"]
    rows = ns["rows"]
    assert {(row["mode"], row["resolution"]) for row in rows} == {
        ("A", high), ("B", mid), ("B", low), ("C", low), ("D", high), ("D", mid), ("D", low), ("E", low)
    }  # fmt: skip
    assert all(0.0 <= row["value"] <= 1.0 for row in rows)
    gmacs = {(row["mode"], row["resolution"]): row["gmacs"] for row in rows}
    # D runs A's network at A's input; C and E are one network at one resolution.
    assert gmacs["C", low] == gmacs["E", low] < gmacs["B", mid] < gmacs["A", high] == gmacs["D", low]
    analysis = out / "analysis"
    assert len((analysis / "analysis.csv").read_text().splitlines()) == 1 + len(rows)
    assert is_png(analysis / "accuracy_vs_resolution.png") and is_png(analysis / "accuracy_vs_gmacs.png")


def check_custom_distiller(ns: dict[str, Any], out: Path) -> None:
    term = "train/distill/clip_embedding_kd_step"
    python, yaml = read_metrics(Path(ns["python_metrics"])), read_metrics(Path(ns["yaml_metrics"]))
    for run in (python, yaml):
        assert run[term] and all(0.0 <= v <= 2.0 for v in run[term])  # a cosine distance
        assert len(run["train/distill/feature_map_kd_step"]) == len(run[term])  # stacked: both, every step
    # One run built two ways: the YAML run retraces the Python run's first steps.
    assert yaml[term] == pytest.approx(python[term][: len(yaml[term])])
    saved_config = (Path(ns["yaml_metrics"]).parent / "config.yaml").read_text()
    assert "my_distillers.ClipEmbeddingKD" in saved_config and "reskd_lightning.FeatureMapKD" in saved_config
    assert (out / "my_distillers.py").is_file() and is_png(out / "loss_curves.png")


def check_your_dataset(ns: dict[str, Any], out: Path) -> None:
    problems = ns["problems"]
    assert [Path(p.path).name for p in problems["train"]] == ["broken.mp4"] and problems["val"] == []
    assert not ns["BROKEN"].exists() and ns["dm"].class_names == sorted(DEMO_CLASSES)
    assert (out / "classes.txt").read_text().split() == sorted(DEMO_CLASSES)
    assert Path(ns["CKPT"]).is_file() and is_png(out / "training_clips.png")
    prediction = ns["prediction"]
    assert len(prediction.top) == 3 and all(name in DEMO_CLASSES for _, name, _ in prediction.top)
    assert float(prediction.probs.sum()) == pytest.approx(1.0, abs=1e-4)


CHECKS: dict[str, Callable[[dict[str, Any], Path], None]] = {
    "01_quickstart.ipynb": check_quickstart,
    "02_key_finding.ipynb": check_key_finding,
    "03_custom_distiller.ipynb": check_custom_distiller,
    "04_your_dataset.ipynb": check_your_dataset,
}


def test_every_notebook_is_tested() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(CHECKS)


def code_cells(name: str) -> list[str]:
    """The notebook's code cells, after checking it is committed as nbformat 4 without outputs."""
    notebook = json.loads((NOTEBOOKS / name).read_text())
    assert (notebook["nbformat"], notebook["nbformat_minor"]) >= (4, 5)
    cells = notebook["cells"]
    assert len({cell["id"] for cell in cells}) == len(cells)  # nbformat 4.5: unique cell ids
    code = [cell for cell in cells if cell["cell_type"] == "code"]
    assert all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code), "outputs left in"
    return ["".join(cell["source"]) for cell in code]


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_notebook_runs_top_to_bottom(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, *cells = code_cells(name)
    quick, found = QUICK_LINE.subn("QUICK = True", settings)
    assert found == 1, "the first code cell must set QUICK = False on a line of its own"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setattr(sys, "path", list(sys.path))  # notebook 3 puts its folder on sys.path
    environ, modules = dict(os.environ), set(sys.modules)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    try:
        for i, source in enumerate([quick, *cells]):
            exec(compile(source, f"{name}, code cell {i + 1}", "exec"), namespace)
        out = tmp_path / namespace["OUT"]
        CHECKS[name](namespace, out)
        written = [p for p in tmp_path.rglob("*") if p.is_file()]
        assert written and all(p.is_relative_to(out) for p in written), "a file written outside OUT"
    finally:
        os.environ.clear()
        os.environ.update(environ)  # load_config's seed_everything sets PL_GLOBAL_SEED
        for module in set(sys.modules) - modules:  # notebook 3's my_distillers, from tmp_path
            if str(tmp_path) in str(getattr(sys.modules[module], "__file__", None) or ""):
                del sys.modules[module]
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")
