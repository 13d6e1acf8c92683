"""Video decoders behind one small interface, chosen by name.

A decoder opens a video (or a folder of frames) as a ``VideoHandle``, a context manager that knows its
``num_frames`` and returns the frames asked for as a uint8 tensor ``[T, H, W, 3]``, in the order asked.

- ``"pyav"``: ``PyAVDecoder``, any container and codec FFmpeg reads. Decodes sparsely: it seeks to the
  keyframe before each wanted frame and decodes forward only as far as needed; optionally snaps indices to
  keyframes.
- ``"rawframes"``: ``RawFrameDecoder``, mmaction2 frame folders (``img_00001.jpg`` ...).
- ``"torchcodec"``: ``TorchCodecDecoder``, an optional backend (needs ``torchcodec`` and FFmpeg's shared
  libraries).

Decoding libraries are imported only when a decoder opens a file, so a missing optional backend costs nothing
until it is chosen.
"""

from __future__ import annotations

import os
import string
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import Tensor


class VideoDecodeError(ValueError):
    """A video could not be opened or decoded (corrupt file, no video stream, no frames)."""


class VideoHandle:
    """An open video: ``num_frames`` and ``get_frames(indices, bounds=None)``; close it, or use ``with``."""

    path: str

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


def _check_indices(indices: np.ndarray, path: str) -> np.ndarray:
    """``indices`` as a flat int64 array; empty or negative indices are refused, naming the video."""
    indices = np.asarray(indices)
    if indices.size and not np.issubdtype(indices.dtype, np.integer):
        raise TypeError(f"frame indices for {path!r} must be integers, got dtype {indices.dtype}")
    indices = indices.astype(np.int64).reshape(-1)
    if indices.size == 0:
        raise ValueError(f"no frame indices asked for from {path!r}")
    if indices.min() < 0:
        raise IndexError(f"negative frame index {int(indices.min())} asked for from {path!r}")
    return indices


def _check_bounds(bounds: np.ndarray, num_indices: int, path: str) -> np.ndarray:
    """``bounds`` as int64 ``[num_indices, 2]`` with ``lo < hi`` in every row."""
    bounds = np.asarray(bounds)
    if bounds.shape != (num_indices, 2) or (bounds.size and not np.issubdtype(bounds.dtype, np.integer)):
        raise ValueError(
            f"bounds for {path!r} must be an integer array [{num_indices}, 2] (one [lo, hi) per index), "
            f"got {bounds.dtype} {tuple(bounds.shape)}"
        )
    bounds = bounds.astype(np.int64)
    bad = np.flatnonzero(bounds[:, 1] <= bounds[:, 0])
    if bad.size:
        row = int(bad[0])
        raise ValueError(f"bounds for {path!r}: row {row} {bounds[row].tolist()} is empty (need lo < hi)")
    return bounds


def _check_threads(owner: str, num_threads: Any) -> int:
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 0:
        raise ValueError(
            f"{owner}: num_threads must be an integer >= 0 (0 = FFmpeg's choice), got {num_threads!r}"
        )
    return num_threads


# -- PyAV ----------------------------------------------------------------------------------------------------

_AVINDEX_KEYFRAME = 1  # libavformat's AVIndexEntry flags
_AVINDEX_DISCARD_FRAME = 2


@dataclass
class _Timeline:
    """Where the frames of a video stream lie: frame index <-> pts, and which frames are keyframes.

    ``pts`` holds every frame's pts (sorted) when the packets were scanned (exact for any frame rate);
    without it frame ``i`` is at ``start + i * step`` (a constant frame rate, checked against what the
    decoder returns).
    ``keyframes`` may miss some keyframes: that costs decoding time, never correctness.
    """

    keyframes: np.ndarray
    num_frames: int | None
    pts: np.ndarray | None = None
    start: float = 0.0
    step: float = 1.0

    @property
    def exact(self) -> bool:
        return self.pts is not None

    def pts_of(self, index: int) -> int:
        if self.pts is not None:
            return int(self.pts[index])
        return int(round(self.start + index * self.step))

    def index_of(self, pts: int | None) -> int | None:
        """The index of the frame at ``pts``, or None when no frame of this timeline lies there."""
        if pts is None:
            return None
        if self.pts is not None:
            i = int(np.searchsorted(self.pts, pts))
            return i if i < len(self.pts) and self.pts[i] == pts else None
        x = (pts - self.start) / self.step
        i = int(round(x))
        if i < 0 or abs(x - i) >= 0.25 or (self.num_frames is not None and i >= self.num_frames):
            return None
        return i

    def keyframe_at_or_before(self, index: int) -> int | None:
        k = int(np.searchsorted(self.keyframes, index, side="right")) - 1
        return int(self.keyframes[k]) if k >= 0 else None


class _Resync(Exception):
    """The timeline disagrees with what the decoder returned: fall back to a safer way of finding frames."""


class _RetryWithoutSkipping(Exception):
    """The stream ended early while frames were being skipped: the last frame may have been one of them."""


class PyAVVideoHandle(VideoHandle):
    """A video opened with PyAV; one open container serves every ``get_frames`` call.

    Frames are found by their pts on a timeline: from the container's index (MP4; Matroska cues plus a
    constant frame rate), else from one scan of the packets. Each wanted frame is decoded from the keyframe at
    or before it, seeking only when that keyframe lies past the decoder's position (else decoding on);
    frames nobody wants that no other frame refers to are not decoded at all (FFmpeg's ``skip_frame``), and
    the decoder is drained as soon as the last wanted frame before a seek has been sent. Whenever the decoder
    returns something the timeline did not predict, the handle falls back to the exact packet scan and, last,
    to decoding from the start: the frames are always those of a full sequential decode.

    ``frames_decoded`` and ``seeks`` count, since opening, the frames the decoder returned and the seeks made.
    """

    def __init__(self, path: str, num_threads: int = 1, snap_to_keyframe: bool = False):
        import av  # lazy: only users of this decoder need PyAV

        self._av = av
        self.path = path
        self.num_threads = num_threads
        self.snap_to_keyframe = snap_to_keyframe
        self.frames_decoded = 0
        self.seeks = 0
        self._container: Any = None
        self._num_frames: int | None = None
        self._timeline: _Timeline | None = None
        self._timeline_built = False
        self._packet_count: int | None = None  # counted by ``_scan``
        self._sequential = False  # no usable timestamps: count frames from the start, never seek
        self._allow_skip = True
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
        self._codec = self._stream.codec_context
        self._codec.thread_count = self.num_threads
        if self.num_threads != 1:
            self._stream.thread_type = "AUTO"  # frame and slice threading
        self._skipping = False  # the codec's skip_frame is NONREF
        self._fresh = True  # nothing read yet: decoding may start without a seek
        # Decoding state: ``_packets`` (timeline mode) or ``_frames`` (sequential mode) continue from the
        # decoder's position; None means the next frame needs a seek (or reopening).
        self._packets: Iterator[Any] | None = None
        self._frames: Iterator[Any] | None = None
        self._next_index = 0  # sequential mode: the index of the next frame
        self._gop = -1  # timeline mode: the last keyframe sent to the decoder
        self._expect_first: int | None = None  # the first frame due after a reposition
        self._last: tuple[int, Any] | None = None  # the last frame returned since then

    # -- the timeline ---------------------------------------------------------------------------------------

    def _get_timeline(self) -> _Timeline | None:
        if not self._timeline_built:
            self._timeline = self._index_timeline()
            if self._timeline is None:
                self._timeline = self._scan()
                self._sequential = self._timeline is None
            self._timeline_built = True
        return self._timeline

    def _index_timeline(self) -> _Timeline | None:
        """A timeline from the container's index, or None when it has none fit for one."""
        stream = self._stream
        entries = stream.index_entries
        if len(entries) < 2:
            # Matroska reads its cues (its keyframe index, at the end of the file) on the first seek only.
            try:
                self._container.seek(int(stream.start_time or 0), backward=True, stream=stream)
            except self._av.FFmpegError:
                return None
            entries = stream.index_entries
        entries = [e for e in entries if not e.flags & _AVINDEX_DISCARD_FRAME]
        if len(entries) < 2 or not stream.average_rate or stream.time_base is None:
            return None
        ts = np.array([e.timestamp for e in entries], dtype=np.float64)
        key = np.array([bool(e.flags & _AVINDEX_KEYFRAME) for e in entries])
        start = float(stream.start_time or 0)
        if key.all():  # keyframes only (Matroska cues, pts): a constant-rate grid from the stream's rate
            if self._container.duration is None:
                # No cues, and no duration either (a live recording): these are just the keyframes read so
                # far, and frames far from them would be decoded from the last known one.
                return None
            step = float(1 / (stream.average_rate * stream.time_base))
            x = (ts - start) / step
            if np.abs(x - np.round(x)).max() >= 0.25 or x.min() < 0:
                return None
            count = int(stream.frames or 0)
            return _Timeline(np.unique(np.round(x).astype(np.int64)), count or None, start=start, step=step)
        # One entry per frame (MP4), with decode timestamps: constant steps mean a constant frame rate, and
        # a keyframe's (closed-GOP) place in display order is its place in decode order. Both are checked
        # against the decoder's output. A partial index (fragmented MP4) fails the count check.
        if not key[0] or len(entries) != stream.frames:
            return None
        diffs = np.diff(np.sort(ts))
        step = float(np.median(diffs))
        if step <= 0 or np.abs(diffs - step).max() > max(1.0, 0.01 * step):
            return None
        return _Timeline(np.flatnonzero(key), len(entries), start=start, step=step)

    def _scan(self) -> _Timeline | None:
        """Demux every packet (no decoding), counting them: an exact timeline, or None without usable pts."""
        self._open()
        self._fresh = False
        pts, key = [], []
        try:
            for packet in self._container.demux(self._stream):
                if packet.size > 0:
                    pts.append(packet.pts)
                    key.append(packet.is_keyframe)
        except self._av.FFmpegError as e:
            raise self._fail(f"PyAV could not read its packets ({e})") from e
        self._packet_count = len(pts)
        if not pts or any(p is None for p in pts):
            return None
        order = np.argsort(np.array(pts, dtype=np.int64), kind="stable")
        sorted_pts = np.array(pts, dtype=np.int64)[order]
        if np.any(np.diff(sorted_pts) <= 0):  # repeated pts: frames cannot be told apart by time
            return None
        keyframes = np.flatnonzero(np.array(key)[order])
        return _Timeline(keyframes, len(pts), pts=sorted_pts)

    def _downgrade(self) -> None:
        """After a ``_Resync``: a constant-rate timeline gives way to the exact scan, an exact one to
        sequential mode."""
        if self._timeline is not None and not self._timeline.exact:
            self._timeline = self._scan()
        else:
            self._timeline = None
        self._sequential = self._timeline is None
        self._open()

    @property
    def num_frames(self) -> int:
        """Frames in the video: from the container's index when it has a complete one, else the stream's
        count, else counted by demuxing packets."""
        if self._num_frames is None:
            timeline = self._get_timeline()
            count = (timeline.num_frames if timeline is not None else None) or int(self._stream.frames or 0)
            if count <= 0:
                if self._packet_count is None:
                    self._timeline = self._scan()  # exact, and better than a grid
                    self._sequential = self._timeline is None
                count = self._packet_count or 0
            if count <= 0:
                raise self._fail("it has no frames")
            self._num_frames = count
        return self._num_frames

    # -- decoding along the timeline -------------------------------------------------------------------------

    def _reposition(self, keyframe: int | None) -> None:
        """Make the next packet the one of ``keyframe`` (seeking to it), or the very first when None."""
        if keyframe is None or (keyframe == 0 and self._fresh):
            if not self._fresh:
                self._open()
            keyframe = 0 if keyframe is None else keyframe
        else:
            assert self._timeline is not None
            try:
                self._container.seek(self._timeline.pts_of(keyframe), backward=True, stream=self._stream)
            except self._av.FFmpegError as e:
                self._timeline = None  # a file that cannot seek: decode it from the start
                raise _Resync() from e
            self.seeks += 1
        self._fresh = False
        self._packets = iter(self._container.demux(self._stream))
        self._gop = keyframe
        self._expect_first = keyframe
        self._last = None

    def _send(self, packet: Any) -> list[Any]:
        try:
            frames = self._codec.decode(packet)
        except self._av.FFmpegError as e:
            where = f"frame {self._last[0] + 1}" if self._last else "its first frames"
            raise self._fail(f"PyAV failed while decoding {where} ({e})") from e
        self.frames_decoded += len(frames)
        return frames

    def _set_skipping(self, skipping: bool) -> None:
        if skipping != self._skipping:
            self._codec.skip_frame = "NONREF" if skipping else "DEFAULT"
            self._skipping = skipping

    def _take(self, frame: Any, wanted: set[int], out: dict[int, np.ndarray], checked: bool) -> int:
        """Index ``frame`` (checking it against the timeline) and keep it when wanted; returns its index."""
        timeline = self._timeline
        index = timeline.index_of(frame.pts)  # type: ignore[union-attr]
        if index is None or (self._last is not None and index <= self._last[0]):
            raise _Resync()
        if not timeline.exact:  # type: ignore[union-attr]
            # A constant-rate grid must put the keyframe sought first, and, when every frame is decoded,
            # each frame right after the one before.
            if self._last is None and index != self._expect_first:
                raise _Resync()
            if checked and self._last is not None and index != self._last[0] + 1:
                raise _Resync()
        self._last = (index, frame)
        if index in wanted and index not in out:
            out[index] = frame.to_ndarray(format="rgb24")
        return index

    def _decode_timeline(self, wanted: np.ndarray) -> dict[int, np.ndarray]:
        """Frames at the sorted, distinct ``wanted`` indices; past the end of the stream, the last frame."""
        timeline = self._timeline
        assert timeline is not None
        want = set(wanted.tolist())
        # Skipping unwanted non-reference frames needs every wanted frame to exist: else the last frame of the
        # stream, which stands in for those past the end, might be one of the skipped.
        skip = self._allow_skip and timeline.num_frames is not None and int(wanted[-1]) < timeline.num_frames
        out: dict[int, np.ndarray] = {}
        sent: set[int] = set()  # wanted frames sent to the decoder, not yet returned
        skipped = False
        for k, w in enumerate(wanted.tolist()):
            if w in out:
                continue
            key = timeline.keyframe_at_or_before(w)
            if w not in sent:
                last = self._last[0] if self._last is not None else -1
                if self._packets is None or w <= last or (key is not None and key > self._gop):
                    self._reposition(key)
                    sent.clear()
            while w not in out:
                try:
                    packet = next(self._packets, None) if self._packets is not None else None
                except self._av.FFmpegError as e:
                    raise self._fail(f"PyAV could not read its packets ({e})") from e
                if packet is None:  # end of the stream: the rest get the last frame the decoder returned
                    self._packets = None
                    if skipped:
                        raise _RetryWithoutSkipping()
                    if self._last is None:
                        raise _Resync()  # nothing after a seek: decode from the start to find the last frame
                    last_frame = self._last[1].to_ndarray(format="rgb24")
                    out.update((i, last_frame) for i in wanted[k:].tolist() if i not in out)
                    return out
                index = timeline.index_of(packet.pts) if packet.size else None
                drain = False
                if index is not None:
                    if packet.is_keyframe:
                        self._gop = max(self._gop, index)
                    if index in want:
                        sent.add(index)
                        # Drain once the last wanted frame before the next seek has been sent: the frames the
                        # decoder would read ahead are needed by nobody.
                        pending = [i for i in wanted[k + 1 :].tolist() if i not in out and i not in sent]
                        nxt = timeline.keyframe_at_or_before(pending[0]) if pending else None
                        drain = w in sent and (not pending or (nxt is not None and nxt > self._gop))
                    self._set_skipping(skip and index not in want)
                    skipped |= self._skipping
                elif packet.size:
                    raise _Resync()  # a packet the timeline does not know
                for frame in self._send(packet):
                    sent.discard(self._take(frame, want, out, checked=not skip))
                if drain:  # frames the decoder returns at a drain may skip those not sent yet: no check
                    for frame in self._send(None):
                        sent.discard(self._take(frame, want, out, checked=False))
                    self._packets = None  # a drained decoder needs a seek before the next packet
                passed = self._last is not None and self._last[0] > w
                if w not in out and (passed or (self._packets is None and packet.size)):
                    raise _Resync()  # frame w never came
        return out

    # -- decoding without a timeline -------------------------------------------------------------------------

    def _decode_sequential(self, wanted: np.ndarray) -> dict[int, np.ndarray]:
        """Frames at the sorted ``wanted`` indices, counting frames from the start (no usable timestamps)."""
        if self._frames is None or int(wanted[0]) < self._next_index:
            if not self._fresh:
                self._open()
            self._fresh = False
            self._frames = iter(self._container.decode(self._stream))
            self._next_index, self._last = 0, None
        out: dict[int, np.ndarray] = {}
        for k, w in enumerate(wanted.tolist()):
            while w not in out:
                try:
                    frame = next(self._frames, None)
                except self._av.FFmpegError as e:
                    raise self._fail(f"PyAV failed while decoding frame {self._next_index} ({e})") from e
                if frame is None:
                    self._frames = None
                    if self._last is None:
                        raise self._fail("it has no decodable frames")
                    last_frame = self._last[1].to_ndarray(format="rgb24")
                    out.update((i, last_frame) for i in wanted[k:].tolist())
                    return out
                self.frames_decoded += 1
                self._last = (self._next_index, frame)
                if self._next_index == w:
                    out[w] = frame.to_ndarray(format="rgb24")
                self._next_index += 1
        return out

    # -- the public API --------------------------------------------------------------------------------------

    def _snap(self, indices: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        """Each index replaced by the keyframe nearest to it in its ``[lo, hi)`` (kept if there is none)."""
        timeline = None if self._sequential else self._get_timeline()
        if timeline is None:
            return indices
        keys = timeline.keyframes
        if timeline.num_frames is not None:
            keys = keys[keys < timeline.num_frames]
        snapped = indices.copy()
        for i, (lo, hi) in enumerate(bounds.tolist()):
            inside = keys[np.searchsorted(keys, lo) : np.searchsorted(keys, hi)]
            if inside.size:
                snapped[i] = inside[np.argmin(np.abs(inside - indices[i]))]  # ties: the earlier keyframe
        return snapped

    def get_frames(self, indices: np.ndarray, bounds: np.ndarray | None = None) -> Tensor:
        """The frames at ``indices`` as uint8 ``[len(indices), H, W, 3]``; only wanted frames are converted.

        With ``snap_to_keyframe`` and ``bounds``, each index is first replaced by the keyframe nearest to it
        inside its range ``[lo, hi)`` (unchanged when the range holds none). An index past the last decodable
        frame gets the last decodable frame.
        """
        indices = _check_indices(indices, self.path)
        ranges = None
        if self.snap_to_keyframe and bounds is not None:
            ranges = _check_bounds(bounds, len(indices), self.path)
        if not self._sequential:
            self._get_timeline()
        for _ in range(5):  # grid -> exact scan -> sequential, and once without skipping: each at most once
            # Snapped again on every try: a timeline found wrong may have misplaced the keyframes too.
            asked = indices if ranges is None else self._snap(indices, ranges)
            wanted, inverse = np.unique(asked, return_inverse=True)
            count = self._timeline.num_frames if self._timeline is not None else None
            targets = wanted
            if count and not self._sequential:
                targets = np.minimum(wanted, count - 1)  # past the end: the last frame (decoded once)
            try:
                if self._sequential:
                    decoded = self._decode_sequential(targets)
                else:
                    decoded = self._decode_timeline(np.unique(targets))
                break
            except _Resync:
                self._downgrade()
            except _RetryWithoutSkipping:
                self._allow_skip = False
                self._open()
        else:  # pragma: no cover - sequential mode never retries
            raise self._fail("its frames could not be located")
        frames = np.stack([decoded[int(t)] for t in targets])
        return torch.from_numpy(frames[inverse.reshape(-1)])

    def close(self) -> None:
        """Close the container."""
        if self._container is not None:
            self._container.close()
            self._container = None
            self._packets = self._frames = None


class PyAVDecoder:
    """Decode videos with PyAV (FFmpeg), any container and codec FFmpeg reads, seeking to the frames wanted.

    Args:
        num_threads: Decoding threads per video (0: FFmpeg's choice). 1 suits data loaders whose workers
            already use every core.
        snap_to_keyframe: Fast mode (mmaction2's "efficient" sampling): when ``get_frames`` is given the range
            ``[lo, hi)`` each index was drawn from, the index is replaced by the keyframe nearest to it in the
            range, so each frame costs one seek and one decoded frame. The trade-off: frames are no longer
            uniformly random within a segment but biased to keyframes (the same few frames every epoch when a
            segment holds one or two). Worth it for long web videos with keyframes every ~2 s; pointless for
            all-intra files (every frame is a keyframe: nothing changes, nothing is saved) and for files with
            a single GOP (no keyframe in the range: exact decoding).

    Configured through ``VideoDataModule``::

        data:
          class_path: reskd_lightning.data.VideoDataModule
          init_args:
            decoder: pyav
            decoder_threads: 1
            fast_decode: false   # true: PyAVDecoder(snap_to_keyframe=True)
    """

    def __init__(self, num_threads: int = 1, snap_to_keyframe: bool = False):
        self.num_threads = _check_threads("PyAVDecoder", num_threads)
        if not isinstance(snap_to_keyframe, bool):
            raise ValueError(f"PyAVDecoder: snap_to_keyframe must be True or False, got {snap_to_keyframe!r}")
        self.snap_to_keyframe = snap_to_keyframe

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(num_threads={self.num_threads}, snap_to_keyframe={self.snap_to_keyframe})"

    def open(self, path: str | os.PathLike) -> PyAVVideoHandle:
        """Open ``path``: ``FileNotFoundError`` if it does not exist, ``VideoDecodeError`` if unreadable."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"video file {path!r} does not exist")
        return PyAVVideoHandle(path, num_threads=self.num_threads, snap_to_keyframe=self.snap_to_keyframe)


# -- frame folders -------------------------------------------------------------------------------------------


def _split_template(filename_tmpl: str) -> tuple[str, str]:
    """The literal text before and after the one replacement field of ``filename_tmpl``."""
    try:
        parts = list(string.Formatter().parse(filename_tmpl))
        filename_tmpl.format(1)
    except (ValueError, IndexError, KeyError) as e:
        raise ValueError(
            "RawFrameDecoder: filename_tmpl must be a str.format template with one field for the frame "
            f"number, like 'img_{{:05}}.jpg', got {filename_tmpl!r} ({e})"
        ) from None
    fields = [p for p in parts if p[1] is not None]
    if len(fields) != 1 or "/" in filename_tmpl or os.sep in filename_tmpl:
        raise ValueError(
            "RawFrameDecoder: filename_tmpl must be a file name with exactly one field for the frame "
            f"number, like 'img_{{:05}}.jpg', got {filename_tmpl!r}"
        )
    k = parts.index(fields[0])
    prefix = "".join(p[0] for p in parts[: k + 1])
    suffix = "".join(p[0] for p in parts[k + 1 :])
    return prefix, suffix


class RawFrameVideoHandle(VideoHandle):
    """A folder of frame images, frame ``i`` in ``filename_tmpl.format(start_index + i)``."""

    def __init__(self, path: str, filename_tmpl: str, start_index: int):
        self.path = path
        self.filename_tmpl = filename_tmpl
        self.start_index = start_index
        self._prefix, self._suffix = _split_template(filename_tmpl)
        self._num_frames: int | None = None

    def _file(self, index: int) -> str:
        return os.path.join(self.path, self.filename_tmpl.format(self.start_index + index))

    def _missing(self, index: int) -> VideoDecodeError:
        return VideoDecodeError(
            f"frame {index} of {self.path!r} is missing: no file {self._file(index)!r} "
            f"(filename_tmpl={self.filename_tmpl!r}, start_index={self.start_index})"
        )

    @property
    def num_frames(self) -> int:
        """Files in the folder named like the template (its text before and after the frame number)."""
        if self._num_frames is None:
            pre, suf = self._prefix, self._suffix
            count = 0
            with os.scandir(self.path) as entries:
                for entry in entries:
                    name = entry.name
                    if len(name) > len(pre) + len(suf) and name.startswith(pre) and name.endswith(suf):
                        count += name[len(pre) : len(name) - len(suf)].strip().isdigit()
            if count == 0:
                raise VideoDecodeError(
                    f"cannot decode frame folder {self.path!r}: no files named like {self.filename_tmpl!r}"
                )
            self._num_frames = count
        return self._num_frames

    def _read(self, index: int) -> Tensor:
        # Pillow (libjpeg-turbo, libpng): torchvision's image decoding is deprecated since 0.29.
        from PIL import Image, UnidentifiedImageError  # lazy, as PyAV above

        path = self._file(index)
        try:
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB"))
        except (OSError, UnidentifiedImageError) as e:
            raise VideoDecodeError(
                f"cannot decode frame {index} of {self.path!r}: file {path!r} ({e})"
            ) from e
        return torch.from_numpy(array.copy())

    def get_frames(self, indices: np.ndarray, bounds: np.ndarray | None = None) -> Tensor:
        """The frames at ``indices`` as uint8 ``[len(indices), H, W, 3]`` RGB; each file is read once.

        An index past the folder's last file gets the last frame; a missing file inside the range is an error.
        ``bounds`` is ignored (every frame of a folder is equally cheap).
        """
        indices = _check_indices(indices, self.path)
        targets = indices.copy()
        for i in np.unique(indices).tolist():
            if not os.path.isfile(self._file(i)):
                if i < self.num_frames:
                    raise self._missing(i)
                targets[indices == i] = self.num_frames - 1
        wanted, inverse = np.unique(targets, return_inverse=True)
        if not os.path.isfile(self._file(int(wanted[-1]))):  # the last frame itself (numbering with gaps)
            raise self._missing(int(wanted[-1]))
        images = [self._read(i) for i in wanted.tolist()]
        shapes = {tuple(im.shape) for im in images}
        if len(shapes) > 1:
            raise VideoDecodeError(f"frames of {self.path!r} differ in size: {sorted(shapes)}")
        return torch.stack(images)[torch.from_numpy(inverse.reshape(-1))]


class RawFrameDecoder:
    """Read mmaction2 frame folders: frame ``i`` of a folder is ``filename_tmpl.format(start_index + i)``.

    JPEG and PNG frames are decoded with Pillow. ``num_frames`` counts the files named like the template;
    an index past the last one gets the last frame; a missing file in between raises ``VideoDecodeError``.

    Configured through ``VideoDataModule`` (used for rawframe lists, ``frame_dir total_frames label``)::

        data:
          class_path: reskd_lightning.data.VideoDataModule
          init_args:
            filename_tmpl: img_{:05}.jpg
            start_index: 1
    """

    def __init__(self, filename_tmpl: str = "img_{:05}.jpg", start_index: int = 1):
        if not isinstance(filename_tmpl, str):
            raise ValueError(f"RawFrameDecoder: filename_tmpl must be a string, got {filename_tmpl!r}")
        _split_template(filename_tmpl)
        if isinstance(start_index, bool) or not isinstance(start_index, int) or start_index < 0:
            raise ValueError(f"RawFrameDecoder: start_index must be an integer >= 0, got {start_index!r}")
        self.filename_tmpl = filename_tmpl
        self.start_index = start_index

    def __repr__(self) -> str:
        return f"{type(self).__name__}(filename_tmpl={self.filename_tmpl!r}, start_index={self.start_index})"

    def open(self, path: str | os.PathLike) -> RawFrameVideoHandle:
        """Open the frame folder ``path``: ``FileNotFoundError`` if it is not a folder."""
        path = os.fspath(path)
        if not os.path.isdir(path):
            raise FileNotFoundError(f"frame folder {path!r} does not exist")
        return RawFrameVideoHandle(path, self.filename_tmpl, self.start_index)


# -- torchcodec ----------------------------------------------------------------------------------------------

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
        indices = np.minimum(_check_indices(indices, self.path), self.num_frames - 1)
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
        self.num_threads = _check_threads("TorchCodecDecoder", num_threads)
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


# -- by name -------------------------------------------------------------------------------------------------

#: Decoders by name, for ``build_decoder`` and ``VideoDataModule(decoder=...)``.
DECODERS: dict[str, Callable[..., Any]] = {
    "pyav": PyAVDecoder,
    "rawframes": RawFrameDecoder,
    "torchcodec": TorchCodecDecoder,
}


def build_decoder(name: str, **kwargs: Any) -> Any:
    """The decoder registered as ``name``, built with ``kwargs``; an unknown name lists the known ones."""
    try:
        cls = DECODERS[name]
    except KeyError:
        raise ValueError(f"unknown video decoder {name!r}; known decoders are {sorted(DECODERS)}") from None
    try:
        return cls(**kwargs)
    except TypeError as e:  # an argument this decoder does not take
        raise TypeError(f"decoder {name!r} ({getattr(cls, '__name__', cls)}): {e}") from e
