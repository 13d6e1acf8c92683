"""Multi-resolution views made on the device from one clip."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from reskd_lightning import AttentionTransfer, FeatureMapKD, LogitMapKD
from reskd_lightning.views import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INTERPOLATION_MODES,
    attach_views,
    make_views,
    normalize_video,
    resize_frames,
)


def test_views_are_bilinear_resizes_of_every_frame() -> None:
    video = torch.randn(2, 3, 4, 32, 32)
    views = make_views(video, [32, 16])
    assert views[32] is video  # the teacher's view is the clip itself: no copy, no resize
    assert views[16].shape == (2, 3, 4, 16, 16)
    frame = F.interpolate(video[:, :, 1], size=(16, 16), mode="bilinear", align_corners=False)
    assert torch.equal(views[16][:, :, 1], frame)


def test_views_keep_aspect_ratio_and_leading_test_view_dimension() -> None:
    views = make_views(torch.randn(2, 5, 3, 2, 24, 32), [12])  # [N, V, C, T, H, W]
    assert views[12].shape == (2, 5, 3, 2, 12, 16)


def test_antialias_changes_a_fine_pattern() -> None:
    stripes = torch.zeros(1, 1, 1, 16, 16)
    stripes[..., 0::4] = stripes[..., 1::4] = 1.0  # period 4: survives a 2x bilinear downsample intact
    plain, smooth = make_views(stripes, [8])[8], make_views(stripes, [8], antialias=True)[8]
    assert set(plain.unique().tolist()) == {0.0, 1.0}
    assert smooth.max() < 1.0 and smooth.min() > 0.0


def test_normalize_video_uses_imagenet_statistics_on_the_0_255_scale() -> None:
    video = torch.full((1, 3, 1, 2, 2), 255, dtype=torch.uint8)
    out = normalize_video(video)
    expected = torch.tensor([(255 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)])
    assert out.dtype == torch.float32 and torch.allclose(out[0, :, 0, 0, 0], expected)
    float_video = torch.randn(1, 3, 1, 2, 2)
    assert normalize_video(float_video) is float_video
    with pytest.raises(TypeError, match="int16"):
        normalize_video(video.to(torch.int16))


def test_attach_views_makes_only_the_missing_views() -> None:
    batch = {"video": torch.randint(0, 256, (2, 3, 2, 32, 32), dtype=torch.uint8)}
    attach_views(batch, [32, 16])
    first16 = batch["clips"][16]
    attach_views(batch, [16, 8])
    assert batch["clips"][16] is first16 and set(batch["clips"]) == {32, 16, 8}
    with pytest.raises(KeyError, match=r"no 'video' to make views \[4\]"):
        attach_views({"label": torch.zeros(2)}, [4])


def test_every_interpolation_mode_resizes_each_frame_and_distillers_accept_exactly_those() -> None:
    assert INTERPOLATION_MODES == ("bilinear", "bicubic", "nearest", "area")
    maps = torch.randn(2, 3, 4, 4, 4)  # [N, C, T, h, w]
    for mode in INTERPOLATION_MODES:
        resized = resize_frames(maps, (7, 7), mode)
        kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
        assert torch.equal(resized[:, :, 2], F.interpolate(maps[:, :, 2], size=(7, 7), mode=mode, **kwargs)), mode
        for distiller in (FeatureMapKD, AttentionTransfer, LogitMapKD):
            assert distiller(mode=mode).mode == mode
    for distiller in (FeatureMapKD, AttentionTransfer, LogitMapKD):
        with pytest.raises(ValueError, match="mode must be .*got 'linear'"):
            distiller(mode="linear")
