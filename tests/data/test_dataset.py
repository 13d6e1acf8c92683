from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
import torch

from reskd_lightning.data import (
    PyAVDecoder,
    SampleFrames,
    VideoDataset,
    VideoDecodeError,
    VideoRecord,
    TooManyFailedVideos,
    build_test_transform,
    build_train_transform,
    load_video_list,
)


def make_dataset(records: list[VideoRecord], source: str = "train.txt", **kwargs: Any) -> VideoDataset:
    return VideoDataset(
        records, SampleFrames(num_clips=4), build_train_transform(64, 56), PyAVDecoder(), source=source, **kwargs
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


def test_multi_label_record_gives_a_random_label_or_a_multi_hot_target(demo_root: Path) -> None:
    path = load_video_list(demo_root / "val.txt")[0].path
    training = make_dataset([VideoRecord(path, [2, 3])])
    assert {training[0]["label"] for _ in range(20)} == {2, 3}  # the paper: one label at random per draw
    evaluation = make_dataset([VideoRecord(path, [2, 3])], multi_label=True, num_classes=5)
    assert evaluation[0]["label"].tolist() == [0.0, 0.0, 1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="multi_label targets need num_classes"):
        make_dataset([VideoRecord(path, 0)], multi_label=True)


def test_missing_video_names_path_index_and_list(tmp_path: Path, demo_root: Path) -> None:
    good = load_video_list(demo_root / "val.txt")[0]
    dataset = make_dataset([good, VideoRecord(str(tmp_path / "lost.mp4"), 0)], source="lists/val.txt", max_retries=0)
    with pytest.raises(FileNotFoundError, match=rf"'{tmp_path}/lost.mp4' \(record 1 of 'lists/val.txt'\)"):
        dataset[1]


def test_corrupt_video_stops_with_its_path_index_and_list(corrupt_video: Path) -> None:
    dataset = make_dataset([VideoRecord(str(corrupt_video), 0)], source="lists/train.txt", max_retries=0)
    message = rf"'{corrupt_video}' \(record 0 of 'lists/train.txt'\) could not be decoded"
    with pytest.raises(VideoDecodeError, match=message) as raised:
        dataset[0]
    # The decoder's reason follows, without the path again: the line names the video once.
    assert str(raised.value).count(str(corrupt_video)) == 1 and "PyAV could not open it" in str(raised.value)


def test_a_run_of_unreadable_videos_stops_after_max_retries(tmp_path: Path, corrupt_video: Path) -> None:
    records = [VideoRecord(str(corrupt_video), 0)] * 3
    dataset = make_dataset(records, max_retries=2, max_failed_fraction=1.0)
    with pytest.raises(TooManyFailedVideos, match=r"3 videos in a row could not be read \(max_retries=2\)"):
        dataset[0]


def test_test_views_stack_clips_and_crops(demo_root: Path) -> None:
    records = load_video_list(demo_root / "val.txt")
    dataset = VideoDataset(
        records, SampleFrames(num_clips=4 * 2, test_mode=True), build_test_transform(64, 56, "three"), PyAVDecoder(),
        num_views=2,
    )  # fmt: skip
    video = dataset[0]["video"]
    assert video.shape == (2 * 3, 3, 4, 56, 56)
    with pytest.raises(ValueError, match="num_views=3 must divide the sampler's num_clips \\(8\\)"):
        VideoDataset(records, SampleFrames(num_clips=8), None, PyAVDecoder(), num_views=3)


def test_twice_sampled_test_views_double_and_need_num_views(demo_root: Path) -> None:
    # A twice_sample sampler's clips are two sets (centres, starts; mmaction/datasets/pipelines/loading.py:200-201
    # (CVMI-Lab/ResKD)), each dealt into num_views views: 2 x 2 views x 3 crops.
    records = load_video_list(demo_root / "val.txt")
    sampler = SampleFrames(num_clips=4 * 2, test_mode=True, twice_sample=True)
    dataset = VideoDataset(records, sampler, build_test_transform(64, 56, "three"), PyAVDecoder(), num_views=2)
    assert dataset[0]["video"].shape == (2 * 2 * 3, 3, 4, 56, 56)
    with pytest.raises(ValueError, match="a twice_sample sampler gives two sets of clips, which are views"):
        VideoDataset(records, sampler, None, PyAVDecoder())
