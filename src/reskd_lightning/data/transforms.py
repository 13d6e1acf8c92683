"""Clip augmentation, once at the high resolution on uint8 clips ``[T, C, H, W]``, with mmaction2 0.20's pixels.

torchvision's ``transforms.v2`` treat every leading dimension of a tensor as a batch and draw one set of
random parameters per call, so all frames of a clip get the same crop and flip. ``Resize``, ``CenterCrop``,
``RandomResizedCrop``, ``MultiScaleCrop`` and ``ThreeCrop`` are mmaction2's transforms of the same names
(mmaction2 0.20 on mmcv 1.4, the paper's code), written for these clips: the same sizes, offsets and
rounding, and ``mmcv.imresize``'s pixels (OpenCV's bilinear ``cv2.resize``, fixed-point, no antialiasing).

Training recipes (``train_crop``):

* ``"multiscale"``: the paper's 2D (TSN/TSM) recipe: short side to ``short_side`` (256), ``MultiScaleCrop``
  (scales 1, .875, .75, .66, aspect gap 1, 13 fixed offsets), resize to ``crop_size``, flip;
* ``"random_resized"``: the 3D recipe: short side, mmaction2's ``RandomResizedCrop`` (area .08-1, aspect
  3/4-4/3), resize to ``crop_size``, flip;
* ``"random"``: short side, a random ``crop_size`` square, flip (the demo's recipe).

Evaluation: the short side to ``short_side`` (validation) or to the DataModule's ``test_short_side`` (test
views), then mmaction2's ``CenterCrop`` (``"center"``) or ``ThreeCrop`` (``"three"``).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

ClipTransform = Callable[[Tensor], Tensor]

TRAIN_CROPS = ("multiscale", "random_resized", "random")
TEST_CROPS = ("center", "three")

# OpenCV's fixed-point bilinear (imgproc/src/resize.cpp): 11-bit weights (INTER_RESIZE_COEF_BITS).
_COEF_SCALE = 1 << 11


def _check_sizes(short_side: int, crop_size: int) -> None:
    for name, value in (("short_side", short_side), ("crop_size", crop_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive number of pixels, got {value!r}")
    if crop_size > short_side:
        raise ValueError(f"crop_size ({crop_size}) must not exceed short_side ({short_side})")


def _randint(high: int) -> int:
    """A random integer in ``[0, high)`` from torch's RNG (training samples reseed it per sample: ``SampleKey``)."""
    return int(torch.randint(high, (1,)).item())


# -- resizing ------------------------------------------------------------------------------------------


def short_side_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """``(new_height, new_width)`` of frames ``height x width`` resized to a short side of ``short_side``.

    mmcv's ``rescale_size((w, h), (inf, short_side))``, which mmaction2's ``Resize(scale=(-1, short_side))``
    calls: ``scale = short_side / min(h, w)``, each side ``int(side * scale + 0.5)``: the long side rounded half
    up, where torchvision's ``Resize(int)`` truncates it (288x352 frames: 256x313 here, 256x312 there).
    """
    scale = short_side / min(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


@lru_cache(maxsize=256)
def _linear_taps(src: int, dst: int, clamp: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """OpenCV's bilinear taps of ``dst`` outputs from ``src`` inputs: source indices and 11-bit weights.

    As ``cv::resize`` computes them: the half-pixel position ``(d + 0.5) * scale - 0.5`` in float32, its floor
    and fraction, weights ``cvRound((1 - f) * 2048)`` and ``cvRound(f * 2048)``. Columns (``clamp``) outside
    the image take the border pixel with weight 1; rows keep their fraction and read the border row twice.
    Gives ``(used, i0, i1, w0, w1)``: the sorted source indices any tap reads, and each output's two taps as
    positions in ``used``, with their weights ``[dst, 1]``.
    """
    scale = 1.0 / (dst / src)  # OpenCV: scale_x = 1 / inv_scale_x, inv_scale_x = dsize / ssize
    pos = ((np.arange(dst) + 0.5) * scale - 0.5).astype(np.float32)
    first = np.floor(pos).astype(np.int64)
    frac = pos - first.astype(np.float32)
    if clamp:
        frac[(first < 0) | (first >= src - 1)] = 0
    w0 = np.rint((np.float32(1) - frac) * np.float32(_COEF_SCALE)).astype(np.int32)
    w1 = np.rint(frac * np.float32(_COEF_SCALE)).astype(np.int32)
    i0, i1 = np.clip(first, 0, src - 1), np.clip(first + 1, 0, src - 1)
    used = np.unique(np.concatenate([i0, i1]))
    i0, i1 = np.searchsorted(used, i0), np.searchsorted(used, i1)
    as_tensor = torch.from_numpy
    return as_tensor(used), as_tensor(i0), as_tensor(i1), as_tensor(w0)[:, None], as_tensor(w1)[:, None]


def _resize_planes_like_opencv(planes: Tensor, height: int, width: int) -> Tensor:
    """``cv2.resize(plane, (width, height), interpolation=cv2.INTER_LINEAR)`` of uint8 planes ``[N, H, W]``.

    OpenCV's fixed-point arithmetic: a horizontal pass with 11-bit weights (exact integers), then the vertical
    pass as its SIMD kernel computes it, ``((S0 >> 4) * b0 >> 16) + ((S1 >> 4) * b1 >> 16) + 2 >> 2``. Only
    the source rows a tap reads are resized horizontally.
    """
    src_h, src_w = planes.shape[-2:]
    used_x, x0, x1, a0, a1 = _linear_taps(src_w, width, True)
    used_y, y0, y1, b0, b1 = _linear_taps(src_h, height, False)
    if len(used_y) < src_h:
        planes = planes.index_select(-2, used_y)
    columns = planes.transpose(-1, -2).contiguous()  # [N, W, H']: gathering rows is much faster than columns
    if len(used_x) < src_w:
        columns = columns.index_select(-2, used_x)
    rows = columns.index_select(-2, x0).to(torch.int32).mul_(a0)
    rows.addcmul_(columns.index_select(-2, x1), a1).bitwise_right_shift_(4)  # at most 255 * 2048 >> 4 = 32640
    shifted = torch.empty((*rows.shape[:-2], rows.shape[-1], rows.shape[-2]), dtype=torch.int16)
    shifted.copy_(rows.transpose(-1, -2))  # [N, H', width]
    out = shifted.index_select(-2, y0).to(torch.int32).mul_(b0).bitwise_right_shift_(16)
    out.add_(shifted.index_select(-2, y1).to(torch.int32).mul_(b1).bitwise_right_shift_(16))
    return out.add_(2).bitwise_right_shift_(2).clamp_(0, 255).to(torch.uint8)


def _resize_uint8_like_opencv(clip: Tensor, height: int, width: int, planes_per_step: int = 3) -> Tensor:
    """``cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)`` of every uint8 frame ``[..., H, W]``.

    A few planes at a time: small temporaries stay in cache and are reused by the allocator (several times
    faster than one pass over a whole clip).
    """
    planes = clip.reshape(-1, *clip.shape[-2:])
    out = torch.empty((planes.shape[0], height, width), dtype=torch.uint8)
    for i in range(0, planes.shape[0], planes_per_step):
        out[i : i + planes_per_step] = _resize_planes_like_opencv(planes[i : i + planes_per_step], height, width)
    return out.reshape(*clip.shape[:-2], height, width)


def bilinear_resize(clip: Tensor, size: Sequence[int], antialias: bool = False) -> Tensor:
    """Frames ``[..., H, W]`` resized to ``size = (height, width)``, bilinear with half-pixel centres.

    Without ``antialias`` (mmaction2's ``mmcv.imresize`` -> ``cv2.resize(INTER_LINEAR)``), a uint8 clip gets
    OpenCV's pixels (its fixed-point arithmetic, no antialiasing when shrinking) and a float clip
    ``F.interpolate(mode="bilinear", align_corners=False)``. With ``antialias``, torchvision's antialiased
    bilinear (PIL's). Frames already of ``size`` are returned as they are. OpenCV's pixels cost about 2-3x
    torchvision's uint8 resize on the CPU (about 2-3 ms a 360p frame to 256 on one core).
    """
    height, width = (int(s) for s in size)
    if height < 1 or width < 1:
        raise ValueError(f"resize: size must be positive, got {tuple(size)!r}")
    if tuple(clip.shape[-2:]) == (height, width):
        return clip
    if clip.dtype == torch.uint8 and not antialias:
        return _resize_uint8_like_opencv(clip, height, width)
    return TF.resize(clip, [height, width], interpolation=v2.InterpolationMode.BILINEAR, antialias=antialias)


class Resize(torch.nn.Module):
    """mmaction2's ``Resize``: the short side to ``size`` (an int), or every frame to ``size = (height, width)``.

    An int is ``Resize(scale=(-1, size))``: the long side follows mmcv's rounding (``short_side_size``); a pair
    is ``Resize(scale=(width, height), keep_ratio=False)``. Bilinear, without antialiasing by default, as
    ``mmcv.imresize`` (``bilinear_resize``). Reads a clip ``[..., H, W]`` (uint8 or float), gives it resized.

    Configured through ``VideoDataModule``::

        data:
          init_args:
            short_side: 256          # Resize(256) before every crop
            crop_size: 224           # Resize((224, 224)) after MultiScaleCrop / RandomResizedCrop
            resize_antialias: false  # mmaction2's pixels
    """

    def __init__(self, size: int | Sequence[int], antialias: bool = False):
        super().__init__()
        sizes = [size] if isinstance(size, int) else list(size)
        if len(sizes) not in (1, 2) or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
            raise ValueError(f"Resize: size must be a positive int (short side) or (height, width), got {size!r}")
        self.size: int | tuple[int, int] = size if isinstance(size, int) else (sizes[0], sizes[-1])
        self.antialias = bool(antialias)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """``(height, width)`` of frames ``height x width`` after this resize."""
        if isinstance(self.size, int):
            return short_side_size(height, width, self.size)
        return self.size

    def forward(self, clip: Tensor) -> Tensor:
        height, width = clip.shape[-2:]
        return bilinear_resize(clip, self.output_size(height, width), antialias=self.antialias)

    def extra_repr(self) -> str:
        return f"size={self.size}, antialias={self.antialias}"


# -- cropping ------------------------------------------------------------------------------------------


class _SquareCrops(torch.nn.Module):
    """``crop_size`` squares at fixed places of the frames (``CenterCrop``, ``ThreeCrop``)."""

    def __init__(self, crop_size: int):
        super().__init__()
        self.crop_size = int(crop_size)

    def _fit(self, clip: Tensor) -> tuple[int, int, int]:
        """``(height, width, crop_size)``; a crop larger than the frames' short side is an error."""
        height, width = clip.shape[-2:]
        if self.crop_size > min(height, width):
            raise ValueError(
                f"{type(self).__name__}: crop_size {self.crop_size} exceeds the frames' short side ({height}x{width})"
            )
        return height, width, self.crop_size

    def extra_repr(self) -> str:
        return f"crop_size={self.crop_size}"


class CenterCrop(_SquareCrops):
    """mmaction2's ``CenterCrop``: the ``crop_size`` square at ``((H - c) // 2, (W - c) // 2)``.

    Reads a clip ``[..., H, W]``, gives ``[..., crop_size, crop_size]``. Offsets round down, as mmaction2's
    (torchvision's ``CenterCrop`` rounds half to even: one pixel further right on 256x455 frames).
    """

    def forward(self, clip: Tensor) -> Tensor:
        height, width, c = self._fit(clip)
        top, left = (height - c) // 2, (width - c) // 2
        return clip[..., top : top + c, left : left + c]


class RandomResizedCrop(v2.Transform):
    """mmaction2's ``RandomResizedCrop``: a crop of random area and aspect ratio (not resized: ``Resize`` follows).

    ``max_attempts`` (10) candidates are drawn at once: aspect ratio ``exp(U(log a, log b))`` over
    ``aspect_ratio_range``, area ``U(area_range) * H * W``, width ``round(sqrt(area * ratio))`` and height
    ``round(sqrt(area / ratio))`` (half to even); the first that fits the frames is placed at a uniformly
    random offset. When none fits, the fallback is the centred square of the short side (torchvision's
    ``RandomResizedCrop`` falls back to the whole frame clipped to the aspect range instead). Reads a clip
    ``[..., H, W]``, gives the crop, the same for every frame.

    Configured through ``VideoDataModule``::

        data:
          init_args:
            train_crop: random_resized
            short_side: 256
            crop_size: 224
    """

    def __init__(
        self,
        area_range: Sequence[float] = (0.08, 1.0),
        aspect_ratio_range: Sequence[float] = (3 / 4, 4 / 3),
        max_attempts: int = 10,
    ):
        super().__init__()
        area_lo, area_hi = (float(a) for a in area_range)
        ratio_lo, ratio_hi = (float(a) for a in aspect_ratio_range)
        if not 0 < area_lo <= area_hi <= 1:
            raise ValueError(f"RandomResizedCrop: area_range must satisfy 0 < lo <= hi <= 1, got {area_range!r}")
        if not 0 < ratio_lo <= ratio_hi:
            raise ValueError(
                f"RandomResizedCrop: aspect_ratio_range must satisfy 0 < lo <= hi, got {aspect_ratio_range!r}"
            )
        if max_attempts < 0:
            raise ValueError(f"RandomResizedCrop: max_attempts must be >= 0, got {max_attempts!r}")
        self.area_range = (area_lo, area_hi)
        self.aspect_ratio_range = (ratio_lo, ratio_hi)
        self.max_attempts = int(max_attempts)

    def crop_box(self, height: int, width: int) -> tuple[int, int, int, int]:
        """A random ``(top, left, crop_height, crop_width)`` for frames ``height x width`` (torch's RNG)."""
        n = self.max_attempts
        log_ratios = torch.empty(n, dtype=torch.float64).uniform_(*(math.log(r) for r in self.aspect_ratio_range))
        areas = torch.empty(n, dtype=torch.float64).uniform_(*self.area_range) * (height * width)
        ratios = log_ratios.exp()
        crop_ws = torch.round(torch.sqrt(areas * ratios)).long().tolist()
        crop_hs = torch.round(torch.sqrt(areas / ratios)).long().tolist()
        for crop_w, crop_h in zip(crop_ws, crop_hs):
            if 0 < crop_h <= height and 0 < crop_w <= width:  # (mmaction2 has no `0 <`: a 0-pixel crop on tiny frames)
                left = _randint(width - crop_w + 1)
                top = _randint(height - crop_h + 1)
                return top, left, crop_h, crop_w
        side = min(height, width)
        return (height - side) // 2, (width - side) // 2, side, side

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        top, left, crop_h, crop_w = self.crop_box(height, width)
        return dict(top=top, left=left, height=crop_h, width=crop_w)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return TF.crop(inpt, **params)


class MultiScaleCrop(v2.Transform):
    """mmaction2's ``MultiScaleCrop``: a crop of random scale and aspect at one of a few fixed offsets.

    The crop's width and height are each ``min(H, W) * s`` for scales ``s`` in ``scales`` whose ranks differ
    by at most ``max_wh_scale_gap``; a side within 3 pixels of ``input_size`` snaps to it. The crop sits at
    one of ``num_fixed_crops`` (5 or 13) positions on a 4x4 grid of steps (corners, centre, edge centres,
    quarter points), or anywhere with ``random_crop=True``. The crop is not resized; a ``Resize`` to
    ``input_size`` follows it in the training recipe. Reads a clip ``[..., H, W]``, gives the crop.

    Configured through ``VideoDataModule``::

        data:
          init_args:
            train_crop: multiscale
            short_side: 256
            crop_size: 224
            num_fixed_crops: 13   # the paper's configs; mmaction2's default is 5
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


class ThreeCrop(_SquareCrops):
    """mmaction2's ``ThreeCrop``: three ``crop_size`` squares along the long side (start, end, middle).

    Takes a clip ``[T, C, H, W]`` and gives ``[3, T, C, crop_size, crop_size]``, offsets ``0, 2 * step, step``
    with ``step = (long - crop_size) // 2``. mmaction2 needs ``crop_size`` equal to the short side (the
    Kinetics recipes resize the short side to the crop size first: ``test_short_side``); a smaller crop is
    centred along the short side here.
    """

    def forward(self, clip: Tensor) -> Tensor:
        height, width, c = self._fit(clip)
        if width >= height:
            y, step = (height - c) // 2, (width - c) // 2
            boxes = [(y, 0), (y, 2 * step), (y, step)]
        else:
            x, step = (width - c) // 2, (height - c) // 2
            boxes = [(0, x), (2 * step, x), (step, x)]
        return torch.stack([clip[..., y : y + c, x : x + c] for y, x in boxes])


# -- recipes -------------------------------------------------------------------------------------------


def build_train_transform(
    short_side: int,
    crop_size: int,
    flip: bool = True,
    crop: str = "random",
    scales: Sequence[float] = (1.0, 0.875, 0.75, 0.66),
    num_fixed_crops: int = 13,
    antialias: bool = False,
    multiscale_input_size: int | None = None,
) -> ClipTransform:
    """Training augmentation of uint8 clips ``[T, C, H, W]``: one of ``TRAIN_CROPS``, then a random flip.

    Every recipe first resizes the short side to ``short_side`` and ends with ``crop_size x crop_size``
    frames; ``scales``, ``num_fixed_crops`` and ``multiscale_input_size`` (its ``input_size``, the side crops
    within 3 pixels snap to; None: ``crop_size``) are ``MultiScaleCrop``'s. Every resize is bilinear, without
    antialiasing unless ``antialias`` (mmaction2's ``mmcv.imresize``).
    """
    _check_sizes(short_side, crop_size)
    if crop not in TRAIN_CROPS:
        raise ValueError(f"train_crop must be one of {TRAIN_CROPS}, got {crop!r}")
    if num_fixed_crops not in (5, 13):
        raise ValueError(f"num_fixed_crops must be 5 or 13, got {num_fixed_crops!r}")
    square = Resize((crop_size, crop_size), antialias=antialias)
    steps: list[Callable] = [Resize(short_side, antialias=antialias)]
    if crop == "multiscale":
        input_size = crop_size if multiscale_input_size is None else multiscale_input_size
        steps += [MultiScaleCrop(input_size, scales, num_fixed_crops=num_fixed_crops), square]
    elif crop == "random_resized":
        steps += [RandomResizedCrop(), square]
    else:
        steps.append(v2.RandomCrop(crop_size))
    if flip:
        steps.append(v2.RandomHorizontalFlip(0.5))
    return v2.Compose(steps)


def build_val_transform(short_side: int, crop_size: int, antialias: bool = False) -> ClipTransform:
    """Evaluation transform: resize the short side to ``short_side``, mmaction2's centre ``crop_size`` crop."""
    _check_sizes(short_side, crop_size)
    return v2.Compose([Resize(short_side, antialias=antialias), CenterCrop(crop_size)])


def build_test_transform(
    short_side: int, crop_size: int, crop: str = "center", antialias: bool = False
) -> ClipTransform:
    """Test views of one clip ``[T, C, H, W]``: ``[num_crops, T, C, crop_size, crop_size]``.

    The short side is resized to ``short_side`` (the DataModule's ``test_short_side``), then ``crop="center"``
    gives one view (``build_val_transform``'s), ``"three"`` mmaction2's ``ThreeCrop``.
    """
    _check_sizes(short_side, crop_size)
    if crop not in TEST_CROPS:
        raise ValueError(f"test_crop must be one of {TEST_CROPS}, got {crop!r}")
    if crop == "three":
        return v2.Compose([Resize(short_side, antialias=antialias), ThreeCrop(crop_size)])
    return v2.Compose([Resize(short_side, antialias=antialias), CenterCrop(crop_size), _OneView()])


class _OneView(torch.nn.Module):
    """``[T, C, H, W] -> [1, T, C, H, W]``: a module, not a lambda, so datasets pickle into workers."""

    def forward(self, clip: Tensor) -> Tensor:
        return clip.unsqueeze(0)
