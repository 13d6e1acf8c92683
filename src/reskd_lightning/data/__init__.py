"""Data: annotation lists, frame sampling, decoding, augmentation, datasets and the DataModule.

The flow of one sample: ``VideoRecord`` (annotations) -> ``SampleFrames`` (frame indices) -> decoder
(uint8 frames) -> transform (one augmentation at the high resolution) -> ``VideoDataset`` sample ->
``VideoDataModule`` batches, whose multi-resolution views are made on the device.

The names below are imported on first use (PEP 562), as in :mod:`reskd_lightning`: importing a light
submodule (``reskd_lightning.data.prepare_settings``, what ``reskd prepare --help`` needs) does not import
torch and Lightning; ``from reskd_lightning.data import VideoDataModule`` works as ever.
"""

# No `from __future__ import annotations` here: it would bind the name `annotations` in this package and hide
# the submodule of that name (`from reskd_lightning.data import annotations` would give the __future__ feature).
from typing import TYPE_CHECKING

from reskd_lightning.lazy import lazy_exports

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each name is imported by __getattr__
    from .annotations import (
        KINETICS_COLUMNS,
        KINETICS_FILENAME_TMPL,
        VIDEO_EXTENSIONS,
        VideoRecord,
        check_labels,
        infer_num_classes,
        load_class_names,
        load_kinetics_csv,
        load_rawframe_list,
        load_sthv2,
        load_video_list,
        scan_class_folders,
        to_multi_hot,
    )
    from .check import UnreadableVideo, check_dataset
    from .datamodule import VideoDataModule
    from .dataset import UNREADABLE_KEY, TooManyFailedVideos, VideoDataset, collate_readable
    from .decoders import (
        DECODERS,
        PyAVDecoder,
        PyAVVideoHandle,
        RawFrameDecoder,
        TorchCodecDecoder,
        VideoDecodeError,
        VideoHandle,
        build_decoder,
    )
    from .demo import (
        DEMO_CLASSES,
        default_demo_dir,
        ensure_demo_dataset,
        is_demo_complete,
        render_demo_video,
        write_demo_dataset,
        write_video,
    )
    from .presets import PRESETS, DatasetPreset, get_preset
    from .sampling import SampleFrames, split_views
    from .transforms import (
        CenterCrop,
        MultiScaleCrop,
        RandomResizedCrop,
        Resize,
        ThreeCrop,
        bilinear_resize,
        build_test_transform,
        build_train_transform,
        build_val_transform,
        short_side_size,
    )

#: Each public name -> the submodule that defines it.
_SOURCES = {
    "CenterCrop": "transforms",
    "DECODERS": "decoders",
    "DEMO_CLASSES": "demo",
    "DatasetPreset": "presets",
    "KINETICS_COLUMNS": "annotations",
    "KINETICS_FILENAME_TMPL": "annotations",
    "MultiScaleCrop": "transforms",
    "PRESETS": "presets",
    "PyAVDecoder": "decoders",
    "PyAVVideoHandle": "decoders",
    "RandomResizedCrop": "transforms",
    "RawFrameDecoder": "decoders",
    "Resize": "transforms",
    "SampleFrames": "sampling",
    "ThreeCrop": "transforms",
    "TooManyFailedVideos": "dataset",
    "TorchCodecDecoder": "decoders",
    "UNREADABLE_KEY": "dataset",
    "UnreadableVideo": "check",
    "VIDEO_EXTENSIONS": "annotations",
    "VideoDataModule": "datamodule",
    "VideoDataset": "dataset",
    "VideoDecodeError": "decoders",
    "VideoHandle": "decoders",
    "VideoRecord": "annotations",
    "bilinear_resize": "transforms",
    "build_decoder": "decoders",
    "build_test_transform": "transforms",
    "build_train_transform": "transforms",
    "build_val_transform": "transforms",
    "check_dataset": "check",
    "check_labels": "annotations",
    "collate_readable": "dataset",
    "default_demo_dir": "demo",
    "ensure_demo_dataset": "demo",
    "get_preset": "presets",
    "infer_num_classes": "annotations",
    "is_demo_complete": "demo",
    "load_class_names": "annotations",
    "load_kinetics_csv": "annotations",
    "load_rawframe_list": "annotations",
    "load_sthv2": "annotations",
    "load_video_list": "annotations",
    "render_demo_video": "demo",
    "scan_class_folders": "annotations",
    "short_side_size": "transforms",
    "split_views": "sampling",
    "to_multi_hot": "annotations",
    "write_demo_dataset": "demo",
    "write_video": "demo",
}

__all__ = sorted(_SOURCES)


__getattr__, __dir__ = lazy_exports(__name__, _SOURCES)
