"""``reskd prepare``: demo videos (written by the tests with PyAV) into frame folders and MJPEG files.

The demo videos are 16 frames of 64x64 at 10 fps (times 0.0, 0.1, ..., 1.5 s), H.264 with B-frames.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from reskd_lightning.data import PyAVDecoder, Resize, VideoDataModule, write_video
from reskd_lightning.data.prepare import merge_shards, prepare_videos
from reskd_lightning.data.prepare_settings import PrepareSettings
from reskd_lightning.tools.prepare import main as prepare_main

JPEG_4FPS = PrepareSettings(image_format="jpg", fps=4)


def decoded(video: Path) -> list[np.ndarray]:
    with av.open(str(video)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def one_video_list(tmp_path: Path, video: Path, label: int = 0) -> Path:
    listed = tmp_path / "one.txt"
    listed.write_text(f"{video} {label}\n")
    return listed


def test_frames_are_kept_at_the_given_fps_by_timestamp_and_written_losslessly_as_png(
    demo_root: Path, tmp_path: Path
) -> None:
    video = demo_root / "train" / "stripes_45" / "stripes_45_0000.mp4"
    report = prepare_videos(one_video_list(tmp_path, video, 1), tmp_path / "out", PrepareSettings("frames", "png", 4))
    # Output frame k is the last frame at or before k / 4 s, for k / 4 up to the last frame's 1.5 s: k = 0..6,
    # frames at 0.0, 0.2, 0.5, 0.7, 1.0, 1.2, 1.5 s (0.25 s takes 0.2 s: 0.3 s comes after it).
    kept = [0, 2, 5, 7, 10, 12, 15]
    folder = tmp_path / "out" / "stripes_45_0000"
    files = sorted(folder.glob("img_*.png"))
    assert [f.name for f in files] == [f"img_{k:05d}.png" for k in range(1, 8)]
    frames = decoded(video)
    for file, index in zip(files, kept):
        assert np.array_equal(np.asarray(Image.open(file)), frames[index]), file.name
    assert report.list_file.read_text() == "stripes_45_0000 7 1\n"
    assert (report.prepared, report.skipped, report.failed) == (1, 0, [])


def test_the_short_side_is_resized_keeping_the_aspect_with_mmcv_rounding(tmp_path: Path) -> None:
    frames = np.random.default_rng(0).integers(0, 256, (5, 48, 70, 3), dtype=np.uint8)
    video = write_video(tmp_path / "wide.mp4", frames, fps=5)
    settings = PrepareSettings(image_format="png", short_side=30)
    prepare_videos(one_video_list(tmp_path, video), tmp_path / "out", settings)
    files = sorted((tmp_path / "out" / "wide").glob("img_*.png"))
    assert len(files) == 5  # no fps: every frame
    # 70 * 30 / 48 = 43.75: mmcv rounds the long side to 44 (truncating would give 43)
    assert Image.open(files[0]).size == (44, 30)
    first = torch.from_numpy(decoded(video)[0]).permute(2, 0, 1)
    expected = Resize(30, antialias=True)(first).permute(1, 2, 0).numpy()
    assert np.array_equal(np.asarray(Image.open(files[0])), expected)


def test_the_video_layout_writes_one_mjpeg_file_per_video_that_the_pyav_decoder_reads_frame_by_frame(
    demo_root: Path, tmp_path: Path
) -> None:
    video = demo_root / "train" / "stripes_90" / "stripes_90_0001.mp4"
    report = prepare_videos(one_video_list(tmp_path, video, 2), tmp_path / "out", PrepareSettings("video", fps=4))
    assert report.list_file.name == "one_videos.txt" and report.list_file.read_text() == "stripes_90_0001.avi 2\n"
    with PyAVDecoder().open(tmp_path / "out" / "stripes_90_0001.avi") as handle:
        assert handle.num_frames == 7
        got = handle.get_frames(np.array([6, 0, 3])).numpy().astype(float)
    frames = decoded(video)
    for frame, index in zip(got, [15, 0, 7]):  # the frames kept at 4 fps (see the PNG test)
        assert np.abs(frame - frames[index]).mean() < 4  # MJPEG quantiser 2, 4:2:0 chroma


def test_a_class_folder_tree_is_prepared_with_its_classes_as_the_datamodule_scans_them(
    demo_root: Path, tmp_path: Path
) -> None:
    report = prepare_videos(demo_root / "val", tmp_path / "out", PrepareSettings("video", fps=4))
    # Classes are the folders sorted by name (scan_class_folders): stripes_0, stripes_135, stripes_45, stripes_90.
    classes = ["stripes_0", "stripes_135", "stripes_45", "stripes_90"]
    expected = [f"{name}/{name}_{k:04d}.avi {label}" for label, name in enumerate(classes) for k in range(2)]
    assert report.list_file.name == "val_videos.txt" and report.list_file.read_text().splitlines() == expected
    assert all((tmp_path / "out" / line.split()[0]).is_file() for line in expected)


def test_a_rerun_skips_finished_videos_and_redoes_those_a_killed_run_left_unfinished(
    demo_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = prepare_videos(demo_root / "val.txt", out, JPEG_4FPS)
    assert (first.prepared, first.skipped) == (8, 0)
    listed = first.list_file.read_text()
    # A killed run: a folder renamed without its marker and missing a frame, and a video whose temporary
    # folder holds a half-written frame (its finished folder never appeared).
    no_marker = out / "val" / "stripes_0" / "stripes_0_0000"
    (no_marker / ".done").unlink()
    (no_marker / "img_00007.jpg").unlink()
    shutil.rmtree(out / "val" / "stripes_45" / "stripes_45_0001")
    temporary = out / "val" / "stripes_45" / ".stripes_45_0001.tmp-otherhost-4242"
    temporary.mkdir()
    (temporary / "img_00001.jpg").write_bytes(b"half a jpeg")
    untouched = out / "val" / "stripes_90" / "stripes_90_0000" / "img_00001.jpg"
    stamp = untouched.stat().st_mtime_ns

    second = prepare_videos(demo_root / "val.txt", out, JPEG_4FPS)
    assert (second.prepared, second.skipped, second.failed) == (2, 6, [])
    assert len(list(no_marker.glob("img_*.jpg"))) == 7 and (no_marker / ".done").is_file()
    assert not temporary.exists() and len(list((out / "val/stripes_45/stripes_45_0001").glob("img_*.jpg"))) == 7
    assert untouched.stat().st_mtime_ns == stamp
    assert second.list_file.read_text() == listed


def test_other_settings_are_refused_naming_them_and_overwrite_redoes_every_video(
    demo_root: Path, tmp_path: Path
) -> None:
    listed = one_video_list(tmp_path, demo_root / "val" / "stripes_0" / "stripes_0_0001.mp4")
    prepare_videos(listed, tmp_path / "out", JPEG_4FPS)
    with pytest.raises(ValueError, match=r"prepare\.json.*fps: 4 -> 2"):
        prepare_videos(listed, tmp_path / "out", PrepareSettings(image_format="jpg", fps=2))
    report = prepare_videos(listed, tmp_path / "out", PrepareSettings(image_format="jpg", fps=2), overwrite=True)
    assert report.prepared == 1 and report.list_file.read_text() == "stripes_0_0001 4 0\n"  # 0, .5, 1, 1.5 s
    assert len(list((tmp_path / "out" / "stripes_0_0001").glob("img_*.jpg"))) == 4


def test_another_video_of_the_same_name_is_reported_not_written_over_unless_overwrite(
    demo_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    prepare_videos(one_video_list(tmp_path, demo_root / "val" / "stripes_0" / "stripes_0_0000.mp4"), out, JPEG_4FPS)
    other = tmp_path / "elsewhere" / "stripes_0_0000.mp4"  # the training video of that name
    other.parent.mkdir()
    shutil.copy(demo_root / "train" / "stripes_0" / "stripes_0_0000.mp4", other)
    clash = other.parent / "clash.txt"  # names are relative to the list's folder: this one is stripes_0_0000 too
    clash.write_text(f"{other.name} 0\n")
    report = prepare_videos(clash, out, JPEG_4FPS)
    assert report.prepared == 0 and "already holds the frames of 'stripes_0_0000.mp4'" in report.failed[0][1]
    assert prepare_videos(clash, out, JPEG_4FPS, overwrite=True).prepared == 1


def test_a_rerun_after_the_sources_were_deleted_keeps_the_prepared_videos(demo_root: Path, tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    shutil.copy(demo_root / "val" / "stripes_90" / "stripes_90_0000.mp4", video)
    listed = one_video_list(tmp_path, video, 2)
    prepare_videos(listed, tmp_path / "out", JPEG_4FPS)
    video.unlink()  # space freed once the frames were written
    report = prepare_videos(listed, tmp_path / "out", JPEG_4FPS)
    assert (report.prepared, report.skipped, report.failed) == (0, 1, [])
    assert report.list_file.read_text() == "v 7 2\n"


def test_shards_partition_the_list_and_merge_back_to_the_whole_list(demo_root: Path, tmp_path: Path) -> None:
    whole = prepare_videos(demo_root / "train.txt", tmp_path / "whole", JPEG_4FPS)
    out = tmp_path / "sharded"
    shards = [prepare_videos(demo_root / "train.txt", out, JPEG_4FPS, shard=(i, 3), workers=2) for i in (0, 1)]
    with pytest.raises(ValueError, match=r"misses shard\(s\) \[2\] of 3.*--shard 2/3"):
        merge_shards(out)
    shards.append(prepare_videos(demo_root / "train.txt", out, JPEG_4FPS, shard=(2, 3)))
    names = [shard.list_file.name for shard in shards]
    assert names == [f"train_rawframes.shard-{i}-of-3.txt" for i in range(3)]
    parts = [shard.list_file.read_text().splitlines() for shard in shards]
    assert [len(p) for p in parts] == [5, 5, 6] and sum(s.prepared for s in shards) == 16
    merged = merge_shards(out)
    assert sorted(p.name for p in merged) == ["train_rawframes.failed.txt", "train_rawframes.txt"]
    assert (out / "train_rawframes.txt").read_text() == whole.list_file.read_text()


def test_unreadable_inputs_are_reported_with_their_reason_and_the_rest_finish(
    demo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    good = [demo_root / "val" / "stripes_0" / "stripes_0_0000.mp4", demo_root / "val/stripes_90/stripes_90_0001.mp4"]
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    listed = tmp_path / "mixed.txt"
    listed.write_text(f"{good[0]} 0\n{corrupt} 1\n{tmp_path / 'gone.mp4'} 2\n{good[1]} 3\n")
    with pytest.raises(SystemExit, match="2 unreadable videos") as exit_:
        prepare_main([str(listed), "--out", str(tmp_path / "out"), "--fps", "4", "--workers", "1", "--no-progress"])
    assert exit_.value.code != 0
    printed = capsys.readouterr().out
    assert f"unreadable: {corrupt}: VideoDecodeError" in printed
    assert f"unreadable: {tmp_path / 'gone.mp4'}: FileNotFoundError" in printed
    # each line names its video once: the reason does not repeat the path
    assert [line.count(str(tmp_path)) for line in printed.splitlines() if "unreadable:" in line] == [1, 1]
    assert (tmp_path / "out" / "mixed_rawframes.txt").read_text() == "stripes_0_0000 7 0\nstripes_90_0001 7 3\n"
    failed = (tmp_path / "out" / "mixed_rawframes.failed.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in failed] == [str(corrupt), str(tmp_path / "gone.mp4")]


@pytest.mark.parametrize("layout", ["frames", "video"])
def test_the_written_list_loads_in_the_datamodule_with_the_clips_of_the_original_videos(
    demo_root: Path, tmp_path: Path, layout: str
) -> None:
    settings = PrepareSettings(layout, "jpg")  # every frame, the original size
    report = prepare_videos(demo_root / "val.txt", tmp_path / "out", settings, workers=2)
    common = dict(short_side=64, crop_size=64, num_segments=4, batch_size=2, num_workers=0)
    list_format = "rawframes" if layout == "frames" else "videos"
    prepared = VideoDataModule(val_list=str(report.list_file), list_format=list_format,
                               filename_tmpl=settings.filename_tmpl, **common)  # fmt: skip
    original = VideoDataModule(val_list=str(demo_root / "val.txt"), **common)
    for datamodule in (prepared, original):
        datamodule.setup("validate")
    assert len(prepared.datasets["val"]) == len(original.datasets["val"]) == 8
    for i in range(8):  # validation clips: the segments' centre frames, the centre crop
        a, b = prepared.datasets["val"][i], original.datasets["val"][i]
        assert a["label"] == b["label"] and a["video"].shape == b["video"].shape == (3, 4, 64, 64)
        assert (a["video"].float() - b["video"].float()).abs().mean() < 4  # JPEG (or MJPEG) of fine gratings


def test_the_cli_preset_anet_writes_png_at_4_fps_and_short_side_360_and_merges_its_shard(
    demo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    listed = one_video_list(tmp_path, demo_root / "val" / "stripes_135" / "stripes_135_0000.mp4", 3)
    out = tmp_path / "out"
    prepare_main([str(listed), "--out", str(out), "--preset", "anet", "--shard", "0/1", "--no-progress", "--workers=1"])
    assert f"reskd prepare --merge {out}" in capsys.readouterr().out
    files = sorted((out / "stripes_135_0000").glob("img_*.png"))
    assert len(files) == 7 and Image.open(files[0]).size == (360, 360)
    prepare_main(["--merge", str(out)])
    assert (out / "one_rawframes.txt").read_text() == "stripes_135_0000 7 3\n"
