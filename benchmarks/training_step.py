"""Training-step overhead of ResKD: is a ResKD step the student's step plus the teacher's forward pass?

The issue's target run, on this machine: a TSN ResNet-50 student at 112 px taught by a TSN ResNet-50 teacher at
224 px with the paper's FeatureMapKD, batch 2, synthetic uint8 clips (8 segments by default: 16 take twice as
long). In one process, interleaved repeat by repeat (median of --iters after --warmup), it times one optimiser
step (forward, loss, backward, SGD step) of the student alone, the teacher's forward pass alone (no_grad,
BatchNorm in train mode as the module keeps it), and the full `ResKDModule.training_step` (views made from the
uint8 clip, both networks, the distiller, backward, step); also inference clips/s of each network.
Target: ResKD step <= 1.1 x (student step + teacher forward). The exit status is 1 when it fails.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/training_step.py [--frames 8] [--batch 2] [--iters 5] [--out DIR]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: spinning OpenMP threads distort timings

import argparse  # noqa: E402
from typing import Sequence  # noqa: E402

import torch  # noqa: E402

from reskd_lightning import FeatureMapKD, ResKDModule  # noqa: E402
from reskd_lightning.benchmark import default_device, run_benchmark  # noqa: E402
from reskd_lightning.models import TSN  # noqa: E402
from reskd_lightning.reporting import markdown_table  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8, help="TSN segments per clip (the paper's ActivityNet: 16)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--student", default="resnet50")
    parser.add_argument("--teacher", default="resnet50")
    parser.add_argument("--out", default="runs/benchmark/training_step")
    args = parser.parse_args(argv)
    num_classes = 200  # ActivityNet
    module = ResKDModule(
        student=TSN(num_classes, backbone=args.student),
        teacher=TSN(num_classes, backbone=args.teacher),
        student_resolution=112,
        teacher_resolution=224,
    )
    device = default_device()
    where = f"{torch.get_num_threads()} threads" if device.type == "cpu" else torch.cuda.get_device_name(device)
    print(f"torch {torch.__version__} on {device} ({where}); TSN-{args.student} at 112 px <- TSN-{args.teacher} at "
          f"224 px, FeatureMapKD, batch {args.batch}, {args.frames} segments, {args.warmup} warm-up + {args.iters} "
          "timed repeats (median)", flush=True)  # fmt: skip
    result = run_benchmark(
        module, frames=args.frames, size=224, batch_size=args.batch, distillers=[FeatureMapKD(weight=100)],
        warmup=args.warmup, iters=args.iters, device=device, out_dir=args.out, name="training_step",
        title=f"TSN-{args.student} 112 px <- TSN-{args.teacher} 224 px, batch {args.batch}, {args.frames} segments",
    )  # fmt: skip
    print(markdown_table(result.rows), end="")
    for key, timing in result.steps.items():
        wall, cpu = (" ".join(f"{1e3 * s:.0f}" for s in times) for times in (timing.seconds, timing.cpu_seconds))
        print(f"{key}: wall {wall} ms" + (f"; CPU {cpu} ms" if cpu else ""))
    print(result.summary())
    print("wrote " + ", ".join(str(p) for p in result.files))
    return 0 if result.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
