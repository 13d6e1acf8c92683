from __future__ import annotations

import numpy as np
import pytest

from reskd_lightning.data import SampleFrames, split_views


def test_tsn_train_takes_one_random_frame_per_segment() -> None:
    sampler = SampleFrames(clip_len=1, frame_interval=1, num_clips=8)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(50):
        indices = sampler(100, rng)  # avg_interval = 100 // 8 = 12
        assert indices.dtype == np.int64 and indices.shape == (8,)
        segment = np.arange(8) * 12
        assert np.all((indices >= segment) & (indices < segment + 12))
        seen.update((indices - segment).tolist())
    assert seen == set(range(12))  # every offset within a segment is drawn


def test_tsn_test_takes_segment_centres() -> None:
    sampler = SampleFrames(num_clips=8, test_mode=True)
    np.testing.assert_array_equal(sampler(80), [5, 15, 25, 35, 45, 55, 65, 75])
    np.testing.assert_array_equal(sampler(100), (np.arange(8) * 12.5 + 6.25).astype(int))


def test_dense_clips_train_and_test() -> None:
    # SlowOnly 8x8: clip_len 8, frame_interval 8, one clip; ori_clip_len = 64.
    sampler = SampleFrames(clip_len=8, frame_interval=8, num_clips=1)
    indices = sampler(100, np.random.default_rng(1))
    start = indices[0]
    assert 0 <= start < 100 - 64 + 1
    np.testing.assert_array_equal(indices, start + np.arange(8) * 8)
    test = SampleFrames(clip_len=8, frame_interval=8, num_clips=1, test_mode=True)
    np.testing.assert_array_equal(test(100), int((100 - 64 + 1) / 2) + np.arange(8) * 8)


def test_few_frames_spread_clips_evenly_and_loop() -> None:
    # num_frames < num_clips: avg_interval == 0, offsets = around(arange(8) * 5 / 8)
    np.testing.assert_array_equal(SampleFrames(num_clips=8)(5), [0, 1, 1, 2, 2, 3, 4, 4])
    np.testing.assert_array_equal(SampleFrames(num_clips=8, test_mode=True)(5), [0, 0, 1, 2, 2, 3, 4, 4])
    # A clip longer than the video starts at 0 and loops back to the start.
    for test_mode in (False, True):
        sampler = SampleFrames(clip_len=4, frame_interval=4, num_clips=1, test_mode=test_mode)
        np.testing.assert_array_equal(sampler(10), [0, 4, 8, 2])


def test_sorted_random_offsets_when_segments_are_shorter_than_clips() -> None:
    # avg_interval = (10 - 4 + 1) // 8 == 0 but num_frames > max(num_clips, ori_clip_len)
    sampler = SampleFrames(clip_len=4, num_clips=8)
    indices = sampler(10, np.random.default_rng(3)).reshape(8, 4)
    offsets = indices[:, 0]
    assert np.all(np.diff(offsets) >= 0) and offsets.min() >= 0 and offsets.max() <= 6
    np.testing.assert_array_equal(indices, offsets[:, None] + np.arange(4))


def test_same_rng_seed_same_indices() -> None:
    sampler = SampleFrames(num_clips=8)
    a = sampler(300, np.random.default_rng(7))
    b = sampler(300, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert sampler.clip_len == 1 and sampler.num_clips == 8 and sampler.num_frames_out == 8


@pytest.mark.parametrize("kwargs", [{"clip_len": 0}, {"frame_interval": -1}, {"num_clips": 2.5}])
def test_invalid_arguments_show_the_value(kwargs: dict) -> None:
    ((name, value),) = kwargs.items()
    with pytest.raises(ValueError, match=f"{name} must be a positive integer, got {value}"):
        SampleFrames(**kwargs)


def test_video_without_frames_is_an_error() -> None:
    with pytest.raises(ValueError, match="num_frames must be a positive integer, got 0"):
        SampleFrames()(0)


def test_repeat_last_repeats_the_clips_last_frame_inside_the_video() -> None:
    # mmaction2's out_of_bound_opt="repeat_last": [0, 4, 8, 12] in a 10-frame video -> [0, 4, 8, 8].
    for test_mode in (False, True):
        sampler = SampleFrames(clip_len=4, frame_interval=4, num_clips=1, test_mode=test_mode, out_of_bound="repeat_last")
        np.testing.assert_array_equal(sampler(10), [0, 4, 8, 8])
    with pytest.raises(ValueError, match="out_of_bound must be one of .* got 'wrap'"):
        SampleFrames(out_of_bound="wrap")


def test_tsn_training_bounds_are_the_segments() -> None:
    indices, bounds = SampleFrames(num_clips=8).sample(100, np.random.default_rng(0))
    np.testing.assert_array_equal(bounds, np.stack([np.arange(8) * 12, np.arange(8) * 12 + 12], axis=1))
    assert np.all((bounds[:, 0] <= indices) & (indices < bounds[:, 1]))
    # Test centres and dense clips are exact: each index is its own range.
    for sampler in (SampleFrames(num_clips=8, test_mode=True), SampleFrames(clip_len=8, frame_interval=2, num_clips=1)):
        indices, bounds = sampler.sample(100, np.random.default_rng(0))
        np.testing.assert_array_equal(bounds, np.stack([indices, indices + 1], axis=1))


def test_test_views_each_span_the_whole_video() -> None:
    # TSN, 4 segments x 2 views: 8 test centres dealt alternately, so each view covers the video.
    centres = SampleFrames(num_clips=8, test_mode=True)(80)
    np.testing.assert_array_equal(centres, [5, 15, 25, 35, 45, 55, 65, 75])
    np.testing.assert_array_equal(split_views(centres, 2, clip_len=1), [[5, 25, 45, 65], [15, 35, 55, 75]])
    # 3D, one 4x2 clip per view, 3 views along the video (mmaction2's num_clips=3 test sampling).
    clips = SampleFrames(clip_len=4, frame_interval=2, num_clips=3, test_mode=True)(60)
    views = split_views(clips, 3, clip_len=4)
    np.testing.assert_array_equal(views, clips.reshape(3, 4))
    assert views[0, 0] < views[1, 0] < views[2, 0]
    with pytest.raises(ValueError, match="cannot deal 8 clips into 3 views"):
        split_views(centres, 3, clip_len=1)
