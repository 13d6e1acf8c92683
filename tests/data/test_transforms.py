from __future__ import annotations

import pytest
import torch

from reskd_lightning.data import build_train_transform, build_val_transform


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
