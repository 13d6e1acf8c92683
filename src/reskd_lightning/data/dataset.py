"""A map-style video dataset: records -> sampled, decoded, augmented clips."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from reskd_lightning.data.annotations import VideoRecord
from reskd_lightning.data.decoders import VideoDecodeError
from reskd_lightning.data.sampling import SampleFrames


class VideoDataset(Dataset):
    """Videos as clips: ``dataset[i] = {"video": uint8 [C, T, H, W], "label": int, "index": i}``.

    Each item opens its video with ``decoder``, samples ``T = sampler.num_clips * sampler.clip_len`` frame
    indices from the video's length, decodes them, and applies ``transform`` to the ``[T, C, H, W]`` clip.
    Random choices (frames, crop, flip) come from torch's RNG, so ``seed_everything`` and Lightning's worker
    seeding make them reproducible. A multi-label record gives its first label.

    Errors: a missing or undecodable video stops with ``FileNotFoundError`` / ``VideoDecodeError`` naming the
    path, the record's index and ``source`` (the list file). This is deliberate: a corrupt video is reported,
    not silently skipped or replaced.

    Built by ``VideoDataModule``::

        data:
          class_path: reskd_lightning.data.VideoDataModule
          init_args:
            train_list: data/kinetics/train.txt
            num_segments: 8
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        sampler: SampleFrames,
        transform: Callable[[Tensor], Tensor] | None,
        decoder: Any,
        source: str = "",
    ):
        self.records = list(records)
        self.sampler = sampler
        self.transform = transform
        self.decoder = decoder
        self.source = source

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self)} videos from {self.source or 'records'!r}, "
            f"sampler={self.sampler!r}, decoder={self.decoder!r})"
        )

    def _where(self, index: int, path: str) -> str:
        return f"video {path!r} (record {index}" + (f" of {self.source!r})" if self.source else ")")

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Sample ``index``: ``{"video": uint8 [C, T, H, W], "label": int, "index": index}``."""
        record = self.records[index]
        # One numpy generator per call, seeded from torch's RNG, so frame sampling follows torch's seeding.
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
        try:
            with self.decoder.open(record.path) as video:
                num_frames = record.num_frames or video.num_frames
                frames = video.get_frames(self.sampler(num_frames, rng))
        except FileNotFoundError as e:
            raise FileNotFoundError(f"{self._where(index, record.path)} does not exist: {e}") from e
        except VideoDecodeError as e:
            raise VideoDecodeError(f"{self._where(index, record.path)} could not be decoded: {e}") from e
        clip = frames.permute(0, 3, 1, 2)  # [T, H, W, C] -> [T, C, H, W]
        if self.transform is not None:
            clip = self.transform(clip)
        return {
            "video": clip.permute(1, 0, 2, 3).contiguous(),  # [C, T, H, W]
            "label": record.labels[0],
            "index": index,
        }
