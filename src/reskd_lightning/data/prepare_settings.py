"""What ``reskd prepare`` is told to write: ``PrepareSettings``, the named ``PREPARE_PRESETS`` and the choices
of layout and image format.

Plain Python, importable without torch: ``reskd prepare --help`` lists the presets and choices from here and
starts at once; the writing itself (:mod:`~reskd_lightning.data.prepare_layouts`,
:mod:`~reskd_lightning.data.prepare`) is imported once the arguments are parsed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

LAYOUTS = ("frames", "video")
IMAGE_FORMATS = ("jpg", "png")


@dataclass(frozen=True)
class PrepareSettings:
    """How ``reskd prepare`` writes each video; a finished video's marker records these, so a rerun with
    other settings is noticed.

    Args:
        layout: ``frames``: a folder of images per video (a rawframe list); ``video``: one MJPEG ``.avi`` per
            video (a video list).
        image_format: ``jpg`` or ``png`` (``frames`` layout).
        fps: Frames kept per second (see ``prepare_layouts.frames_at_fps``); None or 0: every frame.
        short_side: Short side of the written frames, the long side rounded as mmcv's ``Resize``; None: as decoded.
        jpeg_quality: Pillow's JPEG quality (1-95; 95 is OpenCV's ``imwrite`` default, what mmaction2's frame
            extraction writes).
        png_compression: zlib level of the PNG frames (0-9). 1 writes about 4x faster than Pillow's default 6
            for about 15% larger files; reading them takes as long.
        video_quality: MJPEG quantiser of the ``video`` layout, 1 (best) to 31 (FFmpeg's ``-q:v``).
        antialias: Shrink with torchvision's antialiased bilinear (as ffmpeg's ``scale`` does); False: mmcv's
            OpenCV bilinear without antialiasing.

    From the command line, ``reskd prepare LIST --out DIR --preset anet`` or each field as an option
    (``--layout``, ``--format``, ``--fps``, ``--short-side``, ``--jpeg-quality``, ``--png-compression``,
    ``--video-quality``, ``--no-antialias``); in Python::

        from reskd_lightning.data.prepare import prepare_videos
        from reskd_lightning.data.prepare_settings import PREPARE_PRESETS
        prepare_videos("data/anet/train_videos.txt", "data/anet/rawframes", PREPARE_PRESETS["anet"], workers=16)
    """

    layout: str = "frames"
    image_format: str = "jpg"
    fps: float | None = None
    short_side: int | None = None
    jpeg_quality: int = 95
    png_compression: int = 1
    video_quality: int = 2
    antialias: bool = True

    def __post_init__(self) -> None:
        checks = (
            ("layout", self.layout in LAYOUTS, f"one of {LAYOUTS}"),
            ("image_format", self.image_format in IMAGE_FORMATS, f"one of {IMAGE_FORMATS}"),
            ("fps", self.fps is None or (isinstance(self.fps, (int, float)) and self.fps >= 0), "a rate >= 0"),
            ("short_side", self.short_side is None or _int_in(self.short_side, 2, 1 << 16), "a size >= 2"),
            ("jpeg_quality", _int_in(self.jpeg_quality, 1, 95), "an integer 1-95"),
            ("png_compression", _int_in(self.png_compression, 0, 9), "an integer 0-9"),
            ("video_quality", _int_in(self.video_quality, 1, 31), "an integer 1-31"),
            ("antialias", isinstance(self.antialias, bool), "true or false"),
        )
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"PrepareSettings: {name} must be {expected}, got {getattr(self, name)!r}")
        if self.fps == 0:
            object.__setattr__(self, "fps", None)  # 0 and None both mean: every frame

    @property
    def filename_tmpl(self) -> str:
        """The frame files' ``filename_tmpl`` (``frames`` layout), for ``VideoDataModule``."""
        return f"img_{{:05}}.{self.image_format}"

    def as_dict(self) -> dict[str, Any]:
        """The fields that change what is written (a ``video`` layout ignores the image settings)."""
        fields = asdict(self)
        unused = ("image_format", "jpeg_quality", "png_compression") if self.layout == "video" else ("video_quality",)
        return {k: v for k, v in fields.items() if k not in unused}

    def with_changes(self, **changes: Any) -> "PrepareSettings":
        """A copy with ``changes`` (the ones that are None left out)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def _int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


#: Named settings. ``anet``: the official ActivityNet and FCVID frames (CVMI-Lab/ResKD's README: "png format at
#: a frame rate of 4" with its tools/data/activitynet/video2img.py, ``ffmpeg -i V -vf scale=-1:360 -r 4``: height
#: 360, here the short side, the same for landscape videos; its configs read ``img_{:05}.png``). ``anet-jpg``: JPEG at
#: the same rate and the training short side, several times faster to load. ``anet-video``: the same frames as
#: one MJPEG file per video, the fastest to load and one file instead of hundreds. ``jpg``: every frame as
#: JPEG at short side 256 (mmaction2's usual rawframes, for short clips such as Kinetics).
PREPARE_PRESETS: dict[str, PrepareSettings] = {
    "anet": PrepareSettings(layout="frames", image_format="png", fps=4, short_side=360),
    "anet-jpg": PrepareSettings(layout="frames", image_format="jpg", fps=4, short_side=256),
    "anet-video": PrepareSettings(layout="video", fps=4, short_side=256),
    "jpg": PrepareSettings(layout="frames", image_format="jpg", fps=None, short_side=256),
}

__all__ = ["IMAGE_FORMATS", "LAYOUTS", "PREPARE_PRESETS", "PrepareSettings"]
