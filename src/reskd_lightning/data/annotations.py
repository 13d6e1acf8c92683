"""Annotation lists: which videos a dataset holds and their labels.

Two sources, in mmaction2's vocabulary:

* a *video list* (``load_video_list``), one video a line: ``path label [label ...]``; several labels make a
  multi-label record (mAP datasets);
* a *class-per-folder* tree (``scan_class_folders``): ``root/<class>/**/<video>``, classes sorted by name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

#: File suffixes taken as videos when scanning a class-per-folder tree.
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".webm", ".mov")

_LIST_FORMAT = "expected 'path label [label ...]'"


@dataclass
class VideoRecord:
    """One video of a dataset: its file, its label (or labels) and, when known, its number of frames."""

    path: str
    label: int | list[int]
    num_frames: int | None = None

    @property
    def labels(self) -> list[int]:
        """The record's labels as a list (one element for a single-label record)."""
        return list(self.label) if isinstance(self.label, (list, tuple)) else [self.label]


def load_video_list(list_file: str | os.PathLike, data_prefix: str | os.PathLike = "") -> list[VideoRecord]:
    """Read an mmaction2 video list (``path label [label ...]`` a line) into records.

    Paths are joined to ``data_prefix``; when it is empty they are taken relative to the list file's folder.
    Blank lines and lines starting with ``#`` are skipped. A malformed line raises ``ValueError`` naming
    ``list_file:lineno``, the line and what was expected.
    """
    list_path = Path(list_file)
    if not list_path.is_file():
        raise FileNotFoundError(f"video list {str(list_path)!r} does not exist or is not a file")
    prefix = Path(data_prefix) if str(data_prefix) else list_path.parent
    records: list[VideoRecord] = []
    with open(list_path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            where = f"{list_path}:{lineno}"
            tokens = line.split()
            if len(tokens) < 2:
                raise ValueError(f"{where}: line has no label: {_LIST_FORMAT}, got {line!r}")
            labels: list[int] = []
            for token in tokens[1:]:
                try:
                    label = int(token)
                except ValueError:
                    raise ValueError(
                        f"{where}: label {token!r} is not an integer: {_LIST_FORMAT}, got {line!r}"
                    ) from None
                if label < 0:
                    raise ValueError(f"{where}: label {label} is negative: {_LIST_FORMAT}, got {line!r}")
                labels.append(label)
            records.append(
                VideoRecord(path=str(prefix / tokens[0]), label=labels[0] if len(labels) == 1 else labels)
            )
    if not records:
        raise ValueError(f"video list {str(list_path)!r} has no videos: {_LIST_FORMAT} on each line")
    return records


def scan_class_folders(
    root: str | os.PathLike, extensions: Sequence[str] = VIDEO_EXTENSIONS
) -> tuple[list[VideoRecord], list[str]]:
    """Records of a class-per-folder tree ``root/<class>/**/<video>`` and the class names.

    Classes are the sub-folders of ``root`` sorted by name; a video's label is its class's index. Videos are
    found at any depth below their class folder, by suffix (case-insensitive).
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise FileNotFoundError(f"class-per-folder root {str(root_path)!r} does not exist or is not a folder")
    classes = sorted(p.name for p in root_path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"class-per-folder root {str(root_path)!r} has no class folders")
    suffixes = tuple(e.lower() for e in extensions)
    records: list[VideoRecord] = []
    for label, name in enumerate(classes):
        videos = sorted(
            p for p in (root_path / name).rglob("*") if p.is_file() and p.suffix.lower() in suffixes
        )
        records.extend(VideoRecord(path=str(p), label=label) for p in videos)
    if not records:
        raise ValueError(
            f"class-per-folder root {str(root_path)!r} has {len(classes)} class folders but no videos "
            f"with suffixes {list(suffixes)}"
        )
    return records, classes


def check_labels(records: Iterable[VideoRecord], num_classes: int, source: str = "") -> None:
    """Raise ``ValueError`` naming ``source`` and the video when any label is outside ``[0, num_classes)``."""
    for record in records:
        for label in record.labels:
            if not 0 <= label < num_classes:
                raise ValueError(
                    f"{source or 'dataset'}: video {record.path!r} has label {label}, "
                    f"outside [0, {num_classes}) for num_classes={num_classes}"
                )


def infer_num_classes(records: Iterable[VideoRecord]) -> int:
    """The number of classes implied by the labels: the largest label plus one."""
    return max(max(r.labels) for r in records) + 1
