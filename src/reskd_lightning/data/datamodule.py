"""``VideoDataModule``: video lists or class folders in, multi-resolution batches out."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from reskd_lightning.data.annotations import (
    VideoRecord,
    check_labels,
    infer_num_classes,
    load_video_list,
    scan_class_folders,
)
from reskd_lightning.data.dataset import VideoDataset
from reskd_lightning.data.decoders import build_decoder
from reskd_lightning.data.demo import DEMO_CLASSES, ensure_demo_dataset
from reskd_lightning.data.sampling import SampleFrames
from reskd_lightning.data.transforms import build_train_transform, build_val_transform
from reskd_lightning.views import IMAGENET_MEAN, IMAGENET_STD, attach_views


class VideoDataModule(pl.LightningDataModule):
    """Video datasets for training, validation and test, as ResKD batches.

    Each of ``train_list`` / ``val_list`` / ``test_list`` is an mmaction2 video list (``path label [label
    ...]``; paths relative to ``data_prefix``, or to the list's folder when it is empty) or a class-per-folder
    directory. Frames are sampled with mmaction2's ``SampleFrames`` (``num_segments`` clips of ``clip_len``
    frames; random offsets when training, centre offsets for validation and test), decoded, and augmented once
    at the high resolution as uint8: short side to ``short_side``, then a random ``crop_size`` crop and flip
    (training) or a centre crop (evaluation). On the device, ``on_after_batch_transfer`` normalises the clip
    and adds ``batch["clips"] = {r: [N, C, T, r, r] for r in resolutions}``, every view a resize of the same
    augmented clip.

    ``demo_data`` names a folder for the built-in demo dataset (written by ``prepare_data`` when missing); the
    lists then default to its ``train.txt`` and ``val.txt``.

    Args:
        train_list: Training videos: an mmaction2 video list or a class-per-folder directory.
        val_list: Validation videos, as ``train_list``.
        test_list: Test (and predict) videos, as ``train_list``.
        data_prefix: Folder the list's paths are relative to; empty: the list file's folder.
        demo_data: Folder of the built-in demo dataset, written when missing; lists default to it.
        num_classes: Number of classes; labels are checked against it. None: inferred from the data.
        num_segments: Clips sampled per training/validation video (SampleFrames' ``num_clips``).
        clip_len: Frames per clip (1: TSN segments).
        frame_interval: Step between a clip's frames.
        num_test_clips: Clips per test video; None: ``num_segments``.
        short_side: Short side, in pixels, that frames are resized to before cropping.
        crop_size: Side of the square crop: the clip's (highest) resolution.
        flip: Random horizontal flip when training.
        resolutions: Short sides of the views made on the device, ``batch["clips"][r]``.
        mean: Per-channel mean (RGB, 0..255 scale) subtracted before the views are made.
        std: Per-channel standard deviation (RGB, 0..255 scale).
        interpolation: Interpolation of the views (``F.interpolate`` mode).
        antialias: Antialias when making the lower-resolution views.
        batch_size: Training batch size.
        val_batch_size: Validation/test batch size; None: ``batch_size``.
        num_workers: Data loader worker processes.
        pin_memory: Pin host memory (when an accelerator is present).
        persistent_workers: Keep workers alive between epochs (when ``num_workers > 0``).
        decoder: Video decoder name, one of ``reskd_lightning.data.DECODERS``.

    LightningCLI configuration::

        data:
          class_path: reskd_lightning.data.VideoDataModule
          init_args:
            train_list: data/kinetics400/kinetics400_train_list_videos.txt
            val_list: data/kinetics400/kinetics400_val_list_videos.txt
            data_prefix: data/kinetics400/videos
            num_classes: 400
            num_segments: 8
            short_side: 256
            crop_size: 224
            resolutions: [224, 112]
            batch_size: 8
            num_workers: 8

    The demo::

        data:
          class_path: reskd_lightning.data.VideoDataModule
          init_args:
            demo_data: runs/demo_data
            short_side: 128
            crop_size: 112
            resolutions: [112, 56]
    """

    def __init__(
        self,
        train_list: str | None = None,
        val_list: str | None = None,
        test_list: str | None = None,
        data_prefix: str = "",
        demo_data: str | None = None,
        num_classes: int | None = None,
        num_segments: int = 8,
        clip_len: int = 1,
        frame_interval: int = 1,
        num_test_clips: int | None = None,
        short_side: int = 256,
        crop_size: int = 224,
        flip: bool = True,
        resolutions: Sequence[int] = (224, 112),
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        interpolation: str = "bilinear",
        antialias: bool = False,
        batch_size: int = 8,
        val_batch_size: int | None = None,
        num_workers: int = 4,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        decoder: str = "pyav",
    ):
        super().__init__()
        # Fail at construction, with the offending values, for everything that needs no files.
        SampleFrames(clip_len, frame_interval, num_segments)
        if num_test_clips is not None:
            SampleFrames(clip_len, frame_interval, num_test_clips)
        build_val_transform(short_side, crop_size)
        build_decoder(decoder)
        if num_classes is not None and num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        if not list(resolutions) or any(int(r) < 1 for r in resolutions):
            raise ValueError(f"resolutions must be positive numbers of pixels, got {list(resolutions)!r}")
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values (RGB), got mean={list(mean)!r}, std={list(std)!r}")
        for name, value in (("batch_size", batch_size), ("val_batch_size", val_batch_size)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers!r}")
        if demo_data is None and train_list is None and val_list is None and test_list is None:
            raise ValueError("give at least one of train_list, val_list, test_list, or demo_data")
        # Plain lists in the hyperparameters, so hparams.yaml and checkpoints hold no tuples.
        resolutions = [int(r) for r in resolutions]
        mean, std = [float(m) for m in mean], [float(s) for s in std]
        self.save_hyperparameters()
        self._num_classes = num_classes
        self._class_names: list[str] | None = None
        if demo_data is not None:
            self._class_names = list(DEMO_CLASSES)
            if num_classes is None:
                self._num_classes = len(DEMO_CLASSES)
        self.datasets: dict[str, VideoDataset] = {}

    # -- what the data hold ------------------------------------------------------------

    @property
    def num_classes(self) -> int | None:
        """Number of classes: given, or known from the demo data, or inferred from the labels in ``setup``."""
        return self._num_classes

    @property
    def class_names(self) -> list[str] | None:
        """Class names, when the data name them (class folders, the demo dataset), else ``None``."""
        return self._class_names

    def _source(self, split: str) -> str | None:
        given = self.hparams[f"{split}_list"]
        if given is not None or self.hparams.demo_data is None:
            return given
        return str(Path(self.hparams.demo_data) / ("train.txt" if split == "train" else "val.txt"))

    def _load(self, source: str) -> tuple[list[VideoRecord], list[str] | None]:
        if Path(source).is_dir():
            return scan_class_folders(source)
        return load_video_list(source, self.hparams.data_prefix), None

    # -- Lightning hooks ---------------------------------------------------------------

    def prepare_data(self) -> None:
        """Write the demo dataset when ``demo_data`` is set and it is not there yet (once per node)."""
        if self.hparams.demo_data is not None:
            ensure_demo_dataset(self.hparams.demo_data)

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets the stage needs and check every label against ``num_classes``."""
        if self.hparams.demo_data is not None:
            ensure_demo_dataset(self.hparams.demo_data)  # no-op after prepare_data; lets setup() run alone
        splits = {
            "fit": ["train", "val"],
            "validate": ["val"],
            "test": ["test"],
            "predict": ["test"],
            None: ["train", "val", "test"],
        }.get(stage)
        if splits is None:
            raise ValueError(f"unknown stage {stage!r}; expected fit, validate, test, predict or None")
        loaded: dict[str, tuple[str, list[VideoRecord]]] = {}
        for split in splits:
            source = self._source(split)
            if source is None:
                # fit may run without validation
                optional = stage is None or (stage == "fit" and split == "val")
                if not optional:
                    raise ValueError(f"stage {stage!r} needs {split}_list (or demo_data)")
                continue
            records, classes = self._load(source)
            if classes is not None:
                if self._class_names is not None and classes != self._class_names:
                    raise ValueError(
                        f"{source}: class folders {classes} differ from the classes found before, "
                        f"{self._class_names}"
                    )
                self._class_names = classes
            loaded[split] = (source, records)
        if self._num_classes is None:
            if self._class_names is not None:
                self._num_classes = len(self._class_names)
            else:
                self._num_classes = max(infer_num_classes(records) for _, records in loaded.values())
        for split, (source, records) in loaded.items():
            check_labels(records, self._num_classes, source)
            self.datasets[split] = self._dataset(split, source, records)

    def _dataset(self, split: str, source: str, records: list[VideoRecord]) -> VideoDataset:
        hp = self.hparams
        if split == "train":
            sampler = SampleFrames(hp.clip_len, hp.frame_interval, hp.num_segments, test_mode=False)
            transform = build_train_transform(hp.short_side, hp.crop_size, hp.flip)
        else:
            num_clips = hp.num_segments if split == "val" else (hp.num_test_clips or hp.num_segments)
            sampler = SampleFrames(hp.clip_len, hp.frame_interval, num_clips, test_mode=True)
            transform = build_val_transform(hp.short_side, hp.crop_size)
        return VideoDataset(records, sampler, transform, build_decoder(hp.decoder), source=source)

    def _loader(self, split: str, train: bool) -> DataLoader:
        if split not in self.datasets:
            raise RuntimeError(f"no {split} dataset: call setup() for a stage that uses {split}_list first")
        hp = self.hparams
        batch_size = hp.batch_size if train else (hp.val_batch_size or hp.batch_size)
        has_accelerator = torch.cuda.is_available() or (
            hasattr(torch, "accelerator") and torch.accelerator.is_available()
        )
        return DataLoader(
            self.datasets[split],
            batch_size=batch_size,
            shuffle=train,
            drop_last=train,
            num_workers=hp.num_workers,
            pin_memory=hp.pin_memory and has_accelerator,  # pinning without an accelerator only warns
            persistent_workers=hp.persistent_workers and hp.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches; the last incomplete batch is dropped."""
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        """Validation batches in list order (no loader when there is no validation list)."""
        if "val" not in self.datasets:
            return []  # type: ignore[return-value]  # Lightning skips validation for an empty list
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        """Test batches in list order."""
        return self._loader("test", train=False)

    def predict_dataloader(self) -> DataLoader:
        """The test list's batches, for prediction."""
        return self._loader("test", train=False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """On the device: normalise ``batch["video"]``, add ``batch["clips"]`` (views keyed by resolution)."""
        hp = self.hparams
        return attach_views(
            batch, hp.resolutions, hp.mean, hp.std, mode=hp.interpolation, antialias=hp.antialias
        )
