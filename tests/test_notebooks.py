"""The notebooks run: their code cells are executed in order, with the settings cell shrunk."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

#: Each notebook's shrunk first cell (its settings), formatted with the demo folder.
QUICK_SETTINGS = {
    "quickstart.ipynb": """
DEMO_DIR = {demo!r}
TEACHER_EPOCHS, STUDENT_EPOCHS = 1, 1
VIDEOS_PER_CLASS = (2, 1)
SIZE, TEACHER_RES, STUDENT_RES = 64, 64, 32
""",
    "key_finding.ipynb": """
DEMO_DIR = {demo!r}
HIGH_EPOCHS, LOW_EPOCHS = 1, 1
VIDEOS_PER_CLASS = (2, 1)
SIZE, HIGH_RES, LOW_RES = 64, 64, 32
RESOLUTIONS = [64, 48, 32]
""",
}


def check_quickstart(namespace: dict[str, Any], root: Path) -> None:
    assert 0.0 <= namespace["student_acc"] <= 1.0 and 0.0 <= namespace["teacher_acc"] <= 1.0
    assert (root / "runs" / "notebook" / "student.pth").is_file()


def check_key_finding(namespace: dict[str, Any], root: Path) -> None:
    rows = namespace["rows"]
    assert {(row["mode"], row["resolution"]) for row in rows} == {
        ("A", 64), ("B", 48), ("B", 32), ("C", 32), ("D", 64), ("D", 48), ("D", 32), ("E", 32)
    }
    assert all(0.0 <= row["value"] <= 1.0 for row in rows)
    out = root / "runs" / "key_finding" / "analysis"
    assert (out / "accuracy_vs_gmacs.png").read_bytes()[:8] == PNG_MAGIC and (out / "analysis.csv").is_file()


CHECKS: dict[str, Callable[[dict[str, Any], Path], None]] = {
    "quickstart.ipynb": check_quickstart,
    "key_finding.ipynb": check_key_finding,
}


def test_every_notebook_is_tested() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_notebook_runs_top_to_bottom(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cells = [c for c in json.loads((NOTEBOOKS / name).read_text())["cells"] if c["cell_type"] == "code"]
    assert "DEMO_DIR" in "".join(cells[0]["source"])  # the first code cell holds the settings
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(QUICK_SETTINGS[name].format(demo=os.fspath(tmp_path / "demo")), "settings", "exec"), namespace)
    for i, cell in enumerate(cells[1:], start=1):
        exec(compile("".join(cell["source"]), f"{name} cell {i}", "exec"), namespace)
    CHECKS[name](namespace, tmp_path)
