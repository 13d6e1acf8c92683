"""The ``"torchcodec"`` decoder, optional: it needs the ``torchcodec`` package and FFmpeg's shared libraries.

``torchcodec`` is imported when a video is opened, so building this decoder works without it; opening a video
without it raises an ``ImportError`` that says how to install it. (``from torchcodec.decoders import ...``
below reaches the library, not this module: imports are absolute.)
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import Tensor

from reskd_lightning.data.decoders.base import VideoDecodeError, VideoHandle
from reskd_lightning.data.decoders.checks import check_indices, check_threads


_TORCHCODEC_HELP = (
    "the 'torchcodec' decoder needs the torchcodec package and FFmpeg's shared libraries: "
    "`pip install torchcodec` and, e.g. on Debian/Ubuntu, "
    "`apt-get install libavcodec59 libavformat59 libavutil57 libswscale6` (any FFmpeg 4-7 works). "
    "`decoder: pyav` works without them"
)


class TorchCodecVideoHandle(VideoHandle):
    """A video opened with torchcodec's ``VideoDecoder``."""

    def __init__(self, path: str, decoder: Any):
        self.path = path
        self._decoder = decoder

    @property
    def num_frames(self) -> int:
        """Frames in the video, from torchcodec's metadata."""
        count = self._decoder.metadata.num_frames
        if not count:
            raise VideoDecodeError(f"cannot decode video {self.path!r}: torchcodec found no frames")
        return int(count)

    def get_frames(self, indices: np.ndarray, bounds: np.ndarray | None = None) -> Tensor:
        """The frames at ``indices`` as uint8 ``[len(indices), H, W, 3]``; past the end, the last frame.

        ``bounds`` is ignored."""
        indices = np.minimum(check_indices(indices, self.path), self.num_frames - 1)
        wanted, inverse = np.unique(indices, return_inverse=True)
        try:
            data = self._decoder.get_frames_at(indices=wanted.tolist()).data
        except (RuntimeError, ValueError, IndexError) as e:
            raise VideoDecodeError(f"cannot decode video {self.path!r}: torchcodec failed ({e})") from e
        return data.permute(0, 2, 3, 1)[torch.from_numpy(inverse.reshape(-1))].contiguous()

    def close(self) -> None:
        """Drop the decoder (torchcodec closes the file when it is freed)."""
        self._decoder = None


class TorchCodecDecoder:
    """Decode videos with torchcodec (optional: ``pip install torchcodec`` plus FFmpeg's shared libraries).

    Args:
        num_threads: FFmpeg decoding threads (0: FFmpeg's choice).
        seek_mode: ``"exact"`` (scans the file on open: exact frame count and positions) or ``"approximate"``
            (trusts the header; faster to open).

    Configured through ``VideoDataModule``::

        data:
          class_path: reskd_lightning.data.VideoDataModule
          init_args:
            decoder: torchcodec
    """

    SEEK_MODES = ("exact", "approximate")

    def __init__(self, num_threads: int = 1, seek_mode: str = "exact"):
        self.num_threads = check_threads("TorchCodecDecoder", num_threads)
        if seek_mode not in self.SEEK_MODES:
            raise ValueError(
                f"TorchCodecDecoder: seek_mode must be one of {self.SEEK_MODES}, got {seek_mode!r}"
            )
        self.seek_mode = seek_mode

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_threads={self.num_threads}, seek_mode={self.seek_mode!r})"

    def open(self, path: str | os.PathLike) -> TorchCodecVideoHandle:
        """Open ``path``; ``ImportError`` (saying how to install it) when torchcodec cannot be loaded."""
        try:
            from torchcodec.decoders import VideoDecoder
        except (ImportError, OSError, RuntimeError) as e:  # RuntimeError: torchcodec without FFmpeg's libs
            raise ImportError(f"{_TORCHCODEC_HELP} (import failed: {e})") from e
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"video file {path!r} does not exist")
        try:
            decoder = VideoDecoder(path, seek_mode=self.seek_mode, num_ffmpeg_threads=self.num_threads)
        except (RuntimeError, ValueError) as e:
            raise VideoDecodeError(f"cannot decode video {path!r}: torchcodec could not open it ({e})") from e
        return TorchCodecVideoHandle(path, decoder)
