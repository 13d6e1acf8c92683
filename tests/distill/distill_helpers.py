"""Helpers shared by the distiller tests (importable: pytest puts this folder on ``sys.path``)."""

from __future__ import annotations

from typing import Any, Mapping

import pytest
import torch

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


def tiny_reskd(distillers: list[DistillationLoss], **kwargs: Any) -> ResKDModule:
    """TSN-R18 student at 16 px and TSN-R18 teacher at 32 px."""
    def tsn() -> TSN:
        return TSN(NUM_CLASSES, backbone="resnet18", dropout=0.0, init_std=0.01)

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
