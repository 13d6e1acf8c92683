"""reskd-lightning: cross-resolution knowledge distillation (ResKD) for efficient video recognition.

A frozen teacher sees the high-resolution clip; a student sees the same clip downsampled on the device and
learns from the teacher's feature maps (Ma et al., "Rethinking Resolution in the Context of Efficient Video
Recognition", NeurIPS 2022).

The names below are imported on first use (PEP 562), so ``import reskd_lightning`` and ``reskd --help`` do not
import torch and Lightning; ``from reskd_lightning import ResKDModule`` works as ever.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each name is imported by __getattr__
    from .checkpoint_io import AtomicCheckpointIO
    from .data import VideoDataModule
    from .distill import AttentionTransfer, DecoupledKD, DistillationLoss, FeatureMapKD, LogitKD, LogitMapKD
    from .global_batch import GlobalBatch
    from .models import TSN, ModelOutput, SlowOnly, VideoRecognizer, build_model, list_models
    from .module import ResKDModule
    from .rng_state import RNGStateCheckpoint
    from .summary import RunSummary
    from .views import attach_views, make_views

__version__ = "0.1.0"

#: Each public name -> the submodule that defines it.
_SOURCES = {
    "AtomicCheckpointIO": "checkpoint_io",
    "AttentionTransfer": "distill",
    "DecoupledKD": "distill",
    "DistillationLoss": "distill",
    "FeatureMapKD": "distill",
    "GlobalBatch": "global_batch",
    "LogitKD": "distill",
    "LogitMapKD": "distill",
    "ModelOutput": "models",
    "RNGStateCheckpoint": "rng_state",
    "ResKDModule": "module",
    "RunSummary": "summary",
    "SlowOnly": "models",
    "TSN": "models",
    "VideoDataModule": "data",
    "VideoRecognizer": "models",
    "attach_views": "views",
    "build_model": "models",
    "list_models": "models",
    "make_views": "views",
}

__all__ = sorted(_SOURCES)


def __getattr__(name: str) -> Any:
    """``reskd_lightning.<name>``: imports the submodule that defines it on first use, then keeps it here."""
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_SOURCES[name]}", __name__), name)
    globals()[name] = value  # later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
