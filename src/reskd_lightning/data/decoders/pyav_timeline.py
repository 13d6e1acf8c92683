"""Where the frames of a PyAV video stream lie: the ``Timeline`` of ``PyAVVideoHandle``, and how it is built.

Two sources, tried in this order by the handle: the container's own index (``timeline_from_index``: MP4's
per-frame index, or Matroska cues plus a constant frame rate), else one scan of the packets
(``timeline_from_packets``: exact pts for any frame rate). Some streams have no usable timeline at all:
``packed_b_frames`` finds MPEG-4 Part 2 streams whose B-frames are packed (DivX/Xvid AVIs), where the decoder
hands back frames whose pts are not the display order the packets' pts promise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

_AVINDEX_KEYFRAME = 1  # libavformat's AVIndexEntry flags
_AVINDEX_DISCARD_FRAME = 2

# FFmpeg's MPEG-4 decoder unpacks B-frames when the VOL's user data reads "DivX<ver>b<build>p" or
# "DivX<ver>Build<build>p" (libavcodec/mpeg4videodec.c, decode_user_data: sscanf "DivX%db%d%c", last == 'p').
_DIVX_PACKED = re.compile(rb"DivX\d+(?:Build|b)\d+p")


@dataclass
class Timeline:
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


def timeline_from_index(container: Any, stream: Any) -> Timeline | None:
    """A timeline from the container's index, or None when it has none fit for one.

    May seek ``container`` (to read Matroska's cues): the caller repositions before decoding.
    """
    import av  # lazy, as in pyav.py: only users of this decoder need PyAV

    entries = stream.index_entries
    if len(entries) < 2:
        # Matroska reads its cues (its keyframe index, at the end of the file) on the first seek only.
        try:
            container.seek(int(stream.start_time or 0), backward=True, stream=stream)
        except av.FFmpegError:
            return None
        entries = stream.index_entries
    entries = [e for e in entries if not e.flags & _AVINDEX_DISCARD_FRAME]
    if len(entries) < 2 or not stream.average_rate or stream.time_base is None:
        return None
    ts = np.array([e.timestamp for e in entries], dtype=np.float64)
    key = np.array([bool(e.flags & _AVINDEX_KEYFRAME) for e in entries])
    start = float(stream.start_time or 0)
    if key.all():  # keyframes only (Matroska cues, pts): a constant-rate grid from the stream's rate
        if container.duration is None:
            # No cues, and no duration either (a live recording): these are just the keyframes read so
            # far, and frames far from them would be decoded from the last known one.
            return None
        step = float(1 / (stream.average_rate * stream.time_base))
        x = (ts - start) / step
        if np.abs(x - np.round(x)).max() >= 0.25 or x.min() < 0:
            return None
        count = int(stream.frames or 0)
        return Timeline(np.unique(np.round(x).astype(np.int64)), count or None, start=start, step=step)
    # One entry per frame (MP4), with decode timestamps: constant steps mean a constant frame rate, and
    # a keyframe's (closed-GOP) place in display order is its place in decode order. Both are checked
    # against the decoder's output. A partial index (fragmented MP4) fails the count check.
    if not key[0] or len(entries) != stream.frames:
        return None
    diffs = np.diff(np.sort(ts))
    step = float(np.median(diffs))
    if step <= 0 or np.abs(diffs - step).max() > max(1.0, 0.01 * step):
        return None
    return Timeline(np.flatnonzero(key), len(entries), start=start, step=step)


def timeline_from_packets(pts: list[int | None], key: list[bool]) -> Timeline | None:
    """An exact timeline from each packet's pts and keyframe flag (demux order); None without usable pts."""
    if not pts or any(p is None for p in pts):
        return None
    order = np.argsort(np.array(pts, dtype=np.int64), kind="stable")
    sorted_pts = np.array(pts, dtype=np.int64)[order]
    if np.any(np.diff(sorted_pts) <= 0):  # repeated pts: frames cannot be told apart by time
        return None
    keyframes = np.flatnonzero(np.array(key)[order])
    return Timeline(keyframes, len(pts), pts=sorted_pts)


def packed_b_frames(extradata: bytes | None, first_packet: bytes | None) -> bool:
    """Whether an MPEG-4 Part 2 stream packs its B-frames (DivX 5 / Xvid "packed bitstream" AVIs), from its
    extradata and first packet (the stream's header with its user data, where FFmpeg looks for the mark).

    Such a file stores a P-frame and the next B-frame in one packet, then an almost empty "N-VOP" packet; the
    decoder returns the B-frame a packet later than the packets' pts say, with the pts of another packet, so
    frames found by pts come out one off (frame i+1 for frame i, about a third of them with two B-frames).
    """
    return any(data and _DIVX_PACKED.search(data) for data in (extradata, first_packet))
