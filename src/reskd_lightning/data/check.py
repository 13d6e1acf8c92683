"""Find every unreadable video of a dataset, with the reason, before a long run finds them one by one.

``check_dataset(dataset)`` loads each record once, as training or evaluation would. With ``deep=True`` it
also reads frames the way training does (seeking, fresh handles, a few sampled positions) and compares them
with a sequential decode of the same video (``frames_match_sequential``): a video whose frames differ, or that
decoded right only after the decoder met decode errors and fell back to decoding from the start, is reported
too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from reskd_lightning.data.dataset import UNREADABLE, VideoDataset
from reskd_lightning.data.decoders import Decoder, PyAVDecoder
from reskd_lightning.data.decoders.base import failure_reason

#: Single-frame reads per video in a deep check (each from a fresh handle, as a training item opens one).
DEEP_SINGLE_READS = 8


@dataclass(frozen=True)
class UnreadableVideo:
    """One record that failed the check: its position, its file and why (``reason`` does not repeat the file:
    ``reskd check-data`` prints ``record <index>: <path>: <reason>``).

    ``wrong_frames`` (deep checks): the video reads, but its frames read by seeking differ from a sequential
    decode, or came right only after decode errors (the reason says which).
    """

    index: int
    path: str
    reason: str
    wrong_frames: bool = False


def reference_decoder(decoder: Any) -> Decoder | None:
    """The decoder a deep check compares ``decoder`` with: the same backend decoding from the start, never
    seeking. None where there is nothing to compare (frame folders, backends without a sequential mode)."""
    if isinstance(decoder, PyAVDecoder):
        return PyAVDecoder(num_threads=decoder.num_threads, sequential=True)
    return None


def _reads(dataset: VideoDataset, index: int, num_frames: int) -> list[tuple[str, np.ndarray]]:
    """What a deep check reads of record ``index``: single frames at sampled positions, then one clip drawn by
    the dataset's sampler; seeded by the record's position, so a report can be reproduced."""
    rng = np.random.default_rng(index)
    offset = dataset.records[index].offset
    singles = np.sort(rng.choice(num_frames, size=min(DEEP_SINGLE_READS, num_frames), replace=False))
    clip, _ = dataset.sampler.sample(num_frames, rng)
    return [("single-frame read", np.array([i + offset])) for i in singles] + [("clip read", clip + offset)]


def frames_match_sequential(dataset: VideoDataset, index: int, reference: Decoder) -> str | None:
    """Why record ``index``'s frames, read as training reads them, are not those of a sequential decode by
    ``reference``; None when they are. Unreadable videos raise (``UNREADABLE``)."""
    path = dataset.records[index].path
    with dataset.decoder.open(path) as video:
        num_frames = dataset.records[index].num_frames or video.num_frames
    got, recovered = [], []
    for what, indices in _reads(dataset, index, num_frames):
        with dataset.decoder.open(path) as video:  # a fresh handle per read, as each training item opens one
            got.append((what, indices, video.get_frames(indices)))
            recovered += video.recovered
    wanted = np.unique(np.concatenate([indices for _, indices, _ in got]))
    with reference.open(path) as video:
        expected = dict(zip(wanted.tolist(), video.get_frames(wanted)))
    differ = [
        (what, i, (frame.float() - expected[i].float()).abs().mean().item())
        for what, indices, frames in got
        for i, frame in zip(indices.tolist(), frames)
        if not torch.equal(frame, expected[i])
    ]
    if differ:
        what, i, diff = differ[0]
        total = sum(len(indices) for _, indices, _ in got)
        return (
            f"frames read by seeking differ from a sequential decode: frame {i} ({what}) by {diff:.1f} "
            f"(mean absolute difference, 0-255), {len(differ)} of {total} frames read"
        )
    if recovered:
        return (
            f"decoding by seeking failed ({recovered[0]}): the frames are right, but reads that seek there "
            f"decode the video from the start (slow); re-encoding the video fixes it"
        )
    return None


class _Probe(Dataset):
    """Item ``i``: ``None`` when record ``i`` loads (decode + transform, no retries) and, with a ``reference``
    decoder, reads the same frames by seeking as sequentially; else the failure."""

    def __init__(self, dataset: VideoDataset, reference: Decoder | None = None):
        self.dataset = dataset
        self.reference = reference

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> UnreadableVideo | None:
        path = self.dataset.records[index].path
        try:
            self.dataset.load(index)
            reason = None
            if self.reference is not None:
                reason = frames_match_sequential(self.dataset, index, self.reference)
        except UNREADABLE as e:
            return UnreadableVideo(index, path, failure_reason(e, path))
        return None if reason is None else UnreadableVideo(index, path, reason, wrong_frames=True)


def _keep(item: Any) -> Any:
    return item


def check_dataset(
    dataset: VideoDataset,
    num_workers: int = 0,
    progress: Callable[[int, int], None] | None = None,
    deep: bool = False,
) -> list[UnreadableVideo]:
    """Load every record of ``dataset`` once (as training or evaluation would) and list those that fail.

    Missing files, containers FFmpeg cannot open, streams without frames and frames that fail to decode are
    reported; any other exception (a bug, not bad data) propagates. ``deep`` also compares frames read by
    seeking with a sequential decode (``frames_match_sequential``; PyAV datasets only, a full decode of each
    video: slow). ``num_workers`` loader processes share the work; ``progress(done, total)`` is called after
    each record.
    """
    reference = reference_decoder(dataset.decoder) if deep else None
    probe = _Probe(dataset, reference)
    loader = DataLoader(probe, batch_size=None, num_workers=num_workers, collate_fn=_keep)
    failures: list[UnreadableVideo] = []
    for done, item in enumerate(loader, start=1):
        if item is not None:
            failures.append(item)
        if progress is not None:
            progress(done, len(dataset))
    return failures
