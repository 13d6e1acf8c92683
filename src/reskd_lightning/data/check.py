"""Find every unreadable video of a dataset, with the reason, before a long run finds them one by one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch.utils.data import DataLoader, Dataset

from reskd_lightning.data.dataset import UNREADABLE, VideoDataset


@dataclass(frozen=True)
class UnreadableVideo:
    """One record that could not be read: its position, its file and why."""

    index: int
    path: str
    reason: str


class _Probe(Dataset):
    """Item ``i``: ``None`` when record ``i`` loads (decode + transform, no retries), else the failure."""

    def __init__(self, dataset: VideoDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> UnreadableVideo | None:
        try:
            self.dataset.load(index)
        except UNREADABLE as e:
            return UnreadableVideo(index, self.dataset.records[index].path, f"{type(e).__name__}: {e}")
        return None


def _keep(item: Any) -> Any:
    return item


def check_dataset(
    dataset: VideoDataset, num_workers: int = 0, progress: Callable[[int, int], None] | None = None
) -> list[UnreadableVideo]:
    """Load every record of ``dataset`` once (as training or evaluation would) and list those that fail.

    Missing files, containers FFmpeg cannot open, streams without frames and frames that fail to decode are
    reported; any other exception (a bug, not bad data) propagates. ``num_workers`` loader processes share
    the work; ``progress(done, total)`` is called after each record.
    """
    loader = DataLoader(_Probe(dataset), batch_size=None, num_workers=num_workers, collate_fn=_keep)
    failures: list[UnreadableVideo] = []
    for done, item in enumerate(loader, start=1):
        if item is not None:
            failures.append(item)
        if progress is not None:
            progress(done, len(dataset))
    return failures
