from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from reskd_lightning.data import DEMO_CLASSES, VideoDataModule
from reskd_lightning.views import IMAGENET_MEAN, IMAGENET_STD, normalize_video, resize_clip

SMALL = dict(
    num_segments=4, short_side=64, crop_size=56, resolutions=[56, 28], batch_size=4, num_workers=0
)


@pytest.mark.parametrize("train_crop", ["random", "multiscale", "random_resized"])
def test_train_batch_becomes_views_of_one_clip(demo_root: Path, train_crop: str) -> None:
    # Same crop and flip for every resolution: the views are resizes of the one augmented clip.
    dm = VideoDataModule(
        train_list=str(demo_root / "train.txt"), val_list=str(demo_root / "val.txt"), train_crop=train_crop,
        flip=True, **SMALL,
    )  # fmt: skip
    dm.setup("fit")
    assert dm.num_classes == 4 and dm.class_names is None  # inferred from the labels
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].dtype == torch.uint8 and batch["video"].shape == (4, 3, 4, 56, 56)
    assert batch["label"].shape == (4,) and batch["index"].shape == (4,)

    batch = dm.on_after_batch_transfer(batch, 0)
    clips = batch["clips"]
    assert sorted(clips) == [28, 56]
    assert clips[56].shape == (4, 3, 4, 56, 56) and clips[28].shape == (4, 3, 4, 28, 28)
    assert clips[56].dtype == clips[28].dtype == torch.float32
    # Every view is the same augmented clip: the big one normalised, the small one its resize.
    torch.testing.assert_close(clips[56], normalize_video(batch["video"], IMAGENET_MEAN, IMAGENET_STD))
    torch.testing.assert_close(clips[28], resize_clip(clips[56], 28))


def test_loaders(demo_root: Path) -> None:
    dm = VideoDataModule(
        train_list=str(demo_root / "train.txt"), val_list=str(demo_root / "val.txt"), **SMALL
    )
    dm.setup("fit")
    train, val = dm.train_dataloader(), dm.val_dataloader()
    assert train.drop_last and len(train) == 16 // 4
    assert not val.drop_last and len(val) == 2
    assert [i for b in val for i in b["index"].tolist()] == list(range(8))  # in list order
    assert val.dataset.sampler.test_mode and not train.dataset.sampler.test_mode
    assert not train.persistent_workers  # only with workers


def test_class_folders_and_demo_data(demo_root: Path) -> None:
    dm = VideoDataModule(train_list=str(demo_root / "train"), **SMALL)
    dm.setup("fit")
    assert dm.class_names == sorted(DEMO_CLASSES) and dm.num_classes == 4
    assert dm.val_dataloader() == []  # no validation list: fit runs without validation

    dm = VideoDataModule(demo_data=str(demo_root), num_test_clips=6, **SMALL)
    assert dm.num_classes == 4 and dm.class_names == list(DEMO_CLASSES)  # known before setup
    dm.prepare_data()
    dm.setup("test")
    sample = dm.test_dataloader().dataset[0]
    assert sample["video"].shape == (6, 3, 4, 56, 56)  # num_test_clips views of num_segments frames
    assert dm.test_dataloader().dataset.source == str(demo_root / "val.txt")


def test_label_outside_num_classes_names_list_path_and_label(demo_root: Path) -> None:
    dm = VideoDataModule(train_list=str(demo_root / "train.txt"), num_classes=3, **SMALL)
    with pytest.raises(ValueError, match=rf"{demo_root}/train.txt: video '.*stripes_135_0000.mp4' has label 3"):
        dm.setup("fit")


def test_arguments_are_checked_and_saved() -> None:
    with pytest.raises(ValueError, match="num_clips must be a positive integer, got 0"):
        VideoDataModule(train_list="x.txt", num_segments=0)
    with pytest.raises(ValueError, match="known decoders are"):
        VideoDataModule(train_list="x.txt", decoder="nope")
    with pytest.raises(ValueError, match="give at least one of"):
        VideoDataModule()
    dm = VideoDataModule(train_list="x.txt", crop_size=112, resolutions=[112, 56])
    assert dm.hparams.crop_size == 112 and list(dm.hparams.resolutions) == [112, 56]
    with pytest.raises(ValueError, match="stage 'test' needs test_list"):
        dm.setup("test")


class TinyRecognizer(pl.LightningModule):
    """Averages the student view and classifies it: enough to run the Trainer over the data."""

    def __init__(self, resolution: int = 28) -> None:
        super().__init__()
        self.resolution = resolution
        self.head = nn.Linear(3, 4)
        self.seen: list[tuple[int, ...]] = []

    def step(self, batch: dict[str, Any]) -> torch.Tensor:
        x = batch["clips"][self.resolution]
        self.seen.append(tuple(x.shape))
        return nn.functional.cross_entropy(self.head(x.mean(dim=(2, 3, 4))), batch["label"])

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self.step(batch)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.log("val_loss", self.step(batch), batch_size=len(batch["label"]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_trainer_fits_on_the_demo_data(demo_root: Path) -> None:
    pl.seed_everything(0)
    model = TinyRecognizer()
    dm = VideoDataModule(demo_data=str(demo_root), **{**SMALL, "num_workers": 1})
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    assert model.seen == [(4, 3, 4, 28, 28)] * 3  # 2 train + 1 val batch, views made on the way in


def test_logged_hyperparameters_agree_with_the_model(demo_root: Path, tmp_path: Path) -> None:
    # Lightning merges the DataModule's and the model's hyperparameters for the logger and refuses a key with
    # two values: the DataModule logs the effective values (the class count it found, the metric it implies).
    from pytorch_lightning.loggers import CSVLogger

    from reskd_lightning import ResKDModule
    from reskd_lightning.models import TSN

    dm = VideoDataModule(train_list=str(demo_root / "train.txt"), **SMALL)
    model = ResKDModule(student=TSN(4, backbone="resnet18"), num_classes=4, student_resolution=28)
    trainer = pl.Trainer(
        max_epochs=1, limit_train_batches=1, accelerator="cpu", logger=CSVLogger(tmp_path), enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(model, datamodule=dm)
    logged = (Path(trainer.logger.log_dir) / "hparams.yaml").read_text()
    assert "num_classes: 4" in logged and "metric: accuracy" in logged
