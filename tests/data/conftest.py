"""Fixtures of the data tests (the tiny demo dataset, ``demo_root``, is in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture()
def corrupt_video(tmp_path: Path) -> Path:
    """Random bytes named ``.mp4``."""
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def _frames_of(video: Path) -> list:
    import av

    with av.open(str(video)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.fixture(scope="session")
def rawframe_root(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo videos as mmaction2 frame folders (``img_00001.jpg`` ...) with rawframe lists.

    ``train.txt`` / ``val.txt``: ``frame_dir total_frames label``; ``train_multi.txt`` / ``val_multi.txt``:
    the same videos with a second label ``(label + 1) % 4`` on every other line (ActivityNet-style lists).
    """
    root = tmp_path_factory.mktemp("rawframes")
    for split in ("train", "val"):
        single, multi = [], []
        for k, line in enumerate((demo_root / f"{split}.txt").read_text().splitlines()):
            rel, label = line.split()
            frame_dir = root / "frames" / f"{split}_{Path(rel).stem}"  # demo names repeat across splits
            frame_dir.mkdir(parents=True)
            frames = _frames_of(demo_root / rel)
            for i, frame in enumerate(frames, start=1):
                Image.fromarray(frame).save(frame_dir / f"img_{i:05d}.jpg", quality=95)
            entry = f"frames/{frame_dir.name} {len(frames)} {label}"
            single.append(entry + "\n")
            multi.append(entry + (f" {(int(label) + 1) % 4}\n" if k % 2 else "\n"))
        (root / f"{split}.txt").write_text("".join(single))
        (root / f"{split}_multi.txt").write_text("".join(multi))
    return root


@pytest.fixture(scope="session")
def kinetics_root(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo videos as a Kinetics-style dataset: official-format CSVs and mmaction2-named videos.

    ``train.csv`` / ``validate.csv`` (header ``label,youtube_id,time_start,time_end,split,is_cc``, class names
    with spaces), ``videos/<ytid>_<start>_<end>.mp4`` (links to the demo files), and ``train_ytid_list.txt``
    keeping the first two classes' videos (a Mini-Kinetics-style subset).
    """
    root = tmp_path_factory.mktemp("kinetics")
    (root / "videos").mkdir()
    names = {"0": "stripes zero", "1": "stripes, 45", "2": "stripes ninety", "3": "stripes 135"}
    kept = []
    for split, csv_name in (("train", "train.csv"), ("val", "validate.csv")):
        rows = ["label,youtube_id,time_start,time_end,split,is_cc\n"]
        for k, line in enumerate((demo_root / f"{split}.txt").read_text().splitlines()):
            rel, label = line.split()
            ytid = f"{split[0]}{k:03d}_yt-{label}"  # youtube ids contain '-' and '_'
            (root / "videos" / f"{ytid}_{k:06d}_{k + 10:06d}.mp4").symlink_to(demo_root / rel)
            rows.append(f'"{names[label]}",{ytid},{k},{k + 10},{split},0\n')
            if split == "train" and int(label) < 2:
                kept.append(ytid + "\n")
        (root / csv_name).write_text("".join(rows))
    (root / "train_ytid_list.txt").write_text("".join(kept))
    return root


@pytest.fixture(scope="session")
def sthv2_root(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo videos as a Something-Something V2 dataset: ``labels.json``, ``train.json``,
    ``validation.json`` with bracketed templates, and ``videos/<id>.mp4`` links."""
    import json

    root = tmp_path_factory.mktemp("sthv2")
    (root / "videos").mkdir()
    templates = [
        "Pushing something from left to right",
        "Pushing something from right to left",
        "Putting something on a surface",
        "Turning something upside down",
    ]
    (root / "labels.json").write_text(json.dumps({t: str(i) for i, t in enumerate(templates)}))
    vid = 1000
    for split, json_name in (("train", "train.json"), ("val", "validation.json")):
        entries = []
        for line in (demo_root / f"{split}.txt").read_text().splitlines():
            rel, label = line.split()
            vid += 1
            (root / "videos" / f"{vid}.mp4").symlink_to(demo_root / rel)
            template = templates[int(label)].replace("something", "[something]")
            entries.append({"id": str(vid), "label": template.replace("[something]", "a cup"), "template": template})
        (root / json_name).write_text(json.dumps(entries))
    return root
