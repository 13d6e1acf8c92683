"""Video decoders behind one small interface, chosen by name.

A decoder opens a video as a ``VideoHandle`` (a context manager) that knows its ``num_frames`` and returns
the frames asked for as a uint8 tensor ``[T, H, W, 3]``, in the order asked. Decoding libraries are imported
only when a decoder is used, so a missing optional backend costs nothing until it is chosen.
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor


class VideoDecodeError(ValueError):
    """A video could not be opened or decoded (corrupt file, no video stream, no frames)."""


class VideoHandle:
    """An open video: ``num_frames`` and ``get_frames(indices)``; close it, or use it in a ``with`` block."""

    path: str

    @property
    def num_frames(self) -> int:
        """Number of frames in the video."""
        raise NotImplementedError

    def get_frames(self, indices: np.ndarray) -> Tensor:
        """The frames at ``indices`` (any order, repeats allowed) as uint8 ``[len(indices), H, W, 3]`` RGB."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the file."""

    def __enter__(self) -> "VideoHandle":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class PyAVVideoHandle(VideoHandle):
    """A video opened with PyAV. Decodes from the start up to the last frame asked for."""

    def __init__(self, path: str, num_threads: int = 1):
        import av  # lazy: only users of this decoder need PyAV

        self._av = av
        self.path = path
        self.num_threads = num_threads
        self._container: Any = None
        self._num_frames: int | None = None
        self._consumed = False  # the container has been read from and must be reopened to decode from frame 0
        self._open()

    def _fail(self, reason: str) -> VideoDecodeError:
        return VideoDecodeError(f"cannot decode video {self.path!r}: {reason}")

    def _open(self) -> None:
        self.close()
        try:
            self._container = self._av.open(self.path)
        except self._av.FFmpegError as e:
            raise self._fail(f"PyAV could not open it ({e})") from e
        if not self._container.streams.video:
            self.close()
            raise self._fail("it has no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.codec_context.thread_count = self.num_threads
        if self.num_threads != 1:
            self._stream.thread_type = "AUTO"  # frame and slice threading
        self._consumed = False

    @property
    def num_frames(self) -> int:
        """Frames in the video: the container's count when it has one, else counted by demuxing packets."""
        if self._num_frames is None:
            count = int(self._stream.frames or 0)
            if count <= 0:
                if self._consumed:
                    self._open()
                self._consumed = True
                try:
                    count = sum(1 for packet in self._container.demux(self._stream) if packet.size > 0)
                except self._av.FFmpegError as e:
                    raise self._fail(f"PyAV could not read its packets ({e})") from e
            if count <= 0:
                raise self._fail("it has no frames")
            self._num_frames = count
        return self._num_frames

    def get_frames(self, indices: np.ndarray) -> Tensor:
        """The frames at ``indices`` as uint8 ``[len(indices), H, W, 3]``; only wanted frames are converted.

        When the video decodes to fewer frames than its container claims, an index past the last decoded frame
        gets the last decoded frame.
        """
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size == 0:
            raise ValueError(f"no frame indices asked for from video {self.path!r}")
        if indices.min() < 0:
            raise IndexError(f"negative frame index {int(indices.min())} asked for from video {self.path!r}")
        wanted = np.unique(indices)  # sorted
        if self._consumed:
            self._open()
        self._consumed = True
        decoded: dict[int, np.ndarray] = {}
        last_index, last_frame = -1, None
        cursor = 0
        try:
            for i, frame in enumerate(self._container.decode(self._stream)):
                last_index, last_frame = i, frame
                if i == wanted[cursor]:
                    decoded[i] = frame.to_ndarray(format="rgb24")
                    cursor += 1
                    if cursor == len(wanted):
                        break
        except self._av.FFmpegError as e:
            raise self._fail(f"PyAV failed while decoding frame {last_index + 1} ({e})") from e
        if last_frame is None:
            raise self._fail("it has no decodable frames")
        if cursor < len(wanted):  # fewer decodable frames than indices asked for: repeat the last one
            last = last_frame.to_ndarray(format="rgb24")
            for i in wanted[cursor:]:
                decoded[int(i)] = last
        return torch.from_numpy(np.stack([decoded[int(i)] for i in indices]))

    def close(self) -> None:
        """Close the container."""
        if self._container is not None:
            self._container.close()
            self._container = None


class PyAVDecoder:
    """Decode videos with PyAV (FFmpeg), any container and codec FFmpeg reads.

    Configured through ``VideoDataModule``::

        data:
          class_path: reskd_lightning.data.VideoDataModule
          init_args:
            decoder: pyav
    """

    def __init__(self, num_threads: int = 1):
        if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 0:
            raise ValueError(
                f"PyAVDecoder: num_threads must be an integer >= 0 (0 = FFmpeg's choice), got {num_threads!r}"
            )
        self.num_threads = num_threads

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_threads={self.num_threads})"

    def open(self, path: str | os.PathLike) -> PyAVVideoHandle:
        """Open ``path``: ``FileNotFoundError`` if it does not exist, ``VideoDecodeError`` if unreadable."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"video file {path!r} does not exist")
        return PyAVVideoHandle(path, num_threads=self.num_threads)


#: Decoders by name, for ``build_decoder`` and ``VideoDataModule(decoder=...)``.
DECODERS: dict[str, Callable[..., Any]] = {"pyav": PyAVDecoder}


def build_decoder(name: str, **kwargs: Any) -> Any:
    """The decoder registered as ``name``, built with ``kwargs``; an unknown name lists the known ones."""
    try:
        cls = DECODERS[name]
    except KeyError:
        raise ValueError(f"unknown video decoder {name!r}; known decoders are {sorted(DECODERS)}") from None
    return cls(**kwargs)
