"""reskd-lightning: cross-resolution knowledge distillation (ResKD) for efficient video recognition.

A frozen teacher sees the high-resolution clip; a student sees the same clip downsampled on the device and
learns from the teacher's feature maps (Ma et al., "Rethinking Resolution in the Context of Efficient Video
Recognition", NeurIPS 2022).
"""

from .checkpoint_io import AtomicCheckpointIO
from .data import VideoDataModule
from .distill import DistillationLoss, FeatureMapKD, LogitKD, LogitMapKD
from .distill import AttentionTransfer, DecoupledKD
from .models import TSN, ModelOutput, SlowOnly, VideoRecognizer, build_model, list_models
from .global_batch import GlobalBatch
from .module import ResKDModule
from .views import attach_views, make_views

__version__ = "0.1.0"

__all__ = [
    "AtomicCheckpointIO",
    "AttentionTransfer",
    "DecoupledKD",
    "DistillationLoss",
    "FeatureMapKD",
    "GlobalBatch",
    "LogitKD",
    "LogitMapKD",
    "ModelOutput",
    "ResKDModule",
    "SlowOnly",
    "TSN",
    "VideoDataModule",
    "VideoRecognizer",
    "attach_views",
    "build_model",
    "list_models",
    "make_views",
]
