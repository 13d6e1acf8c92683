from __future__ import annotations

import pytest
import torch

from reskd_lightning.data import (
    MultiScaleCrop,
    ThreeCrop,
    build_test_transform,
    build_train_transform,
    build_val_transform,
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
