"""The paper's key finding on the built-in demo, over several seeds: modes A-E as mean +- std and per seed.

Per seed (``seed_everything``), exactly the demo's three configs, read as ``reskd fit`` reads them
(:func:`~reskd_lightning.tools.config.load_config`, ``--seed_everything SEED``): the teacher
(configs/demo_teacher.yaml: TSN-R18 at 112 px), the ResKD student (configs/demo.yaml: TSN-R18 at 56 px <-
that teacher) and the low-resolution baseline (configs/demo_baseline.yaml: TSN-R18 trained at 56 px); then
``reskd analyze``'s library (:func:`~reskd_lightning.analysis.analyze`) on the demo's validation videos:

* A the teacher at 112 px; B the teacher fed 56 px; C the baseline at 56 px; D the clip down to 56 px and back
  up to 112 px, into the teacher; E the ResKD student at 56 px.

Seed 0 is what ``reskd fit --config configs/demo_teacher.yaml`` (then ``demo.yaml``) gives. It prints a
Markdown table (mean +- sample std over seeds, and each seed) and the wall and CPU seconds of the two demo
stages (teacher, student) per seed, and writes ``demo_finding.csv`` (one row per seed and mode) and
``demo_times.csv`` into ``--out``, with ``demo_finding.png``: ``reskd analyze``'s accuracy-against-GMACs plot
of the means, with the seeds' spread (the README's picture, ``docs/demo_finding.png``). A stage whose
checkpoint is in ``--out`` is not trained again.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/demo_finding.py [--seeds 0 1 2] [--out runs/demo_finding]
        [--teacher-epochs N --student-epochs N]   # shorter runs, for a quick look
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: spinning OpenMP threads distort timings

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Any, Sequence  # noqa: E402

import pytorch_lightning as pl  # noqa: E402
from pytorch_lightning.callbacks import ModelCheckpoint  # noqa: E402

from reskd_lightning.analysis import ANALYSIS_MODES, analyze  # noqa: E402
from reskd_lightning.plots import ANALYSIS_STYLES, accuracy_vs_gmacs  # noqa: E402
from reskd_lightning.quiet import quiet_lightning_tips  # noqa: E402
from reskd_lightning.reporting import save_plot, write_table  # noqa: E402
from reskd_lightning.tools.config import load_config  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
#: (mode, resolution) of the table's rows, as analyze() reports them.
MODES = (("A", 112), ("B", 56), ("C", 56), ("D", 56), ("E", 56))


def cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (the data loader's workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def fit(config: str, overrides: list[str], root: Path, ckpt: Path) -> dict[str, float]:
    """Train one demo config as ``reskd fit`` would (its seed, model, data, distillers), save ``ckpt``; a stage
    already done (``ckpt`` and its ``.json``) is not trained again."""
    done = ckpt.with_suffix(".json")
    if ckpt.is_file() and done.is_file():
        return json.loads(done.read_text())
    loaded = load_config(CONFIGS / config, overrides)
    callbacks = [c for c in loaded.callbacks if not isinstance(c, ModelCheckpoint)]  # we save to ``ckpt``
    trainer = pl.Trainer(**{**loaded.trainer_kwargs, "default_root_dir": str(root), "enable_progress_bar": False,
                            "callbacks": callbacks, "logger": False, "enable_checkpointing": False})  # fmt: skip
    wall, cpu = time.perf_counter(), cpu_seconds()
    trainer.fit(loaded.model, datamodule=loaded.datamodule)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    trainer.save_checkpoint(ckpt)
    acc = float(trainer.callback_metrics["val/acc1"])
    print(f"{config} {' '.join(overrides)}: val/acc1 {acc:.4f}, {wall:.0f} s wall, {cpu:.0f} s CPU", flush=True)
    result = {"val_acc1": acc, "wall_s": wall, "cpu_s": cpu}
    done.write_text(json.dumps(result) + "\n")
    return result


def run_seed(seed: int, data: Path, out: Path, epochs: dict[str, int | None]) -> dict[str, Any]:
    """Teacher, student and baseline of one seed, then modes A-E; cached in ``out/seed<N>/result.json``."""
    root = out / f"seed{seed}"
    cached = root / "result.json"
    if cached.is_file() and "rows" in (result := json.loads(cached.read_text())):
        return result
    root.mkdir(parents=True, exist_ok=True)
    common = ["--seed_everything", str(seed), "--data.demo_data", str(data)]

    def stage(name: str, config: str, extra: Sequence[str] = ()) -> dict[str, float]:
        more = ["--trainer.max_epochs", str(epochs[name])] if epochs[name] else []
        return fit(config, [*common, *extra, *more], root / name, root / f"{name}.ckpt")

    stages = {"teacher": stage("teacher", "demo_teacher.yaml")}
    stages["student"] = stage("student", "demo.yaml", ["--model.teacher_ckpt", str(root / "teacher.ckpt")])
    stages["baseline"] = stage("baseline", "demo_baseline.yaml")
    # The data as `reskd analyze --config configs/demo.yaml` reads it (validation: centre crop, 112 px).
    loaded = load_config(CONFIGS / "demo.yaml", common, build_model=False, callbacks=False, loggers=False)
    rows = analyze(
        loaded.datamodule, high=str(root / "teacher.ckpt"), low_res={56: str(root / "baseline.ckpt")},
        students={56: str(root / "student.ckpt")}, resolutions=[112, 56],
        trainer_kwargs=dict(accelerator="cpu", devices=1, enable_progress_bar=False),
    )  # fmt: skip
    result = {"seed": seed, "stages": stages, "rows": [r for r in rows if (r["mode"], r["resolution"]) in MODES]}
    cached.write_text(json.dumps(result, indent=1) + "\n")
    return result


def value(result: dict[str, Any], mode: str, resolution: int) -> float:
    """A seed's top-1 in one mode (its analysis row)."""
    return next(r["value"] for r in result["rows"] if (r["mode"], r["resolution"]) == (mode, resolution))


def spread(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample std of ``values`` (no std for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def mean_std(values: Sequence[float]) -> str:
    """``mean ± sample std`` (the std left out for one value)."""
    mean, std = spread(values)
    return f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"


def report(results: list[dict[str, Any]], out: Path) -> None:
    """Print the modes' and the stages' tables; write them as CSV (and Markdown) into ``out``."""
    seeds = [r["seed"] for r in results]
    print(f"| mode | what | px | mean ± std ({len(seeds)} seeds) | " + " | ".join(f"seed {s}" for s in seeds) + " |")
    print("| --- | --- | --- | --- |" + " --- |" * len(seeds))
    for mode, res in MODES:
        vals = [value(r, mode, res) for r in results]
        cells = " | ".join(f"{v:.3f}" for v in vals)
        print(f"| {mode} | {ANALYSIS_MODES[mode]} | {res} | {mean_std(vals)} | {cells} |")
    print("\n| seed | teacher wall s | teacher CPU s | student wall s | student CPU s | two stages wall s |")
    print("| --- | --- | --- | --- | --- | --- |")
    times = []
    for r in results:
        t, s = r["stages"]["teacher"], r["stages"]["student"]
        times.append({"seed": r["seed"], **{f"{n}_{k}": v for n in ("teacher", "student", "baseline")
                                             for k, v in r["stages"][n].items()}})  # fmt: skip
        print(f"| {r['seed']} | {t['wall_s']:.0f} | {t['cpu_s']:.0f} | {s['wall_s']:.0f} | {s['cpu_s']:.0f} "
              f"| {t['wall_s'] + s['wall_s']:.0f} |")  # fmt: skip
    modes = [{"seed": r["seed"], "mode": m, "resolution": res, "acc1": value(r, m, res)}
             for r in results for m, res in MODES]  # fmt: skip
    paths = write_table(modes, out, "demo_finding") + write_table(times, out, "demo_times")
    paths += (save_plot(picture(results), out / "demo_finding.png"),)
    print("\nwritten: " + ", ".join(str(p) for p in paths))


def picture(results: list[dict[str, Any]]) -> Figure:
    """``reskd analyze``'s accuracy-against-GMACs plot of the modes' means over the seeds, with error bars of
    one sample std (the README's picture)."""
    rows = []
    for row in results[0]["rows"]:
        mean, std = spread([value(r, row["mode"], row["resolution"]) for r in results])
        rows.append({**row, "value": mean, "std": std})
    fig = accuracy_vs_gmacs(rows)
    ax = fig.axes[0]
    for row in rows:
        if row["std"]:  # None for one seed; 0 draws nothing
            ax.errorbar(row["gmacs"], row["value"], yerr=row["std"], color=ANALYSIS_STYLES[row["mode"]]["color"],
                        capsize=4, linestyle="none", zorder=4)  # fmt: skip
    ax.set_title(f"{ax.get_title()}\nthe demo, mean ± std over {len(results)} seeds")
    return fig


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/demo_finding"))
    parser.add_argument("--data", type=Path, default=Path("runs/demo/data"), help="the demo videos (the configs')")
    parser.add_argument("--teacher-epochs", type=int, default=None, help="default: the config's")
    parser.add_argument("--student-epochs", type=int, default=None, help="student and baseline; default: the config's")
    args = parser.parse_args(argv)
    quiet_lightning_tips()  # no Lightning ads between the results
    epochs = {"teacher": args.teacher_epochs, "student": args.student_epochs, "baseline": args.student_epochs}
    results = [run_seed(seed, args.data, args.out, epochs) for seed in args.seeds]
    report(results, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
