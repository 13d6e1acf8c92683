from __future__ import annotations

import numpy as np
import pytest

from reskd_lightning.data import SampleFrames


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
