"""Inference speed of each registered video network at the teacher's and the student's resolution.

For every model, in one run on this machine: clips/s at 224 px and at 112 px (batch 4, eval, no_grad,
median of timed batches after a warm-up), their ratio, and the ratio of multiply-adds. ResKD's promise is the
112 px column: the FLOPs ratio is about 4x; the measured speed-up must be at least 3x for TSN-R50.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/inference.py [--models tsn_r50 x3d_s ...] [--frames 8]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: spinning OpenMP threads distort timings

import argparse  # noqa: E402
from typing import Sequence  # noqa: E402

import torch  # noqa: E402

from reskd_lightning.efficiency import count_macs, measure_inference, random_clip  # noqa: E402
from reskd_lightning.models import build_model_for_input, list_models  # noqa: E402

#: The default set: one network per family (the deeper ResNets and Swin-B only add minutes).
DEFAULT_MODELS = (
    "tsn_r50", "tsm_r50", "slowonly_r50", "x3d_s", "slowfast_r50", "r2plus1d_r18", "swin3d_t", "mvit_v2_s",
)  # fmt: skip
TARGETS = {"tsn_r50": 3.0}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None, help="registered names; default: one per family")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--resolutions", type=int, nargs=2, default=[224, 112], metavar=("HIGH", "LOW"))
    args = parser.parse_args(argv)
    known = set(list_models())
    names = args.models or [m for m in DEFAULT_MODELS if m in known]
    high, low = args.resolutions
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, {args.frames} frames")
    print(f"{'model':<14} {f'{high}px clips/s':>14} {f'{low}px clips/s':>14} {'speed-up':>9} {'MACs ratio':>11}")
    ok = True
    for name in names:
        rates, macs = [], []
        for resolution in (high, low):
            model = build_model_for_input(name, 400, resolution, args.frames)
            macs.append(count_macs(model, resolution, args.frames))
            clip = random_clip(resolution, args.frames, batch=args.batch)
            rates.append(measure_inference(model, clip, iters=args.iters).clips_per_s)
            del model
        speedup = rates[1] / rates[0]
        line = f"{name:<14} {rates[0]:14.2f} {rates[1]:14.2f} {speedup:8.2f}x {macs[0] / macs[1]:10.2f}x"
        if name in TARGETS:
            passed = speedup >= TARGETS[name]
            ok &= passed
            line += f"   target >= {TARGETS[name]:.0f}x: {'PASS' if passed else 'FAIL'}"
        print(line, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
