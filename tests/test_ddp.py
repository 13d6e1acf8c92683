"""Two-process DDP on CPU (gloo): the frozen teacher stays out of DDP's gradient sync, metrics are synced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from reskd_lightning import FeatureMapKD, LogitMapKD, ResKDModule, VideoDataModule
from reskd_lightning.models import TSN


class CheckDDP(pl.Callback):
    """Runs in each process: records what DDP wraps and synchronises."""

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: ResKDModule, *args: Any) -> None:
        wrapped = trainer.strategy.model  # DistributedDataParallel
        synced = {id(p) for p in wrapped.parameters() if p.requires_grad}
        assert not synced & {id(p) for p in pl_module.teacher.parameters()}
        assert all(p.grad is None for p in pl_module.teacher.parameters())
        # Gradients are all-reduced: every rank holds the same student gradient after backward.
        grad = pl_module.student.cls_head.fc.weight.grad
        gathered = trainer.strategy.all_gather(grad)
        assert torch.allclose(gathered[0], gathered[1], atol=1e-6)


def demo_data(demo_root: Path) -> VideoDataModule:
    """Demo videos, 2 segments, views at 64 (teacher) and 32 px (student), 2 clips per device."""
    return VideoDataModule(
        demo_data=str(demo_root), num_segments=2, short_side=64, crop_size=64, resolutions=[64, 32],
        batch_size=2, num_workers=0,
    )


def test_ddp_spawn_two_processes_trains_student_and_syncs(demo_root: Path, tmp_path: Path) -> None:
    dm = demo_data(demo_root)
    module = ResKDModule(
        student=TSN(4, backbone="resnet18"), teacher=TSN(4, backbone="resnet18"), num_classes=4,
        student_resolution=32, teacher_resolution=64,
    )
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=1, limit_train_batches=2,
        limit_val_batches=2, default_root_dir=str(tmp_path), logger=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[FeatureMapKD(), CheckDDP()],
    )
    trainer.fit(module, datamodule=dm)
    # ddp_spawn sends rank 0's results back: the epoch's metrics were reduced over both ranks.
    assert "val/acc1" in trainer.callback_metrics and "train/distill/feature_map_kd_epoch" in trainer.callback_metrics
    ckpt = next((tmp_path / "checkpoints").glob("*.ckpt"))
    state = torch.load(ckpt, weights_only=False)["state_dict"]
    assert not [k for k in state if k.startswith("teacher.")]


class CheckAdapterSynced(pl.Callback):
    """Runs in each process: the distiller's adapter is wrapped by DDP and its gradient all-reduced."""

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: ResKDModule, *args: Any) -> None:
        adapter = pl_module.distill_modules["feature_map_kd_backbone_layer3"]
        synced = {id(p) for p in trainer.strategy.model.parameters() if p.requires_grad}
        assert {id(p) for p in adapter.parameters()} <= synced
        gathered = trainer.strategy.all_gather(adapter.weight.grad)
        assert gathered[0].abs().sum() > 0 and torch.allclose(gathered[0], gathered[1], atol=1e-6)


def test_ddp_spawn_trains_an_adapter_and_logit_maps_across_widths(demo_root: Path, tmp_path: Path) -> None:
    # Student TSN-R18 (layer3: 256 channels) and teacher TSN-R50 (1024): an adapter bridges the stage maps, and
    # LogitMapKD compares each network's own classifier at every location.
    dm = demo_data(demo_root)
    module = ResKDModule(
        student=TSN(4, backbone="resnet18"), teacher=TSN(4, backbone="resnet50"), num_classes=4,
        student_resolution=32, teacher_resolution=64,
    )
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=1, limit_train_batches=2,
        limit_val_batches=1, default_root_dir=str(tmp_path), logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False,
        callbacks=[FeatureMapKD(stage="backbone.layer3", adapter=True), LogitMapKD(), CheckAdapterSynced()],
    )
    trainer.fit(module, datamodule=dm)
    logged = trainer.callback_metrics
    assert "train/distill/feature_map_kd_backbone_layer3_epoch" in logged and "train/distill/logit_map_kd_epoch" in logged
