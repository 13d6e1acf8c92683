"""`reskd check-data --deep`: frames read by seeking, as training reads them, against a sequential decode."""

from __future__ import annotations

from pathlib import Path

import pytest
from data.video_makers import numbered_frames, write_packed_mpeg4_avi, write_spliced_h264_mp4

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
