"""reskd-lightning: cross-resolution knowledge distillation (ResKD) for efficient video recognition.

A frozen teacher sees the high-resolution clip; a student sees the same clip downsampled on the device and
learns from the teacher's feature maps (Ma et al., "Rethinking Resolution in the Context of Efficient Video
Recognition", NeurIPS 2022).

The names below are imported on first use (PEP 562), so ``import reskd_lightning`` and ``reskd --help`` do not
import torch and Lightning; ``from reskd_lightning import ResKDModule`` works as ever.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reskd_lightning.lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, _SOURCES)
