"""``reskd check-data --config X.yaml``: read every video of a config's lists and report the unreadable ones.

The work is :func:`check_splits` over :func:`reskd_lightning.data.check.check_dataset` (notebooks call either in
process); only the config's data section is read (:func:`~reskd_lightning.tools.config.load_config` without
model, callbacks or loggers), so a config of the data alone will do.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from ..data import VideoDataModule
from ..data.check import UnreadableVideo, check_dataset
from .config import load_config

SPLITS = ("train", "val", "test")


def check_splits(
    datamodule: VideoDataModule, splits: Sequence[str] = SPLITS, num_workers: int | None = None
) -> dict[str, list[UnreadableVideo]]:
    """Load every record of each of ``splits`` the DataModule has (set up here) and list those that fail:
    ``{split: [UnreadableVideo, ...]}``. ``num_workers`` defaults to the DataModule's ``num_workers``."""
    datamodule.prepare_data()
    datamodule.setup(None)
    workers = datamodule.hparams.num_workers if num_workers is None else num_workers
    return {
        split: check_dataset(datamodule.datasets[split], num_workers=workers)
        for split in splits
        if split in datamodule.datasets
    }


def main(argv: Sequence[str]) -> None:
    """``reskd check-data --config X.yaml``: read every video of the config's lists, report the unreadable."""
    parser = argparse.ArgumentParser(prog="reskd check-data", description=main.__doc__)
    parser.add_argument("--config", required=True, help="a reskd config; only its data section is used")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=list(SPLITS))
    parser.add_argument("--num-workers", type=int, default=None, help="default: the config's data.num_workers")
    args, overrides = parser.parse_known_args(list(argv))
    datamodule = load_config(args.config, overrides, build_model=False, callbacks=False, loggers=False).datamodule
    total = 0
    for split, failures in check_splits(datamodule, args.splits, args.num_workers).items():
        dataset = datamodule.datasets[split]
        total += len(failures)
        print(f"{split}: {len(dataset)} videos from {dataset.source}, {len(failures)} unreadable")
        for f in failures:
            print(f"  record {f.index}: {f.path}: {f.reason}")
    if total:
        raise SystemExit(f"{total} unreadable videos")
