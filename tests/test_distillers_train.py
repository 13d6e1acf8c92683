"""Each distiller trains a student on real demo videos: the loss falls and its term is logged, epoch by epoch.

The teacher (TSN-R18 at 64 px) is trained once on the demo videos; each student (TSN-R18 at 32 px) then
learns from it for a few epochs with one distiller. ``benchmarks/distillers.py`` is the longer version that
compares accuracies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import pytorch_lightning as pl
import torch

from reskd_lightning import FeatureMapKD, LogitKD, LogitMapKD, ResKDModule, VideoDataModule
from reskd_lightning.distill import AttentionTransfer, DecoupledKD, DistillationLoss
from reskd_lightning.models import TSN

EPOCHS = 4

DISTILLERS: dict[str, Callable[[], list[DistillationLoss]]] = {
    "feature_map_kd": lambda: [FeatureMapKD(weight=100)],
    "feature_map_kd_backbone_layer3": lambda: [FeatureMapKD(weight=100, stage="backbone.layer3")],
    "logit_kd": lambda: [LogitKD(weight=10.0, temperature=4.0)],
    "logit_map_kd": lambda: [LogitMapKD(weight=200, temperature=2.0)],
    "decoupled_kd": lambda: [DecoupledKD()],
    "attention_transfer_backbone_layer3_backbone_layer4": lambda: [
        AttentionTransfer(stages=["backbone.layer3", "backbone.layer4"])
    ],
}


def data(demo_root: Path) -> VideoDataModule:
    return VideoDataModule(
        demo_data=str(demo_root), num_segments=2, short_side=64, crop_size=64, flip=False, resolutions=[64, 32],
        batch_size=4, num_workers=0,
    )  # fmt: skip


class EpochMeans(pl.Callback):
    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epochs.append({k: float(v) for k, v in trainer.callback_metrics.items() if k.endswith("_epoch")})


def trainer(root: Path, callbacks: list[pl.Callback], epochs: int = EPOCHS) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        default_root_dir=str(root), callbacks=callbacks,
    )  # fmt: skip


def tsn() -> TSN:
    return TSN(4, backbone="resnet18", dropout=0.0, init_std=0.01)


@pytest.fixture(scope="module")
def teacher_ckpt(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The teacher stage: TSN-R18 trained at 64 px on the demo videos, saved as a Lightning checkpoint."""
    root = tmp_path_factory.mktemp("teacher")
    torch.manual_seed(0)
    module = ResKDModule(student=tsn(), num_classes=4, student_resolution=64)
    fit = trainer(root, [], epochs=3)
    fit.fit(module, datamodule=data(demo_root))
    fit.save_checkpoint(root / "teacher.ckpt")
    return root / "teacher.ckpt"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(DISTILLERS))
def test_distiller_trains_the_student_and_logs_its_term(
    name: str, demo_root: Path, teacher_ckpt: Path, tmp_path: Path
) -> None:
    distillers = DISTILLERS[name]()
    module = ResKDModule(
        student=tsn(), teacher=tsn(), teacher_ckpt=str(teacher_ckpt), num_classes=4, student_resolution=32,
        teacher_resolution=64, optimizer=lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
    )  # fmt: skip
    means = EpochMeans()
    trainer(tmp_path, [*distillers, means]).fit(module, datamodule=data(demo_root))
    key = f"train/distill/{name}_epoch"
    first, last = means.epochs[0], means.epochs[-1]
    assert key in first and all(key in e for e in means.epochs), sorted(first)
    assert last[key] < first[key], [e[key] for e in means.epochs]
    assert last["train/loss_epoch"] < first["train/loss_epoch"], [e["train/loss_epoch"] for e in means.epochs]
    assert all(torch.isfinite(torch.tensor(e["train/loss_epoch"])) for e in means.epochs)


def test_stacked_distillers_each_log_their_term(demo_root: Path, teacher_ckpt: Path, tmp_path: Path) -> None:
    stack = [FeatureMapKD(weight=100), LogitKD(weight=1.0), FeatureMapKD(weight=10, stage="backbone.layer3")]
    module = ResKDModule(
        student=tsn(), teacher=tsn(), teacher_ckpt=str(teacher_ckpt), num_classes=4, student_resolution=32,
        teacher_resolution=64,
    )  # fmt: skip
    means = EpochMeans()
    trainer(tmp_path, [*stack, means], epochs=1).fit(module, datamodule=data(demo_root))
    logged: dict[str, Any] = means.epochs[0]
    for name in ("feature_map_kd", "logit_kd", "feature_map_kd_backbone_layer3"):
        assert logged[f"train/distill/{name}_epoch"] > 0
