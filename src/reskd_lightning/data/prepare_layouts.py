"""What ``reskd prepare`` writes for one video: the frames it keeps and the two layouts.

* ``PrepareSettings`` (and the named ``PREPARE_PRESETS``), defined in :mod:`.prepare_settings` (no torch, so
  ``reskd prepare --help`` starts at once) and importable from here too: layout, image format, frame rate,
  short side, quality.
* ``decoded_frames`` / ``frames_at_fps``: every frame of a video in order, with its time, and the frames kept at
  a frame rate: output frame ``k`` is the last decoded frame whose time (from the first frame's) is at most
  ``k / fps``, for ``k = 0, 1, ...`` while ``k / fps`` does not pass the last frame's time.
* ``write_frames``: frame ``k`` as ``img_{k+1:05}.jpg`` or ``.png`` in a folder (mmaction2's rawframes, read by
  ``RawFrameDecoder``); or one MJPEG ``.avi`` whose every frame is a JPEG (an all-intra video that
  ``PyAVDecoder`` reads by seeking exactly to each frame).

Frames are resized with the library's ``Resize`` (the short side, the long side rounded as mmcv does) with
torchvision's antialiased bilinear by default: frames are shrunk once, as ffmpeg's ``scale`` filter would, and
the loader's own resize (mmcv's, without antialiasing) comes after. PyAV and Pillow are imported when used.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from reskd_lightning.data.decoders import VideoDecodeError
from reskd_lightning.data.decoders.pyav import ffmpeg_message
from reskd_lightning.data.prepare_settings import IMAGE_FORMATS, LAYOUTS, PREPARE_PRESETS, PrepareSettings
from reskd_lightning.data.transforms import Resize

#: The settings' names are defined in ``prepare_settings`` and importable from here as well.
__all__ = [
    "IMAGE_FORMATS", "LAYOUTS", "PREPARE_PRESETS", "VIDEO_SUFFIX", "PrepareSettings", "as_rgb", "decoded_frames",
    "frames_at_fps", "write_frames",
]  # fmt: skip

#: Suffix of the ``video`` layout's files (MJPEG in AVI, the container MJPEG is usually kept in).
VIDEO_SUFFIX = ".avi"


# -- the frames kept ------------------------------------------------------------------------------------------


def decoded_frames(path: str | os.PathLike, threads: int = 1) -> Iterator[tuple[Fraction, Any]]:
    """``(time, frame)`` of every frame of ``path``'s first video stream, in display order, decoded with PyAV.

    Times are exact fractions of a second from the first frame's; a frame without a timestamp is placed one
    frame period (the stream's average rate) after the one before. Unreadable files, a frame that decodes
    corrupt and a stream without frames raise ``VideoDecodeError`` naming the file (as ``PyAVDecoder`` does).
    """
    import av  # lazy: only preparing needs PyAV here

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"video file {path!r} does not exist")
    try:
        container = av.open(path)
    except av.FFmpegError as e:
        why = ffmpeg_message(e, path)  # without the file's name, which PyAV appends
        raise VideoDecodeError(f"cannot decode video {path!r}: PyAV could not open it ({why})") from e
    with container:
        if not container.streams.video:
            raise VideoDecodeError(f"cannot decode video {path!r}: it has no video stream")
        stream = container.streams.video[0]
        stream.codec_context.thread_count = threads
        period = 1 / Fraction(stream.average_rate or 25)
        first = previous = None
        count = 0
        try:
            for count, frame in enumerate(container.decode(stream), start=1):
                if frame.is_corrupt:
                    raise VideoDecodeError(f"cannot decode video {path!r}: frame {count - 1} decodes corrupt")
                at = frame.pts * stream.time_base if frame.pts is not None and stream.time_base else None
                at = at if at is not None else (previous + period if previous is not None else Fraction(0))
                first = at if first is None else first
                previous = at
                yield at - first, frame
        except av.FFmpegError as e:
            raise VideoDecodeError(f"cannot decode video {path!r}: PyAV failed at frame {count} ({e})") from e
        if count == 0:
            raise VideoDecodeError(f"cannot decode video {path!r}: it has no frames")


def frames_at_fps(frames: Iterable[tuple[Fraction, Any]], fps: float | None) -> Iterator[Any]:
    """The frames kept at ``fps`` from ``(time, frame)`` pairs in display order (None: every frame).

    Output frame ``k`` is the last input frame whose time is at most ``k / fps``, for ``k = 0, 1, ...`` while
    ``k / fps`` is at most the last frame's time: a 10 s, 30 fps video (times 0 to 9.967 s) gives 40 frames at
    4 fps, as many as ffmpeg's ``fps=4`` filter (which takes the frame nearest to ``k / fps`` rather than the
    last one before it, so a frame may differ by one source frame). A frame repeats when ``fps`` exceeds the
    video's rate.
    """
    if not fps:
        yield from (frame for _, frame in frames)
        return
    rate = Fraction(fps).limit_denominator(1_000_000)
    k, kept, last = 0, None, Fraction(0)
    for at, frame in frames:
        while kept is not None and k / rate < at:  # output k's time lies before this frame: the one before it
            yield kept
            k += 1
        kept, last = frame, at
    while kept is not None and k / rate <= last:
        yield kept
        k += 1


def as_rgb(frame: Any, short_side: int | None, antialias: bool) -> np.ndarray:
    """A PyAV frame as uint8 RGB ``[H, W, 3]``, its short side resized to ``short_side`` (None: as it is)."""
    array = frame.to_ndarray(format="rgb24")
    if short_side is None or min(array.shape[:2]) == short_side:
        return array
    clip = torch.from_numpy(array).permute(2, 0, 1)
    return Resize(short_side, antialias=antialias)(clip).permute(1, 2, 0).contiguous().numpy()


def _rgb_frames(source: str, settings: PrepareSettings, threads: int) -> Iterator[np.ndarray]:
    """The kept frames of ``source`` as RGB arrays, each converted once even when repeated."""
    previous: tuple[Any, np.ndarray] | None = None
    for frame in frames_at_fps(decoded_frames(source, threads), settings.fps):
        if previous is None or previous[0] is not frame:
            previous = (frame, as_rgb(frame, settings.short_side, settings.antialias))
        yield previous[1]


# -- the layouts ---------------------------------------------------------------------------------------------


def write_frames(source: str, target: Path, settings: PrepareSettings, threads: int = 1) -> int:
    """Write the kept frames of ``source`` to ``target`` in ``settings.layout`` and return their number.

    ``frames``: ``target`` is a new folder of ``img_00001.jpg`` ... (``settings.filename_tmpl``); ``video``:
    ``target`` is an MJPEG ``.avi`` at ``fps`` (or the source's rate). Not atomic: the caller writes to a
    temporary name and renames.
    """
    if settings.layout == "video":
        return _write_mjpeg(source, target, settings, threads)
    from PIL import Image  # lazy, as the rawframes decoder

    options = {"quality": settings.jpeg_quality} if settings.image_format == "jpg" else {}
    if settings.image_format == "png":
        options = {"compress_level": settings.png_compression}
    target.mkdir(parents=True)
    count = 0
    for count, array in enumerate(_rgb_frames(source, settings, threads), start=1):
        Image.fromarray(array).save(target / settings.filename_tmpl.format(count), **options)
    return count


def _write_mjpeg(source: str, target: Path, settings: PrepareSettings, threads: int) -> int:
    """Every kept frame a JPEG in one AVI: all-intra, so a seek lands on the frame itself."""
    import av

    rate = Fraction(settings.fps).limit_denominator(1_000_000) if settings.fps else None
    if rate is None:  # every frame: the source's rate
        try:
            with av.open(source) as probe:
                rate = Fraction(probe.streams.video[0].average_rate or 25)
        except (av.FFmpegError, IndexError):
            pass  # decoded_frames below says what is wrong with the file
    target.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with av.open(str(target), mode="w", format="avi") as container:
        stream = container.add_stream("mjpeg", rate=rate or 25)
        stream.pix_fmt = "yuvj420p"  # full-range 4:2:0, as JPEG files
        stream.codec_context.qmin = stream.codec_context.qmax = settings.video_quality
        stream.codec_context.thread_count = 1
        for count, array in enumerate(_rgb_frames(source, settings, threads), start=1):
            if count == 1:
                stream.height, stream.width = array.shape[:2]
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())
    return count
