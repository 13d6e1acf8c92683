"""Every distiller on the built-in demo data: student accuracy with each one vs no distillation, from one run.

The demo's teacher stage (configs/demo_teacher.yaml: TSN-R18 at 112 px) is trained once (or reused from
``runs/demo/teacher/teacher.ckpt``, where the README's demo leaves it); then, from the same seed and the same
data, the demo's student (TSN-R18 at 56 px, configs/demo.yaml) is trained once per row: with no distiller, and with each distiller (and one stack). The
table shows the final validation top-1, the training loss and the distillation term of the first and the last
epoch (each must fall), and the wall time.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/distillers.py [--epochs 12] [--rows none feature_map ...]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: spinning OpenMP threads distort timings

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable, Sequence  # noqa: E402

import pytorch_lightning as pl  # noqa: E402

from reskd_lightning import FeatureMapKD, LogitKD, LogitMapKD  # noqa: E402
from reskd_lightning.lightning_cli import cli_main  # noqa: E402
from reskd_lightning.distill import AttentionTransfer, DecoupledKD, DistillationLoss, LinearWarmup  # noqa: E402
from reskd_lightning.tools.config import load_config  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

#: Row name -> the distillers of that run (a factory, so every run gets fresh objects).
ROWS: dict[str, Callable[[], list[DistillationLoss]]] = {
    "none": lambda: [],
    "feature_map (paper)": lambda: [FeatureMapKD(weight=100)],
    "feature_map + layer3": lambda: [FeatureMapKD(weight=100), FeatureMapKD(weight=100, stage="backbone.layer3")],
    "logit": lambda: [LogitKD(weight=1.0, temperature=4.0)],
    "logit_map": lambda: [LogitMapKD(weight=200, temperature=2.0)],
    "decoupled": lambda: [DecoupledKD(weight_schedule=LinearWarmup(warmup=2))],
    "attention": lambda: [AttentionTransfer(stages=["backbone.layer3", "backbone.layer4"])],
}


class EpochLog(pl.Callback):
    """Epoch means of the training loss and every distillation term, and the last validation top-1."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []
        self.val_acc1 = float("nan")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epochs.append(
            {k[: -len("_epoch")]: float(v) for k, v in trainer.callback_metrics.items() if k.endswith("_epoch")}
        )

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking and "val/acc1" in trainer.callback_metrics:
            self.val_acc1 = float(trainer.callback_metrics["val/acc1"])


def train_teacher(epochs: int | None) -> Path:
    """The demo's teacher stage (configs/demo_teacher.yaml), unless its checkpoint is already there."""
    ckpt = Path("runs/demo/teacher/teacher.ckpt")  # where demo_teacher.yaml writes it
    if ckpt.is_file():
        return ckpt
    args = ["fit", "--config", str(CONFIGS / "demo_teacher.yaml"), "--trainer.logger", "false",
            "--trainer.enable_progress_bar", "false"]  # fmt: skip
    if epochs:
        args += ["--trainer.max_epochs", str(epochs)]
    cli_main(args)
    return ckpt


def run_row(name: str, teacher: Path, root: Path, epochs: int) -> dict[str, Any]:
    distillers = ROWS[name]()
    loaded = load_config(
        CONFIGS / "demo.yaml", ["--model.teacher_ckpt", str(teacher), "--trainer.default_root_dir", str(root / "runs")]
    )
    model, data = loaded.model, loaded.datamodule
    if not distillers:  # the low-resolution baseline: the same student, no teacher
        model.teacher = None
    log = EpochLog()
    trainer = pl.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, gradient_clip_val=20, callbacks=[*distillers, log],
        num_sanity_val_steps=0,
    )  # fmt: skip
    start = time.perf_counter()
    trainer.fit(model, datamodule=data)
    first, last = log.epochs[0], log.epochs[-1]
    terms = [f"train/distill/{d.name}" for d in distillers]
    return {
        "row": name,
        "acc1": log.val_acc1,
        "loss": (first["train/loss"], last["train/loss"]),
        "terms": [(t.rsplit("/", 1)[1], first[t], last[t]) for t in terms],
        "seconds": time.perf_counter() - start,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12, help="student epochs per row (the demo's: 12)")
    parser.add_argument("--teacher-epochs", type=int, default=None, help="default: the demo teacher's 8")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--out", type=Path, default=Path("runs/bench_distillers"))
    args = parser.parse_args(argv)
    teacher = train_teacher(args.teacher_epochs)
    results = [run_row(name, teacher, args.out, args.epochs) for name in args.rows]

    print(f"\nstudent TSN-R18 at 56 px, teacher TSN-R18 at 112 px, demo data, {args.epochs} epochs, seed 0")
    print(f"{'distillers':<22} {'val top-1':>9} {'train loss first -> last':>26}  distillation terms first -> last")
    ok = True
    for r in results:
        falls = r["loss"][1] < r["loss"][0] and all(last < first for _, first, last in r["terms"])
        ok &= falls
        terms = "; ".join(f"{n} {a:.4g} -> {b:.4g}" for n, a, b in r["terms"]) or "-"
        print(f"{r['row']:<22} {r['acc1']:9.4f} {r['loss'][0]:12.4f} -> {r['loss'][1]:<10.4f}  {terms}"
              f"  ({r['seconds']:.0f} s){'' if falls else '  DOES NOT FALL'}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
