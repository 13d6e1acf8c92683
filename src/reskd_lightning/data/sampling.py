"""Which frames of a video make a clip: mmaction2's ``SampleFrames``."""

from __future__ import annotations

import numpy as np


class SampleFrames:
    """Sample ``num_clips`` clips of ``clip_len`` frames, ``frame_interval`` apart, as mmaction2 does.

    With ``clip_len=1`` this is TSN's segment sampling: the video is cut into ``num_clips`` segments and one
    frame is taken from each, at random when training and at the segment's centre when testing. With
    ``clip_len > 1`` each clip is a run of frames (SlowOnly, I3D). Indices past the end of a short video loop
    back to the start (``out_of_bound="loop"``, mmaction2's default) or repeat the clip's last frame inside the
    video (``"repeat_last"``). The formulas are mmaction2 0.x's, which the paper's code uses.

    mmaction2's options:

    * ``twice_sample`` (test mode; TSM's test recipe): the segments' starts as well as their centres, so
      ``2 * num_clips`` clips, the centre clips first (``num_clips_out``). A video shorter than one clip gives
      its ``num_clips`` zero-offset clips twice (mmaction2 gives them once; as two equal views they average to
      the same prediction);
    * ``keep_tail_frames`` (training): offsets ``int(i * avg + U(0, avg))`` with the float ``avg = (num_frames -
      clip_len * frame_interval + 1) / num_clips``, so the last frames can be drawn too;
    * ``temporal_jitter``: each frame index moves by a random ``0 .. frame_interval - 1`` before the
      out-of-bound rule (random in test mode too, as mmaction2; the DataModule sets it for training only).

    Reads the video's ``num_frames``; gives ``num_clips_out * clip_len`` frame indices, clip after clip.
    ``sample`` also gives each index the range it was drawn from, which a decoder in keyframe mode may pick
    any frame of (``PyAVDecoder(snap_to_keyframe=True)``).

    Configured through ``VideoDataModule``::

        data:
          class_path: reskd_lightning.data.VideoDataModule
          init_args:
            num_segments: 8     # SampleFrames.num_clips
            clip_len: 1
            frame_interval: 1
            twice_sample: false       # test views
            keep_tail_frames: false   # training
            temporal_jitter: false    # training
    """

    OUT_OF_BOUND = ("loop", "repeat_last")

    def __init__(
        self,
        clip_len: int = 1,
        frame_interval: int = 1,
        num_clips: int = 8,
        test_mode: bool = False,
        out_of_bound: str = "loop",
        twice_sample: bool = False,
        keep_tail_frames: bool = False,
        temporal_jitter: bool = False,
    ):
        args = (("clip_len", clip_len), ("frame_interval", frame_interval), ("num_clips", num_clips))
        for name, value in args:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"SampleFrames: {name} must be a positive integer, got {value!r}")
        flags = (
            ("test_mode", test_mode),
            ("twice_sample", twice_sample),
            ("keep_tail_frames", keep_tail_frames),
            ("temporal_jitter", temporal_jitter),
        )
        for name, value in flags:
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"SampleFrames: {name} must be true or false, got {value!r}")
        self.twice_sample = bool(twice_sample)
        self.keep_tail_frames = bool(keep_tail_frames)
        self.temporal_jitter = bool(temporal_jitter)
        self._clip_len = int(clip_len)
        self.frame_interval = int(frame_interval)
        self._num_clips = int(num_clips)
        self.test_mode = bool(test_mode)
        if out_of_bound not in self.OUT_OF_BOUND:
            raise ValueError(f"SampleFrames: out_of_bound must be one of {self.OUT_OF_BOUND}, got {out_of_bound!r}")
        self.out_of_bound = out_of_bound

    @property
    def clip_len(self) -> int:
        """Frames in one clip."""
        return self._clip_len

    @property
    def num_clips(self) -> int:
        """Clips (segments) sampled from one video."""
        return self._num_clips

    @property
    def samples_twice(self) -> bool:
        """True when the clips are sampled twice (``twice_sample`` in test mode): centres, then starts."""
        return self.twice_sample and self.test_mode

    @property
    def num_clips_out(self) -> int:
        """Clips one video gives: ``num_clips``, doubled by ``twice_sample`` in test mode."""
        return self._num_clips * (2 if self.samples_twice else 1)

    @property
    def num_frames_out(self) -> int:
        """Frames in one sample: ``num_clips_out * clip_len`` (the clip tensor's T)."""
        return self.num_clips_out * self._clip_len

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(clip_len={self.clip_len}, frame_interval={self.frame_interval}, "
            f"num_clips={self.num_clips}, test_mode={self.test_mode}, out_of_bound={self.out_of_bound!r}, "
            f"twice_sample={self.twice_sample}, keep_tail_frames={self.keep_tail_frames}, "
            f"temporal_jitter={self.temporal_jitter})"
        )

    def _train_offsets(self, num_frames: int, ori_clip_len: int, rng: np.random.Generator) -> np.ndarray:
        num_clips = self.num_clips
        if self.keep_tail_frames:
            avg = (num_frames - ori_clip_len + 1) / float(num_clips)
            if num_frames > ori_clip_len - 1:
                return (np.arange(num_clips) * avg + rng.uniform(0, avg, num_clips)).astype(np.int64)
            return np.zeros(num_clips, dtype=np.int64)
        avg_interval = (num_frames - ori_clip_len + 1) // num_clips
        if avg_interval > 0:
            return np.arange(num_clips) * avg_interval + rng.integers(avg_interval, size=num_clips)
        if num_frames > max(num_clips, ori_clip_len):
            return np.sort(rng.integers(num_frames - ori_clip_len + 1, size=num_clips))
        if avg_interval == 0:
            ratio = (num_frames - ori_clip_len + 1.0) / num_clips
            return np.around(np.arange(num_clips) * ratio)
        return np.zeros(num_clips, dtype=np.int64)

    def _test_offsets(self, num_frames: int, ori_clip_len: int) -> np.ndarray:
        num_clips = self.num_clips
        avg_interval = (num_frames - ori_clip_len + 1) / float(num_clips)
        if num_frames > ori_clip_len - 1:
            starts = np.arange(num_clips) * avg_interval
            centres = (starts + avg_interval / 2.0).astype(np.int64)
            # mmaction2 keeps the starts as floats until its final int cast; they are >= 0, so flooring now is the same.
            return np.concatenate([centres, starts.astype(np.int64)]) if self.samples_twice else centres
        return np.zeros(self.num_clips_out, dtype=np.int64)

    def __call__(self, num_frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Frame indices (int64, shape ``[num_clips * clip_len]``, in ``[0, num_frames)``) for one video."""
        return self.sample(num_frames, rng)[0]

    def sample(self, num_frames: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Frame indices, as ``__call__``, and for each the range ``[lo, hi)`` it was drawn from, ``[N, 2]``.

        A TSN training segment (``clip_len == 1``) gives its whole segment; every other index gives only
        itself (``hi = lo + 1``).
        """
        if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames <= 0:
            raise ValueError(f"SampleFrames: num_frames must be a positive integer, got {num_frames!r}")
        num_frames = int(num_frames)
        ori_clip_len = self.clip_len * self.frame_interval
        if rng is None and (self.temporal_jitter or not self.test_mode):
            rng = np.random.default_rng()
        if self.test_mode:
            offsets = self._test_offsets(num_frames, ori_clip_len)
        else:
            offsets = self._train_offsets(num_frames, ori_clip_len, rng)  # type: ignore[arg-type]
        steps = np.arange(self.clip_len, dtype=np.int64) * self.frame_interval
        indices = offsets.astype(np.int64)[:, None] + steps  # [num_clips_out, clip_len]
        if self.temporal_jitter:
            indices = indices + rng.integers(self.frame_interval, size=indices.shape)  # type: ignore[union-attr]
        if self.out_of_bound == "loop":
            indices = np.mod(indices, num_frames)
        else:  # repeat_last: past the end, repeat the clip's last frame inside the video
            inside = indices < num_frames
            last = np.max(np.where(inside, indices, 0), axis=1, keepdims=True)
            indices = np.where(inside, indices, last)
        indices = indices.reshape(-1)
        bounds = np.stack([indices, indices + 1], axis=1)
        if self.test_mode or self.clip_len != 1 or self.temporal_jitter:
            return indices, bounds
        segment = np.arange(self.num_clips, dtype=np.int64)
        if self.keep_tail_frames:
            avg = (num_frames - ori_clip_len + 1) / float(self.num_clips)
            if avg > 0:  # index i lies in [floor(i * avg), ceil((i + 1) * avg))
                starts = np.minimum(np.floor(segment * avg).astype(np.int64), indices)
                ends = np.maximum(np.ceil((segment + 1) * avg).astype(np.int64), indices + 1)
                bounds = np.stack([starts, np.minimum(ends, num_frames)], axis=1)
        else:
            avg_interval = (num_frames - ori_clip_len + 1) // self.num_clips
            if avg_interval > 0:
                starts = segment * avg_interval
                bounds = np.stack([starts, starts + avg_interval], axis=1)
        return indices, bounds


def split_views(indices: np.ndarray, num_views: int, clip_len: int, twice: bool = False) -> np.ndarray:
    """Deal ``num_views * S`` sampled clips into ``num_views`` views of ``S`` clips, ``[num_views, S * clip_len]``.

    The clips of a test ``SampleFrames(num_clips=S * num_views, test_mode=True)`` are spread evenly over the
    video; view ``v`` takes clips ``v, v + num_views, ...``, so every view spans the whole video: for TSN, ``V``
    differently offset sets of ``S`` segments; for 3D models (``S = 1``), ``V`` clips along the video.

    ``twice``: the clips of a ``twice_sample`` sampler (``samples_twice``), centres then starts; each half is
    dealt alike, giving ``2 * num_views`` views, the centre views first (mmaction2's TSM test: 2 views of S).
    """
    indices = np.asarray(indices).reshape(-1, clip_len)
    groups = 2 if twice else 1
    if num_views < 1 or len(indices) % (num_views * groups):
        raise ValueError(f"cannot deal {len(indices)} clips into {num_views * groups} views of equal length")
    dealt = indices.reshape(groups, -1, num_views, clip_len).transpose(0, 2, 1, 3)
    return dealt.reshape(groups * num_views, -1)
