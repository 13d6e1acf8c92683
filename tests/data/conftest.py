"""Fixtures of the data tests: small real videos written with PyAV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reskd_lightning.data import write_demo_dataset


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny demo dataset: 4 classes, 4 train and 2 val videos each, 16 frames of 64x64."""
    return write_demo_dataset(
        tmp_path_factory.mktemp("demo") / "demo", num_train_per_class=4, num_val_per_class=2, size=64
    )


@pytest.fixture()
def corrupt_video(tmp_path: Path) -> Path:
    """Random bytes named ``.mp4``."""
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path
