"""Backbones wrapped as :class:`~reskd_lightning.models.VideoRecognizer`; importing registers them."""

from .mvit import MViTv2
from .r2plus1d import R2Plus1D
from .slowfast import SlowFast
from .slowonly import SlowOnly
from .swin import VideoSwin
from .tsm import TSM
from .tsn import TSN
from .x3d import X3D

__all__ = ["MViTv2", "R2Plus1D", "SlowFast", "SlowOnly", "TSM", "TSN", "VideoSwin", "X3D"]
