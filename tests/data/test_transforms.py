from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from reskd_lightning.data import (
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


def clip_of_one_image(frames: int = 6, height: int = 48, width: int = 80) -> torch.Tensor:
    """A uint8 clip [T, C, H, W] whose frames are all the same random image."""
    generator = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator)
    return image.expand(frames, -1, -1, -1).contiguous()


def test_train_transform_crops_and_flips_all_frames_alike() -> None:
    transform = build_train_transform(short_side=40, crop_size=32)
    clip = clip_of_one_image()
    torch.manual_seed(0)
    outputs = [transform(clip) for _ in range(20)]
    for out in outputs:
        assert out.dtype == torch.uint8 and out.shape == (6, 3, 32, 32)
        assert all(torch.equal(out[0], frame) for frame in out)  # one crop and flip for the whole clip
    assert len({out[0].sum().item() for out in outputs}) > 1  # yet random from clip to clip


def test_train_transform_without_flip_is_a_crop_of_the_resized_clip() -> None:
    transform = build_train_transform(short_side=48, crop_size=48, flip=False)
    clip = clip_of_one_image()
    out = transform(clip)
    # short side already 48: the crop is a window of the original frames, never mirrored
    windows = [clip[:, :, :, x : x + 48] for x in range(80 - 48 + 1)]
    assert any(torch.equal(out, w) for w in windows)


def test_val_transform_is_deterministic_centre_crop() -> None:
    transform = build_val_transform(short_side=48, crop_size=32)
    clip = clip_of_one_image()
    out = transform(clip)
    assert out.dtype == torch.uint8 and out.shape == (6, 3, 32, 32)
    assert torch.equal(out, clip[:, :, 8:40, 24:56])
    assert torch.equal(out, transform(clip))


def test_crop_larger_than_short_side_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"crop_size \(64\) must not exceed short_side \(56\)"):
        build_train_transform(short_side=56, crop_size=64)


def test_multiscale_crop_candidates_follow_mmaction2() -> None:
    crop = MultiScaleCrop(224)
    # 256x340 frames: crop sides from min(H, W) = 256 x (1, .875, .75, .66), ranks at most 1 apart.
    sizes = crop.candidate_sizes(256, 340)
    assert sorted(set(w for w, _ in sizes)) == [168, 192, 224, 256]  # 256*.875 = 224; 256*.66 = 168.96 -> 168
    assert (256, 256) in sizes and (256, 224) in sizes and (256, 192) not in sizes  # gap 2 is excluded
    assert len(sizes) == 4 + 2 * 3  # 4 squares and 3 neighbouring pairs each way
    offsets = crop.candidate_offsets(256, 340, crop_w=224, crop_h=192)
    w, h = (340 - 224) // 4, (256 - 192) // 4
    assert len(offsets) == 13 and len(set(offsets)) == 13
    assert offsets[:5] == [(0, 0), (4 * w, 0), (0, 4 * h), (4 * w, 4 * h), (2 * w, 2 * h)]
    assert set(offsets[5:]) == {(0, 2 * h), (4 * w, 2 * h), (2 * w, 4 * h), (2 * w, 0), (w, h), (3 * w, h), (w, 3 * h), (3 * w, 3 * h)}
    assert len(MultiScaleCrop(224, num_fixed_crops=5).candidate_offsets(256, 340, 224, 192)) == 5
    with pytest.raises(ValueError, match="num_fixed_crops must be 5 or 13, got 7"):
        MultiScaleCrop(224, num_fixed_crops=7)


def test_multiscale_crop_draws_windows_of_the_frames_at_fixed_offsets() -> None:
    clip = torch.arange(40 * 60, dtype=torch.int32).view(1, 1, 40, 60).expand(3, 1, -1, -1)
    crop = MultiScaleCrop(32)
    torch.manual_seed(0)
    seen_sizes, seen_offsets = set(), set()
    for _ in range(300):
        out = crop(clip)
        h, w = out.shape[-2:]
        top, left = divmod(int(out[0, 0, 0, 0]), 60)
        assert torch.equal(out, clip[..., top : top + h, left : left + w])  # a window, same for every frame
        assert (left, top) in crop.candidate_offsets(40, 60, w, h)
        seen_sizes.add((w, h))
        seen_offsets.add((left, top, w, h))
    assert seen_sizes == set(crop.candidate_sizes(40, 60))  # every scale pair is drawn
    assert len(seen_offsets) > 40


def test_multiscale_recipe_ends_at_the_crop_size() -> None:
    transform = build_train_transform(short_side=64, crop_size=56, crop="multiscale")
    out = transform(clip_of_one_image(height=48, width=80))
    assert out.shape == (6, 3, 56, 56) and out.dtype == torch.uint8
    out = build_train_transform(short_side=64, crop_size=56, crop="random_resized")(clip_of_one_image())
    assert out.shape == (6, 3, 56, 56)
    with pytest.raises(ValueError, match="train_crop must be one of .* got 'ten'"):
        build_train_transform(64, 56, crop="ten")


def test_three_crop_takes_start_end_and_middle_of_the_long_side() -> None:
    clip = clip_of_one_image(frames=2, height=48, width=80)
    views = build_test_transform(short_side=48, crop_size=48, crop="three")(clip)
    assert views.shape == (3, 2, 3, 48, 48)
    assert torch.equal(views[0], clip[..., 0:48]) and torch.equal(views[1], clip[..., 32:80])
    assert torch.equal(views[2], clip[..., 16:64])
    tall = clip.transpose(-1, -2)  # 80 x 48: crops go down the frame
    views = ThreeCrop(48)(tall)
    assert torch.equal(views[1], tall[..., 32:80, :])
    centre = build_test_transform(short_side=48, crop_size=32)(clip)
    assert centre.shape == (1, 2, 3, 32, 32) and torch.equal(centre[0], build_val_transform(48, 32)(clip))


# -- mmaction2 0.20 / mmcv 1.4.0 pixels ---------------------------------------------------------------
# The paper's pipelines: Resize(scale=(-1, 256)) -> crop -> Resize((224, 224), keep_ratio=False) -> Flip, all
# through mmcv.imresize (cv2.resize INTER_LINEAR). Each test states the official value and where it comes from.


def random_clip(height: int, width: int, frames: int = 2, seed: int = 0) -> torch.Tensor:
    """A uint8 clip [T, 3, H, W] of independent random pixels (the hardest case for a resize)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (frames, 3, height, width), dtype=torch.uint8, generator=generator)


def half_pixel_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Float64 bilinear resize of [H, W, C] with half-pixel centres and edge clamping (cv2 INTER_LINEAR's model)."""

    def taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.clip((np.arange(dst) + 0.5) * src / dst - 0.5, 0, src - 1)
        lo = np.floor(pos).astype(int)
        return lo, np.minimum(lo + 1, src - 1), pos - lo

    y0, y1, fy = taps(image.shape[0], height)
    x0, x1, fx = taps(image.shape[1], width)
    img = image.astype(np.float64)
    rows = img[y0] * (1 - fy)[:, None, None] + img[y1] * fy[:, None, None]
    return rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]


RESIZES = [
    ((360, 640), (256, 455)),  # a 360p video to the paper's short side: downsampling
    ((480, 854), (256, 455)),
    ((256, 340), (224, 224)),  # a MultiScaleCrop crop to the crop size, aspect changed
    ((168, 192), (224, 224)),  # the smallest MultiScaleCrop crop: upsampling
    ((57, 99), (224, 224)),  # a small RandomResizedCrop crop: upsampling
    ((512, 910), (256, 455)),  # exactly 2x
]


def test_short_side_resize_rounds_the_long_side_as_mmcv() -> None:
    # official: mmaction2 Resize(scale=(-1, 256)) -> scale (inf, 256) (mmaction/datasets/pipelines/augmentations.py:1076
    # (CVMI-Lab/ResKD)) -> mmcv.rescale_size (augmentations.py:1126): scale_factor = min(inf / long, 256 / short)
    # (mmcv/image/geometric.py:207-208, open-mmlab/mmcv v1.4.0), size int(w * s + 0.5), int(h * s + 0.5)
    # (geometric.py:29 `_scale_size`).
    assert short_side_size(288, 352, 256) == (256, 313)  # int(352 * 256 / 288 + 0.5) = int(313.39) = 313
    assert short_side_size(352, 288, 256) == (313, 256)  # portrait: the height is the long side
    assert short_side_size(360, 640, 256) == (256, 455)  # int(455.11 + 0.5)
    assert short_side_size(256, 455, 224) == (224, 398)  # Kinetics test views: int(398.125 + 0.5)
    assert short_side_size(90, 161, 256) == (256, 458)  # int(457.96 + 0.5); truncating gives 457
    clip = random_clip(288, 352)
    assert Resize(256)(clip).shape[-2:] == (256, 313)
    assert v2.Resize(256)(clip).shape[-2:] == (256, 312)  # torchvision truncates: the old, wrong size
    assert build_val_transform(256, 224)(random_clip(288, 352)).shape[-2:] == (224, 224)
    assert Resize((224, 200))(clip).shape[-2:] == (224, 200)  # Resize((w, h), keep_ratio=False): (height, width) here


def test_center_crop_offsets_round_down_as_mmaction2() -> None:
    # official: CenterCrop left = (img_w - crop_w) // 2, top = (img_h - crop_h) // 2
    # (mmaction/datasets/pipelines/augmentations.py:1588-1589 (CVMI-Lab/ResKD)): 256x455 -> 224: left 115, top 16.
    clip = random_clip(256, 455)
    expected = clip[..., 16:240, 115:339]
    assert torch.equal(CenterCrop(224)(clip), expected)
    assert not torch.equal(v2.CenterCrop(224)(clip), expected)  # torchvision: round(115.5) = 116, one pixel off
    assert torch.equal(build_val_transform(256, 224)(clip), expected)  # short side already 256: no resize
    assert torch.equal(build_test_transform(256, 224, "center")(clip)[0], expected)
    with pytest.raises(ValueError, match="CenterCrop: crop_size 224 exceeds the frames"):
        CenterCrop(224)(random_clip(200, 300))


@pytest.mark.parametrize(("src", "dst"), RESIZES)
def test_resize_gives_opencvs_bilinear_pixels(src: tuple[int, int], dst: tuple[int, int]) -> None:
    # official: mmcv.imresize(img, (w, h), interpolation='bilinear') (augmentations.py:1087 (CVMI-Lab/ResKD)) ->
    # cv2.resize(img, size, interpolation=cv2.INTER_LINEAR) (mmcv/image/geometric.py:34 and 88-89, mmcv v1.4.0):
    # no antialiasing when shrinking. (Bit-exact with opencv-python-headless 5.0; other builds may differ by a
    # level in a few pixels, which the bounds allow.)
    cv2 = pytest.importorskip("cv2")
    clip = random_clip(*src, frames=3, seed=sum(src))
    out = bilinear_resize(clip, dst)
    assert out.dtype == torch.uint8 and out.shape == (3, 3, *dst)
    for frame, resized in zip(clip, out):
        image = frame.permute(1, 2, 0).numpy()
        reference = cv2.resize(image, (dst[1], dst[0]), interpolation=cv2.INTER_LINEAR).astype(int)
        diff = np.abs(resized.permute(1, 2, 0).numpy().astype(int) - reference)
        assert diff.max() <= 1 and diff.mean() < 0.01 and (diff == 0).mean() > 0.99
    # The recipes' resizes are these: the short-side resize of a 360x640 clip is cv2's 256x455 resize.
    frame = clip[0].permute(1, 2, 0).numpy()
    if src == (360, 640):
        reference = cv2.resize(frame, (455, 256), interpolation=cv2.INTER_LINEAR)
        resized = Resize(256)(clip)[0].permute(1, 2, 0).numpy().astype(int)
        assert np.abs(resized - reference).max() <= 1


@pytest.mark.parametrize(("src", "dst"), RESIZES)
def test_resize_is_half_pixel_bilinear_without_antialiasing(src: tuple[int, int], dst: tuple[int, int]) -> None:
    # The model cv2 INTER_LINEAR computes in 11-bit fixed point (mmcv/image/geometric.py:88-89, mmcv v1.4.0):
    # within one level of the exact float64 half-pixel bilinear, with no antialiasing (an antialiased shrink is
    # far from it).
    clip = random_clip(*src, frames=1, seed=sum(dst))
    image = clip[0].permute(1, 2, 0).numpy()
    exact = half_pixel_bilinear(image, *dst)
    out = bilinear_resize(clip, dst)[0].permute(1, 2, 0).numpy()
    diff = out - exact
    assert np.abs(diff).max() <= 1 and abs(diff.mean()) < 0.2
    if dst[0] * dst[1] < src[0] * src[1]:
        smooth = bilinear_resize(clip, dst, antialias=True)[0].permute(1, 2, 0).numpy()
        assert np.abs(smooth - exact).mean() > 5  # antialiasing averages many pixels: not mmaction2's
    as_float = bilinear_resize(clip.float(), dst)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(as_float, exact, atol=0.05)  # float clips: F.interpolate (float32 positions)


def test_recipes_resize_without_antialias_unless_asked() -> None:
    for transform in (
        build_train_transform(256, 224, crop="multiscale"),
        build_train_transform(256, 224, crop="random_resized"),
        build_val_transform(256, 224),
        build_test_transform(224, 224, "three"),
    ):
        resizes = [t for t in transform.transforms if isinstance(t, Resize)]
        assert resizes and not any(r.antialias for r in resizes)
    smooth = build_train_transform(256, 224, crop="multiscale", antialias=True)
    assert all(t.antialias for t in smooth.transforms if isinstance(t, Resize))
    clip = random_clip(360, 640)
    torch.testing.assert_close(
        build_val_transform(256, 224, antialias=True)(clip),
        CenterCrop(224)(TF.resize(clip, [256, 455], antialias=True)),
    )


def test_kinetics_test_views_three_crops_span_the_resized_short_side() -> None:
    # official: rkd_slowonly_8x8x1_150e_k400.py:55-56 and rkd_swins_32x2x1_60e_k400.py:58-59 (CVMI-Lab/ResKD,
    # configs/myconfig/rkd): Resize(scale=(-1, 224)), ThreeCrop(crop_size=224); ThreeCrop needs crop == short side
    # (augmentations.py:1685) and puts the crops at x = 0, 2 * step, step, step = (img_w - crop_w) // 2 (:1688).
    clip = random_clip(256, 455)
    views = build_test_transform(224, 224, "three")(clip)
    resized = Resize(224)(clip)
    assert resized.shape[-2:] == (224, 398)  # int(455 * 224 / 256 + 0.5)
    step = (398 - 224) // 2  # 87
    assert views.shape == (3, 2, 3, 224, 224)
    for view, x in zip(views, (0, 2 * step, step)):
        assert torch.equal(view, resized[..., :, x : x + 224])  # every crop spans the whole height


def test_random_resized_crop_falls_back_to_the_centred_short_side_square() -> None:
    # official: RandomResizedCrop.get_crop_bbox (augmentations.py:731-780 (CVMI-Lab/ResKD)): 10 attempts, then
    # crop_size = min(img_h, img_w), x_offset = (img_w - crop_size) // 2 (:777-778). On 8x400 frames no candidate fits
    # (area >= 0.08 * 3200 = 256 and aspect <= 4/3 need a height >= 14): the crop is x in [196, 204).
    clip = random_clip(8, 400)
    crop = RandomResizedCrop()
    for _ in range(5):
        assert crop.crop_box(8, 400) == (0, 196, 8, 8)
        assert torch.equal(crop(clip), clip[..., 196:204])
    recipe = build_train_transform(short_side=8, crop_size=8, crop="random_resized", flip=False)
    assert torch.equal(recipe(clip), clip[..., 196:204])
    # torchvision's fallback is the whole frame clipped to aspect 4/3: 8x11, resized; not mmaction2's crop.
    assert not torch.equal(v2.RandomResizedCrop(8, antialias=False)(clip), clip[..., 196:204])


def test_random_resized_crop_draws_area_and_aspect_as_mmaction2() -> None:
    # official: aspect = exp(U(log 3/4, log 4/3)), area = U(0.08, 1) * H * W, w = round(sqrt(area * aspect)),
    # h = round(sqrt(area / aspect)), offsets randint(0, W - w) and randint(0, H - h), both ends included
    # (augmentations.py:759-774 (CVMI-Lab/ResKD)); the crop is then resized to 224x224 by Resize(keep_ratio=False).
    crop = RandomResizedCrop()
    height, width = 256, 340
    boxes = [crop.crop_box(height, width) for _ in range(2000)]
    for top, left, h, w in boxes:
        assert 0 <= top <= height - h and 0 <= left <= width - w
        area = h * w / (height * width)
        assert 0.08 - 0.01 <= area <= 1.0 and 3 / 4 - 0.02 <= w / h <= 4 / 3 + 0.02
    # The official draw, in NumPy: the first of 10 candidates that fits (large areas of extreme aspect do not fit
    # 256x340 frames, so the mean area is below U(0.08, 1)'s 0.54). Same distribution of crop sizes.
    rng = np.random.default_rng(0)
    official = []
    for _ in range(4000):
        ratios = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3), size=10))
        target = rng.uniform(0.08, 1.0, size=10) * height * width
        ws, hs = np.round(np.sqrt(target * ratios)), np.round(np.sqrt(target / ratios))
        fits = (hs <= height) & (ws <= width)
        official.append((hs[fits][0], ws[fits][0]) if fits.any() else (height, height))
    areas = np.array([h * w for _, _, h, w in boxes]) / (height * width)
    official_areas = np.array([h * w for h, w in official]) / (height * width)
    assert areas.min() < 0.1 and areas.max() > 0.95
    assert abs(areas.mean() - official_areas.mean()) < 0.02 and abs(np.median(areas) - np.median(official_areas)) < 0.03
    aspects = np.array([w / h for _, _, h, w in boxes])
    assert abs(aspects.mean() - np.mean([w / h for h, w in official])) < 0.02
    assert any(left == width - w for _, left, _, w in boxes) and any(left == 0 for _, left, _, _ in boxes)
    clip = random_clip(height, width)
    out = build_train_transform(256, 224, crop="random_resized")(clip)
    assert out.shape == (2, 3, 224, 224) and out.dtype == torch.uint8
    with pytest.raises(ValueError, match="area_range"):
        RandomResizedCrop(area_range=(0.5, 0.1))


def test_num_fixed_crops_reaches_multiscale_crop() -> None:
    # official: the paper's configs set MultiScaleCrop(num_fixed_crops=13) (configs/myconfig/rkd/
    # rkd_r50_1x1x16_200e_actnet.py:22-28 (CVMI-Lab/ResKD)); mmaction2's default is 5 (augmentations.py:897).
    def multiscale(transform: v2.Compose) -> MultiScaleCrop:
        return next(t for t in transform.transforms if isinstance(t, MultiScaleCrop))

    assert multiscale(build_train_transform(256, 224, crop="multiscale")).num_fixed_crops == 13
    assert multiscale(build_train_transform(256, 224, crop="multiscale", num_fixed_crops=5)).num_fixed_crops == 5
    with pytest.raises(ValueError, match="num_fixed_crops must be 5 or 13, got 7"):
        build_train_transform(256, 224, crop="random_resized", num_fixed_crops=7)


def test_multiscale_input_size_decides_which_sides_snap() -> None:
    # official: configs/myconfig/tsn/tsn_r50_72p_1x1x16_50e_actnet_rgb.py:18-26 (CVMI-Lab/ResKD): Resize(-1, 80),
    # MultiScaleCrop(input_size=80, scales=(1, .875, .75, .66)), Resize((72, 72)); a side snaps to input_size when
    # within 3 pixels (mmaction/datasets/pipelines/augmentations.py:940-942). Sides int(80 * s) = 80, 70, 60, 52:
    # with input_size 80 none moves; with the crop size 72, 70 would snap to 72.
    def widths(transform: v2.Compose) -> set[int]:
        crop = next(t for t in transform.transforms if isinstance(t, MultiScaleCrop))
        return {w for w, _ in crop.candidate_sizes(80, 142)}

    assert widths(build_train_transform(80, 72, crop="multiscale", multiscale_input_size=80)) == {80, 70, 60, 52}
    assert widths(build_train_transform(80, 72, crop="multiscale")) == {80, 72, 60, 52}  # input_size = crop_size
    out = build_train_transform(80, 72, crop="multiscale", multiscale_input_size=80)(random_clip(80, 142))
    assert out.shape == (2, 3, 72, 72)
