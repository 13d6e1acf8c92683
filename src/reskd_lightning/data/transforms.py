"""Clip augmentation, done once at the high resolution on uint8 clips ``[T, C, H, W]``.

torchvision's ``transforms.v2`` treat every leading dimension of a tensor as a batch and draw one set of
random parameters per call, so all frames of a clip get the same crop and flip.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor
from torchvision.transforms import v2

ClipTransform = Callable[[Tensor], Tensor]


def _check_sizes(short_side: int, crop_size: int) -> None:
    for name, value in (("short_side", short_side), ("crop_size", crop_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive number of pixels, got {value!r}")
    if crop_size > short_side:
        raise ValueError(f"crop_size ({crop_size}) must not exceed short_side ({short_side})")


def build_train_transform(short_side: int, crop_size: int, flip: bool = True) -> ClipTransform:
    """Training augmentation: short side to ``short_side``, random ``crop_size`` crop, random flip."""
    _check_sizes(short_side, crop_size)
    steps: list[Callable] = [v2.Resize(short_side, antialias=True), v2.RandomCrop(crop_size)]
    if flip:
        steps.append(v2.RandomHorizontalFlip(0.5))
    return v2.Compose(steps)


def build_val_transform(short_side: int, crop_size: int) -> ClipTransform:
    """Evaluation transform: resize the short side to ``short_side``, centre ``crop_size`` crop."""
    _check_sizes(short_side, crop_size)
    return v2.Compose([v2.Resize(short_side, antialias=True), v2.CenterCrop(crop_size)])
