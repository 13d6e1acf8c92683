"""The ``"pyav"`` decoder: any container and codec FFmpeg reads, decoded sparsely through PyAV.

``PyAVVideoHandle`` seeks to the keyframe before each wanted frame and decodes forward only as far as needed,
finding frames by their pts on a ``Timeline`` (``pyav_timeline``); ``PyAVDecoder(snap_to_keyframe=True)``
moves each index to the nearest keyframe of the range it was drawn from, ``PyAVDecoder(sequential=True)``
decodes every request from the start (the reference ``reskd check-data --deep`` compares with). PyAV is
imported when a video is opened, not before.
"""

from __future__ import annotations

import os
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor

from reskd_lightning.data.decoders.base import VideoDecodeError, VideoHandle
from reskd_lightning.data.decoders.checks import check_bounds, check_indices, check_threads
from reskd_lightning.data.decoders.pyav_timeline import (
    Timeline,
    packed_b_frames,
    timeline_from_index,
    timeline_from_packets,
)


def ffmpeg_message(error: Exception, path: str | os.PathLike) -> str:
    """PyAV's message of ``error`` without the video's ``path``, which the message around it names already
    (``av.FFmpegError`` appends ``: '<file>'`` to FFmpeg's text when opening; other names, such as the
    ``'avcodec_send_packet()'`` of a decoding error, stay)."""
    return str(error).replace(f": {os.fspath(path)!r}", "")


class _Resync(Exception):
    """The timeline disagrees with what the decoder returned: fall back to a safer way of finding frames."""


class _Corrupt(Exception):
    """The decoder failed or flagged a frame corrupt (FFmpeg's ``AV_FRAME_FLAG_CORRUPT`` or decode error
    flags) while decoding along the timeline: decode from the start instead."""


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

    A failed packet or a frame FFmpeg flags corrupt while decoding along the timeline (after a seek: a
    stream whose later keyframes need parameter sets sent only earlier, as in spliced files) sends the handle
    straight to decoding from the start, noted in ``recovered``; a corrupt frame or a failure there too is a
    ``VideoDecodeError`` naming the frame. MPEG-4 Part 2 streams with packed B-frames (DivX/Xvid AVIs), whose
    timestamps do not say which frame the decoder returns, are always decoded from the start.

    ``frames_decoded`` and ``seeks`` count, since opening, the frames the decoder returned and the seeks made;
    ``recovered`` lists, one sentence each, the decoding problems the handle worked around.
    """

    def __init__(
        self, path: str, num_threads: int = 1, snap_to_keyframe: bool = False, sequential: bool = False
    ):
        import av  # lazy: only users of this decoder need PyAV

        self._av = av
        self.path = path
        self.num_threads = num_threads
        self.snap_to_keyframe = snap_to_keyframe
        self.frames_decoded = 0
        self.seeks = 0
        self.recovered: list[str] = []
        self._container: Any = None
        self._num_frames: int | None = None
        self._timeline: Timeline | None = None
        self._timeline_built = False
        self._packet_count: int | None = None  # counted by ``_scan``
        self._sequential = sequential  # count frames from the start, never seek (no usable timestamps)
        self._allow_skip = True
        self._open()

    def _fail(self, reason: str) -> VideoDecodeError:
        return VideoDecodeError(f"cannot decode video {self.path!r}: {reason}")

    def _open(self) -> None:
        self.close()
        try:
            self._container = self._av.open(self.path)
        except self._av.FFmpegError as e:
            raise self._fail(f"PyAV could not open it ({ffmpeg_message(e, self.path)})") from e
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

    def _get_timeline(self) -> Timeline | None:
        if not self._timeline_built:
            if self._packed_b_frames():
                self._timeline = None  # its frame count comes from the stream or a packet count
            else:
                self._timeline = timeline_from_index(self._container, self._stream)
                if self._timeline is None:
                    self._timeline = self._scan()
            self._sequential = self._sequential or self._timeline is None
            self._timeline_built = True
        return self._timeline

    def _packed_b_frames(self) -> bool:
        """An MPEG-4 Part 2 stream with packed B-frames (reads its first packet: the next decode reopens)."""
        if self._codec.name != "mpeg4":  # the only codec FFmpeg unpacks B-frames of
            return False
        self._fresh = False
        try:
            first = next(iter(self._container.demux(self._stream)), None)
        except self._av.FFmpegError:
            first = None
        header = bytes(first) if first is not None and first.size else None
        return packed_b_frames(self._codec.extradata, header)

    def _scan(self) -> Timeline | None:
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
            raise self._fail(f"PyAV could not read its packets ({ffmpeg_message(e, self.path)})") from e
        self._packet_count = len(pts)
        return timeline_from_packets(pts, key)

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
                    self._sequential = self._sequential or self._timeline is None
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
            where = f"after frame {self._last[0]}" if self._last else f"from keyframe {self._expect_first}"
            raise _Corrupt(f"a packet failed to decode {where} ({ffmpeg_message(e, self.path)})") from e
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
        if frame.is_corrupt:
            where = f"frame {index}" if index is not None else f"a frame at pts {frame.pts}"
            raise _Corrupt(f"{where} decoded corrupt from keyframe {self._expect_first}")
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
                    raise self._fail(f"PyAV could not read its packets ({ffmpeg_message(e, self.path)})") from e
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
                    reason = f"PyAV failed while decoding frame {self._next_index} ({ffmpeg_message(e, self.path)})"
                    raise self._fail(reason) from e
                if frame is None:
                    self._frames = None
                    if self._last is None:
                        raise self._fail("it has no decodable frames")
                    last_frame = self._last[1].to_ndarray(format="rgb24")
                    out.update((i, last_frame) for i in wanted[k:].tolist())
                    return out
                self.frames_decoded += 1
                if frame.is_corrupt:  # FFmpeg's AV_FRAME_FLAG_CORRUPT or decode error flags
                    raise self._fail(f"frame {self._next_index} decodes corrupt even from the start")
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
        indices = check_indices(indices, self.path)
        ranges = None
        if self.snap_to_keyframe and bounds is not None:
            ranges = check_bounds(bounds, len(indices), self.path)
        if not self._sequential:
            self._get_timeline()
        # grid -> exact scan -> sequential (straight there after a corrupt frame), and once without skipping:
        # each step at most once.
        for _ in range(5):
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
            except _Corrupt as e:
                self.recovered.append(f"{e}, so it decoded from the start instead")
                self._sequential = True
                self._open()
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

    The frames are those of a full sequential decode: where seeking cannot give them (a frame that decodes
    corrupt after a seek, timestamps that do not identify frames), the handle decodes from the start.

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
        sequential: Never seek: decode every request from the start, counting frames. Slow; the reference
            ``reskd check-data --deep`` compares the seeking decoder with.

    Configured through ``VideoDataModule``::

        data:
          class_path: reskd_lightning.data.VideoDataModule
          init_args:
            decoder: pyav
            decoder_threads: 1
            fast_decode: false   # true: PyAVDecoder(snap_to_keyframe=True)
    """

    def __init__(self, num_threads: int = 1, snap_to_keyframe: bool = False, sequential: bool = False):
        self.num_threads = check_threads("PyAVDecoder", num_threads)
        for name, value in (("snap_to_keyframe", snap_to_keyframe), ("sequential", sequential)):
            if not isinstance(value, bool):
                raise ValueError(f"PyAVDecoder: {name} must be True or False, got {value!r}")
        self.snap_to_keyframe = snap_to_keyframe
        self.sequential = sequential

    def __repr__(self) -> str:
        name = type(self).__name__
        return (
            f"{name}(num_threads={self.num_threads}, snap_to_keyframe={self.snap_to_keyframe}, "
            f"sequential={self.sequential})"
        )

    def open(self, path: str | os.PathLike) -> PyAVVideoHandle:
        """Open ``path``: ``FileNotFoundError`` if it does not exist, ``VideoDecodeError`` if unreadable."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"video file {path!r} does not exist")
        return PyAVVideoHandle(
            path, self.num_threads, snap_to_keyframe=self.snap_to_keyframe, sequential=self.sequential
        )
