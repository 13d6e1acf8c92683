from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from reskd_lightning.data import PyAVDecoder, VideoDecodeError, build_decoder, write_video

NUM_FRAMES = 30


def level(i: np.ndarray) -> np.ndarray:
    """The grey level of frame i of a counter video."""
    return 10 + 8 * np.asarray(i)


def write_counter_video(path: Path, size: int = 32) -> Path:
    """A video whose frame i is a uniform grey ``level(i)``: its brightness tells which frame was decoded."""
    levels = level(np.arange(NUM_FRAMES)).astype(np.uint8)
    frames = np.broadcast_to(levels[:, None, None, None], (NUM_FRAMES, size, size, 3))
    return write_video(path, np.ascontiguousarray(frames))


@pytest.fixture(scope="module", params=["mp4", "mkv"])
def counter_video(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A counter video; ``.mp4`` stores the frame count, ``.mkv`` does not (it is counted from packets)."""
    return write_counter_video(tmp_path_factory.mktemp("videos") / f"counter.{request.param}")


def test_decoder_returns_exactly_the_frames_asked_for(counter_video: Path) -> None:
    indices = np.array([7, 2, 2, 29, 0, 13])  # unsorted, with a repeat
    with build_decoder("pyav").open(counter_video) as video:
        assert video.num_frames == NUM_FRAMES
        frames = video.get_frames(indices)
        assert frames.dtype == torch.uint8 and frames.shape == (6, 32, 32, 3)
        brightness = frames.float().mean(dim=(1, 2, 3)).numpy()
        np.testing.assert_allclose(brightness, level(indices), atol=3)
        # The same handle serves a second request.
        np.testing.assert_allclose(video.get_frames(np.array([1])).float().mean().item(), level(1), atol=3)


def test_mkv_has_no_frame_count_in_the_container(counter_video: Path) -> None:
    with av.open(str(counter_video)) as container:
        stored = container.streams.video[0].frames
    assert stored == (NUM_FRAMES if counter_video.suffix == ".mp4" else 0)


def test_indices_past_the_last_decodable_frame_repeat_it(counter_video: Path) -> None:
    with PyAVDecoder().open(counter_video) as video:
        frames = video.get_frames(np.array([NUM_FRAMES + 5, 3]))
    np.testing.assert_allclose(frames.float().mean(dim=(1, 2, 3)).numpy(), level([NUM_FRAMES - 1, 3]), atol=3)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="gone.mp4"):
        PyAVDecoder().open(tmp_path / "gone.mp4")


def test_undecodable_file_names_path_and_reason(corrupt_video: Path) -> None:
    message = f"cannot decode video '{corrupt_video}': PyAV could not open it"
    with pytest.raises(VideoDecodeError, match=message):
        PyAVDecoder().open(corrupt_video)
    assert issubclass(VideoDecodeError, ValueError)


def test_unknown_decoder_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown video decoder 'decord'; known decoders are \['pyav'\]"):
        build_decoder("decord")
    with pytest.raises(ValueError, match="num_threads must be an integer >= 0"):
        PyAVDecoder(num_threads=-1)
