"""The checkpoint fixture ``tests/fixtures/reskd_v0_checkpoint.ckpt``: how it was made, and the tiny networks it holds.

It was written by the code before issue 11 (commit 529cda9), when a distiller's adapter was referenced by the
callback and by ``ResKDModule.distill_modules`` and its schedule progress was saved twice (as callback state and
in ``checkpoint["distillers"]``). ``test_checkpoint_compat.py`` loads it with today's code: old checkpoints must
keep loading. Do not regenerate it with newer code (that would test nothing); a new format gets a new fixture.

The run: a TinyRecognizer student (4 channels, 16 px) taught by a TinyRecognizer teacher (8 channels, 32 px),
one epoch of two steps (batches of 4 random uint8 clips, 2 frames of 32 px) with

* ``FeatureMapKD(weight=10, adapter=True, weight_schedule=LinearWarmup(warmup=4))`` as a trainer callback
  (a learnable 1x1x1 adapter from 4 to 8 channels), and
* ``LogitKD(weight=1, temperature=4, weight_schedule=LinearWarmup(warmup=4, unit="step"),
  temperature_schedule=Cosine(0.25))`` given as ``ResKDModule(distillers=[...])``,

saved by ``trainer.save_checkpoint`` after the fit. Both schedules stopped at step 1, epoch 0.5 (batch 1 of 2).

Regenerate (only with the code of commit 529cda9): ``python tests/distill/v0_checkpoint.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from reskd_lightning import FeatureMapKD, LogitKD, ResKDModule
from reskd_lightning.distill import Cosine, LinearWarmup
from reskd_lightning.models import VideoRecognizer
from reskd_lightning.models.heads import ClsHead

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "reskd_v0_checkpoint.ckpt"
NUM_CLASSES = 4
STUDENT_WIDTH, TEACHER_WIDTH = 4, 8
#: Where both schedules stopped: the last step of the fit, batch 1 of 2 of epoch 0.
SAVED_PROGRESS = {"step": 1, "epoch": 0.5, "total_steps": 2, "total_epochs": 1}


class TinyRecognizer(VideoRecognizer):
    """A VideoRecognizer of a few hundred parameters: one strided 3-D convolution, BatchNorm, the library's head."""

    def __init__(self, width: int, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.num_classes, self.feature_dim = num_classes, width
        self.backbone = nn.Sequential(
            nn.Conv3d(3, width, (1, 3, 3), stride=(1, 4, 4), padding=(0, 1, 1)), nn.BatchNorm3d(width), nn.ReLU()
        )
        self.cls_head = ClsHead(width, num_classes, dropout=0.0, init_std=0.01)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.backbone(x)

    def forward_head(self, features: Tensor) -> Tensor:
        return self.cls_head(features)


class TinyClips(Dataset):
    """Random uint8 clips ``[3, 2, 32, 32]`` and class ids, the same every time."""

    def __init__(self, n: int = 8) -> None:
        g = torch.Generator().manual_seed(0)
        self.video = torch.randint(0, 256, (n, 3, 2, 32, 32), generator=g, dtype=torch.uint8)
        self.label = torch.randint(0, NUM_CLASSES, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.label)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"video": self.video[i], "label": self.label[i]}


class TinyData(pl.LightningDataModule):
    def train_dataloader(self) -> DataLoader:
        return DataLoader(TinyClips(), batch_size=4)


def feature_kd() -> FeatureMapKD:
    return FeatureMapKD(weight=10.0, adapter=True, weight_schedule=LinearWarmup(warmup=4))


def logit_kd() -> LogitKD:
    return LogitKD(
        weight=1.0, temperature=4.0, weight_schedule=LinearWarmup(warmup=4, unit="step"),
        temperature_schedule=Cosine(0.25),
    )  # fmt: skip


def networks() -> dict[str, Any]:
    """The networks and resolutions of the run (given as modules: they are not hyper-parameters)."""
    return dict(
        student=TinyRecognizer(STUDENT_WIDTH), teacher=TinyRecognizer(TEACHER_WIDTH), num_classes=NUM_CLASSES,
        student_resolution=16, teacher_resolution=32,
    )  # fmt: skip


def trainer(root: Path, max_epochs: int, callbacks: list[pl.Callback]) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=max_epochs, limit_train_batches=2, limit_val_batches=0,
        default_root_dir=str(root), logger=False, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False, callbacks=callbacks,
    )  # fmt: skip


def write(path: Path = FIXTURE) -> Path:
    torch.manual_seed(0)
    module = ResKDModule(**networks(), distillers=[logit_kd()])
    run = trainer(path.parent, max_epochs=1, callbacks=[feature_kd()])
    run.fit(module, datamodule=TinyData())
    path.parent.mkdir(parents=True, exist_ok=True)
    run.save_checkpoint(path)
    return path


if __name__ == "__main__":
    print(write(), FIXTURE.stat().st_size, "bytes")
