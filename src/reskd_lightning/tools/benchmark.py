"""``reskd benchmark --config X.yaml``: inference and training-step times of a config's pair on this device.

The work is :func:`reskd_lightning.benchmark.run_benchmark` (notebooks call it in process); this reads the
config (:func:`~reskd_lightning.tools.config.load_config`, no Trainer: the networks are timed on this device,
whatever the config's accelerator and strategy), picks the clip shape and precision, and prints the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # the heavy imports are in the functions: `reskd benchmark --help` needs no torch
    import torch

    from .config import LoadedConfig

_PRECISIONS = {"16-mixed": "float16", "bf16-mixed": "bfloat16"}  # trainer.precision -> torch dtype's name


def autocast_for(precision: Any, device: torch.device) -> tuple[torch.dtype | None, str]:
    """The autocast dtype the config's ``trainer.precision`` means on ``device``, and how to say it."""
    import torch

    dtype = getattr(torch, _PRECISIONS[str(precision)]) if str(precision) in _PRECISIONS else None
    if dtype is None:
        return None, "fp32"
    if dtype == torch.float16 and device.type != "cuda":
        return None, f"fp32 (the config's precision {precision} needs a GPU)"
    return dtype, f"autocast {str(dtype).removeprefix('torch.')} (precision {precision})"


def parser() -> argparse.ArgumentParser:
    """The arguments of ``reskd benchmark``; the others are config overrides."""
    p = argparse.ArgumentParser(
        prog="reskd benchmark", description=main.__doc__, allow_abbrev=False,
        epilog="Other arguments are config overrides, as for `reskd fit` (e.g. --model.student_resolution 112).",
    )  # fmt: skip
    p.add_argument("--config", required=True, help="a reskd config (LightningCLI YAML)")
    p.add_argument("--batch", type=int, default=None, help="clips per batch; default: data.batch_size")
    p.add_argument("--frames", type=int, default=None, help="frames per clip; default: num_segments x clip_len")
    p.add_argument("--iters", type=int, default=5, help="timed repeats (the median is reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed repeats first")
    p.add_argument("--out", default=None, help="folder of table and plot; default: runs/benchmark/<config stem>")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument(
        "--random-teacher", action="store_true", help="do not load teacher_ckpt (timings do not depend on weights)"
    )
    p.add_argument("--logger", action="store_true", help="also log table and plot to the config's trainer.logger")
    return p


def _describe_run(loaded: LoadedConfig, args: argparse.Namespace, device: torch.device, precision: str) -> str:
    """The lines printed before the measurements: device, networks, clips, distillers and repeats."""
    import torch

    from ..distill.base import DistillationLoss
    from ..efficiency import describe

    module = loaded.model
    assert module is not None  # load_config builds it by default
    where = f"{torch.get_num_threads()} threads" if device.type == "cpu" else torch.cuda.get_device_name(device)
    teacher = "no teacher"
    if module.teacher is not None:
        teacher = f"teacher {describe(module.teacher)} at {module.teacher_resolution} px"
        if loaded.skipped_teacher_ckpt:
            why = "--random-teacher" if args.random_teacher else "file not found"
            teacher += f" with random weights (teacher_ckpt {loaded.skipped_teacher_ckpt} not loaded: {why})"
    distillers = [d.name for d in loaded.callbacks if isinstance(d, DistillationLoss)]
    return (
        f"reskd benchmark: {args.config} on {device} ({where}), torch {torch.__version__}, {precision}\n"
        f"student {describe(module.student)} at {module.student_resolution} px, {teacher}\n"
        f"clips {args.batch} x 3 x {args.frames} x {args.size} x {args.size} (uint8), distillers "
        f"{distillers + [d.name for d in module.distillers]}, "
        f"{args.warmup} warm-up + {args.iters} timed repeats, median"
    )


def main(argv: Sequence[str]) -> None:
    """``reskd benchmark --config X.yaml``: inference and training-step times of a config on this device."""
    p = parser()
    args, overrides = p.parse_known_args(list(argv))
    unknown = [a for a in overrides if a.startswith("-") and not a.startswith("--")]
    if unknown:
        p.error(f"unrecognised arguments: {unknown}")
    import torch

    from ..benchmark import default_device, run_benchmark
    from ..distill.base import DistillationLoss
    from ..reporting import log_config, markdown_table
    from .config import load_config

    loaded = load_config(
        args.config, overrides, teacher_ckpt="skip" if args.random_teacher else "if_exists", loggers=args.logger
    )
    module, data = loaded.model, loaded.datamodule
    assert module is not None  # load_config builds it by default
    args.frames = args.frames or data.settings["num_segments"] * data.settings["clip_len"]
    args.batch = args.batch or data.hparams.batch_size
    args.size = data.hparams.crop_size
    distillers = [c for c in loaded.callbacks if isinstance(c, DistillationLoss)]
    device = torch.device(args.device) if args.device else default_device()
    autocast_dtype, precision = autocast_for(loaded.trainer_kwargs.get("precision"), device)
    if loaded.loggers:  # a wandb run of the benchmark keeps the config it measured, as `reskd fit` runs do
        log_config(loaded.loggers, loaded.to_dict())
    out = Path(args.out) if args.out else Path("runs") / "benchmark" / Path(args.config).stem

    print(_describe_run(loaded, args, device, precision), flush=True)
    result = run_benchmark(
        module, frames=args.frames, size=args.size, batch_size=args.batch, distillers=distillers,
        warmup=args.warmup, iters=args.iters, device=device, autocast_dtype=autocast_dtype, out_dir=out,
        loggers=loaded.loggers, title=f"{Path(args.config).name} on {device.type}, batch {args.batch}, "
        f"{args.frames} frames",
    )  # fmt: skip
    print(markdown_table(result.rows), end="")
    print(result.summary())
    print("wrote " + ", ".join(str(p) for p in result.files))
