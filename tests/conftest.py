"""Fixtures shared by all tests: a tiny real demo dataset, tiny models, quiet fast Trainer settings."""

from __future__ import annotations

import os

# Before torch starts its thread pools: spinning OpenMP threads make 2-core runs many times slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("WANDB_MODE", "offline")

from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from reskd_lightning.data import write_demo_dataset  # noqa: E402


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny demo dataset: 4 classes, 4 train and 2 val videos each, 16 frames of 64x64."""
    return write_demo_dataset(
        tmp_path_factory.mktemp("demo") / "demo", num_train_per_class=4, num_val_per_class=2, size=64
    )


@pytest.fixture(autouse=True)
def no_wandb_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test sees a developer's W&B key: wandb stays offline wherever the suite runs."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path_factory.getbasetemp() / "no_netrc"))


@pytest.fixture(autouse=True)
def seeded() -> None:
    """Every test starts from the same random state, so a failure reproduces."""
    torch.manual_seed(0)


@pytest.fixture()
def quiet_trainer_kwargs(tmp_path: Path) -> dict[str, Any]:
    """Trainer arguments for short CPU runs in tests."""
    return dict(
        accelerator="cpu",
        devices=1,
        default_root_dir=str(tmp_path),
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
