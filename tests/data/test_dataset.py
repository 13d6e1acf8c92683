from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from reskd_lightning.data import (
    PyAVDecoder,
    SampleFrames,
    VideoDataset,
    VideoDecodeError,
    VideoRecord,
    build_train_transform,
    load_video_list,
)


def make_dataset(records: list[VideoRecord], source: str = "train.txt") -> VideoDataset:
    return VideoDataset(
        records, SampleFrames(num_clips=4), build_train_transform(64, 56), PyAVDecoder(), source=source
    )


def test_sample_is_a_uint8_clip_label_and_index(demo_root: Path) -> None:
    dataset = make_dataset(load_video_list(demo_root / "train.txt"))
    assert len(dataset) == 16
    sample = dataset[5]
    assert sample["video"].dtype == torch.uint8
    assert sample["video"].shape == (3, 4, 56, 56)  # [C, T, H, W]
    assert sample["label"] == 1 and sample["index"] == 5


def test_samples_follow_torch_seed(demo_root: Path) -> None:
    dataset = make_dataset(load_video_list(demo_root / "train.txt"))
    torch.manual_seed(3)
    a = dataset[0]["video"]
    torch.manual_seed(3)
    b = dataset[0]["video"]
    c = dataset[0]["video"]
    assert torch.equal(a, b) and not torch.equal(b, c)
    pickle.dumps(dataset)  # goes to spawned workers and DDP processes


def test_multi_label_record_gives_its_first_label(demo_root: Path) -> None:
    path = load_video_list(demo_root / "val.txt")[0].path
    assert make_dataset([VideoRecord(path, [2, 3])])[0]["label"] == 2


def test_missing_video_names_path_index_and_list(tmp_path: Path, demo_root: Path) -> None:
    good = load_video_list(demo_root / "val.txt")[0]
    dataset = make_dataset([good, VideoRecord(str(tmp_path / "lost.mp4"), 0)], source="lists/val.txt")
    with pytest.raises(FileNotFoundError, match=rf"'{tmp_path}/lost.mp4' \(record 1 of 'lists/val.txt'\)"):
        dataset[1]


def test_corrupt_video_stops_with_its_path_index_and_list(corrupt_video: Path) -> None:
    dataset = make_dataset([VideoRecord(str(corrupt_video), 0)], source="lists/train.txt")
    message = rf"'{corrupt_video}' \(record 0 of 'lists/train.txt'\) could not be decoded"
    with pytest.raises(VideoDecodeError, match=message):
        dataset[0]
