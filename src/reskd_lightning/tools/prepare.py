"""``reskd prepare LIST_OR_FOLDER --out DIR [--preset anet]``: videos into frame folders or MJPEG files, resumably.

A thin command line over :func:`reskd_lightning.data.prepare.prepare_videos` (the settings are
:class:`~reskd_lightning.data.prepare_settings.PrepareSettings`) and :func:`~reskd_lightning.data.prepare.merge_shards`
(``--merge``). It prints what it did, the unreadable videos with their reasons, and the data section that reads
the result; the exit status is 1 when a video could not be read (the others are done). The parser needs only
the settings (no torch); the library is imported once the arguments are parsed, so ``--help`` starts at once.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Sequence

from ..data.prepare_settings import IMAGE_FORMATS, LAYOUTS, PREPARE_PRESETS, PrepareSettings

if TYPE_CHECKING:
    from ..data.prepare import PrepareReport


def _shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)``, ``0 <= i < n``."""
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes i/n (e.g. 0/4), got {text!r}") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--shard i/n needs 0 <= i < n, got {text!r}")
    return i, n


def _cores() -> int:
    """The cores this process may use (a SLURM job's share, not the whole node's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reskd prepare", description=main.__doc__)
    parser.add_argument("input", nargs="?", help="a video list (path label [label ...]) or a class-per-folder tree")
    parser.add_argument("--out", help="the output folder (its list is written there, paths relative to it)")
    parser.add_argument("--merge", metavar="DIR", help="merge the shard lists in DIR into whole lists, and stop")
    parser.add_argument("--preset", choices=sorted(PREPARE_PRESETS), help="named settings; options override them")
    parser.add_argument("--layout", choices=LAYOUTS, help="frames: folders of images; video: one MJPEG .avi each")
    parser.add_argument("--format", dest="image_format", choices=IMAGE_FORMATS, help="frame images (default jpg)")
    parser.add_argument("--fps", type=float, help="frames kept per second (0: every frame, the default)")
    parser.add_argument("--short-side", type=int, help="short side of the written frames (default: as decoded)")
    parser.add_argument("--jpeg-quality", type=int, help="Pillow JPEG quality, 1-95 (default 95)")
    parser.add_argument("--png-compression", type=int, help="PNG zlib level, 0-9 (default 1)")
    parser.add_argument("--video-quality", type=int, help="MJPEG quantiser of --layout video, 1-31 (default 2)")
    parser.add_argument("--no-antialias", action="store_true", help="shrink as mmcv (OpenCV bilinear, no antialias)")
    parser.add_argument("--data-prefix", default="", help="folder the list's paths are relative to (default: its own)")
    parser.add_argument("--list-name", help="name of the list written in --out (default: from the input's name)")
    parser.add_argument("--workers", type=int, default=_cores(), help="processes (default: the usable cores)")
    parser.add_argument("--shard", type=_shard, help="i/n: prepare the i-th of n blocks of the list (0-based)")
    parser.add_argument("--overwrite", action="store_true", help="redo videos prepared with other settings")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _settings(args: argparse.Namespace) -> PrepareSettings:
    base = PREPARE_PRESETS[args.preset] if args.preset else PrepareSettings()
    changes = {k: getattr(args, k) for k in ("layout", "image_format", "fps", "short_side", "jpeg_quality",
                                             "png_compression", "video_quality")}  # fmt: skip
    if args.no_antialias:
        changes["antialias"] = False
    return base.with_changes(**changes)


def _summary(report: PrepareReport, args: argparse.Namespace) -> str:
    settings = report.settings
    lines = [
        f"prepared {report.prepared}, already done {report.skipped}, unreadable {len(report.failed)}; "
        f"wrote {report.list_file}",
        *(f"  unreadable: {path}: {reason}" for path, reason in report.failed),
    ]
    if report.failed:
        lines.append(f"  (listed in {report.failed_file})")
    if args.shard is not None:
        i, n = args.shard
        lines.append(f"shard {i}/{n} done; once every shard is: reskd prepare --merge {args.out}")
        return "\n".join(lines)
    data = ["data:", f"  list_format: {'rawframes' if settings.layout == 'frames' else 'videos'}",
            f"  train_list: {report.list_file}   # or val_list / test_list", "  data_prefix: ''   # the list's folder"]
    if settings.layout == "frames":
        data.append(f"  filename_tmpl: {settings.filename_tmpl}")
    return "\n".join(lines + ["read it with:", *data])


def main(argv: Sequence[str]) -> None:
    """``reskd prepare LIST_OR_FOLDER --out DIR``: prepare videos for fast loading (``--merge DIR`` after shards).

    Frame folders (``--layout frames``, the default: ``<out>/<name>/img_00001.jpg`` ..., a rawframe list) or one
    MJPEG file per video (``--layout video``, a video list), at ``--fps`` and ``--short-side``; ``--preset anet``
    is the official ActivityNet frames (PNG, 4 fps, short side 360). Reruns skip finished videos; ``--shard i/n``
    splits the work across machines, ``reskd prepare --merge DIR`` joins the shards' lists.
    """
    parser = _parser()
    args = parser.parse_args(list(argv))
    from ..data.prepare import merge_shards, prepare_videos  # torch: after the arguments, so --help is instant

    if args.merge:
        try:
            merged = merge_shards(args.merge)
        except ValueError as e:
            raise SystemExit(f"reskd prepare --merge: {e}") from None
        print("merged " + ", ".join(str(p) for p in merged))
        return
    if not args.input or not args.out:
        parser.error("give the input list or folder and --out DIR (or --merge DIR)")
    try:
        report = prepare_videos(
            args.input, args.out, _settings(args), data_prefix=args.data_prefix, workers=args.workers,
            shard=args.shard, list_name=args.list_name, overwrite=args.overwrite, progress=not args.no_progress,
        )  # fmt: skip
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"reskd prepare: {e}") from None
    print(_summary(report, args))
    if report.failed:
        raise SystemExit(f"{len(report.failed)} unreadable videos (the others are done); see {report.failed_file}")
