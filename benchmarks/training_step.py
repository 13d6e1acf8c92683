"""Training-step overhead of ResKD: is a ResKD step the student's step plus the teacher's forward pass?

The issue's target run, on this machine: a TSN ResNet-50 student at 112 px taught by a TSN ResNet-50 teacher at
224 px with the paper's FeatureMapKD, batch 2, synthetic uint8 clips (8 segments by default: 16 take twice as
long). In one process, interleaved repeat by repeat (median of --iters after --warmup), it times one optimiser
step (forward, loss, backward, SGD step) of the student alone, the teacher's forward pass alone (no_grad,
BatchNorm in train mode as the module keeps it), and the full `ResKDModule.training_step` (views made from the
uint8 clip, both networks, the distiller, backward, step); also inference clips/s of each network.
Target: ResKD step <= 1.1 x (student step + teacher forward). The exit status is 1 when it fails.

Then the speed switches (`ResKDModule(channels_last=..., compile=..., teacher_precision=...)`,
reskd_lightning.speed): the ResKD step of modules built with each switch, and all together, timed interleaved
with the plain one, and the headline ratio ResKD step / student step alone for each. Target: all switches
together cut the ResKD step by >= 1.3x on a CPU and >= 1.5x on a GPU (--switches none skips this part;
--switches all,channels_last times a subset; compiling a ResNet takes minutes on a small CPU).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/training_step.py [--frames 8] [--batch 2] [--iters 5] [--out DIR]
        [--switches none|SWITCH,...]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: spinning OpenMP threads distort timings

import argparse  # noqa: E402
import warnings  # noqa: E402
from typing import Sequence  # noqa: E402

import torch  # noqa: E402

from reskd_lightning import FeatureMapKD, ResKDModule  # noqa: E402
from reskd_lightning.benchmark import (  # noqa: E402
    default_device,
    module_optimizer,
    run_benchmark,
    synthetic_batch,
    training_step_fn,
)
from reskd_lightning.efficiency import time_repeats  # noqa: E402
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
    parser.add_argument("--switches", default=",".join(SWITCHES), help="none, or a comma list of " + ", ".join(SWITCHES))
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
    passed = result.passed
    if args.switches != "none":
        passed = time_switches(args, device, [s for s in args.switches.split(",") if s]) and passed
    return 0 if passed else 1


#: name -> ResKDModule keyword arguments. bf16 on a CPU without bf16 units is slower: the default CPU set skips it.
SWITCHES: dict[str, dict[str, object]] = {
    "channels_last": {"channels_last": True},
    "teacher_bf16": {"teacher_precision": "bf16"},
    "compile_teacher": {"compile": "teacher"},
    "compile_both": {"compile": "both"},
    "all": {"channels_last": True, "compile": "both", "teacher_precision": "bf16"},
}


def _module(args: argparse.Namespace, **switches: object) -> ResKDModule:
    torch.manual_seed(0)
    module = ResKDModule(
        student=TSN(200, backbone=args.student), teacher=TSN(200, backbone=args.teacher), student_resolution=112,
        teacher_resolution=224, teacher_mode="train", **switches,  # type: ignore[arg-type]
    )  # fmt: skip
    module.register_distiller(FeatureMapKD(weight=100))
    return module


def time_switches(args: argparse.Namespace, device: torch.device, names: list[str]) -> bool:
    """The ResKD step with each switch vs without, interleaved; prints a table; True when 'all' meets its target."""
    unknown = sorted(set(names) - set(SWITCHES))
    if unknown:
        raise SystemExit(f"unknown switches {unknown}; choose from {sorted(SWITCHES)}")
    batch = {k: v.to(device) for k, v in synthetic_batch(args.batch, args.frames, 224, 200).items()}
    steps = {}
    for name in ["plain", *names]:
        module = _module(args, **(SWITCHES.get(name, {}))).to(device).train()
        steps[name] = training_step_fn(module, module_optimizer(module), batch, None)
    student = _module(args).student_only().to(device).train()
    steps["student alone"] = training_step_fn(student, module_optimizer(student), batch, None)
    print(f"\nspeed switches: {args.warmup + 1} warm-up (compiles) + {args.iters} timed repeats, interleaved", flush=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*self.log\\(\\)")  # no Trainer: self.log is a no-op
        times = time_repeats(steps, device, args.warmup + 1, args.iters)
    median = {k: sorted(w)[len(w) // 2] for k, (w, _) in times.items()}
    rows = [
        {"ResKD step": k, "ms": f"{1e3 * median[k]:.0f}", "speed-up vs plain": f"{median['plain'] / median[k]:.2f}x",
         "ResKD step / student step": f"{median[k] / median['student alone']:.2f}"}
        for k in ["plain", *names]
    ]  # fmt: skip
    print(markdown_table(rows), end="")
    if "all" not in names:
        return True
    target = 1.3 if device.type == "cpu" else 1.5
    gain = median["plain"] / median["all"]
    print(f"all switches: {gain:.2f}x faster ResKD step (target >= {target}x on {device.type}): "
          f"{'PASS' if gain >= target else 'FAIL'}")  # fmt: skip
    return gain >= target


if __name__ == "__main__":
    raise SystemExit(main())
