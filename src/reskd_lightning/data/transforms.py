"""Clip augmentation, done once at the high resolution on uint8 clips ``[T, C, H, W]``.

torchvision's ``transforms.v2`` treat every leading dimension of a tensor as a batch and draw one set of
random parameters per call, so all frames of a clip get the same crop and flip. ``MultiScaleCrop`` and
``ThreeCrop`` are mmaction2's transforms of the same names, written for these clips.

Training recipes (``train_crop``):

* ``"multiscale"``: the paper's 2D (TSN/TSM) recipe: short side to ``short_side`` (256), ``MultiScaleCrop``
  (scales 1, .875, .75, .66, aspect gap 1, 13 fixed offsets), resize to ``crop_size``, flip;
* ``"random_resized"``: the 3D recipe: short side, ``RandomResizedCrop`` to ``crop_size``, flip;
* ``"random"``: short side, a random ``crop_size`` square, flip (the demo's recipe).

Evaluation: short side, then a centre crop (``"center"``) or mmaction2's ``ThreeCrop`` (``"three"``).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

ClipTransform = Callable[[Tensor], Tensor]

TRAIN_CROPS = ("multiscale", "random_resized", "random")
TEST_CROPS = ("center", "three")


def _check_sizes(short_side: int, crop_size: int) -> None:
    for name, value in (("short_side", short_side), ("crop_size", crop_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive number of pixels, got {value!r}")
    if crop_size > short_side:
        raise ValueError(f"crop_size ({crop_size}) must not exceed short_side ({short_side})")


def _randint(high: int) -> int:
    """A random integer in ``[0, high)`` from torch's RNG (seeded by Lightning in every worker)."""
    return int(torch.randint(high, (1,)).item())


class MultiScaleCrop(v2.Transform):
    """mmaction2's ``MultiScaleCrop``: a crop of random scale and aspect at one of a few fixed offsets.

    The crop's width and height are each ``min(H, W) * s`` for scales ``s`` in ``scales`` whose ranks differ
    by at most ``max_wh_scale_gap``; a side within 3 pixels of ``input_size`` snaps to it. The crop sits at
    one of ``num_fixed_crops`` (5 or 13) positions on a 4x4 grid of steps (corners, centre, edge centres,
    quarter points), or anywhere with ``random_crop=True``. The crop is not resized; a ``Resize`` to
    ``input_size`` follows it in the training recipe.

    Configured through ``VideoDataModule``::

        data:
          init_args:
            train_crop: multiscale
            short_side: 256
            crop_size: 224
    """

    def __init__(
        self,
        input_size: int,
        scales: Sequence[float] = (1.0, 0.875, 0.75, 0.66),
        max_wh_scale_gap: int = 1,
        random_crop: bool = False,
        num_fixed_crops: int = 13,
    ):
        super().__init__()
        if num_fixed_crops not in (5, 13):
            raise ValueError(f"MultiScaleCrop: num_fixed_crops must be 5 or 13, got {num_fixed_crops!r}")
        if not scales or any(not 0 < s <= 1 for s in scales):
            raise ValueError(f"MultiScaleCrop: scales must lie in (0, 1], got {list(scales)!r}")
        self.input_size = int(input_size)
        self.scales = tuple(float(s) for s in scales)
        self.max_wh_scale_gap = int(max_wh_scale_gap)
        self.random_crop = bool(random_crop)
        self.num_fixed_crops = int(num_fixed_crops)

    def candidate_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """The ``(crop_w, crop_h)`` pairs one crop is drawn from, for frames of ``height x width``."""
        base = min(height, width)
        sizes = [int(base * s) for s in self.scales]
        pairs = []
        for i, h in enumerate(sizes):
            for j, w in enumerate(sizes):
                if abs(i - j) <= self.max_wh_scale_gap:
                    pairs.append(tuple(self.input_size if abs(v - self.input_size) < 3 else v for v in (w, h)))
        return pairs  # type: ignore[return-value]

    def candidate_offsets(self, height: int, width: int, crop_w: int, crop_h: int) -> list[tuple[int, int]]:
        """The fixed ``(x, y)`` positions of a ``crop_w x crop_h`` crop (5 or 13 of them)."""
        w, h = (width - crop_w) // 4, (height - crop_h) // 4
        offsets = [(0, 0), (4 * w, 0), (0, 4 * h), (4 * w, 4 * h), (2 * w, 2 * h)]
        if self.num_fixed_crops == 13:
            offsets += [
                (0, 2 * h), (4 * w, 2 * h), (2 * w, 4 * h), (2 * w, 0),
                (w, h), (3 * w, h), (w, 3 * h), (3 * w, 3 * h),
            ]  # fmt: skip
        return offsets

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        sizes = self.candidate_sizes(height, width)
        crop_w, crop_h = sizes[_randint(len(sizes))]
        crop_w, crop_h = min(crop_w, width), min(crop_h, height)
        if self.random_crop:
            x, y = _randint(width - crop_w + 1), _randint(height - crop_h + 1)
        else:
            offsets = self.candidate_offsets(height, width, crop_w, crop_h)
            x, y = offsets[_randint(len(offsets))]
        return dict(top=y, left=x, height=crop_h, width=crop_w)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return TF.crop(inpt, **params)


class ThreeCrop(torch.nn.Module):
    """mmaction2's ``ThreeCrop``: three ``crop_size`` squares along the long side (start, end, middle).

    Takes a clip ``[T, C, H, W]`` and gives ``[3, T, C, crop_size, crop_size]``; along the short side each
    crop is centred. Used for test views of 3D models (short side 256 and crop 256 in mmaction2's recipes).
    """

    def __init__(self, crop_size: int):
        super().__init__()
        self.crop_size = int(crop_size)

    def forward(self, clip: Tensor) -> Tensor:
        height, width = clip.shape[-2:]
        c = self.crop_size
        if c > min(height, width):
            raise ValueError(f"ThreeCrop: crop_size {c} exceeds the frames' short side ({height}x{width})")
        if width >= height:
            y, step = (height - c) // 2, (width - c) // 2
            boxes = [(y, 0), (y, 2 * step), (y, step)]
        else:
            x, step = (width - c) // 2, (height - c) // 2
            boxes = [(0, x), (2 * step, x), (step, x)]
        return torch.stack([clip[..., y : y + c, x : x + c] for y, x in boxes])


def build_train_transform(
    short_side: int,
    crop_size: int,
    flip: bool = True,
    crop: str = "random",
    scales: Sequence[float] = (1.0, 0.875, 0.75, 0.66),
) -> ClipTransform:
    """Training augmentation of uint8 clips ``[T, C, H, W]``: one of ``TRAIN_CROPS``, then a random flip.

    Every recipe first resizes the short side to ``short_side`` and ends with ``crop_size x crop_size``
    frames; ``scales`` are ``MultiScaleCrop``'s.
    """
    _check_sizes(short_side, crop_size)
    if crop not in TRAIN_CROPS:
        raise ValueError(f"train_crop must be one of {TRAIN_CROPS}, got {crop!r}")
    steps: list[Callable] = [v2.Resize(short_side, antialias=True)]
    if crop == "multiscale":
        steps += [MultiScaleCrop(crop_size, scales), v2.Resize((crop_size, crop_size), antialias=True)]
    elif crop == "random_resized":
        steps.append(v2.RandomResizedCrop(crop_size, scale=(0.08, 1.0), antialias=True))
    else:
        steps.append(v2.RandomCrop(crop_size))
    if flip:
        steps.append(v2.RandomHorizontalFlip(0.5))
    return v2.Compose(steps)


def build_val_transform(short_side: int, crop_size: int) -> ClipTransform:
    """Evaluation transform: resize the short side to ``short_side``, centre ``crop_size`` crop."""
    _check_sizes(short_side, crop_size)
    return v2.Compose([v2.Resize(short_side, antialias=True), v2.CenterCrop(crop_size)])


def build_test_transform(short_side: int, crop_size: int, crop: str = "center") -> ClipTransform:
    """Test views of one clip ``[T, C, H, W]``: ``[num_crops, T, C, crop_size, crop_size]``.

    ``crop="center"`` gives one view (``build_val_transform``'s), ``"three"`` mmaction2's ``ThreeCrop``.
    """
    _check_sizes(short_side, crop_size)
    if crop not in TEST_CROPS:
        raise ValueError(f"test_crop must be one of {TEST_CROPS}, got {crop!r}")
    if crop == "three":
        return v2.Compose([v2.Resize(short_side, antialias=True), ThreeCrop(crop_size)])
    return v2.Compose([v2.Resize(short_side, antialias=True), v2.CenterCrop(crop_size), _OneView()])


class _OneView(torch.nn.Module):
    """``[T, C, H, W] -> [1, T, C, H, W]``: a module, not a lambda, so datasets pickle into workers."""

    def forward(self, clip: Tensor) -> Tensor:
        return clip.unsqueeze(0)


def num_test_crops(crop: str) -> int:
    """How many spatial views ``build_test_transform(crop=...)`` makes of one clip."""
    return {"center": 1, "three": 3}[crop]
