"""Multi-resolution views of one clip, made on the device.

ResKD decodes and augments a clip once, at the teacher's resolution; every other resolution is a resize of
that tensor. Teacher and student therefore see the same frames, crop and flip, and the data loader's cost does
not grow with the number of resolutions. The same functions serve ``VideoDataModule.on_after_batch_transfer``
and ``ResKDModule`` when a user's own DataModule yields only ``batch["video"]``.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, MutableMapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

#: ImageNet statistics on the 0..255 scale, the normalisation of torchvision's and mmaction2's ResNets.
IMAGENET_MEAN: tuple[float, float, float] = (123.675, 116.28, 103.53)
IMAGENET_STD: tuple[float, float, float] = (58.395, 57.12, 57.375)

#: The ``mode`` values of :func:`resize_frames` that distillers accept for upsampling a map (``F.interpolate``'s
#: 2-D modes).
INTERPOLATION_MODES: tuple[str, ...] = ("bilinear", "bicubic", "nearest", "area")


def normalize_video(
    video: Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> Tensor:
    """Turn a uint8 clip ``[..., C, T, H, W]`` into float32, normalised per channel on the 0..255 scale.

    A floating-point clip is returned unchanged: it is taken to be normalised already.
    """
    if video.is_floating_point():
        return video
    if video.dtype != torch.uint8:
        raise TypeError(f"expected a uint8 or floating-point video, got dtype {video.dtype}")
    if video.dim() < 4:
        raise ValueError(f"expected a video of shape [..., C, T, H, W], got shape {tuple(video.shape)}")
    channels = video.shape[-4]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"mean/std have {len(mean)}/{len(std)} values but the video has {channels} channels")
    shape = (channels, 1, 1, 1)
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=video.device).view(shape)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=video.device).view(shape)
    return (video.float() - mean_t) / std_t


def view_size(height: int, width: int, resolution: int) -> tuple[int, int]:
    """Output ``(h, w)`` of the view whose short side is ``resolution``, keeping the aspect ratio."""
    short = min(height, width)
    return round(height * resolution / short), round(width * resolution / short)


def resize_clip(
    video: Tensor, resolution: int, mode: str = "bilinear", antialias: bool = False, align_corners: bool = False
) -> Tensor:
    """Resize a float clip ``[..., C, T, H, W]`` so that its short side is ``resolution``.

    Every frame is resized on its own (2-D interpolation), which is what the paper's code does for the
    student's input. The tensor is returned as is when it already has that size.
    """
    if video.dim() < 4:
        raise ValueError(f"expected a clip of shape [..., C, T, H, W], got shape {tuple(video.shape)}")
    if resolution <= 0:
        raise ValueError(f"resolution must be a positive number of pixels, got {resolution}")
    height, width = video.shape[-2:]
    return resize_frames(video, view_size(height, width, resolution), mode, antialias, align_corners)


def resize_frames(
    video: Tensor, size: tuple[int, int], mode: str = "bilinear", antialias: bool = False, align_corners: bool = False
) -> Tensor:
    """Resize every frame of ``[..., C, T, H, W]`` to exactly ``size`` (2-D interpolation, frame by frame).

    The tensor is returned as is when it already has that size. ``antialias`` and ``align_corners`` apply to
    bilinear and bicubic interpolation.
    """
    *lead, channels, frames, height, width = video.shape
    size = (int(size[0]), int(size[1]))
    if size == (height, width):
        return video
    # [..., C, T, H, W] -> [B*T, C, H, W] so interpolate works frame by frame.
    frames_2d = video.reshape(-1, channels, frames, height, width).transpose(1, 2)
    frames_2d = frames_2d.reshape(-1, channels, height, width)
    kwargs: dict[str, Any] = {"mode": mode}
    if mode in ("bilinear", "bicubic"):
        kwargs.update(align_corners=align_corners, antialias=antialias)
    resized = F.interpolate(frames_2d, size=size, **kwargs)
    resized = resized.reshape(-1, frames, channels, *size).transpose(1, 2)
    return resized.reshape(*lead, channels, frames, *size)


def make_views(
    video: Tensor,
    resolutions: Iterable[int],
    mode: str = "bilinear",
    antialias: bool = False,
) -> dict[int, Tensor]:
    """All views of one batch of clips, keyed by resolution (the short side in pixels).

    ``video`` is a float clip ``[N, C, T, H, W]`` or a multi-view test clip ``[N, V, C, T, H, W]``; the views
    keep its leading dimensions. Defaults match the paper's code: bilinear, ``align_corners=False``, no
    antialiasing.
    """
    return {int(r): resize_clip(video, int(r), mode=mode, antialias=antialias) for r in sorted(set(resolutions))}


def attach_views(
    batch: MutableMapping[str, Any],
    resolutions: Iterable[int],
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    mode: str = "bilinear",
    antialias: bool = False,
) -> MutableMapping[str, Any]:
    """Add ``batch["clips"]`` (views keyed by resolution) made from ``batch["video"]``.

    Views already in ``batch["clips"]`` are kept and only the missing resolutions are made, so a DataModule
    that has made the views and a module that asks for them again do not resize twice. A uint8 video is
    normalised first; a float video is taken as normalised.
    """
    wanted = sorted({int(r) for r in resolutions})
    clips: dict[int, Tensor] = dict(batch.get("clips") or {})
    missing = [r for r in wanted if r not in clips]
    if missing:
        if "video" not in batch:
            raise KeyError(
                f"the batch has no 'video' to make views {missing} from; keys are {sorted(batch.keys())}"
            )
        video = normalize_video(batch["video"], mean, std)
        clips.update(make_views(video, missing, mode=mode, antialias=antialias))
    batch["clips"] = clips
    return batch


def batch_size_of(batch: Mapping[str, Any]) -> int:
    """Number of videos in a batch (the first dimension of its video or of any view)."""
    if "video" in batch:
        return int(batch["video"].shape[0])
    return int(next(iter(batch["clips"].values())).shape[0])
