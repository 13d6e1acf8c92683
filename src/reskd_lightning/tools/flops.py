"""``reskd flops --model NAME --resolution R [R ...] --frames T``: GMACs per video and parameters.

The work is :func:`reskd_lightning.efficiency.efficiency` (notebooks call it in process).
"""

from __future__ import annotations

import argparse
from typing import Sequence


def main(argv: Sequence[str]) -> None:
    """``reskd flops --model NAME --resolution R [R ...] --frames T``: GMACs per video and parameters."""
    parser = argparse.ArgumentParser(prog="reskd flops", description=main.__doc__)
    parser.add_argument("--model", nargs="+", required=True,
                        help="registered model names, e.g. tsn_r50 (`reskd_lightning.list_models()` lists them)")
    parser.add_argument("--resolution", type=int, nargs="+", default=[224, 112])
    parser.add_argument("--frames", type=int, default=8, help="frames per clip (TSN: segments)")
    parser.add_argument("--num-classes", type=int, default=400)
    args = parser.parse_args(list(argv))
    from ..efficiency import TABLE_HEADER, efficiency  # here: `--help` needs no torch
    from ..models import build_model_for_input

    print(TABLE_HEADER)
    for name in args.model:
        for resolution in args.resolution:
            model = build_model_for_input(name, args.num_classes, resolution, args.frames)
            print(efficiency(model, resolution, args.frames, name=name).row())
    print("GMACs: multiply-adds per video (one clip, one view), the 'FLOPs' of efficient-video tables")
