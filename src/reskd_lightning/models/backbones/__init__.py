"""Backbones wrapped as :class:`~reskd_lightning.models.VideoRecognizer`."""

from .slowonly import SlowOnly
from .tsn import TSN

__all__ = ["TSN", "SlowOnly"]
