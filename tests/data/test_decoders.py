from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
import pytest
from PIL import Image
import torch

from reskd_lightning.data import PyAVDecoder, VideoDecodeError, build_decoder, write_video
from reskd_lightning.data.decoders import DECODERS, RawFrameDecoder, TorchCodecDecoder

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


# -- videos with B-frames and short keyframe intervals -------------------------------------------------------

GOP = 8  # a keyframe every 8 frames
LONG = 61  # frames: keyframes at 0, 8, ..., 56


def moving_frames(num_frames: int = LONG) -> np.ndarray:
    """Frames 64x48 that all differ (a brightness ramp, a moving bar, noise): P/B-frame content."""
    rng = np.random.default_rng(0)
    frames = np.zeros((num_frames, 48, 64, 3), np.uint8)
    for i in range(num_frames):
        frames[i, ..., 0] = (i * 37) % 200 + 20
        frames[i, :, (3 * i) % 64, 1] = 255
        frames[i, ..., 2] = rng.integers(0, 40, (48, 64))
    return frames


def write_gop_video(
    path: Path, codec: str = "libx264", gop: int = GOP, vfr: bool = False, seekable: bool = True
) -> Path:
    """A 61-frame video with a keyframe exactly every ``gop`` frames and (H.264) two B-frames between refs.

    ``vfr``: irregular frame durations (millisecond timestamps). ``seekable=False`` writes through a stream
    that cannot seek, so Matroska/WebM get no cues (no index) and no duration, like a live recording.
    """
    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg cannot encode {codec}")
    target = path.open("wb") if not seekable else None
    try:
        output = _NoSeek(target) if target else str(path)
        with av.open(output, mode="w", format=path.suffix[1:] if target else None) as container:
            stream = container.add_stream(codec, rate=30)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            stream.codec_context.thread_count = 1
            options = {"g": str(gop), "keyint_min": str(gop)}
            if codec == "libx264":  # lossless, 2 B-frames, keyframes only where asked
                options.update({"bf": "2", "crf": "0", "preset": "veryfast", "sc_threshold": "0"})
            elif codec == "libx265":  # x265's GOPs are open: frames after a keyframe may show before it
                params = f"keyint={gop}:min-keyint={gop}:bframes=2:lossless=1:log-level=error"
                options = {"x265-params": params}
            elif codec == "mpeg4":  # MPEG-4 part 2 with B-frames
                options.update({"bf": "2", "qscale": "1"})
                stream.codec_context.max_b_frames = 2
            else:  # VP9: lossless, fast
                options.update({"lossless": "1", "deadline": "realtime", "cpu-used": "8"})
            stream.options = options
            if vfr:
                stream.codec_context.time_base = Fraction(1, 1000)
            pts = 0
            for i, array in enumerate(moving_frames()):
                frame = av.VideoFrame.from_ndarray(array, format="rgb24")
                if vfr:
                    frame.pts, frame.time_base = pts, Fraction(1, 1000)
                    pts += (33, 50, 20, 41)[i % 4]
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
    finally:
        if target:
            target.close()
    return path


class _NoSeek:
    """A write-only file object without ``seek``: muxers treat the output as a live stream."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f

    def write(self, data: bytes) -> int:
        return self.f.write(data)


def full_decode(path: Path) -> torch.Tensor:
    """Every frame, decoded from the start: what the sparse decoder must reproduce."""
    with av.open(str(path)) as container:
        return torch.from_numpy(np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]))


GOP_VIDEOS = {
    "h264.mp4": dict(codec="libx264"),  # an index entry per frame
    "h264.mkv": dict(codec="libx264"),  # cues: keyframes only
    "vp9.webm": dict(codec="libvpx-vp9"),
    "vp9_live.webm": dict(codec="libvpx-vp9", seekable=False),  # no cues, no duration
    "h264_vfr.mp4": dict(codec="libx264", vfr=True),  # variable frame rate
    "h264_vfr.mkv": dict(codec="libx264", vfr=True),
    "h264.avi": dict(codec="libx264"),  # the index says frame 0 is at pts 0, the decoder says 1
    "hevc.mp4": dict(codec="libx265"),  # open GOPs
    "mpeg4.avi": dict(codec="mpeg4"),  # B-frames in AVI (unpacked; packed ones: test_decoder_integrity.py)
}


@pytest.fixture(scope="module")
def gop_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gop_videos")


@pytest.fixture(scope="module", params=list(GOP_VIDEOS))
def gop_video(request: pytest.FixtureRequest, gop_dir: Path) -> Path:
    path = gop_dir / request.param
    return path if path.exists() else write_gop_video(path, **GOP_VIDEOS[request.param])


@pytest.fixture(scope="module")
def mp4_video(gop_dir: Path) -> Path:
    path = gop_dir / "h264.mp4"
    return path if path.exists() else write_gop_video(path)


def random_requests(num_frames: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    requests = [np.sort(rng.choice(num_frames, 8, replace=False)) for _ in range(6)]  # sorted, distinct
    requests += [rng.integers(0, num_frames, 8) for _ in range(6)]  # unsorted, with repeats
    requests += [np.array([num_frames - 1, 0, num_frames - 1]), np.array([57, 3, 57, 56, 9])]
    return requests


# -- PyAV: exact frames --------------------------------------------------------------------------------------


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


@pytest.mark.parametrize("num_threads", [1, 0])
@pytest.mark.parametrize("count_first", [False, True], ids=["index", "counted"])
def test_sparse_decoding_equals_a_full_decode(gop_video: Path, num_threads: int, count_first: bool) -> None:
    reference = full_decode(gop_video)
    assert len(reference) == LONG
    decoder = PyAVDecoder(num_threads=num_threads)
    for k, indices in enumerate(random_requests(LONG, seed=num_threads)):
        with decoder.open(gop_video) as video:
            if count_first:  # Matroska/WebM: counts by scanning packets, which also gives exact timestamps
                assert video.num_frames == LONG
            assert torch.equal(video.get_frames(indices), reference[indices]), f"request {k}: {indices}"
    with decoder.open(gop_video) as video:  # one handle, requests going back and forth
        for indices in random_requests(LONG, seed=7)[:8]:
            assert torch.equal(video.get_frames(indices), reference[indices])


def test_indices_past_the_last_decodable_frame_repeat_it(counter_video: Path) -> None:
    with PyAVDecoder().open(counter_video) as video:
        frames = video.get_frames(np.array([NUM_FRAMES + 5, 3]))
    np.testing.assert_allclose(frames.float().mean(dim=(1, 2, 3)).numpy(), level([NUM_FRAMES - 1, 3]), atol=3)


def test_truncated_video_gives_its_last_decodable_frame(gop_dir: Path) -> None:
    whole = gop_dir / "h264.mkv"
    if not whole.exists():
        write_gop_video(whole)
    cut = gop_dir / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])  # no cues, no last clusters
    reference = full_decode(cut)
    assert 0 < len(reference) < LONG
    with PyAVDecoder().open(cut) as video:
        frames = video.get_frames(np.array([LONG - 1, 2, 1000]))
    assert torch.equal(frames, reference[[-1, 2, -1]])


def test_damaged_video_decodes_up_to_the_damage_and_names_it(tmp_path: Path) -> None:
    whole = tmp_path / "whole.mp4"
    with av.open(str(whole), mode="w", options={"movflags": "faststart"}) as container:  # index first
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"g": str(GOP), "crf": "0"}
        for array in moving_frames():
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])  # the index still lists 61 frames
    reference = full_decode(whole)
    with PyAVDecoder().open(cut) as video:
        assert video.num_frames == LONG
        assert torch.equal(video.get_frames(np.array([2, 20])), reference[[2, 20]])  # before the damage
        with pytest.raises(VideoDecodeError, match=r"cut.mp4'?: PyAV failed while decoding frame \d+"):
            video.get_frames(np.array([LONG - 1]))


def test_num_frames(gop_video: Path, counter_video: Path) -> None:
    with PyAVDecoder().open(gop_video) as video:
        assert video.num_frames == LONG
    with av.open(str(counter_video)) as container:
        stored = container.streams.video[0].frames
    assert stored == (NUM_FRAMES if counter_video.suffix == ".mp4" else 0)  # .mkv: counted from packets
    with PyAVDecoder().open(counter_video) as video:
        assert video.num_frames == NUM_FRAMES


# -- PyAV: seeking -------------------------------------------------------------------------------------------


def test_far_apart_frames_are_reached_by_seeking(gop_video: Path) -> None:
    reference = full_decode(gop_video)
    with PyAVDecoder().open(gop_video) as video:
        frames = video.get_frames(np.array([3, 58]))
        assert torch.equal(frames, reference[[3, 58]])
        if gop_video.name == "mpeg4.avi":  # no usable timestamps: decoded from the start, as a last resort
            assert video.frames_decoded >= 59
            return
        # From keyframe 0 to frame 3, then from keyframe 56 to frame 58: not the 59 frames of a full decode.
        assert video.seeks >= 1
        assert video.frames_decoded <= 12, video.frames_decoded


def test_frames_of_one_gop_are_decoded_without_seeking_back(mp4_video: Path) -> None:
    reference = full_decode(mp4_video)
    with PyAVDecoder().open(mp4_video) as video:
        frames = video.get_frames(np.array([42, 45, 41]))  # one GOP: keyframe 40
        assert torch.equal(frames, reference[[42, 45, 41]])
        assert video.seeks == 1  # to keyframe 40, then forward
        assert video.frames_decoded <= 6  # 40..45 at most: unwanted frames no other frame uses are skipped


# -- PyAV: keyframe mode -------------------------------------------------------------------------------------


def test_keyframe_mode_takes_the_keyframe_nearest_inside_each_range(gop_video: Path) -> None:
    reference = full_decode(gop_video)
    indices = np.array([3, 13, 29, 50, 21])
    bounds = np.array([[0, 8], [9, 16], [17, 33], [49, 56], [17, 33]])
    # [0, 8): keyframe 0; [9, 16): none, so exactly 13; [17, 33): keyframes 24 and 32, nearest to 29 is 32
    # and to 21 is 24; [49, 56): none (56 is outside), so exactly 50.
    expected = [0, 13, 32, 50, 24]
    if gop_video.name == "mpeg4.avi":  # no usable timestamps, so no keyframe positions: exact frames
        expected = indices
    with PyAVDecoder(snap_to_keyframe=True).open(gop_video) as video:
        assert torch.equal(video.get_frames(indices, bounds=bounds), reference[expected])
        assert torch.equal(video.get_frames(indices), reference[indices])  # no bounds: exact


def test_keyframe_mode_decodes_one_frame_per_keyframe(mp4_video: Path) -> None:
    indices = np.array([1, 18, 35, 52])
    bounds = np.stack([np.arange(4) * 15, np.arange(4) * 15 + 15], axis=1)  # four segments of 15 frames
    with PyAVDecoder(snap_to_keyframe=True).open(mp4_video) as video:
        frames = video.get_frames(indices, bounds=bounds)
        assert video.frames_decoded == 4
    # [0, 15): keyframes 0, 8 -> 0; [15, 30): 16, 24 -> 16; [30, 45): 32, 40 -> 32;
    # [45, 60): 48, 56, a tie -> 48.
    assert torch.equal(frames, full_decode(mp4_video)[[0, 16, 32, 48]])


def test_bounds_are_ignored_without_keyframe_mode(mp4_video: Path) -> None:
    indices = np.array([3, 13])
    with PyAVDecoder().open(mp4_video) as video:
        frames = video.get_frames(indices, bounds=np.array([[0, 8], [8, 16]]))
    assert torch.equal(frames, full_decode(mp4_video)[indices])


def test_bad_bounds_are_refused(mp4_video: Path) -> None:
    with PyAVDecoder(snap_to_keyframe=True).open(mp4_video) as video:
        message = r"bounds for .*h264.mp4.* must be an integer array \[2, 2\].*\(3, 2\)"
        with pytest.raises(ValueError, match=message):
            video.get_frames(np.array([1, 2]), bounds=np.zeros((3, 2), int))
        with pytest.raises(ValueError, match=r"row 1 \[5, 5\] is empty"):
            video.get_frames(np.array([1, 2]), bounds=np.array([[0, 4], [5, 5]]))


# -- PyAV: unreadable files ----------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="gone.mp4"):
        PyAVDecoder().open(tmp_path / "gone.mp4")


def test_undecodable_file_names_path_and_reason(corrupt_video: Path) -> None:
    message = f"cannot decode video '{corrupt_video}': PyAV could not open it"
    with pytest.raises(VideoDecodeError, match=message):
        PyAVDecoder().open(corrupt_video)
    assert issubclass(VideoDecodeError, ValueError)


def test_file_without_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "audio.wav"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
    with pytest.raises(VideoDecodeError, match="audio.wav'?: it has no video stream"):
        PyAVDecoder().open(path)


def test_video_without_frames(tmp_path: Path) -> None:
    path = tmp_path / "empty.avi"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    with PyAVDecoder().open(path) as video:
        with pytest.raises(VideoDecodeError, match="empty.avi'?: it has no frames"):
            video.num_frames
    with PyAVDecoder().open(path) as video:
        with pytest.raises(VideoDecodeError, match="empty.avi'?: it has no decodable frames"):
            video.get_frames(np.array([0]))


def test_bad_indices_are_refused(mp4_video: Path) -> None:
    with PyAVDecoder().open(mp4_video) as video:
        with pytest.raises(IndexError, match="negative frame index -1"):
            video.get_frames(np.array([3, -1]))
        with pytest.raises(ValueError, match="no frame indices"):
            video.get_frames(np.array([], dtype=int))


# -- frame folders -------------------------------------------------------------------------------------------


@pytest.fixture()
def frame_dir(tmp_path: Path) -> tuple[Path, torch.Tensor]:
    """A folder ``img_00001.png`` ... ``img_00012.png`` of distinct frames, plus files to be ignored."""
    frames = torch.from_numpy(moving_frames(12))
    folder = tmp_path / "video_0001"
    folder.mkdir()
    for i, frame in enumerate(frames, start=1):
        Image.fromarray(np.asarray(frame)).save(folder / f"img_{i:05d}.png")
    (folder / "notes.txt").write_text("not a frame")
    (folder / "flow_x_00001.png").write_bytes(b"")
    return folder, frames


def test_rawframes_read_the_files_asked_for(frame_dir: tuple[Path, torch.Tensor]) -> None:
    folder, frames = frame_dir
    decoder = build_decoder("rawframes", filename_tmpl="img_{:05}.png")
    indices = np.array([5, 0, 5, 11, 3])
    with decoder.open(folder) as video:
        assert video.num_frames == 12  # notes.txt and flow_x_*.png do not count
        got = video.get_frames(indices, bounds=np.array([[0, 6]] * 5))  # bounds accepted and ignored
    assert got.dtype == torch.uint8 and torch.equal(got, frames[indices])


def test_rawframes_with_an_offset_and_past_the_end(frame_dir: tuple[Path, torch.Tensor]) -> None:
    folder, frames = frame_dir
    with RawFrameDecoder("img_{:05}.png").open(folder) as video:
        offset = 8  # a record that starts at frame 8 of the folder
        got = video.get_frames(np.array([0, 3, 10]) + offset)
    assert torch.equal(got, frames[[8, 11, 11]])  # 18 is past the last file: the last frame


def test_rawframes_other_template_and_start_index(tmp_path: Path) -> None:
    frames = torch.from_numpy(moving_frames(4))
    for i, frame in enumerate(frames):  # 0-based, JPEG
        Image.fromarray(np.asarray(frame)).save(tmp_path / f"{i:04d}.jpg", quality=100)
    with RawFrameDecoder(filename_tmpl="{:04d}.jpg", start_index=0).open(tmp_path) as video:
        assert video.num_frames == 4
        got = video.get_frames(np.array([3, 1]))
    assert got.shape == (2, 48, 64, 3)
    assert (got.float() - frames[[3, 1]].float()).abs().mean() < 6  # JPEG is lossy


def test_rawframes_missing_file_names_file_index_and_template(frame_dir: tuple[Path, torch.Tensor]) -> None:
    folder, _ = frame_dir
    (folder / "img_00004.png").unlink()
    with RawFrameDecoder("img_{:05}.png").open(folder) as video:
        message = r"frame 3 of .* is missing: no file .*img_00004.png.*img_\{:05\}"
        with pytest.raises(VideoDecodeError, match=message):
            video.get_frames(np.array([1, 3]))


def test_rawframes_unreadable_folders(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="frame folder .*nowhere"):
        RawFrameDecoder().open(tmp_path / "nowhere")
    (tmp_path / "img_00001.jpg").write_bytes(b"not a jpeg")
    with RawFrameDecoder().open(tmp_path) as video:
        with pytest.raises(VideoDecodeError, match="frame 0 of .*img_00001.jpg"):
            video.get_frames(np.array([0]))
    with RawFrameDecoder("other_{:05}.jpg").open(tmp_path) as video:
        with pytest.raises(VideoDecodeError, match=r"no files named like 'other_\{:05\}.jpg'"):
            video.num_frames


# -- torchcodec ----------------------------------------------------------------------------------------------


def test_torchcodec_without_torchcodec_says_how_to_install(
    mp4_video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torchcodec", None)  # as if not installed, even where it is
    decoder = build_decoder("torchcodec", num_threads=0, seek_mode="approximate")
    message = r"pip install torchcodec.*libavcodec.*`decoder: pyav` works without"
    with pytest.raises(ImportError, match=message):
        decoder.open(mp4_video)


def test_torchcodec_decodes_like_pyav(mp4_video: Path) -> None:
    pytest.importorskip("torchcodec")
    indices = np.array([58, 3, 3, 30])
    with TorchCodecDecoder().open(mp4_video) as video:
        assert video.num_frames == LONG
        assert torch.equal(video.get_frames(indices, bounds=None), full_decode(mp4_video)[indices])


# -- by name -------------------------------------------------------------------------------------------------


def test_every_decoder_is_built_by_name() -> None:
    assert sorted(DECODERS) == ["pyav", "rawframes", "torchcodec"]
    assert isinstance(build_decoder("pyav", num_threads=0, snap_to_keyframe=True), PyAVDecoder)
    assert isinstance(build_decoder("rawframes", filename_tmpl="{:06}.png", start_index=0), RawFrameDecoder)
    assert isinstance(build_decoder("torchcodec"), TorchCodecDecoder)  # torchcodec is imported on open only


def test_unknown_decoder_lists_the_known_ones() -> None:
    known = r"\['pyav', 'rawframes', 'torchcodec'\]"
    with pytest.raises(ValueError, match=rf"unknown video decoder 'decord'; known decoders are {known}"):
        build_decoder("decord")
    with pytest.raises(TypeError, match="decoder 'rawframes'.*num_threads"):
        build_decoder("rawframes", num_threads=2)


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("pyav", {"num_threads": -1}, r"num_threads must be an integer >= 0 .*got -1"),
        ("pyav", {"snap_to_keyframe": "yes"}, r"snap_to_keyframe must be True or False, got 'yes'"),
        ("pyav", {"sequential": 1}, r"sequential must be True or False, got 1"),
        ("torchcodec", {"seek_mode": "fast"}, r"must be one of \('exact', 'approximate'\), got 'fast'"),
        ("torchcodec", {"num_threads": 1.5}, r"num_threads must be an integer >= 0 .*got 1.5"),
        ("rawframes", {"start_index": -1}, r"start_index must be an integer >= 0, got -1"),
        ("rawframes", {"filename_tmpl": "img.jpg"}, r"exactly one field for the frame number.*got 'img.jpg'"),
        ("rawframes", {"filename_tmpl": "img_{:05}_{}.jpg"}, r"got 'img_\{:05\}_\{\}.jpg'"),
    ],
)
def test_bad_arguments_show_the_value(name: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_decoder(name, **kwargs)
