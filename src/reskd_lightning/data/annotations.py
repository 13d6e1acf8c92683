"""Annotation lists: which videos a dataset holds and their labels.

The sources, in mmaction2's vocabulary:

* a *video list* (``load_video_list``), one video a line: ``path label [label ...]``;
* a *rawframe list* (``load_rawframe_list``), one frame folder a line: ``frame_dir total_frames label
  [label ...]``, or ``frame_dir offset total_frames label [label ...]`` for clips of a long video;
* the official *Kinetics CSVs* (``load_kinetics_csv``), classes by name, optionally kept to a youtube-id list
  (Mini-Kinetics-200);
* *Something-Something V2* ``train.json`` / ``validation.json`` with ``labels.json`` (``load_sthv2``);
* a *class-per-folder* tree (``scan_class_folders``): ``root/<class>/**/<video>``, classes sorted by name.

Several labels on a list line make a multi-label record (ActivityNet, FCVID: evaluated with mAP on the
``to_multi_hot`` targets).
"""

from __future__ import annotations

import csv
import difflib
import json
import math
import numbers
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from pytorch_lightning.utilities import rank_zero_warn

#: File suffixes taken as videos when scanning a class-per-folder tree.
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".webm", ".mov")

#: File name of a Kinetics clip as mmaction2's downloader writes it (inside a class folder).
KINETICS_FILENAME_TMPL = "{youtube_id}_{time_start:06d}_{time_end:06d}.mp4"

#: Columns a Kinetics CSV must have (any order; ``split`` and ``is_cc`` are not needed).
KINETICS_COLUMNS: tuple[str, ...] = ("label", "youtube_id", "time_start", "time_end")

_LIST_FORMAT = "expected 'path label [label ...]'"
_RAWFRAME_FORMAT = "expected 'frame_dir total_frames label [label ...]'"
_RAWFRAME_OFFSET_FORMAT = "expected 'frame_dir offset total_frames label [label ...]' (with_offset=True)"
_INTEGER = re.compile(r"[+-]?[0-9]+")


@dataclass
class VideoRecord:
    """One video of a dataset: its file (or frame folder), its label (or labels) and, when known, its number
    of frames and the folder's frame it starts at (``offset``, rawframe lists with offsets; 0 otherwise)."""

    path: str
    label: int | list[int]
    num_frames: int | None = None
    offset: int = 0

    @property
    def labels(self) -> list[int]:
        """The record's labels as a list (one element for a single-label record)."""
        return list(self.label) if isinstance(self.label, (list, tuple)) else [self.label]


# -- shared helpers --------------------------------------------------------------------------------------


def _existing_file(path: str | os.PathLike, what: str) -> Path:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{what} {str(file)!r} does not exist or is not a file")
    return file


def _prefix(data_prefix: str | os.PathLike, annotation_file: Path) -> Path:
    # An empty prefix means: paths are relative to the annotation file's folder.
    return Path(data_prefix) if str(data_prefix) else annotation_file.parent


def _close(name: str, known: Iterable[str]) -> str:
    match = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {match[0]!r}?" if match else ""


class _Line:
    """One line of a list file, for parsing with errors that name ``file:lineno``, the line and the format."""

    def __init__(self, where: str, line: str, fmt: str) -> None:
        self.where, self.line, self.fmt = where, line, fmt
        self.tokens = line.split()

    def error(self, message: str) -> ValueError:
        return ValueError(f"{self.where}: {message}: {self.fmt}, got {self.line!r}")

    def integer(self, index: int, what: str, minimum: int = 0) -> int:
        token = self.tokens[index]
        if not _INTEGER.fullmatch(token):
            raise self.error(f"{what} {token!r} is not an integer")
        value = int(token)
        if value < minimum:
            raise self.error(f"{what} {value} is negative" if minimum == 0 else f"{what} {value} is below {minimum}")
        return value

    def labels(self, start: int) -> int | list[int]:
        """The labels from token ``start`` on: an int, or a list when there are several (duplicates dropped)."""
        if len(self.tokens) <= start:
            raise self.error("line has no label")
        # Duplicates are dropped so a random training label is uniform over the video's classes (mmaction2).
        labels = list(dict.fromkeys(self.integer(i, "label") for i in range(start, len(self.tokens))))
        return labels[0] if len(labels) == 1 else labels


def _read_list(
    list_file: str | os.PathLike,
    data_prefix: str | os.PathLike,
    kind: str,
    fmt: str,
    parse: Callable[[_Line, Path], VideoRecord],
) -> list[VideoRecord]:
    """Records of a whitespace-separated list file, one ``parse``d record per line.

    Blank lines and ``#`` lines are skipped; an empty list raises.
    """
    list_path = _existing_file(list_file, kind)
    prefix = _prefix(data_prefix, list_path)
    records: list[VideoRecord] = []
    first_line: dict[str, int] = {}
    repeats: list[str] = []
    # utf-8-sig: a byte-order mark (lists written on Windows) is not part of the first path
    with open(list_path, encoding="utf-8-sig") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.strip()
            if line and not line.startswith("#"):
                record = parse(_Line(f"{list_path}:{lineno}", line, fmt), prefix)
                if record.path in first_line:
                    repeats.append(f"{record.path} (lines {first_line[record.path]} and {lineno})")
                first_line.setdefault(record.path, lineno)
                records.append(record)
    if not records:
        raise ValueError(f"{kind} {str(list_path)!r} has no videos: {fmt} on each line")
    if repeats:
        rank_zero_warn(
            f"{kind} {str(list_path)!r} lists {len(repeats)} video(s) more than once, each read as often as it is "
            f"listed: {'; '.join(repeats[:10])}{' ...' if len(repeats) > 10 else ''}"
        )
    return records


def _read_names(file: str | os.PathLike, what: str) -> list[tuple[str, str]]:
    """``(where, name)`` for each non-blank line of a one-name-a-line file."""
    path = _existing_file(file, what)
    with open(path, encoding="utf-8-sig") as f:  # -sig: tolerate a byte-order mark
        return [(f"{path}:{n}", line.strip()) for n, line in enumerate(f, start=1) if line.strip()]


# -- mmaction2 lists -------------------------------------------------------------------------------------


def load_video_list(list_file: str | os.PathLike, data_prefix: str | os.PathLike = "") -> list[VideoRecord]:
    """Read an mmaction2 video list (``path label [label ...]`` a line) into records.

    Paths are joined to ``data_prefix``; when it is empty they are taken relative to the list file's folder.
    Several labels make a multi-label record (a repeated label counts once). Blank lines and lines starting
    with ``#`` are skipped. A malformed line raises ``ValueError`` naming ``list_file:lineno``, the line and
    what was expected.
    """

    def parse(line: _Line, prefix: Path) -> VideoRecord:
        return VideoRecord(path=str(prefix / line.tokens[0]), label=line.labels(1))

    return _read_list(list_file, data_prefix, "video list", _LIST_FORMAT, parse)


def load_rawframe_list(
    list_file: str | os.PathLike, data_prefix: str | os.PathLike = "", with_offset: bool = False
) -> list[VideoRecord]:
    """Read an mmaction2 rawframe list into records of frame folders.

    One folder a line: ``frame_dir total_frames label [label ...]``, or with ``with_offset``
    ``frame_dir offset total_frames label [label ...]`` (a clip of ``total_frames`` frames starting at the
    folder's frame ``offset``, counted from 0). Paths, comments and multi-label lines are as in
    ``load_video_list``. A malformed line (missing field, non-integer, negative value, ``total_frames < 1``)
    raises ``ValueError`` naming ``list_file:lineno``, the offending token and the expected format.
    """
    fmt = _RAWFRAME_OFFSET_FORMAT if with_offset else _RAWFRAME_FORMAT
    frames_at = 2 if with_offset else 1

    def parse(line: _Line, prefix: Path) -> VideoRecord:
        if len(line.tokens) <= frames_at:
            raise line.error(f"line has {len(line.tokens)} field(s), too few")
        offset = line.integer(1, "offset") if with_offset else 0
        try:
            num_frames = line.integer(frames_at, "total_frames", minimum=1)
        except ValueError as e:
            if with_offset or line.tokens[frames_at] != "0":
                raise
            # 'dir 0 N label' is the usual sign of an offset column read without with_offset.
            raise ValueError(f"{e} (a list with an offset column needs with_offset=True)") from None
        return VideoRecord(
            path=str(prefix / line.tokens[0]),
            label=line.labels(frames_at + 1),
            num_frames=num_frames,
            offset=offset,
        )

    return _read_list(list_file, data_prefix, "rawframe list", fmt, parse)


# -- Kinetics --------------------------------------------------------------------------------------------


def load_class_names(file: str | os.PathLike) -> list[str]:
    """Class names, one a line (a label's index is its line's rank); blank lines are ignored.

    A repeated name raises ``ValueError`` naming both lines.
    """
    names: list[str] = []
    seen: dict[str, str] = {}
    for where, name in _read_names(file, "class-name file"):
        if name in seen:
            raise ValueError(f"{where}: class {name!r} is repeated (first at {seen[name]}); names must be unique")
        seen[name] = where
        names.append(name)
    if not names:
        raise ValueError(f"class-name file {str(file)!r} has no names: expected one class name a line")
    return names


def _csv_seconds(value: str, column: str, where: str) -> int:
    # The official CSVs write whole seconds, sometimes as floats ("14.0").
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or not seconds.is_integer() or seconds < 0:
        raise ValueError(f"{where}: {column} {value!r} is not a whole, non-negative number of seconds")
    return int(seconds)


def load_kinetics_csv(
    csv_file: str | os.PathLike,
    data_prefix: str | os.PathLike = "",
    classes: Sequence[str] | None = None,
    filename_tmpl: str = KINETICS_FILENAME_TMPL,
    ytid_list: str | os.PathLike | None = None,
) -> tuple[list[VideoRecord], list[str]]:
    """Records of an official Kinetics CSV (``train.csv``, ``validate.csv``) and the class names.

    Columns are read by name, in any order: ``label``, ``youtube_id``, ``time_start``, ``time_end`` (others,
    such as ``split`` and ``is_cc``, are ignored); labels may be quoted and hold commas. A label's index is
    its rank in ``classes`` (e.g. ``load_class_names("label_map_k400.txt")``); with ``classes=None`` the
    classes are the sorted unique labels of the rows read, so a validation CSV should be given the training
    CSV's classes.

    ``ytid_list`` (one youtube id a line, e.g. Xie et al.'s Mini-Kinetics-200 ``train_ytid_list.txt``)
    keeps only the rows whose ``youtube_id`` it lists; with ``classes=None`` the classes are then those of
    the kept rows (Mini-Kinetics' 200).

    A clip's path is ``data_prefix / filename_tmpl.format(**row)`` (``data_prefix`` empty: the CSV's folder).
    The row's keys are its columns, ``time_start`` / ``time_end`` as ints, and ``label_underscored`` (the
    class name with spaces made ``_``). The default is mmaction2's downloader's file name; other layouts:
    ``"{label}/{youtube_id}_{time_start:06d}_{time_end:06d}.mp4"`` (class folders named as in the CSV) or
    ``"{label_underscored}/..."`` (class folders after mmaction2's ``rename_classnames.sh``).

    Errors name ``csv_file:line`` and the value: missing columns (the header found and those required), a
    label not in ``classes``, a time that is not a whole number of seconds, a template key the rows lack.
    """
    csv_path = _existing_file(csv_file, "Kinetics CSV")
    prefix = _prefix(data_prefix, csv_path)
    keep = None if ytid_list is None else {ytid for _, ytid in _read_names(ytid_list, "youtube-id list")}

    rows = _kinetics_rows(csv_path, keep)
    if not rows:
        if keep is not None:
            raise ValueError(
                f"{csv_path}: none of its rows has a youtube_id listed in {str(ytid_list)!r} ({len(keep)} ids); "
                "is the id list of another split?"
            )
        raise ValueError(f"Kinetics CSV {str(csv_path)!r} has no rows")

    if classes is None:
        classes = sorted({row["label"] for _, row in rows})
    classes = list(classes)
    index = {name: i for i, name in enumerate(classes)}
    if len(index) != len(classes):
        repeated = sorted({name for name in classes if classes.count(name) > 1})
        raise ValueError(f"{csv_path}: the classes given repeat {repeated}; class names must be unique")

    records = [
        VideoRecord(path=str(prefix / _kinetics_name(row, where, filename_tmpl, index)), label=index[row["label"]])
        for where, row in rows
    ]
    return records, classes


def _kinetics_rows(csv_path: Path, keep: set[str] | None) -> list[tuple[str, dict[str, str]]]:
    """``(csv:line, row)`` of each non-empty row of a Kinetics CSV (columns by header name), those whose
    ``youtube_id`` is in ``keep`` when it is given."""
    rows: list[tuple[str, dict[str, str]]] = []
    with open(csv_path, newline="", encoding="utf-8-sig") as f:  # -sig: tolerate a byte-order mark
        reader = csv.reader(f)
        header = [name.strip() for name in next(reader, [])]
        missing = [c for c in KINETICS_COLUMNS if c not in header]
        if missing:
            hint = (
                " (a test CSV has no labels: it cannot be trained or evaluated on)"
                if missing == ["label"]
                else ""
            )
            raise ValueError(
                f"{csv_path}:1: Kinetics CSV lacks column(s) {missing}{hint}; header found {header}, "
                f"columns required {list(KINETICS_COLUMNS)} (any order)"
            )
        for fields in reader:
            where = f"{csv_path}:{reader.line_num}"
            if not any(field.strip() for field in fields):
                continue
            if len(fields) < len(header) or any(field.strip() for field in fields[len(header) :]):
                raise ValueError(
                    f"{where}: row has {len(fields)} fields, the header {header} has {len(header)}; got {fields!r}"
                )
            row = {name: field.strip() for name, field in zip(header, fields)}
            if keep is None or row["youtube_id"] in keep:
                rows.append((where, row))
    return rows


def _kinetics_name(row: dict[str, str], where: str, filename_tmpl: str, index: dict[str, int]) -> str:
    """The file name of a Kinetics CSV row: ``filename_tmpl`` filled with its columns (the label checked against
    the class ``index``)."""
    label = row["label"]
    if label not in index:
        classes = list(index)
        raise ValueError(
            f"{where}: label {label!r} is not one of the {len(classes)} classes given{_close(label, classes)}"
        )
    keys = {
        **row,
        "time_start": _csv_seconds(row["time_start"], "time_start", where),
        "time_end": _csv_seconds(row["time_end"], "time_end", where),
        "label_underscored": label.replace(" ", "_"),
    }
    try:
        return filename_tmpl.format(**keys)
    except (KeyError, IndexError, ValueError) as e:
        raise ValueError(
            f"{where}: filename_tmpl {filename_tmpl!r} cannot be filled ({type(e).__name__}: {e}); its keys "
            f"may be {sorted(keys)}"
        ) from None


# -- Something-Something V2 ------------------------------------------------------------------------------


def _load_json(path: Path) -> object:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg}, column {e.colno})") from None


def _sthv2_classes(labels_path: Path) -> list[str]:
    labels = _load_json(labels_path)
    if not isinstance(labels, dict) or not labels:
        raise ValueError(
            f"{labels_path}: expected Something-Something V2 labels.json, an object "
            f'{{"<class name>": "<id>", ...}}, got {type(labels).__name__}'
        )
    by_id: dict[int, str] = {}
    for name, raw in labels.items():
        try:
            class_id = int(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{labels_path}: class {name!r} has id {raw!r}, expected an integer string") from None
        if class_id in by_id:
            raise ValueError(f"{labels_path}: classes {by_id[class_id]!r} and {name!r} share id {class_id}")
        by_id[class_id] = name
    if sorted(by_id) != list(range(len(by_id))):
        gaps = sorted(set(range(len(by_id))) - set(by_id))
        raise ValueError(f"{labels_path}: class ids must be 0..{len(by_id) - 1}; missing {gaps[:10]}")
    return [by_id[i] for i in range(len(by_id))]


def load_sthv2(
    annotation_json: str | os.PathLike,
    labels_json: str | os.PathLike,
    data_prefix: str | os.PathLike = "",
    suffix: str = ".webm",
) -> tuple[list[VideoRecord], list[str]]:
    """Records of a Something-Something V2 split (``train.json``, ``validation.json``) and the 174 classes.

    ``labels_json`` maps class names to id strings (``{"Approaching something with your camera": "0", ...}``);
    classes are returned in id order. An entry's class is its ``template`` without square brackets
    (``"Holding [something] next to [something]"`` -> ``"Holding something next to something"``), as in
    mmaction2; its video is ``data_prefix / f"{id}{suffix}"`` (``data_prefix`` empty: the json's folder).
    Errors name the json file, the entry's id and the template; ``test.json`` (ids only) raises, having no
    labels.
    """
    labels_path = _existing_file(labels_json, "Something-Something V2 labels.json")
    ann_path = _existing_file(annotation_json, "Something-Something V2 annotation json")
    classes = _sthv2_classes(labels_path)
    index = {name: i for i, name in enumerate(classes)}
    prefix = _prefix(data_prefix, ann_path)
    entries = _load_json(ann_path)
    if not isinstance(entries, list) or not entries:
        raise ValueError(
            f"{ann_path}: expected a non-empty list of entries "
            '[{"id": "78687", "template": "Holding [something] next to [something]", ...}, ...]'
        )
    records: list[VideoRecord] = []
    for k, entry in enumerate(entries):
        if not isinstance(entry, dict) or "id" not in entry:
            raise ValueError(f"{ann_path}: entry {k} is not an object with an 'id': {entry!r}")
        video_id = str(entry["id"])
        template = entry.get("template")
        if template is None:
            if set(entry) == {"id"}:
                raise ValueError(
                    f"{ann_path}: entry id {video_id!r} has only an id: this is Something-Something V2's "
                    "test.json, which has no labels; train on train.json and evaluate on validation.json"
                )
            raise ValueError(f"{ann_path}: entry id {video_id!r} has no 'template' (keys {sorted(entry)})")
        name = str(template).replace("[", "").replace("]", "")
        if name not in index:
            raise ValueError(
                f"{ann_path}: entry id {video_id!r} has template {template!r}, whose class {name!r} is not in "
                f"{labels_path}{_close(name, classes)}"
            )
        records.append(VideoRecord(path=str(prefix / f"{video_id}{suffix}"), label=index[name]))
    return records, classes


# -- class folders ---------------------------------------------------------------------------------------


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


# -- labels ----------------------------------------------------------------------------------------------


def check_labels(records: Iterable[VideoRecord], num_classes: int, source: str = "") -> None:
    """Raise ``ValueError`` naming ``source`` and the video when a record has no label or any of its labels
    (every one, for a multi-label record) is outside ``[0, num_classes)``."""
    for record in records:
        if not record.labels:
            raise ValueError(f"{source or 'dataset'}: video {record.path!r} has no label")
        for label in record.labels:
            if not 0 <= label < num_classes:
                raise ValueError(
                    f"{source or 'dataset'}: video {record.path!r} has label {label}, "
                    f"outside [0, {num_classes}) for num_classes={num_classes}"
                )


def infer_num_classes(records: Iterable[VideoRecord]) -> int:
    """The number of classes implied by the labels: the largest label plus one."""
    return max(max(r.labels) for r in records) + 1


def to_multi_hot(labels: int | Sequence[int], num_classes: int) -> torch.Tensor:
    """A float32 ``[num_classes]`` target with 1 at each of ``labels`` (a record's ``labels``), 0 elsewhere:
    the target of mAP evaluation on multi-label datasets (ActivityNet, FCVID)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"to_multi_hot: num_classes must be a positive integer, got {num_classes!r}")
    labels = [labels] if isinstance(labels, numbers.Integral) else list(labels)
    outside = [label for label in labels if not 0 <= label < num_classes]
    if outside:
        raise ValueError(f"to_multi_hot: labels {outside} are outside [0, {num_classes})")
    target = torch.zeros(num_classes, dtype=torch.float32)
    target[labels] = 1.0
    return target
