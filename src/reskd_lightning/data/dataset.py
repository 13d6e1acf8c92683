"""A map-style video dataset: records -> sampled, decoded, augmented clips."""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, default_collate

from reskd_lightning.data.annotations import VideoRecord, to_multi_hot
from reskd_lightning.data.decoders import VideoDecodeError
from reskd_lightning.data.decoders.base import failure_reason
from reskd_lightning.data.resumable import SampleKey
from reskd_lightning.data.sampling import SampleFrames, split_views

#: Errors that make a video unreadable; anything else (a bug, a bad transform) is never retried.
UNREADABLE = (FileNotFoundError, VideoDecodeError)

#: The key of an item (and of a collated batch) that marks unreadable evaluation videos: an item
#: ``{"index": i, UNREADABLE_KEY: True}``, a batch ``{..., UNREADABLE_KEY: LongTensor of their indices}``.
UNREADABLE_KEY = "unreadable"

log = logging.getLogger(__name__)


class TooManyFailedVideos(RuntimeError):
    """More videos of a dataset failed to decode than its ``max_failed_fraction`` allows."""


class VideoDataset(Dataset):
    """Videos as clips: ``dataset[i] = {"video": uint8 [C, T, H, W], "label", "index", "retries"}``.

    Each item opens its video (or frame folder) with ``decoder``, samples ``T = sampler.num_frames_out``
    (``num_clips * clip_len``) frame indices from its length, decodes only those frames, and applies ``transform`` to
    the ``[T, C, H, W]`` clip. Random choices (frames, crop, flip, label, stand-in records) come from torch's RNG:
    ``dataset[i]`` draws from it as it is (``torch.manual_seed`` makes it reproducible); ``dataset[SampleKey(i,
    seed)]`` (what the training loader's :class:`~reskd_lightning.data.resumable.ResumableSampler` yields) draws
    from it reseeded with ``seed`` and restores it afterwards, so a training sample is the same whichever worker or
    process loads it, and a run resumed mid-epoch draws what the uninterrupted run drew.

    Test views: with ``num_views=V`` the sampler's clips are dealt into ``V`` views (``split_views``), the
    ``transform`` must give ``[crops, T, C, H, W]`` per view (``build_test_transform``), and ``video`` is
    ``[V * crops, C, T, H, W]``; the module averages softmax over them. A ``twice_sample`` sampler
    (``sampler.samples_twice``) doubles the views: ``[2 * V * crops, C, T, H, W]``, its centre clips' views
    first, then its start clips' (it needs ``num_views``; 1 for a single set of clips).

    Labels: a record with several labels (ActivityNet, FCVID) gives one of them at random each time it is
    drawn when ``multi_label`` is False (the paper's training), and a multi-hot float vector of ``num_classes``
    when ``multi_label`` is True (mAP evaluation).

    Unreadable videos (missing, corrupt, truncated, no frames) are logged (a warning of the
    ``reskd_lightning.data.dataset`` logger naming the file and the reason, every time one fails, so once per
    epoch for each). For training (``replace_unreadable=True``) the item then takes another record at random,
    at most ``max_retries`` times in a row; ``retries`` counts the failures before the returned record
    (``index`` is the returned record's position). For evaluation (``replace_unreadable=False``: validation,
    test, predict) a stand-in would be scored as the video it replaces, so the item is ``{"index": i,
    "unreadable": True}`` instead, which :func:`collate_readable` leaves out of the batch (listing its index
    under ``"unreadable"``) and the module counts, never scores. Once more than
    ``max_failed_fraction`` of this process group's share of the set (``len / world_size``) has failed, it
    raises ``TooManyFailedVideos``. ``max_retries=0`` raises the first error, naming the file, the record and
    ``source``. Failures are counted across loader workers (a shared-memory mask).

    Built by ``VideoDataModule``::

        data:
          class_path: reskd_lightning.data.VideoDataModule
          init_args:
            train_list: data/kinetics/train.txt
            num_segments: 8
            max_retries: 10
            max_failed_fraction: 0.01
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        sampler: SampleFrames,
        transform: Callable[[Tensor], Tensor] | None,
        decoder: Any,
        source: str = "",
        *,
        num_views: int | None = None,
        multi_label: bool = False,
        num_classes: int | None = None,
        max_retries: int = 10,
        max_failed_fraction: float = 0.01,
        world_size: int = 1,
        replace_unreadable: bool = True,
    ):
        if multi_label and not num_classes:
            raise ValueError("VideoDataset: multi_label targets need num_classes")
        if max_retries < 0:
            raise ValueError(f"VideoDataset: max_retries must be >= 0, got {max_retries!r}")
        if not 0 <= max_failed_fraction <= 1:
            raise ValueError(f"VideoDataset: max_failed_fraction must lie in [0, 1], got {max_failed_fraction!r}")
        if num_views is not None and (num_views < 1 or sampler.num_clips % num_views):
            raise ValueError(
                f"VideoDataset: num_views={num_views!r} must divide the sampler's num_clips ({sampler.num_clips})"
            )
        if num_views is None and sampler.samples_twice:
            raise ValueError(
                "VideoDataset: a twice_sample sampler gives two sets of clips, which are views: give num_views "
                "(1 for one set of num_clips clips)"
            )
        self.records = list(records)
        self.sampler = sampler
        self.transform = transform
        self.decoder = decoder
        self.source = source
        self.num_views = num_views
        self.multi_label = multi_label
        self.num_classes = num_classes
        self.max_retries = int(max_retries)
        self.max_failed_fraction = float(max_failed_fraction)
        self.world_size = max(1, int(world_size))
        self.replace_unreadable = bool(replace_unreadable)
        # Shared with the loader's workers (fork or spawn), so the fraction counts every worker's failures.
        self.failed = torch.zeros(len(self.records), dtype=torch.bool).share_memory_()

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self)} videos from {self.source or 'records'!r}, "
            f"sampler={self.sampler!r}, decoder={self.decoder!r})"
        )

    def _where(self, index: int, path: str) -> str:
        return f"video {path!r} (record {index}" + (f" of {self.source!r})" if self.source else ")")

    # -- one record ---------------------------------------------------------------------------

    def _label(self, record: VideoRecord) -> Any:
        labels = record.labels
        if self.multi_label:
            return to_multi_hot(labels, self.num_classes)  # type: ignore[arg-type]
        if len(labels) == 1 or self.num_views is not None or self.sampler.test_mode:
            return labels[0]
        return labels[int(torch.randint(len(labels), (1,)))]

    def load(self, index: int) -> dict[str, Any]:
        """Record ``index`` as a sample, without retries; unreadable videos raise naming the file."""
        record = self.records[index]
        # One numpy generator per call, seeded from torch's RNG, so frame sampling follows torch's seeding.
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
        try:
            with self.decoder.open(record.path) as video:
                num_frames = record.num_frames or video.num_frames
                indices, bounds = self.sampler.sample(num_frames, rng)
                offset = record.offset
                frames = video.get_frames(indices + offset, bounds=bounds + offset)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"{self._where(index, record.path)} does not exist") from e
        except VideoDecodeError as e:
            why = failure_reason(e, record.path)  # the decoder's reason, without the path named again
            raise VideoDecodeError(f"{self._where(index, record.path)} could not be decoded: {why}") from e
        clip = frames.permute(0, 3, 1, 2)  # [T, H, W, C] -> [T, C, H, W]
        if self.num_views is None:
            if self.transform is not None:
                clip = self.transform(clip)
            video = clip.permute(1, 0, 2, 3)  # [C, T, H, W]
        else:
            # Every view's frames were decoded once above; ``split_views`` deals them into views.
            positions = split_views(
                np.arange(len(indices)), self.num_views, self.sampler.clip_len, twice=self.sampler.samples_twice
            )
            views = [clip[torch.from_numpy(p)] for p in positions]
            if self.transform is not None:
                views = [self.transform(v) for v in views]  # each [crops, T, C, H, W]
            else:
                views = [v.unsqueeze(0) for v in views]
            video = torch.cat(views).permute(0, 2, 1, 3, 4)  # [V * crops, C, T, H, W]
        return {"video": video.contiguous(), "label": self._label(record), "index": index}

    # -- retries ------------------------------------------------------------------------------

    def _note_failure(self, index: int, error: Exception) -> None:
        """Count the failure (raising past ``max_failed_fraction``) and log it, naming the video."""
        self.failed[index] = True
        failed = int(self.failed.sum())
        share = len(self) / self.world_size
        if failed > self.max_failed_fraction * share:
            raise TooManyFailedVideos(
                f"{failed} of {len(self)} videos of {self.source or 'the dataset'!r} could not be read, more than "
                f"max_failed_fraction={self.max_failed_fraction} of {share:.0f}; the last: {error}. "
                f"List every unreadable video with `reskd check-data --config <your config>`"
            ) from error
        what = "another record is used instead" if self.replace_unreadable else "it is left out of the evaluation"
        log.warning("unreadable video (%d so far), %s: %s", failed, what, error)

    def __getitem__(self, key: int | SampleKey) -> dict[str, Any]:
        """Sample ``key`` (an index, or a ``SampleKey`` whose seed fixes the random choices); if its video is
        unreadable: another record's, drawn at random, or, for evaluation, the unreadable marker."""
        if isinstance(key, SampleKey):
            with torch.random.fork_rng(devices=[]):  # the CPU RNG only; restored on exit
                torch.default_generator.manual_seed(key.seed)  # not torch.manual_seed: it reseeds CUDA too
                return self._draw(int(key.index))
        return self._draw(int(key))

    def _draw(self, index: int) -> dict[str, Any]:
        """Sample ``index`` with torch's RNG as it is, retrying unreadable videos (``__getitem__``)."""
        retries = 0
        current = index
        while True:
            try:
                sample = self.load(current)
            except UNREADABLE as e:
                if self.max_retries == 0:
                    raise
                self._note_failure(current, e)
                if not self.replace_unreadable:
                    return {"index": index, UNREADABLE_KEY: True}
                retries += 1
                if retries > self.max_retries:
                    raise TooManyFailedVideos(
                        f"{retries} videos in a row could not be read (max_retries={self.max_retries}) while "
                        f"loading record {index} of {self.source or 'the dataset'!r}; the last: {e}"
                    ) from e
                current = int(torch.randint(len(self), (1,)))
                continue
            sample["retries"] = retries
            return sample


def collate_readable(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Collate an evaluation batch without its unreadable videos: ``batch["unreadable"]`` holds their indices
    (empty when all were read); a batch of unreadable videos only has no ``video``."""
    readable = [s for s in samples if not s.get(UNREADABLE_KEY)]
    batch: dict[str, Any] = default_collate(readable) if readable else {}
    batch[UNREADABLE_KEY] = torch.tensor([int(s["index"]) for s in samples if s.get(UNREADABLE_KEY)], dtype=torch.long)
    return batch
