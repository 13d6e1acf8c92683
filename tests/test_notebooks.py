"""The notebooks run: their code cells are executed in order, with the settings cell shrunk."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

QUICK_SETTINGS = """
DEMO_DIR = {demo!r}
TEACHER_EPOCHS, STUDENT_EPOCHS = 1, 1
VIDEOS_PER_CLASS = (2, 1)
SIZE, TEACHER_RES, STUDENT_RES = 64, 64, 32
"""


@pytest.mark.parametrize("name", ["quickstart.ipynb"])
def test_notebook_runs_top_to_bottom(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cells = [c for c in json.loads((NOTEBOOKS / name).read_text())["cells"] if c["cell_type"] == "code"]
    assert "DEMO_DIR" in "".join(cells[0]["source"])  # the first code cell holds the settings
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(QUICK_SETTINGS.format(demo=os.fspath(tmp_path / "demo")), "settings", "exec"), namespace)
    for i, cell in enumerate(cells[1:], start=1):
        exec(compile("".join(cell["source"]), f"{name} cell {i}", "exec"), namespace)
    assert 0.0 <= namespace["student_acc"] <= 1.0 and 0.0 <= namespace["teacher_acc"] <= 1.0
    assert (tmp_path / "runs" / "notebook" / "student.pth").is_file()
