from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from reskd_lightning.analysis import round_trip
from reskd_lightning.data import (
    DEMO_CLASSES,
    PyAVDecoder,
    ensure_demo_dataset,
    load_video_list,
    render_demo_video,
    write_demo_dataset,
)


def test_demo_dataset_layout(demo_root: Path) -> None:
    assert (demo_root / "classes.txt").read_text().split() == list(DEMO_CLASSES)
    train, val = load_video_list(demo_root / "train.txt"), load_video_list(demo_root / "val.txt")
    assert len(train) == 4 * 4 and len(val) == 4 * 2
    assert [r.label for r in val] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert Path(val[2].path) == demo_root / "val" / DEMO_CLASSES[1] / f"{DEMO_CLASSES[1]}_0000.mp4"
    with PyAVDecoder().open(train[0].path) as video:
        assert video.num_frames == 16
        assert video.get_frames(np.array([0, 15])).shape == (2, 64, 64, 3)
    assert not [p for p in demo_root.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_demo_dataset_is_written_once(demo_root: Path) -> None:
    marker = demo_root / ".complete"
    before = marker.stat().st_mtime_ns
    again = write_demo_dataset(demo_root, num_train_per_class=4, num_val_per_class=2, size=64)
    assert again == demo_root and marker.stat().st_mtime_ns == before


def test_demo_dataset_is_rewritten_for_other_parameters(tmp_path: Path) -> None:
    tiny = dict(num_val_per_class=1, num_frames=4, size=32)
    root = write_demo_dataset(tmp_path / "demo", num_train_per_class=1, **tiny)
    root = write_demo_dataset(root, num_train_per_class=2, **tiny)
    assert len(load_video_list(root / "train.txt")) == 2 * len(DEMO_CLASSES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_demo_dataset_refuses_a_folder_of_other_files(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="is not a demo dataset"):
        write_demo_dataset(tmp_path, num_train_per_class=1, num_val_per_class=1, num_frames=4, size=32)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_ensure_demo_dataset_finds_a_complete_one(demo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESKD_DEMO_DIR", os.fspath(demo_root))
    assert ensure_demo_dataset() == demo_root  # complete: returned without writing the full-size default
    assert ensure_demo_dataset(demo_root) == demo_root


def test_writing_the_demo_dataset_shows_its_progress(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = write_demo_dataset(tmp_path / "demo", num_train_per_class=2, num_val_per_class=1, num_frames=4, size=32)
    err = capsys.readouterr().err
    # tqdm's bar on stderr: what is written, where, and every video counted (4 classes x (2 + 1) videos).
    assert f"writing the demo videos to {root}" in err and "12/12" in err
    write_demo_dataset(root, num_train_per_class=2, num_val_per_class=1, num_frames=4, size=32)
    assert capsys.readouterr().err == ""  # already complete: nothing written, no bar


def test_classes_differ_only_in_the_objects_stripes() -> None:
    videos = [render_demo_video(c, np.random.default_rng(0), num_frames=4, size=64) for c in range(4)]
    assert all(v.shape == (4, 64, 64, 3) and v.dtype == np.uint8 for v in videos)
    # Same seed: same background, distractor and motion; only the object's disc (radius <= 15 x 1.1 x 64 / 128
    # px, plus its half-pixel soft edge) differs.
    for v in videos[1:]:
        changed = np.any(v != videos[0], axis=-1).sum(axis=(1, 2))
        assert np.all((changed > 0) & (changed <= np.pi * 8.75**2))
    again = render_demo_video(1, np.random.default_rng(0), num_frames=4, size=64)
    assert np.array_equal(again, videos[1])  # the seed alone decides the video


def _round_trip(frames: np.ndarray, low: int) -> np.ndarray:
    """Frames ``[T, H, W, 3]`` down to ``low`` px and back up, as mode D of ``reskd analyze`` makes them."""
    clip = torch.from_numpy(frames).permute(3, 0, 1, 2)  # [C, T, H, W]
    return round_trip(clip, low).permute(1, 2, 3, 0).numpy()


@pytest.mark.parametrize("seed", range(4))
def test_the_class_pattern_survives_a_trip_through_half_the_resolution(seed: int) -> None:
    # The paper's premise: the low-resolution frames keep the class information (its mode D stays near A).
    # The object's disc is where a video and the same video of the orthogonal class differ; its pixels after
    # a 2x round trip must still correlate with the originals. The old demo's 3.3-px grating aliased at half
    # size (correlation 0.37-0.69 on these seeds); the object's 7-px grating keeps >= 0.95.
    videos = [render_demo_video(c, np.random.default_rng(seed), num_frames=2).astype(np.float32) for c in range(4)]
    for c in range(4):
        disc = np.any(videos[c] != videos[(c + 2) % 4], axis=-1)
        before, after = videos[c][disc], _round_trip(videos[c], 64)[disc]
        before, after = before - before.mean(), after - after.mean()
        assert (before * after).sum() / np.sqrt((before**2).sum() * (after**2).sum()) > 0.85
