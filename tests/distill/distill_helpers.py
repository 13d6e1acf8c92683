"""Helpers shared by the distiller tests (importable: pytest puts this folder on ``sys.path``)."""

from __future__ import annotations

from typing import Any, Mapping

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from reskd_lightning import DistillationLoss, ModelOutput, ResKDModule
from reskd_lightning.models import TSN

NUM_CLASSES = 4


def out(
    features: torch.Tensor | None = None,
    logits: torch.Tensor | None = None,
    taps: Mapping[str, torch.Tensor] | None = None,
) -> ModelOutput:
    """A network's output; the logits default to ``[N, 2]`` zeros with N read from the feature map."""
    if logits is None:
        n = features.shape[0] if features is not None and features.dim() == 5 else 1
        logits = torch.zeros(n, 2)
    return ModelOutput(features=features, logits=logits, taps=taps)


def tsn(backbone: str = "resnet18") -> TSN:
    return TSN(NUM_CLASSES, backbone=backbone, dropout=0.0, init_std=0.01)


def tiny_reskd(distillers: list[DistillationLoss], **kwargs: Any) -> ResKDModule:
    """TSN-R18 student at 16 px and TSN-R18 teacher at 32 px."""
    args: dict[str, Any] = dict(
        student=tsn(), teacher=tsn(), num_classes=NUM_CLASSES, student_resolution=16, teacher_resolution=32,
        distillers=distillers,
    )  # fmt: skip
    args.update(kwargs)
    return ResKDModule(**args)


def clip_batch(n: int = 2, frames: int = 2, size: int = 32) -> dict[str, Any]:
    """A batch as a user's DataLoader gives it: uint8 clips ``[N, 3, T, H, W]`` and class ids."""
    g = torch.Generator().manual_seed(1)
    return {
        "video": torch.randint(0, 256, (n, 3, frames, size, size), generator=g, dtype=torch.uint8),
        "label": torch.randint(0, NUM_CLASSES, (n,), generator=g),
    }


def record_logs(module: ResKDModule, monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """What ``module.log`` is called with, outside a Trainer."""
    logged: dict[str, float] = {}

    def log(key: str, value: Any, *args: Any, **kwargs: Any) -> None:
        logged[key] = float(value)

    monkeypatch.setattr(module, "log", log)
    return logged


class ClipsDataModule(pl.LightningDataModule):
    """A user's own DataModule: 8 training and 4 validation clips (``clip_batch``'s), batches of 4."""

    def __init__(self, size: int = 32) -> None:
        super().__init__()
        self.size = size

    def _loader(self, n: int) -> DataLoader:
        batch = clip_batch(n=n, size=self.size)
        pairs = TensorDataset(batch["video"], batch["label"])
        return DataLoader(pairs, batch_size=4, collate_fn=lambda items: {
            "video": torch.stack([v for v, _ in items]), "label": torch.stack([y for _, y in items]),
        })  # fmt: skip

    def train_dataloader(self) -> DataLoader:
        return self._loader(8)

    def val_dataloader(self) -> DataLoader:
        return self._loader(4)


class LogEverything(pl.Callback):
    """Collects every value logged on a training step."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.values: dict[str, list[float]] = {}

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        for key, value in trainer.callback_metrics.items():
            self.keys.add(key)
            self.values.setdefault(key, []).append(float(value))
