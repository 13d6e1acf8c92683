"""The decoder interface: a ``Decoder`` opens a path as a ``VideoHandle``, which returns the frames asked for.

Every backend (``pyav``, ``rawframes``, ``torchcodec``) implements these; ``DecoderFactory`` is the type
of what the registry holds (a decoder class, called with the backend's options).
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np
from torch import Tensor


class VideoDecodeError(ValueError):
    """A video could not be opened or decoded (corrupt file, no video stream, no frames)."""


def failure_reason(error: BaseException, path: str) -> str:
    """Why ``path`` could not be read, as ``Type: message``, without naming the file again (the line around it
    names it once).

    A wrapping error (the dataset's ``video '<path>' (record i of '<list>') could not be decoded: ...``) is
    followed down to the decoder's own (``cannot decode video '<path>': frame 12 ...``), whose message is kept
    (what failed, which frame) without the file's name, which decoders write as ``'<path>'`` after a noun:
    ``cannot decode video: frame 12 ...``, ``video file does not exist``, ``frame 3 is missing: ...``.
    """
    while isinstance(error.__cause__, VideoDecodeError) or type(error.__cause__) is FileNotFoundError:
        error = error.__cause__  # the decoder's error (not PyAV's own, a subclass of either)
    message = str(error).replace(f" of {path!r}", "").replace(f" {path!r}", "")
    return f"{type(error).__name__}: {message}"


class VideoHandle:
    """An open video: ``num_frames`` and ``get_frames(indices, bounds=None)``; close it, or use ``with``.

    ``recovered`` lists, one sentence each, decoding problems the handle met and worked around (a frame that
    decoded corrupt after a seek, so it decoded from the start instead): the frames are right, but the video
    is damaged or slow to read. ``reskd check-data --deep`` reports them.
    """

    path: str
    recovered: Sequence[str] = ()

    @property
    def num_frames(self) -> int:
        """Number of frames in the video."""
        raise NotImplementedError

    def get_frames(self, indices: np.ndarray, bounds: np.ndarray | None = None) -> Tensor:
        """The frames at ``indices`` (any order, repeats allowed) as uint8 ``[len(indices), H, W, 3]`` RGB.

        ``bounds`` (``[len(indices), 2]``, half-open ranges each index was drawn from) lets a decoder in
        keyframe mode pick another frame of the range; other decoders ignore it.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release the file."""

    def __enter__(self) -> "VideoHandle":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@runtime_checkable
class Decoder(Protocol):
    """What ``VideoDataset`` needs of a decoder: ``open(path)`` gives a ``VideoHandle`` (a context manager).

    ``open`` raises ``FileNotFoundError`` when ``path`` does not exist and ``VideoDecodeError`` when it cannot
    be read.
    """

    def open(self, path: str | os.PathLike) -> VideoHandle: ...


#: A decoder's factory, as ``DECODERS`` holds it: called with the backend's options, it returns a decoder.
DecoderFactory = Callable[..., Decoder]
