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


# -- mmaction2's twice_sample, keep_tail_frames and temporal_jitter -----------------------------------------
# official: mmaction/datasets/pipelines/loading.py class SampleFrames (CVMI-Lab/ResKD), lines 137-259.


def test_twice_sample_adds_the_segment_starts_after_the_centres() -> None:
    # official: _get_test_clips, loading.py:196-201: avg = (N - ori_clip_len + 1) / num_clips, centres
    # int(i * avg + avg / 2), then `np.concatenate([clip_offsets, base_offsets])` with base_offsets = i * avg,
    # cast to int at the end (:255). N = 100, 8 clips: avg = 12.5.
    sampler = SampleFrames(num_clips=8, test_mode=True, twice_sample=True)
    centres = [6, 18, 31, 43, 56, 68, 81, 93]  # int(6.25), int(18.75), ...
    starts = [0, 12, 25, 37, 50, 62, 75, 87]  # int(0), int(12.5), int(25.0), int(37.5), ...
    np.testing.assert_array_equal(sampler(100), centres + starts)
    assert sampler.samples_twice and sampler.num_clips == 8 and sampler.num_clips_out == 16
    assert sampler.num_frames_out == 16
    # Dense clips: clip_len 4, interval 2 (ori_clip_len 8), 2 clips of N = 30: avg = 23 / 2 = 11.5;
    # centres int(5.75) = 5, int(17.25) = 17; starts 0, int(11.5) = 11; frames offset + 0, 2, 4, 6.
    dense = SampleFrames(clip_len=4, frame_interval=2, num_clips=2, test_mode=True, twice_sample=True)
    expected = [[5, 7, 9, 11], [17, 19, 21, 23], [0, 2, 4, 6], [11, 13, 15, 17]]
    np.testing.assert_array_equal(dense(30).reshape(4, 4), expected)


def test_twice_sample_on_a_short_video_repeats_its_clips() -> None:
    # official: N <= ori_clip_len - 1 gives np.zeros(num_clips) (loading.py:202-203), once: clip [0, 4, 8, 12] looped
    # over 3 frames (:243) is [0, 1, 2, 0]. Here twice, so every video has 2 views; the averaged prediction is the same.
    sampler = SampleFrames(clip_len=4, frame_interval=4, num_clips=1, test_mode=True, twice_sample=True)
    np.testing.assert_array_equal(sampler(3), [0, 1, 2, 0, 0, 1, 2, 0])


def test_twice_sample_is_ignored_when_training() -> None:
    # official: only _get_test_clips reads twice_sample (loading.py:200).
    plain, twice = SampleFrames(num_clips=8), SampleFrames(num_clips=8, twice_sample=True)
    assert not twice.samples_twice and twice.num_clips_out == 8
    np.testing.assert_array_equal(plain(100, np.random.default_rng(4)), twice(100, np.random.default_rng(4)))


def test_twice_sampled_clips_are_dealt_into_centre_views_then_start_views() -> None:
    # mmaction2's TSM test (tsm_head.py:107: cls_score.view(-1, num_segments, ...), then average_clip over the
    # groups, recognizers/base.py:193-197): 16 frames = the centre group of 8 and the start group of 8, two views.
    indices = SampleFrames(num_clips=4, test_mode=True, twice_sample=True)(80)  # avg 20
    np.testing.assert_array_equal(indices, [10, 30, 50, 70, 0, 20, 40, 60])
    np.testing.assert_array_equal(split_views(indices, 1, clip_len=1, twice=True), [[10, 30, 50, 70], [0, 20, 40, 60]])
    # Two test views of 2 segments each (num_clips 4 = 2 x 2): each half is dealt as without twice_sample.
    views = split_views(indices, 2, clip_len=1, twice=True)
    np.testing.assert_array_equal(views, [[10, 50], [30, 70], [0, 40], [20, 60]])
    with pytest.raises(ValueError, match="cannot deal 8 clips into 6 views"):
        split_views(indices, 3, clip_len=1, twice=True)


def test_keep_tail_frames_draws_from_the_float_segments() -> None:
    # official: _get_train_clips with keep_tail_frames (loading.py:153-161): avg = (N - ori_clip_len + 1) / num_clips
    # (a float), offsets (i * avg + U(0, avg)).astype(int). N = 100, 8 clips: avg = 12.5, so segment i covers
    # [floor(12.5 i), 12.5 (i + 1)) and the last one reaches frame 99; without it, avg = 100 // 8 = 12 and the
    # last frame drawn is 8 * 12 - 1 = 95 (loading.py:163-168).
    tail, plain = SampleFrames(num_clips=8, keep_tail_frames=True), SampleFrames(num_clips=8)
    rng = np.random.default_rng(0)
    drawn = np.stack([tail(100, rng) for _ in range(400)])
    lows = np.floor(np.arange(8) * 12.5)
    assert np.all((drawn >= lows) & (drawn < np.arange(1, 9) * 12.5))
    assert drawn.max() == 99 and drawn[:, 0].min() == 0
    assert np.stack([plain(100, rng) for _ in range(400)]).max() == 95
    # The same uniform draws give the same offsets as the official formula.
    expected = (np.arange(8) * 12.5 + np.random.default_rng(5).uniform(0, 12.5, 8)).astype(int)
    np.testing.assert_array_equal(tail(100, np.random.default_rng(5)), expected)
    # N <= ori_clip_len - 1: zeros (loading.py:160-161); clip [0, 4, 8, 12] looped over 10 frames.
    short = SampleFrames(clip_len=4, frame_interval=4, num_clips=1, keep_tail_frames=True)
    np.testing.assert_array_equal(short(10, rng), [0, 4, 8, 2])
    # Keyframe mode's ranges hold each drawn index.
    indices, bounds = tail.sample(100, np.random.default_rng(1))
    assert np.all((bounds[:, 0] <= indices) & (indices < bounds[:, 1]))
    np.testing.assert_array_equal(bounds[:, 0], lows)


def test_temporal_jitter_moves_each_frame_within_its_interval_before_the_out_of_bound_rule() -> None:
    # official: __call__ (loading.py:232-249): frame_inds = offsets + arange(clip_len) * frame_interval, then
    # `frame_inds += np.random.randint(frame_interval, size=len(frame_inds))` (:236-239), then loop / repeat_last.
    # Test centre of N = 100, clip 4 x 4: avg = 100 - 16 + 1 = 85, offset int(42.5) = 42: base [42, 46, 50, 54].
    sampler = SampleFrames(clip_len=4, frame_interval=4, num_clips=1, test_mode=True, temporal_jitter=True)
    base = np.array([42, 46, 50, 54])
    rng = np.random.default_rng(0)
    moves = np.stack([sampler(100, rng) - base for _ in range(200)])
    assert set(np.unique(moves).tolist()) == {0, 1, 2, 3}
    assert len({tuple(m) for m in moves}) > 50  # each frame moves on its own
    # N = 15 <= ori_clip_len - 1: offset 0, base [0, 4, 8, 12]; 12 + 3 = 15 loops to 0, or repeats the last inside.
    loop = SampleFrames(clip_len=4, frame_interval=4, num_clips=1, temporal_jitter=True)
    last = SampleFrames(clip_len=4, frame_interval=4, num_clips=1, temporal_jitter=True, out_of_bound="repeat_last")
    for _ in range(50):
        seed = int(rng.integers(1 << 30))
        jitter = np.random.default_rng(seed).integers(4, size=(1, 4))
        jittered = np.array([0, 4, 8, 12]) + jitter[0]
        np.testing.assert_array_equal(loop(15, np.random.default_rng(seed)), jittered % 15)
        inside = jittered[jittered < 15]
        repeated = np.where(jittered < 15, jittered, inside.max())
        np.testing.assert_array_equal(last(15, np.random.default_rng(seed)), repeated)
    # frame_interval 1: randint(1) is 0, nothing moves.
    still = SampleFrames(num_clips=8, test_mode=True, temporal_jitter=True)
    np.testing.assert_array_equal(still(80), np.arange(5, 80, 10))


@pytest.mark.parametrize("name", ["twice_sample", "keep_tail_frames", "temporal_jitter", "test_mode"])
def test_flags_must_be_booleans(name: str) -> None:
    with pytest.raises(ValueError, match=f"{name} must be true or false, got 'yes'"):
        SampleFrames(**{name: "yes"})
