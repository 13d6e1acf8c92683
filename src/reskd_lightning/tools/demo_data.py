"""``reskd demo-data DIR``: write the built-in demo dataset (real H.264 videos) into DIR.

The work is :func:`reskd_lightning.data.write_demo_dataset` (notebooks call it in process).
"""

from __future__ import annotations

import argparse
from typing import Sequence


def main(argv: Sequence[str]) -> None:
    """``reskd demo-data DIR``: write the built-in demo dataset (real H.264 videos) into DIR."""
    parser = argparse.ArgumentParser(prog="reskd demo-data", description=main.__doc__)
    parser.add_argument("root", help="folder to write train/, val/, train.txt, val.txt and classes.txt into")
    parser.add_argument("--num-train-per-class", type=int, default=48)
    parser.add_argument("--num-val-per-class", type=int, default=16)
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(list(argv))
    from ..data.demo import write_demo_dataset  # here: `--help` needs no torch

    root = write_demo_dataset(
        args.root,
        num_train_per_class=args.num_train_per_class,
        num_val_per_class=args.num_val_per_class,
        num_frames=args.num_frames,
        size=args.size,
        seed=args.seed,
    )
    print(f"demo dataset in {root}: lists {root / 'train.txt'} and {root / 'val.txt'}")
