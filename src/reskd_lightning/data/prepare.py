"""``reskd prepare``'s library: turn a video list or a class-folder tree into what the loader reads fastest.

``prepare_videos(input, out, settings)`` writes each video in the layout of ``settings`` (``prepare_settings``;
``prepare_layouts``: frame folders ``<out>/<name>/img_00001.jpg`` ..., or one MJPEG ``<out>/<name>.avi``) and
the matching annotation list in ``out`` (a rawframe list ``<name> <num_frames> <labels>``, or a video list), with
paths relative to ``out``, so ``data_prefix`` may stay empty. ``<name>`` is the video's path relative to the
list's ``data_prefix`` (or the tree's root) without its suffix: a flat list gives ``<out>/<video stem>``.

* **Resumable.** Each video is written under a temporary name (``.<name>.tmp-<host>-<pid>``) and renamed into
  place with a marker (``.done`` in the folder, or ``.<name>.avi.done`` beside the file) holding its frame count,
  the settings and the source's name and size, written last: a rerun skips videos whose marker matches and redoes
  the rest (a folder without a marker, a temporary folder left by a killed run). The settings are also kept in
  ``<out>/.prepare.json``; a run with other settings is refused unless ``overwrite``.
* **Unreadable inputs** (missing, corrupt, no frames) are reported, with the reason, without stopping the
  others: in the returned report and in ``<list>.failed.txt`` (``path<TAB>reason`` a line).
* **Shards.** ``shard=(i, n)`` prepares the ``i``-th of ``n`` contiguous blocks of the list and writes
  ``<list>.shard-i-of-n.txt`` (and its ``.failed``); ``merge_shards(out)`` concatenates the shards of every list,
  in order, once all ``n`` are there.
"""

from __future__ import annotations

import glob
import json
import multiprocessing
import os
import re
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from reskd_lightning.data.annotations import VideoRecord, load_video_list, scan_class_folders
from reskd_lightning.data.decoders import VideoDecodeError
from reskd_lightning.data.decoders.base import failure_reason
from reskd_lightning.data.prepare_layouts import VIDEO_SUFFIX, write_frames
from reskd_lightning.data.prepare_settings import PrepareSettings
from reskd_lightning.files import write_text_atomic

#: Bumped when the same settings would write different files: markers of another version are redone.
MARKER_VERSION = 1
SETTINGS_FILE = ".prepare.json"
_SHARD_FILE = re.compile(r"^(?P<stem>.+)\.shard-(?P<i>\d+)-of-(?P<n>\d+)(?P<suffix>\.[^.]+)$")


@dataclass(frozen=True)
class PrepareJob:
    """One video to prepare: its source file, where it goes (``target`` relative to ``out``) and its labels."""

    source: str
    target: str
    labels: tuple[int, ...]


@dataclass
class PrepareReport:
    """What a ``prepare_videos`` run did: the list it wrote, and how many videos it prepared, found already
    prepared (``skipped``) and could not read (``failed``: ``(source, reason)``, also in ``failed_file``)."""

    list_file: Path
    failed_file: Path
    settings: PrepareSettings
    prepared: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


# -- the input -----------------------------------------------------------------------------------------------


def _target_name(path: str, root: Path) -> str:
    """``path`` relative to ``root`` without its suffix (POSIX separators); outside ``root``: the file's stem."""
    relative = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    if relative.startswith(os.pardir) or os.path.isabs(relative):
        relative = Path(path).name
    # list lines are whitespace-separated: a class folder "playing guitar" becomes "playing_guitar"
    return re.sub(r"\s", "_", Path(relative).with_suffix("").as_posix())


def read_input(
    source: str | os.PathLike, data_prefix: str | os.PathLike = "", layout: str = "frames"
) -> tuple[list[PrepareJob], str]:
    """The jobs of a video list (``path label [label ...]``, paths under ``data_prefix``, empty: the list's
    folder) or a class-per-folder tree, and the default name of the list to write: the input's name without
    ``_videos``, plus ``_rawframes.txt`` (``frames``) or ``_videos.txt`` (``video``). A video listed twice is
    prepared and listed once; two videos that would be written to one name are an error naming both."""
    source = Path(source)
    if source.is_dir():
        records: list[VideoRecord] = scan_class_folders(source)[0]
        root, stem = source, source.name
    else:
        records = load_video_list(source, data_prefix)
        root, stem = (Path(data_prefix) if str(data_prefix) else source.parent), source.stem
    jobs: dict[str, PrepareJob] = {}
    for record in records:
        job = PrepareJob(record.path, _target_name(record.path, root), tuple(record.labels))
        first = jobs.setdefault(job.target, job)
        if first.source != job.source:
            raise ValueError(
                f"{source}: {first.source!r} and {job.source!r} would both be prepared as {job.target!r}; "
                "give videos distinct names (or prepare them into different --out folders)"
            )
    stem = re.sub(r"_(videos|rawframes)$", "", stem)
    return list(jobs.values()), f"{stem}_{'rawframes' if layout == 'frames' else 'videos'}.txt"


def shard_of(jobs: Sequence[PrepareJob], shard: tuple[int, int]) -> list[PrepareJob]:
    """Block ``i`` of ``n`` contiguous blocks of ``jobs`` (sizes differ by at most one), so the shards'
    lists concatenated in order are the whole list in its order."""
    i, n = shard
    if not (isinstance(i, int) and isinstance(n, int) and 0 <= i < n):
        raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {shard!r}")
    return list(jobs[i * len(jobs) // n : (i + 1) * len(jobs) // n])


# -- one video -----------------------------------------------------------------------------------------------


def _paths(out: Path, job: PrepareJob, settings: PrepareSettings) -> tuple[Path, Path]:
    """The video's output (folder or file) and its marker."""
    if settings.layout == "video":
        target = out / (job.target + VIDEO_SUFFIX)
        return target, target.with_name(f".{target.name}.done")
    target = out / job.target
    return target, target / ".done"


def _marker(job: PrepareJob, settings: PrepareSettings) -> dict[str, Any]:
    """What a finished output's marker holds, but its frame count."""
    source = Path(job.source)
    return {"version": MARKER_VERSION, "settings": settings.as_dict(), "source_name": source.name,
            "source_size": source.stat().st_size if source.is_file() else None}  # fmt: skip


class PrepareConflict(Exception):
    """The output of a video already holds another source's frames (or those of an older version of it)."""


def _finished(target: Path, marker: Path, expected: dict[str, Any]) -> int | None:
    """The frame count of a finished output whose marker matches ``expected``; None: (re)do it. A marker of
    the same settings but another source raises ``PrepareConflict``."""
    try:
        found = json.loads(marker.read_text())
        frames = int(found.pop("frames"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not target.exists():
        return None
    if expected["source_size"] is None:  # the source is gone (deleted once prepared?): its name must do
        found["source_size"] = None
    same = ("version", "settings")
    if all(found.get(k) == expected[k] for k in same) and found != expected:
        raise PrepareConflict(
            f"{target} already holds the frames of {found.get('source_name')!r} ({found.get('source_size')} "
            f"bytes), not of this {expected['source_name']!r} ({expected['source_size']} bytes): another video "
            "of that name, or the source changed; rerun with overwrite (--overwrite) to replace it"
        )
    return frames if found == expected else None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def prepare_one(
    job: PrepareJob, out: Path, settings: PrepareSettings, threads: int = 1, overwrite: bool = False
) -> tuple[int, bool]:
    """Prepare one video unless a matching marker says it is done: ``(frames, prepared)``.

    Writes to ``.<name>.tmp-<host>-<pid>`` beside the output, then renames (replacing an unfinished output);
    temporary outputs of earlier runs for this video are removed first. Unreadable sources raise
    ``FileNotFoundError`` or ``VideoDecodeError``; an output holding another source's frames raises
    ``PrepareConflict`` unless ``overwrite``.
    """
    target, marker = _paths(out, job, settings)
    expected = _marker(job, settings)
    try:
        frames = _finished(target, marker, expected)
    except PrepareConflict:
        if not overwrite:
            raise
        frames = None
    if frames is not None:
        return frames, False
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{glob.escape(target.name)}.tmp-*"):
        _remove(stale)  # a killed run's: one process prepares a video at a time
    host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())
    tmp = target.with_name(f".{target.name}.tmp-{host}-{os.getpid()}")
    try:
        frames = write_frames(job.source, tmp, settings, threads)
        entry = json.dumps({**expected, "frames": frames}, indent=1) + "\n"
        if settings.layout == "frames":
            (tmp / ".done").write_text(entry)  # last: marks the folder complete
        _remove(marker)
        _remove(target)
        os.replace(tmp, target)
        if settings.layout == "video":
            write_text_atomic(marker, entry)
    finally:
        _remove(tmp)
    return frames, True


def _work(args: tuple[int, PrepareJob, Path, PrepareSettings, int, bool]) -> tuple[int, int | None, bool, str]:
    """A worker's task: ``(position, frames or None, prepared, reason of failure)``."""
    position, job, out, settings, threads, overwrite = args
    try:
        frames, prepared = prepare_one(job, out, settings, threads, overwrite)
    except (FileNotFoundError, VideoDecodeError, PrepareConflict) as e:
        return position, None, False, failure_reason(e, str(job.source))  # the line names the video already
    return position, frames, prepared, ""


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)  # the workers share the cores: one each


# -- a run ---------------------------------------------------------------------------------------------------


def check_settings(out: Path, settings: PrepareSettings, overwrite: bool = False) -> None:
    """Record ``settings`` in ``<out>/.prepare.json``; a folder prepared with other settings is refused
    (``ValueError`` naming the file and the settings that differ) unless ``overwrite``."""
    file = out / SETTINGS_FILE
    wanted = {"version": MARKER_VERSION, "settings": settings.as_dict()}
    try:
        found = json.loads(file.read_text())
    except (OSError, ValueError):
        found = None
    if found == wanted:
        return
    if found is not None and not overwrite:
        old = found.get("settings", {}) if isinstance(found, dict) else {}
        differ = {k: (old.get(k), v) for k, v in wanted["settings"].items() if old.get(k) != v}
        changes = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in differ.items()) or f"version {found!r}"
        raise ValueError(
            f"{file}: {out} was prepared with other settings ({changes}); rerun with the same settings, use "
            "another --out, or overwrite (--overwrite) to redo every video with the new ones"
        )
    write_text_atomic(file, json.dumps(wanted, indent=1) + "\n")


def _results(tasks: list[tuple], workers: int, progress: bool) -> Iterator[tuple[int, int | None, bool, str]]:
    """``_work``'s results, in the order they finish, from ``workers`` processes (<= 1: this one)."""
    from tqdm import tqdm  # installed with Lightning

    failed = 0
    with tqdm(total=len(tasks), unit="video", disable=not progress, desc="prepare", dynamic_ncols=True) as bar:
        if workers <= 1:
            outcomes: Iterator = map(_work, tasks)
            pool = None
        else:
            pool = multiprocessing.get_context().Pool(workers, initializer=_one_thread)
            outcomes = pool.imap_unordered(_work, tasks, chunksize=1)
        try:
            for outcome in outcomes:
                failed += bool(outcome[3])
                bar.set_postfix(failed=failed, refresh=False)
                bar.update()
                yield outcome
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()


def _list_line(job: PrepareJob, frames: int, settings: PrepareSettings) -> str:
    labels = " ".join(str(label) for label in job.labels)
    if settings.layout == "video":
        return f"{job.target}{VIDEO_SUFFIX} {labels}\n"
    return f"{job.target} {frames} {labels}\n"


def prepare_videos(
    source: str | os.PathLike,
    out: str | os.PathLike,
    settings: PrepareSettings = PrepareSettings(),
    *,
    data_prefix: str | os.PathLike = "",
    workers: int = 1,
    shard: tuple[int, int] | None = None,
    list_name: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
    threads: int = 1,
) -> PrepareReport:
    """Prepare every video of ``source`` (a video list or a class-per-folder tree) into ``out``; see the module.

    ``workers`` processes share the videos (one decoding ``threads`` each); ``shard=(i, n)`` takes the ``i``-th
    of ``n`` blocks of the list; ``list_name`` names the list written in ``out`` (default: ``read_input``'s);
    ``overwrite`` redoes videos prepared with other settings or from another source; ``progress`` shows a
    progress bar on stderr. Unreadable videos are left out of the list and reported, never raised.
    """
    out = Path(out)
    jobs, default_name = read_input(source, data_prefix, settings.layout)
    name = Path(list_name or default_name)
    suffix, failed_name = name.suffix or ".txt", f"{name.stem}.failed"
    if shard is not None:
        jobs = shard_of(jobs, shard)
        tail = f".shard-{shard[0]}-of-{shard[1]}{suffix}"
        list_file, failed_file = out / f"{name.stem}{tail}", out / f"{failed_name}{tail}"
    else:
        list_file, failed_file = out / f"{name.stem}{suffix}", out / f"{failed_name}{suffix}"
    out.mkdir(parents=True, exist_ok=True)
    check_settings(out, settings, overwrite)
    report = PrepareReport(list_file, failed_file, settings)
    tasks = [(k, job, out, settings, threads, overwrite) for k, job in enumerate(jobs)]
    done: dict[int, int] = {}
    failed: dict[int, str] = {}
    for position, frames, prepared, reason in _results(tasks, workers, progress):
        if reason:
            failed[position] = " ".join(reason.split())  # one line of failed.txt
            continue
        done[position] = frames  # type: ignore[assignment]
        report.prepared += prepared
        report.skipped += not prepared
    report.failed = [(jobs[k].source, failed[k]) for k in sorted(failed)]
    write_text_atomic(list_file, "".join(_list_line(jobs[k], done[k], settings) for k in sorted(done)))
    write_text_atomic(failed_file, "".join(f"{path}\t{reason}\n" for path, reason in report.failed))
    return report


def merge_shards(out: str | os.PathLike) -> list[Path]:
    """Concatenate, in shard order, each list's ``<name>.shard-i-of-n<suffix>`` files in ``out`` into
    ``<name><suffix>`` (the failed-video lists too) and return the merged files.

    Every shard ``0 .. n-1`` must be there (a shard's list is written when its run ends): otherwise a
    ``ValueError`` names the missing ones.
    """
    out = Path(out)
    groups: dict[tuple[str, str], dict[int, set[int]]] = {}
    files: dict[tuple[str, str, int, int], Path] = {}
    for path in sorted(out.iterdir()) if out.is_dir() else []:
        match = _SHARD_FILE.match(path.name)
        if match and path.is_file():
            key, i, n = (match["stem"], match["suffix"]), int(match["i"]), int(match["n"])
            groups.setdefault(key, {}).setdefault(n, set()).add(i)
            files[(*key, i, n)] = path
    if not groups:
        raise ValueError(f"{out}: no shard lists (<name>.shard-<i>-of-<n>.txt) to merge")
    merged = []
    for (stem, suffix), counts in sorted(groups.items()):
        if len(counts) > 1:
            raise ValueError(f"{out}: {stem}{suffix} has shards of {sorted(counts)} runs; keep the shards of one")
        (n, present), = counts.items()
        missing = sorted(set(range(n)) - present)
        if missing:
            raise ValueError(
                f"{out}: {stem}{suffix} misses shard(s) {missing} of {n} (no {stem}.shard-{missing[0]}-of-{n}"
                f"{suffix}): run `reskd prepare ... --shard {missing[0]}/{n}` for each, then merge again"
            )
        text = "".join(files[(stem, suffix, i, n)].read_text() for i in range(n))
        merged.append(write_text_atomic(out / f"{stem}{suffix}", text))
    return merged
