"""Tiny ``reskd`` configs of the demo videos, written by the tests that run or read configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def write_config(path: Path, demo_root: Path, root: Path, stage: str, teacher_ckpt: Path | None = None) -> Path:
    """A tiny two-stage demo: teacher TSN-R18 at 64 px, student at 32 px, 2 segments, 2 steps."""
    tsn = {"class_path": "reskd_lightning.models.TSN", "init_args": {"backbone": "resnet18", "dropout": 0.0}}
    config: dict[str, Any] = {
        "seed_everything": 0,
        "trainer": {
            "max_epochs": 1,
            "limit_train_batches": 2,
            "limit_val_batches": 2,
            "accelerator": "cpu",
            "default_root_dir": str(root),
            "enable_progress_bar": False,
            "logger": {"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"save_dir": str(root)}},
            "callbacks": [
                {
                    "class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
                    "init_args": {"dirpath": str(root), "filename": stage, "enable_version_counter": False},
                }
            ],
        },
        "model": {"student": tsn, "student_resolution": 64 if stage == "teacher" else 32},
        "data": {
            "demo_data": str(demo_root),
            "num_classes": 4,
            "num_segments": 2,
            "short_side": 64,
            "crop_size": 64,
            "batch_size": 4,
            "num_workers": 0,
        },
    }
    if stage == "student":
        config["model"].update(teacher=tsn, teacher_ckpt=str(teacher_ckpt), teacher_resolution=64)
        config["trainer"]["callbacks"].insert(
            0, {"class_path": "reskd_lightning.FeatureMapKD", "init_args": {"weight": 100}}
        )
    path.write_text(yaml.safe_dump(config))
    return path
