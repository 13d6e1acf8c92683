"""Unreadable videos on a long run: each is named, every epoch, from the library's own code, and evaluation never
scores a stand-in (``test/acc1`` is the per-video CSV's hit rate)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from reskd_lightning import ResKDModule
from reskd_lightning.data import VideoDataModule
from reskd_lightning.models import TSN
from reskd_lightning.predictions import VideoPredictionWriter

TINY = dict(short_side=64, crop_size=56, resolutions=[56], batch_size=4, num_workers=0, num_segments=2)


def _list_with_broken_videos(demo_root: Path, listing: Path, corrupt_video: Path) -> Path:
    good = [f"{demo_root / line}\n" for line in (demo_root / "val.txt").read_text().splitlines()]
    broken = []
    for i in range(3):
        copy = listing.parent / f"corrupt_{i}.mp4"
        copy.write_bytes(corrupt_video.read_bytes())
        broken += [f"{copy} {i}\n", f"{listing.parent / f'gone_{i}.mp4'} {i}\n"]
    # two broken videos in the middle of a batch (batch_size 4), four making a batch of their own
    lines = good[:2] + broken[:2] + good[2:6] + broken[2:] + good[6:]
    listing.write_text("".join(lines))
    return listing


def _module() -> ResKDModule:
    return ResKDModule(student=TSN(4, backbone="resnet18", dropout=0.0), student_resolution=56)


def test_each_unreadable_training_video_is_named_every_epoch_by_the_librarys_code(
    demo_root: Path, corrupt_video: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    quiet_trainer_kwargs: dict[str, Any],
) -> None:  # fmt: skip
    good = [f"{demo_root / line}\n" for line in (demo_root / "train.txt").read_text().splitlines()]
    listing = tmp_path / "train.txt"
    listing.write_text("".join(good[:15]) + f"{corrupt_video} 0\n")  # 16 videos, 4 full batches: each epoch reads it
    dm = VideoDataModule(train_list=str(listing), max_failed_fraction=0.5, **TINY)
    trainer = pl.Trainer(max_epochs=3, num_sanity_val_steps=0, **quiet_trainer_kwargs)
    with caplog.at_level(logging.WARNING):
        trainer.fit(_module(), datamodule=dm)
    named = [r for r in caplog.records if str(corrupt_video) in r.getMessage()]
    # Python's warnings would have shown it once (and from torch's fetch.py, the caller's line): a log record
    # each time, from the dataset's file.
    assert len(named) == 3, [r.getMessage() for r in caplog.records]
    assert all(Path(r.pathname).as_posix().endswith("reskd_lightning/data/dataset.py") for r in named)
    assert all("another record is used instead" in r.getMessage() for r in named)
    summaries = [r.getMessage() for r in caplog.records if "unreadable video(s) this epoch" in r.getMessage()]
    assert summaries == ["train: 1 unreadable video(s) this epoch were replaced by other records (each is named "
                         "in a warning above; `reskd check-data --config <your config>` lists them all)"] * 3
    assert float(trainer.callback_metrics["train/failed_videos"]) == 1.0


def test_unreadable_test_videos_are_left_out_of_the_metrics_and_the_csv(
    demo_root: Path, corrupt_video: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    quiet_trainer_kwargs: dict[str, Any],
) -> None:  # fmt: skip
    listing = _list_with_broken_videos(demo_root, tmp_path / "test.txt", corrupt_video)
    readable = len((demo_root / "val.txt").read_text().splitlines())
    dm = VideoDataModule(test_list=str(listing), val_list=str(listing), max_failed_fraction=0.5, num_classes=4, **TINY)
    writer = VideoPredictionWriter(path=str(tmp_path / "test.csv"))
    trainer = pl.Trainer(callbacks=[writer], **quiet_trainer_kwargs)
    module = _module()
    with caplog.at_level(logging.WARNING):
        metrics = trainer.test(module, datamodule=dm, verbose=False)[0]

    rows = list(csv.DictReader(open(tmp_path / "test.csv")))
    assert len(rows) == readable and not any("corrupt" in r["video"] or "gone" in r["video"] for r in rows)
    hits = sum(r["top5_ids"].split()[0] in r["labels"].split() for r in rows)  # top-1 against the listed class
    assert metrics["test/acc1"] == pytest.approx(hits / readable)
    assert metrics["test/failed_videos"] == 6.0
    assert "test: 6 unreadable video(s) this epoch were left out of the metrics and predictions" in caplog.text
    assert "it is left out of the evaluation" in caplog.text

    # validation too, and predict: the same videos are scored, the stand-ins never
    val = trainer.validate(module, datamodule=dm, verbose=False)[0]
    assert val["val/acc1"] == pytest.approx(metrics["test/acc1"]) and val["val/failed_videos"] == 6.0
    trainer.predict(module, datamodule=dm)
    predicted = list(csv.DictReader(open(tmp_path / "test.csv")))
    assert [r["video"] for r in predicted] == [r["video"] for r in rows]


def test_an_evaluation_batch_of_unreadable_videos_only_is_counted_not_scored(
    demo_root: Path, corrupt_video: Path, tmp_path: Path, quiet_trainer_kwargs: dict[str, Any]
) -> None:
    listing = tmp_path / "test.txt"
    listing.write_text(f"{corrupt_video} 0\n" * 4 + f"{demo_root / (demo_root / 'val.txt').read_text().split()[0]} 0\n")
    dm = VideoDataModule(test_list=str(listing), max_failed_fraction=1.0, num_classes=4, **TINY)
    trainer = pl.Trainer(**quiet_trainer_kwargs)
    metrics = trainer.test(_module(), datamodule=dm, verbose=False)[0]
    assert metrics["test/failed_videos"] == 4.0 and metrics["test/acc1"] in (0.0, 1.0)  # one video scored
    assert torch.isfinite(torch.tensor(metrics["test/acc1"]))
