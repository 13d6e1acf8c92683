"""``reskd check-data --config X.yaml [--deep]``: read every video of a config's lists, report the bad ones.

The work is :func:`check_splits` over :func:`reskd_lightning.data.check.check_dataset` (notebooks call either
in process); only the config's data section is read (:func:`~reskd_lightning.tools.config.load_config` without
model, callbacks or loggers), so a config of the data alone will do. ``--deep`` also compares, per video,
frames read by seeking (as training reads them) with a sequential decode, and reports the videos where they
differ or that decoded right only after decode errors.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:  # the heavy imports are in the functions: `reskd check-data --help` needs no torch
    from ..data import VideoDataModule
    from ..data.check import UnreadableVideo

SPLITS = ("train", "val", "test")
PROGRESS_EVERY_S = 10.0  # seconds between progress lines on stderr


def _progress(split: str) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` printing ``split: done/total videos checked`` to stderr now and then."""
    last = time.monotonic()

    def show(done: int, total: int) -> None:
        nonlocal last
        if time.monotonic() - last >= PROGRESS_EVERY_S or (done == total and total >= 100):
            last = time.monotonic()
            print(f"{split}: {done}/{total} videos checked", file=sys.stderr, flush=True)

    return show


def check_splits(
    datamodule: VideoDataModule,
    splits: Sequence[str] = SPLITS,
    num_workers: int | None = None,
    deep: bool = False,
    progress: bool = False,
) -> dict[str, list[UnreadableVideo]]:
    """Load every record of each of ``splits`` the DataModule has (set up here) and list those that fail:
    ``{split: [UnreadableVideo, ...]}``. ``num_workers`` defaults to the DataModule's ``num_workers``;
    ``deep`` compares frames read by seeking with a sequential decode; ``progress`` prints progress to
    stderr."""
    from ..data.check import check_dataset

    datamodule.prepare_data()
    datamodule.setup(None)
    workers = datamodule.hparams.num_workers if num_workers is None else num_workers
    return {
        split: check_dataset(
            datamodule.datasets[split], workers, deep=deep, progress=_progress(split) if progress else None
        )
        for split in splits
        if split in datamodule.datasets
    }


def main(argv: Sequence[str]) -> None:
    """``reskd check-data --config X.yaml``: read every video of the config's lists, report the unreadable."""
    parser = argparse.ArgumentParser(prog="reskd check-data", description=main.__doc__)
    parser.add_argument("--config", required=True, help="a reskd config; only its data section is used")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=list(SPLITS))
    parser.add_argument("--num-workers", type=int, default=None, help="default: the config's data.num_workers")
    parser.add_argument(
        "--deep",
        action="store_true",
        help="also compare frames read by seeking (as training reads them) with a sequential decode of each "
        "video (a full decode per video: run it once per dataset)",
    )
    args, overrides = parser.parse_known_args(list(argv))
    from ..data.check import reference_decoder
    from .config import load_config

    datamodule = load_config(args.config, overrides, build_model=False, callbacks=False, loggers=False).datamodule
    unreadable = wrong = 0
    results = check_splits(datamodule, args.splits, args.num_workers, deep=args.deep, progress=True)
    for split, failures in results.items():
        dataset = datamodule.datasets[split]
        bad = sum(not f.wrong_frames for f in failures)
        line = f"{split}: {len(dataset)} videos from {dataset.source}, {bad} unreadable"
        if args.deep and reference_decoder(dataset.decoder) is None:
            line += f" (no deep check: decoder {dataset.decoder!r} has no sequential reference)"
        elif args.deep:
            line += f", {len(failures) - bad} with wrong frames when read by seeking"
        print(line)
        for f in failures:
            print(f"  record {f.index}: {f.path}: {f.reason}")
        unreadable, wrong = unreadable + bad, wrong + len(failures) - bad
    if wrong:
        raise SystemExit(f"{unreadable} unreadable videos, {wrong} with wrong frames when read by seeking")
    if unreadable:
        raise SystemExit(f"{unreadable} unreadable videos")
