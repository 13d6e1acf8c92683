from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from reskd_lightning.data import (
    DEMO_CLASSES,
    MultiScaleCrop,
    PyAVDecoder,
    Resize,
    VideoDataModule,
    bilinear_resize,
    short_side_size,
    write_video,
)
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


# -- the paper's recipes, as mmaction2 0.20 computes them -----------------------------------------------------


def _decoded(path: Path, indices: np.ndarray) -> torch.Tensor:
    """The frames ``indices`` of ``path`` as PyAV decodes them, ``[T, C, H, W]`` uint8."""
    with PyAVDecoder().open(str(path)) as video:
        return video.get_frames(indices).permute(0, 3, 1, 2)


def test_kinetics400_test_views_span_the_short_side_and_validation_keeps_its_resize(tmp_path: Path) -> None:
    # official: Kinetics-400 test_pipeline Resize(scale=(-1, 224)) + ThreeCrop(crop_size=224)
    # (configs/myconfig/rkd/rkd_slowonly_8x8x1_150e_k400.py:55-56, rkd_swins_32x2x1_60e_k400.py:58-59 (CVMI-Lab/ResKD)),
    # val_pipeline Resize(scale=(-1, 256)) + CenterCrop(crop_size=224) (rkd_slowonly_8x8x1_150e_k400.py:39-40).
    # Scaled down here: short side 64, crop 56, so test views resize the short side to 56.
    frames = np.random.default_rng(0).integers(0, 256, (16, 72, 128, 3), dtype=np.uint8)
    path = write_video(tmp_path / "clip.mp4", frames)
    (tmp_path / "list.txt").write_text("clip.mp4 3\n")
    dm = VideoDataModule(
        preset="kinetics400", list_format="videos", val_list=str(tmp_path / "list.txt"),
        test_list=str(tmp_path / "list.txt"), short_side=64, crop_size=56, clip_len=4, frame_interval=2,
        num_test_clips=2, batch_size=1, num_workers=0,
    )  # fmt: skip
    assert dm.settings["test_short_side"] == 56 and dm.hparams.test_short_side == 56  # the preset's: crop_size
    dm.setup("test")
    dataset = dm.datasets["test"]
    video = dataset[0]["video"]  # [2 views x 3 crops, C, T, 56, 56]
    assert video.shape == (6, 3, 4, 56, 56)
    indices = dataset.sampler(16)
    resized = bilinear_resize(_decoded(path, indices), short_side_size(72, 128, 56))
    assert resized.shape[-2:] == (56, 100)  # mmcv: int(128 * 56 / 72 + 0.5) = int(100.06); torchvision: 99
    step = (100 - 56) // 2  # ThreeCrop (mmaction/datasets/pipelines/augmentations.py:1688): x = 0, 2 * step, step
    for view in range(2):  # num_segments = 1: view v is clip v
        clip = resized[view * 4 : (view + 1) * 4]
        for k, x in enumerate((0, 2 * step, step)):
            assert torch.equal(video[view * 3 + k], clip[..., :, x : x + 56].permute(1, 0, 2, 3))
    dm.setup("validate")
    val = dm.datasets["val"]
    clip = bilinear_resize(_decoded(path, val.sampler(16)), (64, 114))  # int(128 * 64 / 72 + 0.5) = 114
    top, left = (64 - 56) // 2, (114 - 56) // 2  # CenterCrop (augmentations.py:1588-1589): 4, 29
    assert torch.equal(val[0]["video"], clip[..., top : top + 56, left : left + 56].permute(1, 0, 2, 3))


def test_test_short_side_defaults_to_short_side_and_is_checked() -> None:
    assert VideoDataModule(train_list="x.txt").settings["test_short_side"] == 256
    assert VideoDataModule(train_list="x.txt", short_side=128, crop_size=112).settings["test_short_side"] == 128
    assert VideoDataModule(train_list="x.txt", test_short_side=224).settings["test_short_side"] == 224
    with pytest.raises(ValueError, match=r"test_short_side must be a number of pixels >= crop_size \(224\), got 200"):
        VideoDataModule(train_list="x.txt", test_short_side=200)


def test_twice_sample_gives_centre_and_start_views_in_test_only(demo_root: Path) -> None:
    # official: SampleFrames(twice_sample=True) (mmaction/datasets/pipelines/loading.py:196-201 (CVMI-Lab/ResKD)),
    # set in the TSM configs' test_pipeline only (configs/myconfig/tsm/tsm_r50_1x1x8_50e_sthv2_rgb.py:59; their
    # val_pipeline, lines 39-46, samples centres once). 16-frame demo videos, 4 segments: avg = 4, centres
    # int(4 i + 2) = 2, 6, 10, 14, starts 0, 4, 8, 12. 64x64 frames: no resize, centre crop 56 at (4, 4).
    lists = dict(val_list=str(demo_root / "val.txt"), test_list=str(demo_root / "val.txt"))
    dm = VideoDataModule(twice_sample=True, num_test_clips=2, **lists, **SMALL)
    dm.setup(None)
    path = dm.datasets["val"].records[0].path
    frames = _decoded(path, np.arange(16))[..., 4:60, 4:60].permute(1, 0, 2, 3)  # [C, 16, 56, 56]
    val = dm.datasets["val"][0]["video"]
    assert val.shape == (3, 4, 56, 56) and torch.equal(val, frames[:, [2, 6, 10, 14]])  # one clip, centres
    # Test: 2 views of 4 segments = 8 clips, avg 2: centres 1, 3, ..., 15 and starts 0, 2, ..., 14, each dealt
    # into 2 views: 4 views in all.
    test = dm.datasets["test"][0]["video"]
    assert test.shape == (4, 3, 4, 56, 56)
    for view, frame_ids in enumerate(([1, 5, 9, 13], [3, 7, 11, 15], [0, 4, 8, 12], [2, 6, 10, 14])):
        assert torch.equal(test[view], frames[:, frame_ids])
    # Test batches carry the views as [N, V, C, T, H, W]; the module averages softmax over V.
    batch = dm.on_after_batch_transfer(next(iter(dm.test_dataloader())), 0)
    assert batch["clips"][56].shape == (4, 4, 3, 4, 56, 56)
    assert not dm._sampler("train").samples_twice and not dm._sampler("val").samples_twice


def test_mmaction2_options_reach_the_samplers_and_transforms() -> None:
    dm = VideoDataModule(
        train_list="x.txt", train_crop="multiscale", num_fixed_crops=5, keep_tail_frames=True, temporal_jitter=True,
        resize_antialias=True,
    )  # fmt: skip
    train = dm._sampler("train")
    assert train.keep_tail_frames and train.temporal_jitter and not train.twice_sample
    assert not dm._sampler("val").temporal_jitter and not dm._sampler("test").keep_tail_frames  # training only
    steps = dm._transform("train").transforms
    assert next(t for t in steps if isinstance(t, MultiScaleCrop)).num_fixed_crops == 5
    assert all(t.antialias for t in steps if isinstance(t, Resize))
    for split in ("val", "test"):
        assert all(t.antialias for t in dm._transform(split).transforms if isinstance(t, Resize))
    defaults = VideoDataModule(train_list="x.txt", train_crop="multiscale")
    steps = defaults._transform("train").transforms
    assert next(t for t in steps if isinstance(t, MultiScaleCrop)).num_fixed_crops == 13  # the paper's configs
    assert not any(t.antialias for t in steps if isinstance(t, Resize))  # mmcv.imresize: no antialiasing
    assert defaults.hparams.resize_antialias is False and defaults.hparams.antialias is False
    with pytest.raises(ValueError, match="num_fixed_crops must be 5 or 13, got 7"):
        VideoDataModule(train_list="x.txt", num_fixed_crops=7)
    with pytest.raises(ValueError, match="twice_sample must be true or false, got 'yes'"):
        VideoDataModule(train_list="x.txt", twice_sample="yes")


def test_val_short_side_resizes_validation_clips_only() -> None:
    # official: configs/myconfig/slowonly/slowonly_r50_112p_8x8x1_150e_k400_rgb.py (CVMI-Lab/ResKD): training
    # Resize(-1, 128) (:19), validation Resize(-1, 112) + CenterCrop(112) (:37-38), test Resize(-1, 128) (:53).
    dm = VideoDataModule(train_list="x.txt", short_side=128, crop_size=112, val_short_side=112)
    clip = torch.randint(0, 256, (2, 3, 128, 227), dtype=torch.uint8)
    resized = bilinear_resize(clip, (112, 199))  # int(227 * 112 / 128 + 0.5) = int(199.1) = 199
    assert torch.equal(dm._transform("val")(clip), resized[..., :, 43:155])  # left (199 - 112) // 2 = 43, top 0
    assert torch.equal(dm._transform("test")(clip)[0], dm._transform("train").transforms[0](clip)[..., 8:120, 57:169])
    assert VideoDataModule(train_list="x.txt").hparams.val_short_side is None  # short_side
    with pytest.raises(ValueError, match=r"val_short_side must be a number of pixels >= crop_size \(224\), got 200"):
        VideoDataModule(train_list="x.txt", val_short_side=200)
    with pytest.raises(ValueError, match="multiscale_input_size must be a positive number of pixels, got 0"):
        VideoDataModule(train_list="x.txt", multiscale_input_size=0)
