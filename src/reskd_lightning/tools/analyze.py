"""``reskd analyze``: the paper's key-finding analysis (modes A-E) of a config's data, as a table and two plots.

The work is :func:`reskd_lightning.analysis.analyze` and :func:`~reskd_lightning.analysis.write_analysis`
(notebooks call them in process); this reads the config (:func:`~reskd_lightning.tools.config.load_config`)
and the checkpoints named on the command line, and prints what it wrote.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, Sequence


def checkpoint_arg(text: str) -> tuple[int | None, str]:
    """``R=CKPT`` or ``CKPT`` (the checkpoint knows its resolution) as ``(R or None, CKPT)``."""
    match = re.fullmatch(r"(\d+)=(.+)", text)
    return (int(match.group(1)), match.group(2)) if match else (None, text)


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


def parser() -> argparse.ArgumentParser:
    """The arguments of ``reskd analyze``; the others are config overrides."""
    from ..analysis_modes import ANALYSIS_MODES  # no torch: `reskd analyze --help` starts at once

    p = argparse.ArgumentParser(
        prog="reskd analyze",
        description=main.__doc__,
        epilog="Modes: " + "; ".join(f"({m}) {d}" for m, d in ANALYSIS_MODES.items()) + ". Other arguments "
        "override the config (--data.batch_size 4, --trainer.devices 2, --trainer.logger false). A logger in the "
        "config's trainer section also receives the table and the plots.",
    )
    p.add_argument("--config", required=True, help="a reskd config (its data, trainer, model sections)")
    p.add_argument("--high", "--ckpt_path", dest="high", default=None,
                   help="checkpoint of the high-resolution network (A, B, D); default: the config's "
                   "model.teacher_ckpt")  # fmt: skip
    p.add_argument("--low-res", nargs="+", default=[], metavar="[R=]CKPT",
                   help="networks trained at low resolution (C), e.g. 112=baseline.ckpt")  # fmt: skip
    p.add_argument("--student", nargs="+", default=[], metavar="[R=]CKPT", help="ResKD students (E)")
    p.add_argument("--resolutions", type=int, nargs="+", default=None,
                   help="where B and D are evaluated; default: the high resolution and those of C and E")
    p.add_argument("--high-resolution", type=int, default=None,
                   help="A's input; default: the resolution the high-resolution network trained at")
    p.add_argument("--split", choices=["val", "test"], default="val")
    p.add_argument("--out", default=None, help="output folder; default: runs/analysis/<config stem>")
    p.add_argument("--limit-batches", type=_number, default=None, help="batches (or fraction) per mode")
    return p


def main(argv: Sequence[str]) -> None:
    """``reskd analyze --config X.yaml --high CKPT [--low-res [r=]CKPT ...] [--student [r=]CKPT ...]
    --resolutions R [R ...]``: the key-finding analysis (modes A-E) as a table and two plots."""
    args, overrides = parser().parse_known_args(list(argv))
    from pytorch_lightning.utilities import rank_zero_only

    from ..analysis import analyze, frames_per_clip
    from .config import load_config

    # The model is not built: its networks are only needed to load plain state dicts, and its teacher_ckpt
    # is the default high-resolution checkpoint. Distillers and checkpointing have no part in evaluation.
    loaded = load_config(args.config, overrides, build_model=False, callbacks=False)
    model = loaded.model_args or {}
    datamodule = loaded.datamodule
    rows = analyze(
        datamodule,
        high=args.high or model.get("teacher_ckpt"),
        low_res=[checkpoint_arg(a) for a in args.low_res],
        students=[checkpoint_arg(a) for a in args.student],
        resolutions=args.resolutions,
        high_resolution=args.high_resolution,
        split=args.split,
        limit_batches=args.limit_batches,
        trainer_kwargs=loaded.trainer_kwargs,
        network=model.get("student"),
        high_network=model.get("teacher") or model.get("student"),
    )
    out = Path(args.out) if args.out else Path("runs") / "analysis" / Path(args.config).stem
    rank_zero_only(_report)(rows, out, loaded.loggers, frames_per_clip(datamodule))


def _report(rows: list[dict[str, Any]], out: Path, loggers: Any, frames: int | None) -> None:
    from ..analysis import notes, write_analysis
    from ..reporting import markdown_table

    paths = write_analysis(rows, out, loggers, frames)
    print(markdown_table(rows))
    print(notes(rows, frames))
    print("written: " + ", ".join(str(p) for p in paths.values()))
