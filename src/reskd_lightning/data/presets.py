"""Dataset presets: the paper's defaults for each benchmark, selected by name.

A preset names the annotation format and the defaults the paper (and mmaction2's recipes) use for a dataset:
classes, segments, clip length, metric, flip and crops. ``VideoDataModule(preset=...)`` takes every value
it is not given from the preset; a value a preset forbids (flip on Something-Something V2) is refused.

=============  ===============  =======  ==========  ========  ======  ===============================
preset         format           classes  segments    metric    flip    notes
=============  ===============  =======  ==========  ========  ======  ===============================
activitynet    rawframes/videos  200     16          mAP       yes     multi-label; one random label
fcvid          rawframes/videos  239     16          mAP       yes     multi-label; one random label
minikinetics   videos/csv        200     8           accuracy  yes     Kinetics-400 subset (Xie et al.)
sthv2          sthv2 json        174     8           accuracy  no      left/right labels: never flip
kinetics400    kinetics csv      400     1 x 8x8     accuracy  yes     3D: dense clips, 10 x 3 views (*)
list           videos/rawframes  (data)  8           accuracy  yes     any mmaction2 list
folder         class folders     (data)  8           accuracy  yes     root/<class>/<video>
=============  ===============  =======  ==========  ========  ======  ===============================

(*) The Kinetics-400 test views span the whole short side: ``test_short_side`` defaults to ``crop_size`` (224,
as the official SlowOnly and Swin configs' ``Resize(scale=(-1, 224))`` + ``ThreeCrop(crop_size=224)``);
validation keeps ``Resize(-1, 256)`` + ``CenterCrop(224)``. Every other preset tests at ``short_side``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: A preset's ``test_short_side`` meaning "the crop size": test crops span the whole short side.
CROP_SIZE = "crop_size"

METRICS = ("accuracy", "mAP")


@dataclass(frozen=True)
class DatasetPreset:
    """The defaults of one benchmark; see the module docstring for the table."""

    name: str
    list_format: str
    list_formats: tuple[str, ...]  # the formats a user may choose instead
    num_classes: int | None
    num_segments: int
    clip_len: int = 1
    frame_interval: int = 1
    num_test_clips: int = 1
    metric: str = "accuracy"
    multi_label: bool = False
    flip: bool = True
    flip_allowed: bool = True
    train_crop: str = "multiscale"
    test_crop: str = "center"
    #: The short side test views are resized to: None for ``short_side``, ``CROP_SIZE`` for ``crop_size``.
    test_short_side: int | str | None = None

    def defaults(self) -> dict[str, object]:
        """The values ``VideoDataModule`` takes from the preset when it is not given them."""
        out = asdict(self)
        for key in ("name", "list_formats", "flip_allowed"):
            out.pop(key)
        return out


_LISTS = ("rawframes", "videos")
PRESETS: dict[str, DatasetPreset] = {
    p.name: p
    for p in (
        DatasetPreset("activitynet", "rawframes", _LISTS, 200, 16, metric="mAP", multi_label=True),
        DatasetPreset("fcvid", "rawframes", _LISTS, 239, 16, metric="mAP", multi_label=True),
        DatasetPreset("minikinetics", "videos", ("videos", "rawframes", "kinetics_csv"), 200, 8),
        DatasetPreset("sthv2", "sthv2", ("sthv2", "videos", "rawframes"), 174, 8, flip=False, flip_allowed=False),
        DatasetPreset(
            "kinetics400",
            "kinetics_csv",
            ("kinetics_csv", "videos", "rawframes"),
            400,
            num_segments=1,
            clip_len=8,
            frame_interval=8,
            num_test_clips=10,
            train_crop="random_resized",
            test_crop="three",
            test_short_side=CROP_SIZE,
        ),
        DatasetPreset("list", "videos", _LISTS + ("folder",), None, 8, train_crop="random"),
        DatasetPreset("folder", "folder", ("folder",), None, 8, train_crop="random"),
    )
}


def get_preset(name: str) -> DatasetPreset:
    """The preset called ``name``; an unknown name lists the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset preset {name!r}; known presets are {sorted(PRESETS)}") from None


def preset_num_classes(preset: str | None, num_classes: int | None) -> int | None:
    """``num_classes`` if given, else the preset's (for linking ``data`` to ``model`` in the CLI)."""
    if num_classes is not None or preset is None:
        return num_classes
    return get_preset(preset).num_classes


def preset_metric(preset: str | None, metric: str | None, multi_label: bool | None = None) -> str:
    """The metric a data section implies: ``metric`` if given; ``mAP`` for multi-label data; the preset's."""
    if metric is not None:
        return metric
    if multi_label is not None:
        return "mAP" if multi_label else "accuracy"
    return get_preset(preset).metric if preset is not None else "accuracy"
