"""Data: annotation lists, frame sampling, decoding, augmentation, datasets and the DataModule.

The flow of one sample: ``VideoRecord`` (annotations) -> ``SampleFrames`` (frame indices) -> decoder
(uint8 frames) -> transform (one augmentation at the high resolution) -> ``VideoDataset`` sample ->
``VideoDataModule`` batches, whose multi-resolution views are made on the device.
"""

from reskd_lightning.data.annotations import (
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
from reskd_lightning.data.check import UnreadableVideo, check_dataset
from reskd_lightning.data.datamodule import VideoDataModule
from reskd_lightning.data.dataset import UNREADABLE_KEY, TooManyFailedVideos, VideoDataset, collate_readable
from reskd_lightning.data.decoders import (
    DECODERS,
    PyAVDecoder,
    PyAVVideoHandle,
    RawFrameDecoder,
    TorchCodecDecoder,
    VideoDecodeError,
    VideoHandle,
    build_decoder,
)
from reskd_lightning.data.demo import (
    DEMO_CLASSES,
    default_demo_dir,
    ensure_demo_dataset,
    is_demo_complete,
    render_demo_video,
    write_demo_dataset,
    write_video,
)
from reskd_lightning.data.presets import PRESETS, DatasetPreset, get_preset
from reskd_lightning.data.sampling import SampleFrames, split_views
from reskd_lightning.data.transforms import (
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

__all__ = [
    "KINETICS_COLUMNS",
    "KINETICS_FILENAME_TMPL",
    "load_class_names",
    "load_kinetics_csv",
    "load_rawframe_list",
    "load_sthv2",
    "to_multi_hot",
    "DECODERS",
    "DEMO_CLASSES",
    "PRESETS",
    "DatasetPreset",
    "CenterCrop",
    "MultiScaleCrop",
    "RandomResizedCrop",
    "Resize",
    "ThreeCrop",
    "bilinear_resize",
    "short_side_size",
    "TooManyFailedVideos",
    "UNREADABLE_KEY",
    "collate_readable",
    "UnreadableVideo",
    "build_test_transform",
    "check_dataset",
    "get_preset",
    "split_views",
    "VIDEO_EXTENSIONS",
    "PyAVDecoder",
    "PyAVVideoHandle",
    "RawFrameDecoder",
    "TorchCodecDecoder",
    "SampleFrames",
    "VideoDataModule",
    "VideoDataset",
    "VideoDecodeError",
    "VideoHandle",
    "VideoRecord",
    "build_decoder",
    "build_train_transform",
    "build_val_transform",
    "check_labels",
    "default_demo_dir",
    "ensure_demo_dataset",
    "infer_num_classes",
    "is_demo_complete",
    "load_video_list",
    "render_demo_video",
    "scan_class_folders",
    "write_demo_dataset",
    "write_video",
]
