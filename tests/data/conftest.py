"""Fixtures of the data tests (the tiny demo dataset, ``demo_root``, is in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture()
def corrupt_video(tmp_path: Path) -> Path:
    """Random bytes named ``.mp4``."""
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path
