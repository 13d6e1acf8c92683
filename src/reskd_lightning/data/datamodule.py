"""``VideoDataModule``: annotation lists in, multi-resolution batches out."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from reskd_lightning.data import annotations as ann
from reskd_lightning.data.annotations import VideoRecord, check_labels, infer_num_classes
from reskd_lightning.data.dataset import VideoDataset, collate_readable
from reskd_lightning.data.decoders import build_decoder
from reskd_lightning.data.distributed import evaluation_sampler, training_sampler
from reskd_lightning.data.demo import DEMO_CLASSES, ensure_demo_dataset
from reskd_lightning.data.presets import CROP_SIZE, METRICS, get_preset, preset_metric
from reskd_lightning.data.resumable import ResumableLoader, RNGNeutralLoader
from reskd_lightning.data.sampling import SampleFrames
from reskd_lightning.data.transforms import (
    TEST_CROPS,
    TRAIN_CROPS,
    build_test_transform,
    build_train_transform,
    build_val_transform,
)
from reskd_lightning.views import IMAGENET_MEAN, IMAGENET_STD, attach_views

SPLITS = ("train", "val", "test")


class VideoDataModule(pl.LightningDataModule):
    """Video datasets for training, validation and test, as ResKD batches.

    ``preset`` picks a benchmark's annotation format and the paper's defaults (``reskd_lightning.data.presets``:
    ``activitynet``, ``fcvid``, ``minikinetics``, ``sthv2``, ``kinetics400``, ``list``, ``folder``); every
    argument left ``None`` takes the preset's value. Without a preset, a list file is an mmaction2 video list
    and a directory a class-per-folder tree. ``train_list`` / ``val_list`` / ``test_list`` are read in the
    preset's ``list_format``:

    * ``videos``: mmaction2 video list ``path label [label ...]``;
    * ``rawframes``: ``frame_dir total_frames label [label ...]`` (``frame_dir offset total_frames ...`` with
      ``with_offset``), frames named ``filename_tmpl`` from ``start_index``;
    * ``kinetics_csv``: the official Kinetics CSVs, classes by name (``labels_file`` or the training CSV's),
      optionally filtered by youtube-id lists (Mini-Kinetics);
    * ``sthv2``: Something-Something V2 ``train.json`` / ``validation.json`` with ``labels_file`` = labels.json;
    * ``folder``: ``root/<class>/**/<video>``.

    Sampling is mmaction2's ``SampleFrames``: ``num_segments`` clips of ``clip_len`` frames, random offsets when
    training, centres for validation; a test video gives ``num_test_clips`` views of ``num_segments`` clips,
    each cropped ``test_crop``-wise, as ``[V, C, T, H, W]`` that the module averages. ``twice_sample`` (TSM's
    test recipe) adds the segments' starts to their centres in the test views: twice the views, averaged alike.
    Augmentation happens once, at the high resolution,
    on uint8, with mmaction2 0.20's pixels (mmcv's short-side rounding, OpenCV's bilinear without antialiasing,
    mmaction2's crop offsets; ``train_crop``: ``multiscale``, ``random_resized`` or ``random``, then ``flip``).
    Validation resizes the short side to ``val_short_side`` (default ``short_side``) and takes the centre crop;
    test views resize it to ``test_short_side`` (Kinetics-400: the crop size, so the three crops span the whole
    short side). On the device, ``on_after_batch_transfer`` normalises the clip and adds ``batch["clips"] =
    {r: [N, C, T, r, r] for r in resolutions}``, every view a resize of the same augmented clip.

    Multi-label datasets (``multi_label``; ActivityNet, FCVID) train on one label drawn at random each time a
    video is sampled and evaluate with multi-hot targets (``metric: mAP``).

    Unreadable videos are logged naming the file, then, in training, replaced by random others (at most
    ``max_retries`` in a row) and, in evaluation, left out of the metrics and the per-video CSV (the module logs
    their count as ``<stage>/failed_videos``); more than ``max_failed_fraction`` of a set failing stops the run.
    ``reskd check-data`` lists them.

    Args:
        train_list: Training annotations (a list, CSV or json file, or a class-per-folder directory).
        val_list: Validation annotations, as ``train_list``.
        test_list: Test (and predict) annotations, as ``train_list``.
        data_prefix: Folder the annotations' paths are relative to; empty: the list file's folder.
        val_data_prefix: ``data_prefix`` of the validation set; None: ``data_prefix``.
        test_data_prefix: ``data_prefix`` of the test set; None: ``val_data_prefix``.
        preset: Dataset preset name; None: a generic list or class folders.
        list_format: Annotation format (see above); None: the preset's.
        labels_file: SSv2 ``labels.json``, or a Kinetics class-name file (one name a line).
        train_ytid_list: Youtube ids to keep from the training CSV (Mini-Kinetics).
        val_ytid_list: Youtube ids to keep from the validation CSV.
        test_ytid_list: Youtube ids to keep from the test CSV; None: ``val_ytid_list``.
        video_name_tmpl: Kinetics file name of a CSV row; None: mmaction2's downloader's names.
        filename_tmpl: Frame file name in a frame folder (rawframes).
        start_index: Number of a frame folder's first file (mmaction2: 1).
        with_offset: Rawframe lists carry a start offset column.
        video_suffix: Suffix of SSv2 videos (``.webm``).
        demo_data: Folder of the built-in demo dataset, written when missing; lists default to it.
        num_classes: Number of classes; labels are checked against it. None: the preset's, or the data's.
        multi_label: Evaluate with multi-hot targets; None: the preset's.
        metric: ``accuracy`` or ``mAP``; None: the preset's (linked to the model by ``reskd``).
        num_segments: Clips per training/validation video (SampleFrames' ``num_clips``); None: preset's.
        clip_len: Frames per clip (1: TSN segments); None: the preset's.
        frame_interval: Step between a clip's frames; None: the preset's.
        num_test_clips: Views per test video, each of ``num_segments`` clips; None: the preset's.
        out_of_bound: Indices past a short video's end ``loop`` or ``repeat_last``.
        twice_sample: Test clips at the segments' starts as well as their centres (mmaction2's ``twice_sample``,
            TSM's test recipe): twice the views, averaged by the module. Validation samples centres only.
        keep_tail_frames: Training offsets from the float segment length, so the last frames can be drawn too
            (mmaction2's ``keep_tail_frames``).
        temporal_jitter: Move each training frame by a random ``0 .. frame_interval - 1`` (mmaction2's
            ``temporal_jitter``).
        short_side: Short side, in pixels, frames are resized to before cropping (training; validation and test
            unless set below).
        val_short_side: Short side validation clips are resized to before the centre crop; None: ``short_side``
            (mmaction2's 112-pixel SlowOnly: ``Resize(-1, 112)`` + ``CenterCrop(112)``, training at 128).
        test_short_side: Short side test views are resized to before ``test_crop``; None: the preset's
            (Kinetics-400: ``crop_size``, as the official configs' ``Resize(-1, 224)`` + ``ThreeCrop(224)``), else
            ``short_side``.
        crop_size: Side of the square crop: the clip's (highest) resolution.
        train_crop: ``multiscale``, ``random_resized`` or ``random``; None: the preset's.
        scales: ``MultiScaleCrop``'s scales.
        num_fixed_crops: ``MultiScaleCrop``'s fixed crop positions, 5 or 13 (the paper's configs: 13; mmaction2's
            default: 5).
        multiscale_input_size: ``MultiScaleCrop``'s ``input_size``: crop sides within 3 pixels of it snap to it;
            None: ``crop_size``. The configs give the short side (``input_size=80`` at 72 pixels: a 70-pixel side
            stays 70, where 72 would snap it to 72).
        flip: Random horizontal flip when training; None: the preset's. SSv2 refuses ``true``.
        test_crop: ``center`` or ``three`` crops per test clip; None: the preset's.
        resize_antialias: Antialias the CPU resizes of the augmentation (short side, after the crop); false:
            mmaction2's ``mmcv.imresize`` (OpenCV bilinear, no antialiasing). ``antialias`` is the views'.
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
        decoder: Video decoder name, one of ``reskd_lightning.data.DECODERS`` (rawframes always use
            ``rawframes``).
        decoder_threads: Decoding threads per video (0: FFmpeg's choice).
        fast_decode: Snap each training segment's frame to the nearest keyframe inside it (much faster on long
            web videos; frames are then biased to keyframes).
        max_retries: Unreadable videos replaced in a row before an item fails; 0: fail at once.
        max_failed_fraction: Fraction of a set that may be unreadable before the run stops.

    LightningCLI configuration (ActivityNet, the paper's main setting)::

        data:
          preset: activitynet
          train_list: data/activitynet/anet_train_list.txt
          val_list: data/activitynet/anet_val_list.txt
          data_prefix: data/activitynet/rawframes
          filename_tmpl: img_{:05}.jpg
          batch_size: 8
          num_workers: 8

    Kinetics-400 (SlowOnly 8x8), mmaction2's sampling and resizing options spelled out::

        data:
          preset: kinetics400
          train_list: data/kinetics400/kinetics_train.csv
          val_list: data/kinetics400/kinetics_val.csv
          data_prefix: data/kinetics400/videos_train
          val_data_prefix: data/kinetics400/videos_val
          val_short_side: null      # short_side (256)
          test_short_side: 224      # the preset's value (crop_size)
          twice_sample: false
          keep_tail_frames: false
          temporal_jitter: false
          num_fixed_crops: 13       # train_crop: multiscale only
          multiscale_input_size: null   # crop_size
          resize_antialias: false

    The demo::

        data:
          demo_data: runs/demo_data
          short_side: 128
          crop_size: 112
          flip: false
    """

    # long: the signature lists every option of the DataModule (LightningCLI reads it); the body is short
    def __init__(
        self,
        train_list: str | None = None,
        val_list: str | None = None,
        test_list: str | None = None,
        data_prefix: str = "",
        val_data_prefix: str | None = None,
        test_data_prefix: str | None = None,
        preset: str | None = None,
        list_format: str | None = None,
        labels_file: str | None = None,
        train_ytid_list: str | None = None,
        val_ytid_list: str | None = None,
        test_ytid_list: str | None = None,
        video_name_tmpl: str | None = None,
        filename_tmpl: str = "img_{:05}.jpg",
        start_index: int = 1,
        with_offset: bool = False,
        video_suffix: str = ".webm",
        demo_data: str | None = None,
        num_classes: int | None = None,
        multi_label: bool | None = None,
        metric: str | None = None,
        num_segments: int | None = None,
        clip_len: int | None = None,
        frame_interval: int | None = None,
        num_test_clips: int | None = None,
        out_of_bound: str = "loop",
        twice_sample: bool = False,
        keep_tail_frames: bool = False,
        temporal_jitter: bool = False,
        short_side: int = 256,
        val_short_side: int | None = None,
        test_short_side: int | None = None,
        crop_size: int = 224,
        train_crop: str | None = None,
        scales: Sequence[float] = (1.0, 0.875, 0.75, 0.66),
        num_fixed_crops: int = 13,
        multiscale_input_size: int | None = None,
        flip: bool | None = None,
        test_crop: str | None = None,
        resize_antialias: bool = False,
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
        decoder_threads: int = 1,
        fast_decode: bool = False,
        max_retries: int = 10,
        max_failed_fraction: float = 0.01,
    ):
        given = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        super().__init__()
        # Plain lists in the hyperparameters, so hparams.yaml and checkpoints hold no tuples.
        given.update(
            resolutions=[int(r) for r in resolutions],
            mean=[float(m) for m in mean],
            std=[float(s) for s in std],
            scales=[float(s) for s in scales],
        )
        self.preset = get_preset(preset if preset is not None else "list")
        self.settings = cfg = self._resolve(given)
        # The effective values are the hyperparameters, so the ones logged agree with the model's (Lightning
        # refuses to merge a datamodule's `metric: null` with a model's `metric: mAP`).
        self.save_hyperparameters({**given, **cfg})
        self._check(given)
        self._num_classes = cfg["num_classes"]
        self._class_names: list[str] | None = None
        self._csv_classes: list[str] | None = None  # a Kinetics set's class names, read once
        if demo_data is not None:
            self._class_names = list(DEMO_CLASSES)
            if self._num_classes is None:
                self._set_num_classes(len(DEMO_CLASSES))
        self.datasets: dict[str, VideoDataset] = {}
        self._view_resolutions: list[int] | None = None  # views_at's, while it lasts

    def _check(self, given: dict[str, Any]) -> None:
        """Fail at construction, with the offending values, for everything that needs no files."""
        cfg = self.settings
        resolutions, mean, std = given["resolutions"], given["mean"], given["std"]
        decoder, batch_size, val_batch_size = given["decoder"], given["batch_size"], given["val_batch_size"]
        for split in SPLITS:
            self._sampler(split)
            self._transform(split)
        build_decoder(decoder)
        if given["fast_decode"] and decoder != "pyav":
            raise ValueError(
                f"fast_decode snaps frames to keyframes with decoder 'pyav'; decoder {decoder!r} has no such mode"
            )
        if cfg["num_classes"] is not None and cfg["num_classes"] < 1:
            raise ValueError(f"num_classes must be a positive integer, got {cfg['num_classes']!r}")
        if not resolutions or any(r < 1 for r in resolutions):
            raise ValueError(f"resolutions must be positive numbers of pixels, got {resolutions!r}")
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values (RGB), got mean={mean!r}, std={std!r}")
        for name, value in (("batch_size", batch_size), ("val_batch_size", val_batch_size)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if given["num_workers"] < 0:
            raise ValueError(f"num_workers must be >= 0, got {given['num_workers']!r}")
        if all(given[k] is None for k in ("demo_data", "train_list", "val_list", "test_list")):
            raise ValueError("give at least one of train_list, val_list, test_list, or demo_data")

    def _resolve(self, given: dict[str, Any]) -> dict[str, Any]:
        """The preset's defaults overridden by every value given; refuses what the preset forbids."""
        preset = self.preset
        cfg = preset.defaults()
        for key in cfg:
            if given.get(key) is not None:
                cfg[key] = given[key]
        if cfg["list_format"] not in preset.list_formats:
            raise ValueError(
                f"preset {preset.name!r} reads list_format {list(preset.list_formats)}, got {cfg['list_format']!r}"
            )
        if cfg["flip"] and not preset.flip_allowed:
            raise ValueError(
                f"preset {preset.name!r} refuses flip=true: its labels name directions (left/right), which a "
                f"horizontal flip would make wrong; remove `flip` from the config or set it to false"
            )
        if given.get("metric") is not None and given["metric"] not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {cfg['metric']!r}")
        if cfg["train_crop"] not in TRAIN_CROPS or cfg["test_crop"] not in TEST_CROPS:
            raise ValueError(
                f"train_crop must be one of {TRAIN_CROPS} and test_crop one of {TEST_CROPS}, "
                f"got {cfg['train_crop']!r} and {cfg['test_crop']!r}"
            )
        if cfg["test_short_side"] is None:
            cfg["test_short_side"] = given["short_side"]
        elif cfg["test_short_side"] == CROP_SIZE:
            cfg["test_short_side"] = given["crop_size"]
        crop = given["crop_size"]
        for name, side in (("val_short_side", given["val_short_side"]), ("test_short_side", cfg["test_short_side"])):
            too_small = isinstance(crop, int) and isinstance(side, int) and side < crop
            if side is not None and (isinstance(side, bool) or not isinstance(side, int) or too_small):
                raise ValueError(f"{name} must be a number of pixels >= crop_size ({crop!r}), got {side!r}")
        side = given["multiscale_input_size"]
        if side is not None and (isinstance(side, bool) or not isinstance(side, int) or side < 1):
            raise ValueError(f"multiscale_input_size must be a positive number of pixels, got {side!r}")
        cfg["metric"] = preset_metric(preset.name, given.get("metric"), given.get("multi_label"))
        if given.get("multi_label") is None:
            cfg["multi_label"] = cfg["metric"] == "mAP"  # mAP needs multi-hot targets
        return cfg

    def _set_num_classes(self, num_classes: int) -> None:
        self._num_classes = self.settings["num_classes"] = self.hparams["num_classes"] = num_classes
        # Lightning logs `hparams_initial`, merged with the model's: it must hold the class count found too.
        self._hparams_initial["num_classes"] = num_classes

    # -- what the data hold ------------------------------------------------------------

    @property
    def num_classes(self) -> int | None:
        """Number of classes: given, the preset's, the demo's, or inferred from the labels in ``setup``."""
        return self._num_classes

    @property
    def class_names(self) -> list[str] | None:
        """Class names, when the data name them (class folders, Kinetics, SSv2, the demo), else ``None``."""
        return self._class_names

    @property
    def metric(self) -> str:
        """``accuracy`` or ``mAP``: how the model should evaluate these data."""
        return self.settings["metric"]

    def _source(self, split: str) -> str | None:
        given = self.hparams[f"{split}_list"]
        if given is not None or self.hparams.demo_data is None:
            return given
        return str(Path(self.hparams.demo_data) / ("train.txt" if split == "train" else "val.txt"))

    def data_prefix(self, split: str) -> str:
        """The folder the paths of ``split``'s list are relative to (``val``/``test`` fall back to ``data_prefix``)."""
        hp = self.hparams
        val = hp.val_data_prefix if hp.val_data_prefix is not None else hp.data_prefix
        return {"train": hp.data_prefix, "val": val, "test": hp.test_data_prefix or val}[split]

    def _ytids(self, split: str) -> str | None:
        hp = self.hparams
        return {"train": hp.train_ytid_list, "val": hp.val_ytid_list, "test": hp.test_ytid_list or hp.val_ytid_list}[
            split
        ]

    def _kinetics_classes(self) -> list[str]:
        """The class names of a Kinetics CSV set: ``labels_file``, else the training CSV's (read once)."""
        if self._csv_classes is None:
            hp = self.hparams
            if hp.labels_file is not None:
                self._csv_classes = ann.load_class_names(hp.labels_file)
            elif hp.train_list is None:
                raise ValueError("kinetics_csv needs labels_file (class names) or train_list to take the classes from")
            else:
                self._csv_classes = self._read_kinetics("train", classes=None)[1]
        return self._csv_classes

    def _read_kinetics(self, split: str, classes: list[str] | None) -> tuple[list[VideoRecord], list[str]]:
        hp = self.hparams
        kwargs = {"filename_tmpl": hp.video_name_tmpl} if hp.video_name_tmpl else {}
        return ann.load_kinetics_csv(
            self._source(split), self.data_prefix(split), classes=classes, ytid_list=self._ytids(split), **kwargs
        )

    def load_records(self, split: str) -> tuple[str, list[VideoRecord], list[str] | None] | None:
        """The split's annotation source, records and class names (when the format names them); None: no list."""
        source = self._source(split)
        if source is None:
            return None
        hp, fmt, prefix = self.hparams, self.settings["list_format"], self.data_prefix(split)
        if Path(source).is_dir() or fmt == "folder":
            return (source, *ann.scan_class_folders(source))
        if fmt == "rawframes":
            return source, ann.load_rawframe_list(source, prefix, with_offset=hp.with_offset), None
        if fmt == "kinetics_csv":
            if split == "train" and hp.labels_file is None and self._csv_classes is None:
                records, self._csv_classes = self._read_kinetics(split, classes=None)  # its classes: sorted labels
            else:
                records = self._read_kinetics(split, classes=self._kinetics_classes())[0]
            return source, records, self._csv_classes
        if fmt == "sthv2":
            if hp.labels_file is None:
                raise ValueError("list_format sthv2 needs labels_file: the path of SSv2's labels.json")
            return (source, *ann.load_sthv2(source, hp.labels_file, prefix, suffix=hp.video_suffix))
        return source, ann.load_video_list(source, prefix), None

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
            None: list(SPLITS),
        }.get(stage)
        if splits is None:
            raise ValueError(f"unknown stage {stage!r}; expected fit, validate, test, predict or None")
        loaded: dict[str, tuple[str, list[VideoRecord]]] = {}
        for split in splits:
            found = self.load_records(split)
            if found is None:
                # fit may run without validation
                optional = stage is None or (stage == "fit" and split == "val")
                if not optional:
                    raise ValueError(f"stage {stage!r} needs {split}_list (or demo_data)")
                continue
            source, records, classes = found
            if classes is not None:
                if self._class_names is not None and classes != self._class_names:
                    raise ValueError(
                        f"{source}: classes {classes[:5]}... differ from the classes found before, "
                        f"{self._class_names[:5]}..."
                    )
                if self._num_classes is not None and len(classes) != self._num_classes:
                    raise ValueError(
                        f"{source} names {len(classes)} classes but num_classes is {self._num_classes}; set "
                        f"num_classes: {len(classes)} (or give the full class list in labels_file)"
                    )
                self._class_names = classes
            loaded[split] = (source, records)
        if self._num_classes is None:
            if self._class_names is not None:
                self._num_classes = len(self._class_names)
            else:
                self._num_classes = max(infer_num_classes(records) for _, records in loaded.values())
            self._set_num_classes(self._num_classes)
        for split, (source, records) in loaded.items():
            check_labels(records, self._num_classes, source)
            self.datasets[split] = self.build_dataset(split, source, records)

    def _decoder(self) -> Any:
        hp = self.hparams
        if self.settings["list_format"] == "rawframes":
            return build_decoder("rawframes", filename_tmpl=hp.filename_tmpl, start_index=hp.start_index)
        kwargs: dict[str, Any] = {"num_threads": hp.decoder_threads}
        if hp.fast_decode:
            kwargs["snap_to_keyframe"] = True
        return build_decoder(hp.decoder, **kwargs)

    def _sampler(self, split: str) -> SampleFrames:
        """``split``'s ``SampleFrames``: random offsets for training, centres (and starts) for evaluation."""
        hp, cfg = self.hparams, self.settings
        clip = (cfg["clip_len"], cfg["frame_interval"])
        if split == "train":
            return SampleFrames(
                *clip, cfg["num_segments"], test_mode=False, out_of_bound=hp.out_of_bound,
                keep_tail_frames=hp.keep_tail_frames, temporal_jitter=hp.temporal_jitter,
            )  # fmt: skip
        num_clips = cfg["num_segments"] * (cfg["num_test_clips"] if split == "test" else 1)
        # twice_sample is a test-view option: the official TSM configs set it in test_pipeline only
        twice = hp.twice_sample if split == "test" else False
        return SampleFrames(*clip, num_clips, test_mode=True, out_of_bound=hp.out_of_bound, twice_sample=twice)

    def _transform(self, split: str) -> Any:
        """``split``'s augmentation (train), centre crop (val) or test views."""
        hp, cfg = self.hparams, self.settings
        if split == "train":
            return build_train_transform(
                hp.short_side, hp.crop_size, cfg["flip"], cfg["train_crop"], hp.scales,
                num_fixed_crops=hp.num_fixed_crops, antialias=hp.resize_antialias,
                multiscale_input_size=hp.multiscale_input_size,
            )  # fmt: skip
        val_side = hp.short_side if hp.val_short_side is None else hp.val_short_side
        if split == "val":
            return build_val_transform(val_side, hp.crop_size, antialias=hp.resize_antialias)
        return build_test_transform(
            cfg["test_short_side"], hp.crop_size, cfg["test_crop"], antialias=hp.resize_antialias
        )

    def build_dataset(self, split: str, source: str, records: list[VideoRecord]) -> VideoDataset:
        """A ``VideoDataset`` of ``records`` with ``split``'s sampling, decoding and transform (test: every view).

        Test videos give ``num_test_clips`` views (times 2 with ``twice_sample``), validation videos one clip; the
        module averages views.
        """
        hp, cfg = self.hparams, self.settings
        sampler = self._sampler(split)
        num_views = None
        if split == "test":
            num_views = cfg["num_test_clips"]
        trainer = self.trainer
        return VideoDataset(
            records,
            sampler,
            self._transform(split),
            self._decoder(),
            source=source,
            num_views=num_views,
            multi_label=bool(cfg["multi_label"]) and split != "train",
            num_classes=self._num_classes,
            max_retries=hp.max_retries,
            max_failed_fraction=hp.max_failed_fraction,
            world_size=trainer.world_size if trainer is not None else 1,
            replace_unreadable=split == "train",  # a stand-in would be scored as the video it replaces
        )

    def _loader(self, split: str, train: bool) -> DataLoader:
        if split not in self.datasets:
            raise RuntimeError(f"no {split} dataset: call setup() for a stage that uses {split}_list first")
        hp = self.hparams
        dataset = self.datasets[split]
        batch_size = hp.batch_size if train else (hp.val_batch_size or hp.batch_size)
        has_accelerator = torch.cuda.is_available() or (
            hasattr(torch, "accelerator") and torch.accelerator.is_available()
        )
        # Training: a resumable shuffled order (this process' share of it under DDP). Evaluation on several
        # processes: each video once (Lightning's DistributedSampler would repeat some).
        sampler = training_sampler(dataset, self.trainer) if train else evaluation_sampler(dataset, self.trainer)
        return (ResumableLoader if train else RNGNeutralLoader)(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=train,
            num_workers=hp.num_workers,
            pin_memory=hp.pin_memory and has_accelerator,  # pinning without an accelerator only warns
            persistent_workers=hp.persistent_workers and hp.num_workers > 0,
            collate_fn=None if train else collate_readable,  # unreadable videos out of the batch, counted
        )  # both loaders make iterators without touching the main RNG, whose state a resumed run restores

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches (the last incomplete one dropped) that a checkpoint resumes mid-epoch:
        :class:`~reskd_lightning.data.resumable.ResumableLoader` over this process' share of an order seeded by
        ``seed_everything`` (:func:`~reskd_lightning.data.distributed.training_sampler`)."""
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        """Validation batches in list order (no loader when there is no validation list); on several processes,
        each video on one rank only (:func:`~reskd_lightning.data.distributed.evaluation_sampler`)."""
        if "val" not in self.datasets:
            return []  # type: ignore[return-value]  # Lightning skips validation for an empty list
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        """Test batches in list order; on several processes, each video on one rank only."""
        return self._loader("test", train=False)

    def predict_dataloader(self) -> DataLoader:
        """The test list's batches, for prediction; on several processes, each video on one rank only."""
        return self._loader("test", train=False)

    @contextlib.contextmanager
    def views_at(self, resolutions: Sequence[int]) -> Iterator["VideoDataModule"]:
        """Make the device-side views (``batch["clips"]``) exactly ``resolutions`` inside a ``with`` block, e.g.
        to evaluate a network at a resolution the run was not configured for; ``hparams.resolutions`` (what
        is logged and saved) stays as configured, and the configured views come back afterwards::

            with datamodule.views_at([160]):
                trainer.validate(module_at_160, datamodule=datamodule)
        """
        views = sorted({int(r) for r in resolutions}, reverse=True)
        if not views or any(r < 1 for r in views):
            raise ValueError(f"resolutions must be positive numbers of pixels, got {list(resolutions)!r}")
        before, self._view_resolutions = self._view_resolutions, views
        try:
            yield self
        finally:
            self._view_resolutions = before

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """On the device: normalise ``batch["video"]``, add ``batch["clips"]`` (views keyed by resolution)."""
        hp = self.hparams
        if isinstance(batch, dict) and "video" not in batch:
            return batch  # an evaluation batch of unreadable videos only (``collate_readable``)
        resolutions = self._view_resolutions if self._view_resolutions is not None else hp.resolutions
        return attach_views(batch, resolutions, hp.mean, hp.std, mode=hp.interpolation, antialias=hp.antialias)
