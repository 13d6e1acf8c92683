"""Every dataset format through ``VideoDataModule``: the lists a user of each benchmark has."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from reskd_lightning import ResKDModule
from reskd_lightning.data import VideoDataModule, load_video_list
from reskd_lightning.models import TSN

TINY = dict(short_side=64, crop_size=56, resolutions=[56, 28], batch_size=4, num_workers=0)


def test_rawframe_list_decodes_the_same_frames_as_the_video(rawframe_root: Path, demo_root: Path) -> None:
    frames = VideoDataModule(preset="list", list_format="rawframes", val_list=str(rawframe_root / "val.txt"), num_segments=4, **TINY)
    videos = VideoDataModule(val_list=str(demo_root / "val.txt"), num_segments=4, **TINY)
    frames.setup("validate"), videos.setup("validate")
    a = frames.datasets["val"][3]["video"].float()  # JPEG frames, 1-based img_00001.jpg ...
    b = videos.datasets["val"][3]["video"].float()
    assert a.shape == b.shape == (3, 4, 56, 56)
    same = (a - b).abs().mean()
    shifted = (a[:, :, :, :] - b.roll(1, dims=1)).abs().mean()  # off by one segment
    assert same < 3 and same < shifted / 2


def test_rawframe_list_with_offset(rawframe_root: Path, tmp_path: Path) -> None:
    # Two records in one frame folder: frames 1-8 and 9-16 (offset 8).
    frame_dir = rawframe_root / "frames" / "train_stripes_0_0000"
    (tmp_path / "offset.txt").write_text(f"{frame_dir} 0 8 0\n{frame_dir} 8 8 0\n")
    dm = VideoDataModule(
        preset="list", list_format="rawframes", with_offset=True, test_list=str(tmp_path / "offset.txt"),
        num_segments=8, **TINY,
    )  # fmt: skip
    dm.setup("test")
    first, second = (dm.datasets["test"][i]["video"][0].float() for i in (0, 1))  # [C, T, H, W] of view 0
    assert first.shape == (3, 8, 56, 56)
    # Record 2's first frame is the folder's 9th: record 1 continues into it (noise differs frame to frame).
    assert (second[:, 0] - first[:, -1]).abs().mean() < (second[:, 0] - first[:, 0]).abs().mean()


def test_test_views_are_clips_times_crops(rawframe_root: Path) -> None:
    dm = VideoDataModule(
        preset="list", list_format="rawframes", test_list=str(rawframe_root / "val.txt"), num_segments=4,
        num_test_clips=2, test_crop="three", **TINY,
    )  # fmt: skip
    dm.setup("test")
    sample = dm.datasets["test"][0]
    assert sample["video"].shape == (2 * 3, 3, 4, 56, 56)  # [V, C, T, H, W]
    batch = dm.on_after_batch_transfer(next(iter(dm.test_dataloader())), 0)
    assert batch["clips"][28].shape == (4, 6, 3, 4, 28, 28)


def test_activitynet_multi_label_trains_on_random_labels_and_reports_map(
    rawframe_root: Path, quiet_trainer_kwargs: dict[str, Any]
) -> None:
    dm = VideoDataModule(
        preset="activitynet", train_list=str(rawframe_root / "train_multi.txt"),
        val_list=str(rawframe_root / "val_multi.txt"), num_classes=4, num_segments=2, **TINY,
    )  # fmt: skip
    dm.setup("fit")
    train, val = dm.datasets["train"], dm.datasets["val"]
    record = next(i for i, r in enumerate(train.records) if len(r.labels) == 2)
    drawn = {train[record]["label"] for _ in range(30)}
    assert drawn == set(train.records[record].labels)  # one label at random each time
    target = val[1]["label"]
    assert target.dtype == torch.float32 and target.shape == (4,) and target.sum() == 2  # multi-hot

    model = ResKDModule(student=TSN(4, backbone="resnet18", dropout=0.0), student_resolution=28, metric="mAP")
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=2, num_sanity_val_steps=0, **quiet_trainer_kwargs)
    trainer.fit(model, datamodule=dm)
    assert 0.0 <= float(trainer.callback_metrics["val/mAP"]) <= 1.0
    assert float(trainer.callback_metrics["train/failed_videos"]) == 0.0


def test_kinetics_csv_with_class_names_and_ytid_subset(kinetics_root: Path) -> None:
    dm = VideoDataModule(
        preset="kinetics400", train_list=str(kinetics_root / "train.csv"), val_list=str(kinetics_root / "validate.csv"),
        data_prefix=str(kinetics_root / "videos"), num_classes=4, clip_len=2, frame_interval=2, num_test_clips=2, **TINY,
    )  # fmt: skip
    dm.setup("fit")
    assert dm.class_names == ["stripes 135", "stripes ninety", "stripes zero", "stripes, 45"]  # sorted by name
    sample = dm.datasets["train"][0]
    assert sample["video"].shape == (3, 2, 56, 56)
    # Mini-Kinetics: the ytid list keeps two classes' videos; classes are those kept.
    mini = VideoDataModule(
        preset="minikinetics", list_format="kinetics_csv", train_list=str(kinetics_root / "train.csv"),
        train_ytid_list=str(kinetics_root / "train_ytid_list.txt"), data_prefix=str(kinetics_root / "videos"),
        num_classes=2, **TINY,
    )  # fmt: skip
    mini.setup("fit")
    assert len(mini.datasets["train"]) == 8 and mini.class_names == ["stripes zero", "stripes, 45"]


def test_class_count_must_match_num_classes(kinetics_root: Path) -> None:
    dm = VideoDataModule(
        preset="kinetics400", train_list=str(kinetics_root / "train.csv"), data_prefix=str(kinetics_root / "videos"), **TINY
    )
    with pytest.raises(ValueError, match=r"train.csv names 4 classes but num_classes is 400"):
        dm.setup("fit")


def test_sthv2_json_and_no_flip(sthv2_root: Path, demo_root: Path) -> None:
    dm = VideoDataModule(
        preset="sthv2", train_list=str(sthv2_root / "train.json"), val_list=str(sthv2_root / "validation.json"),
        labels_file=str(sthv2_root / "labels.json"), data_prefix=str(sthv2_root / "videos"), video_suffix=".mp4",
        num_classes=4, **TINY,
    )  # fmt: skip
    dm.setup("fit")
    demo = load_video_list(demo_root / "train.txt")
    assert [r.labels for r in dm.datasets["train"].records] == [r.labels for r in demo]
    assert dm.class_names[0] == "Pushing something from left to right"
    flips = [t for t in dm.datasets["train"].transform.transforms if "Flip" in type(t).__name__]
    assert flips == []


def test_unreadable_videos_are_replaced_counted_and_bounded(
    demo_root: Path, corrupt_video: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = (demo_root / "train.txt").read_text().splitlines()
    listing = tmp_path / "train.txt"
    listing.write_text("".join(f"{demo_root / line}\n" for line in good) + f"{corrupt_video} 0\n{tmp_path / 'gone.mp4'} 1\n")
    dm = VideoDataModule(train_list=str(listing), num_segments=2, max_failed_fraction=0.2, **TINY)
    dm.setup("fit")
    dataset = dm.datasets["train"]
    with caplog.at_level("WARNING", logger="reskd_lightning.data.dataset"):
        sample = dataset[16]
    assert f"{corrupt_video}' (record 16 of '{listing}') could not be decoded" in caplog.text
    assert sample["retries"] >= 1 and sample["index"] != 16 and sample["video"].shape == (3, 2, 56, 56)
    with caplog.at_level("WARNING", logger="reskd_lightning.data.dataset"):
        dataset[17]
    assert "gone.mp4" in caplog.text
    assert int(dataset.failed.sum()) == 2

    strict = VideoDataModule(train_list=str(listing), num_segments=2, max_failed_fraction=0.1, **TINY)
    strict.setup("fit")
    strict.datasets["train"][16]  # 1 of 18 is within 10%
    with pytest.raises(Exception, match=r"2 of 18 videos .* could not be read, more than max_failed_fraction=0.1"):
        strict.datasets["train"][17]


def test_kinetics_training_csv_is_read_once_per_setup(kinetics_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reskd_lightning.data import annotations

    reads: list[str] = []
    original = annotations.load_kinetics_csv

    def counting(csv_file: Any, *args: Any, **kwargs: Any) -> Any:
        reads.append(Path(csv_file).name)
        return original(csv_file, *args, **kwargs)

    monkeypatch.setattr(annotations, "load_kinetics_csv", counting)
    dm = VideoDataModule(
        preset="kinetics400", train_list=str(kinetics_root / "train.csv"), val_list=str(kinetics_root / "validate.csv"),
        test_list=str(kinetics_root / "validate.csv"), data_prefix=str(kinetics_root / "videos"), num_classes=4, **TINY,
    )  # fmt: skip
    dm.setup(None)
    assert sorted(reads) == ["train.csv", "validate.csv", "validate.csv"]  # its classes come with the training rows
    assert dm.datasets["val"].records[0].labels == [dm.class_names.index("stripes zero")]
