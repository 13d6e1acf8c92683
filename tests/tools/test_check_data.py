"""`reskd check-data --deep`: frames read by seeking, as training reads them, against a sequential decode."""

from __future__ import annotations

import re
from pathlib import Path

import av
import pytest
from data.video_makers import HEIGHT, WIDTH, numbered_frames, write_packed_mpeg4_avi, write_spliced_h264_mp4

from reskd_lightning.cli import main
from reskd_lightning.data import write_video
from reskd_lightning.tools import check_data


@pytest.fixture(scope="module")
def video_list(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A validation list: records 0 and 1 read right by seeking (H.264; a packed-B-frame AVI, which the
    decoder reads from the start), record 2 reads wrong colours after a seek without any decode error, record
    3 decodes corrupt after a seek, which the decoder works around by decoding from the start."""
    root = tmp_path_factory.mktemp("deep")
    videos = [
        write_video(root / "good.mp4", numbered_frames(40)),
        write_packed_mpeg4_avi(root / "xvid_packed.avi"),
        write_spliced_h264_mp4(root / "silent.mp4", "chroma-qp-offset=6"),
        write_spliced_h264_mp4(root / "flagged.mp4", "8x8dct=0"),
    ]
    (root / "val.txt").write_text("".join(f"{v} {k % 2}\n" for k, v in enumerate(videos)))
    return root / "val.txt"


def write_config(video_list: Path) -> Path:
    config = video_list.with_name("data.yaml")
    config.write_text(
        f"trainer: {{max_epochs: 1}}\nmodel: {{student_resolution: 28}}\n"
        f"data:\n  val_list: {video_list}\n  short_side: 64\n  crop_size: 56\n  num_segments: 4\n"
    )
    return config


def test_deep_check_reports_the_videos_read_wrongly_by_seeking_and_passes_the_rest(
    video_list: Path, capsys: pytest.CaptureFixture
) -> None:
    config = write_config(video_list)
    main(["check-data", "--config", str(config), "--num-workers", "0"])  # every video reads: no exit
    assert "val: 4 videos" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="0 unreadable videos, 2 with wrong frames when read by seeking"):
        main(["check-data", "--config", str(config), "--num-workers", "0", "--deep"])
    out = capsys.readouterr().out
    assert f"val: 4 videos from {video_list}, 0 unreadable, 2 with wrong frames when read by seeking" in out
    assert "good.mp4" not in out and "xvid_packed.avi" not in out
    silent = [line for line in out.splitlines() if "silent.mp4" in line]
    assert len(silent) == 1 and silent[0].startswith("  record 2: ")
    assert "frames read by seeking differ from a sequential decode: frame" in silent[0]
    # Which frames differ: only those decoded from keyframes 60 and 75, past the second part's parameter sets.
    first = int(silent[0].split(": frame ")[1].split()[0])
    assert 60 <= first < 90
    flagged = [line for line in out.splitlines() if "flagged.mp4" in line]
    assert len(flagged) == 1 and flagged[0].startswith("  record 3: ")
    assert "decoding by seeking failed (frame" in flagged[0] and "decoded corrupt" in flagged[0]


def test_deep_check_shows_progress_on_stderr(
    video_list: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(check_data, "PROGRESS_EVERY_S", 0.0)
    with pytest.raises(SystemExit):
        main(["check-data", "--config", str(write_config(video_list)), "--num-workers", "0", "--deep"])
    err = capsys.readouterr().err
    assert [f"val: {k}/4 videos checked" in err for k in range(1, 5)] == [True] * 4


def write_cut_mp4(path: Path, index_first: bool) -> Path:
    """An H.264 MP4 of 40 numbered frames cut to its first half, as an interrupted download leaves it. With
    its index first (``movflags=faststart``) it opens and its data stops mid-stream; with its index last
    (FFmpeg's default for MP4) the index is gone and FFmpeg cannot open it."""
    options = {"movflags": "faststart"} if index_first else {}
    with av.open(str(path), mode="w", options=options) as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"x264-params": "keyint=10:scenecut=0"}
        for array in numbered_frames(40):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def frames_before_failure(path: Path) -> int:
    """How many frames PyAV alone decodes from the start of ``path`` before it fails."""
    decoded = 0
    with pytest.raises(av.FFmpegError), av.open(str(path)) as container:
        for _ in container.decode(video=0):
            decoded += 1
    return decoded


def test_check_data_names_each_broken_video_once_with_what_failed_and_at_which_frame(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    cut = write_cut_mp4(tmp_path / "cut.mp4", index_first=True)
    no_index = write_cut_mp4(tmp_path / "no_index.mp4", index_first=False)
    gone = tmp_path / "gone.mp4"
    videos = [write_video(tmp_path / "good.mp4", numbered_frames(40)), cut, no_index, gone]
    (tmp_path / "val.txt").write_text("".join(f"{v} {k % 2}\n" for k, v in enumerate(videos)))
    with pytest.raises(SystemExit, match="^3 unreadable videos$"):
        main(["check-data", "--config", str(write_config(tmp_path / "val.txt")), "--num-workers", "0"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  record ")]
    # Before: the path in the line, again in the dataset's error, again in the decoder's, and once more in
    # PyAV's own text ("... when processing input: '<path>'"); the list's path came along too.
    assert [line.count(str(tmp_path)) for line in lines] == [1, 1, 1], lines
    assert [line.split(": ")[:2] for line in lines] == [[f"  record {k}", str(videos[k])] for k in (1, 2, 3)]
    # What failed, and where: the frame PyAV alone fails at decoding from the start.
    frame = frames_before_failure(cut)
    assert re.fullmatch(rf".*: VideoDecodeError: cannot decode video: PyAV failed while decoding frame {frame} "
                        r"\(.+\)", lines[0]), lines[0]  # fmt: skip
    assert re.fullmatch(r".*: VideoDecodeError: cannot decode video: PyAV could not open it \(.+\)", lines[1])
    assert lines[2].endswith(f"{gone}: FileNotFoundError: video file does not exist")
