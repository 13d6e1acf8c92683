"""Soak test: a long ResKD fit on the demo data must keep memory, worker processes and open files flat (Linux only).

One real Lightning fit in this process (so the main process is the trainer): the demo's networks and data
(configs/demo.yaml: TSN-R18 student at 56 px, TSN-R18 teacher at 112 px, FeatureMapKD, 4 segments, batch 8,
2 loader workers), a checkpoint every --every-n-steps steps (save_last, the newest step checkpoint kept),
validation every epoch, stopped by max_time after --minutes. The teacher is randomly initialised unless
--teacher-ckpt is given (leaks do not depend on what it learned). A thread samples every --interval seconds,
from /proc (so Linux only): elapsed time, steps, VmRSS of the main process and the sum over the loader workers,
live and zombie workers, open files (/proc/<pid>/fd) and threads of the main process, open files of each worker,
and the files in the checkpoint folder and in the run's private $TMPDIR that carry temporary checkpoint names.

After a warm-up (the larger of 20% of the run and 2 minutes, at most half the run) "first" is the median over
the first quarter of the samples after it and "last" the median over the last quarter (so a sample taken
mid-save or mid-validation decides nothing). PASS/FAIL: growth < 5% of the main process' RSS, of the workers'
summed RSS and of the PSS of all of them (/proc/<pid>/smaps_rollup: the memory really used; a forked worker's
RSS counts the pages it shares with the main process); open files and threads not growing; 2 workers per
loader (training, validation) at every sample with persistent workers, and without them, where each epoch
starts new ones, in >= 90% of the samples and never one set more (see ``worker_count``); no zombie in the last
sample; once the fit returned, exactly 2 checkpoints (last and the newest step's) and no temporary checkpoint
file, worker process or zombie left. The exit status is 1 on a FAIL.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/soak.py [--minutes 30] [--persistent-workers true|false|both]
        [--every-n-steps 20] [--interval 10] [--checkpoint-io atomic|lightning] [--csv samples.csv]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: spinning OpenMP threads starve 2-core machines
os.environ.setdefault("WANDB_MODE", "offline")

import argparse  # noqa: E402
import csv  # noqa: E402
import dataclasses  # noqa: E402
import gc  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from datetime import timedelta  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable, NamedTuple, Sequence  # noqa: E402

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
from pytorch_lightning.callbacks import ModelCheckpoint  # noqa: E402
from pytorch_lightning.loggers import CSVLogger  # noqa: E402

from reskd_lightning import FeatureMapKD, ResKDModule  # noqa: E402
from reskd_lightning.checkpoint_io import AtomicCheckpointIO  # noqa: E402
from reskd_lightning.data import VideoDataModule  # noqa: E402
from reskd_lightning.models import TSN  # noqa: E402

#: fsspec's transaction (Lightning's TorchCheckpointIO) writes through ``tempfile.mkstemp()``: ``tmp`` + 8 chars.
MKSTEMP_NAME = re.compile(r"^tmp[a-z0-9_]{8}$")
MARKER = ".soak-run"  # marks a run folder as this script's, so a rerun may delete it


def proc_children(pid: int) -> list[int]:
    """Child process ids of ``pid``: the union of ``/proc/<pid>/task/*/children`` (each thread's own children)."""
    kids: set[int] = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            kids.update(int(k) for k in Path(f"/proc/{pid}/task/{tid}/children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended meanwhile
    return sorted(kids)


class Proc(NamedTuple):
    """One process as ``/proc/<pid>`` shows it (sizes in MB)."""

    pid: int
    state: str  # "Z": a zombie, exited and not yet waited for
    rss_mb: float  # VmRSS: every resident page it maps, shared (with its parent, after a fork) or not
    pss_mb: float  # Pss: each page divided by the processes sharing it (they sum to the memory used); nan if unknown
    fds: int
    cmdline: bytes


def proc_info(pid: int) -> Proc:
    """``pid`` from ``/proc/<pid>/status``, ``smaps_rollup`` (Linux >= 4.14), ``fd`` and ``cmdline``."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    status = dict(line.split(":", 1) for line in lines if ":" in line)
    rss_mb = int(status.get("VmRSS", "0 kB").split()[0]) / 1024  # a zombie has no VmRSS line
    pss_mb = float("nan")
    rollup = Path(f"/proc/{pid}/smaps_rollup")
    if rollup.exists():
        pss = [line.split()[1] for line in rollup.read_text().splitlines() if line.startswith("Pss:")]
        pss_mb = int(pss[0]) / 1024 if pss else 0.0
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return Proc(pid, status["State"].split()[0], rss_mb, pss_mb, fds, Path(f"/proc/{pid}/cmdline").read_bytes())


@dataclasses.dataclass
class Sample:
    """One reading of the run (sizes in MB); ``worker_fds`` and ``worker_pids`` list the live workers' open files and
    process ids; ``total_pss_mb`` sums the PSS of the main process and the workers."""

    persistent_workers: bool
    seconds: float
    steps: int
    epoch: int
    main_rss_mb: float
    workers_rss_mb: float
    total_pss_mb: float
    workers: int
    zombies: int
    other_children: int
    main_fds: int
    worker_fds: str
    worker_pids: str
    main_threads: int
    ckpt_files: int
    ckpt_temps: int
    tmpdir_temps: int

    @property
    def busiest_worker_fds(self) -> int:
        """The most open files of one worker (0 without workers)."""
        return max(map(int, self.worker_fds.split("/"))) if self.worker_fds else 0


def checkpoint_temps(folder: Path) -> tuple[int, int]:
    """``(checkpoints, temporary files)`` in ``folder``: ``*.ckpt``, and the hidden ``.<name>.tmp-...`` files of
    ``reskd_lightning.files.atomic_write`` (AtomicCheckpointIO) or any ``*.tmp``."""
    names = os.listdir(folder) if folder.is_dir() else []
    temps = [n for n in names if (n.startswith(".") and ".tmp" in n) or n.endswith(".tmp")]
    return sum(n.endswith(".ckpt") and n not in temps for n in names), len(temps)


def tmpdir_temps(folder: Path) -> int:
    """Files in ``folder`` named as ``tempfile.mkstemp`` names them (fsspec's checkpoint transactions)."""
    return sum(bool(MKSTEMP_NAME.match(n)) for n in os.listdir(folder)) if folder.is_dir() else 0


class Sampler(pl.Callback):
    """Reads the process tree every ``interval`` seconds on a thread, from ``on_fit_start`` to ``on_train_end``."""

    def __init__(self, interval: float, ckpt_dir: Path, tmpdir: Path, persistent_workers: bool) -> None:
        self.interval, self.ckpt_dir, self.tmpdir, self.persistent = interval, ckpt_dir, tmpdir, persistent_workers
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="soak-sampler", daemon=True)
        self._trainer: pl.Trainer | None = None
        self._start = 0.0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._trainer, self._start = trainer, time.monotonic()
        self._thread.start()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.stop()  # before Lightning's teardown stops the workers: samples of training only

    def stop(self) -> None:
        """End the sampling thread (also where the fit failed before ``on_train_end``)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(self.take())

    def take(self) -> Sample:
        """One reading now. Workers are the children running this program (forked: same command line)."""
        pid = os.getpid()
        main = proc_info(pid)
        workers: list[Proc] = []
        zombies = others = 0
        for kid in proc_children(pid):
            try:
                info = proc_info(kid)
            except (FileNotFoundError, ProcessLookupError):
                continue  # it ended between the listing and the reading
            if info.state == "Z":
                zombies += 1
            elif info.cmdline == main.cmdline:
                workers.append(info)
            else:
                others += 1
        ckpts, ckpt_temps = checkpoint_temps(self.ckpt_dir)
        trainer = self._trainer
        return Sample(
            self.persistent, round(time.monotonic() - self._start, 1), trainer.global_step if trainer else 0,
            trainer.current_epoch if trainer else 0, round(main.rss_mb, 1), round(sum(w.rss_mb for w in workers), 1),
            round(main.pss_mb + sum(w.pss_mb for w in workers), 1), len(workers), zombies, others, main.fds,
            "/".join(str(w.fds) for w in workers), "/".join(str(w.pid) for w in workers),
            len(os.listdir(f"/proc/{pid}/task")), ckpts, ckpt_temps, tmpdir_temps(self.tmpdir),
        )  # fmt: skip


def run_dir(out: Path, persistent: bool) -> Path:
    """A fresh folder for one run under ``out`` (a previous run's folder of this script is deleted first)."""
    folder = out / f"persistent_workers_{str(persistent).lower()}"
    if folder.exists():
        if not (folder / MARKER).is_file():
            raise SystemExit(f"soak.py: {folder} exists and is not a soak run folder (no {MARKER}); move it away")
        shutil.rmtree(folder)
    (folder / "tmp").mkdir(parents=True)
    (folder / MARKER).touch()
    return folder


def soak(args: argparse.Namespace, persistent: bool) -> Sampler:
    """One fit of ``args.minutes`` with ``persistent_workers=persistent``; its sampler holds the samples."""
    folder = run_dir(args.out, persistent)
    gc.collect()  # a previous run's objects (--persistent-workers both) are not inherited by these workers
    previous_tmpdir = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(folder / "tmp")  # private: other programs' temporary files do not count
    tempfile.tempdir = None  # re-read $TMPDIR
    pl.seed_everything(0)
    data = VideoDataModule(
        demo_data=str(args.data), num_classes=4, num_segments=args.segments, short_side=128, crop_size=112,
        flip=False, batch_size=args.batch_size, num_workers=args.workers, persistent_workers=persistent,
        resolutions=[112, 56],
    )  # fmt: skip  # configs/demo.yaml's data
    model = ResKDModule(
        student=TSN(4, backbone="resnet18", dropout=0.2, init_std=0.01),
        teacher=TSN(4, backbone="resnet18", dropout=0.2, init_std=0.01),
        num_classes=4, teacher_ckpt=str(args.teacher_ckpt) if args.teacher_ckpt else None,
        student_resolution=56, teacher_resolution=112,
    )  # fmt: skip
    sampler = Sampler(args.interval, folder / "ckpt", folder / "tmp", persistent)
    plugins: list[Any] = []
    if args.checkpoint_io == "atomic":  # what `reskd fit` uses
        plugins.append(AtomicCheckpointIO())
    checkpoint = ModelCheckpoint(
        dirpath=folder / "ckpt", filename="{step}", every_n_train_steps=args.every_n_steps, save_last=True
    )
    trainer = pl.Trainer(
        accelerator=args.accelerator, devices=1, max_epochs=-1, max_time=timedelta(minutes=args.minutes),
        gradient_clip_val=20, logger=CSVLogger(folder, name="logs"), log_every_n_steps=10,
        callbacks=[FeatureMapKD(weight=100), checkpoint, sampler], plugins=plugins,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    try:
        trainer.fit(model, datamodule=data)
    finally:
        sampler.stop()
        if previous_tmpdir is None:
            os.environ.pop("TMPDIR")
        else:
            os.environ["TMPDIR"] = previous_tmpdir
        tempfile.tempdir = None
    gc.collect()
    return sampler


def first_last(post: list[Sample], key: str) -> tuple[float, float, float]:
    """``key``'s median over the first and over the last quarter of ``post`` (at least 3 samples each), and its
    maximum. Medians, so that a sample taken mid-save or mid-validation (or of workers forked at a peak of the main
    process) moves neither end."""
    values = [float(getattr(s, key)) for s in post]
    n = max(3, len(values) // 4)
    return statistics.median(values[:n]), statistics.median(values[-n:]), max(values)


def worker_count(post: list[Sample], workers: int) -> tuple[bool, str]:
    """Live workers: ``workers`` per loader (training, validation) at every sample when persistent; otherwise in
    >= 90% of the samples and never more than one loader's set above it. Lightning reads a sized loader's
    ``len`` batches and never its ``StopIteration``, so a non-persistent loader's workers live on until that
    loader's next iteration starts new ones and drops the old iterator (both sets alive for a moment)."""
    persistent, expected = post[0].persistent_workers, 2 * workers
    counts = [s.workers for s in post]
    share = counts.count(expected) / len(counts)
    ceiling = expected if persistent else expected + workers
    ok = max(counts) <= ceiling and share >= (1.0 if persistent else 0.9) and post[-1].zombies == 0
    pids = {p for s in post for p in s.worker_pids.split("/") if p}
    return ok, (
        f"worker processes: {expected} expected, {min(counts)}..{max(counts)} seen ({share:.0%} of samples at "
        f"{expected}), {len(pids)} distinct over the run; zombies: {max(s.zombies for s in post)} at most, "
        f"{post[-1].zombies} at the end; other child processes: {max(s.other_children for s in post)} at most"
    )


def after_fit(samples: list[Sample], end: Sample) -> tuple[bool, str]:
    """``end``, read once the fit returned: 2 checkpoints (last, the newest step's), no temporary checkpoint file,
    no worker process (Lightning's teardown stops persistent ones too) and no zombie."""
    left = end.ckpt_temps + end.tmpdir_temps
    mid_save = max(s.ckpt_temps + s.tmpdir_temps for s in samples)
    ok = end.ckpt_files == 2 and left == 0 and end.workers == 0 and end.zombies == 0
    return ok, (
        f"after the fit: {end.ckpt_files} checkpoints (2 expected: last and the newest step's), {left} temporary "
        f"files left (0 expected; {mid_save} at most seen mid-save), {end.workers} workers and {end.zombies} "
        "zombies (0 expected)"
    )


def verdicts(samples: list[Sample], end: Sample, warmup: float, workers: int) -> list[tuple[bool, str]]:
    """The PASS/FAIL lines of one run (see the module's docstring)."""
    post = [s for s in samples if s.seconds >= warmup]
    if len(post) < 6:
        return [(False, f"only {len(post)} samples after the {warmup:.0f} s warm-up: run longer (--minutes)")]
    lines = []
    memory = [("main_rss_mb", "main RSS"), ("workers_rss_mb", "workers' RSS (sum)"), ("total_pss_mb", "PSS (all)")]
    for key, name in memory:
        first, last, peak = first_last(post, key)
        if math.isnan(first):
            continue  # no smaps_rollup: no PSS
        growth = last / first - 1 if first else float("inf")
        lines.append((growth < 0.05, f"{name}: {first:.1f} -> {last:.1f} MB ({growth:+.1%}; max {peak:.1f} MB, "
                                     f"{peak / first - 1:+.1%}); growth < 5%"))  # fmt: skip
    for key, name in (("main_fds", "main open files"), ("main_threads", "main threads")):
        first, last, peak = first_last(post, key)
        lines.append((last <= first, f"{name}: {first:.0f} -> {last:.0f} (max {peak:.0f}); not growing"))
    first, last, peak = first_last(post, "busiest_worker_fds")
    lines.append((last <= first, f"open files of the busiest worker: {first:.0f} -> {last:.0f} (max {peak:.0f}); "
                                 "not growing"))  # fmt: skip
    lines.append(worker_count(post, workers))
    lines.append(after_fit(samples, end))
    return lines


#: The printed table: heading, width, value of a sample. ``tmp``: temporary checkpoint files (folder + $TMPDIR).
COLUMNS: list[tuple[str, int, Callable[[Sample], str]]] = [
    ("steps", 6, lambda s: f"{s.steps}"), ("ep", 3, lambda s: f"{s.epoch}"),
    ("main MB", 8, lambda s: f"{s.main_rss_mb:.1f}"), ("wrk MB", 8, lambda s: f"{s.workers_rss_mb:.1f}"),
    ("PSS MB", 8, lambda s: f"{s.total_pss_mb:.1f}"), ("wrk", 3, lambda s: f"{s.workers}"),
    ("zmb", 3, lambda s: f"{s.zombies}"), ("fds", 4, lambda s: f"{s.main_fds}"),
    ("thr", 4, lambda s: f"{s.main_threads}"), ("ckpt", 4, lambda s: f"{s.ckpt_files}"),
    ("tmp", 3, lambda s: f"{s.ckpt_temps + s.tmpdir_temps}"),
]  # fmt: skip


def print_report(samples: list[Sample], lines: list[tuple[bool, str]], warmup: float) -> None:
    """About 15 evenly spaced samples (``*``: warm-up), the step rate and the verdicts."""
    post = [i for i, s in enumerate(samples) if s.seconds >= warmup]
    picks = sorted({round(i * (len(samples) - 1) / 14) for i in range(15)} | set(post[:1])) if samples else []
    print(f"{'t (s)':>8} " + " ".join(f"{name:>{width}}" for name, width, _ in COLUMNS) + "  worker fds")
    for i in picks:
        s = samples[i]
        mark = "*" if s.seconds < warmup else " "
        cells = " ".join(f"{value(s):>{width}}" for _, width, value in COLUMNS)
        print(f"{s.seconds:7.0f}{mark} {cells}  {s.worker_fds or '-'}")
    if len(post) > 1:
        a, b = samples[post[0]], samples[-1]
        print(f"steps/min after the warm-up: {(b.steps - a.steps) / ((b.seconds - a.seconds) / 60):.1f}")
    for ok, text in lines:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")


def header(args: argparse.Namespace) -> str:
    """The machine, the software and the run's settings."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    teacher = f"teacher {args.teacher_ckpt}" if args.teacher_ckpt else "random teacher"
    return (
        f"soak: {platform.machine()}, {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), load {load}; "
        f"Python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"Lightning {pl.__version__}\n"
        f"demo data {args.data}; TSN-R18 56 px <- TSN-R18 112 px ({teacher}), FeatureMapKD, {args.segments} "
        f"segments, batch {args.batch_size}, {args.workers} workers; a checkpoint every {args.every_n_steps} steps "
        f"({args.checkpoint_io} IO); {args.minutes:g} min per run, a sample every {args.interval:g} s"
    )


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see the module's docstring)."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + " It reads /proc/<pid>/status, /proc/<pid>/fd and "
        "/proc/<pid>/task/*/children, hence Linux only; benchmarks/README.md lists the checks."
    )
    add = parser.add_argument
    add("--minutes", type=float, default=30.0, help="length of each run, Lightning's max_time (default %(default)s)")
    add("--persistent-workers", choices=["true", "false", "both"], default="true",
        help="the loaders' persistent_workers (default %(default)s, VideoDataModule's); both: one run each")
    add("--every-n-steps", type=int, default=20, help="ModelCheckpoint's every_n_train_steps (default %(default)s)")
    add("--interval", type=float, default=10.0, help="seconds between samples (default %(default)s)")
    add("--warmup-minutes", type=float, default=None,
        help="samples ignored at the start; default: the larger of 20%% of the run and 2 minutes, at most half")
    add("--checkpoint-io", choices=["atomic", "lightning"], default="atomic",
        help="atomic (default): reskd's AtomicCheckpointIO, as `reskd fit`; lightning: Lightning's TorchCheckpointIO")
    add("--workers", type=int, default=2, help="loader worker processes per loader (default %(default)s)")
    add("--batch-size", type=int, default=8, help="default %(default)s, the demo's")
    add("--segments", type=int, default=4, help="TSN segments per clip (default %(default)s, the demo's)")
    add("--accelerator", default="auto", help="Lightning's accelerator (default %(default)s)")
    add("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    add("--teacher-ckpt", type=Path, default=None, help="teacher weights (default: a random teacher)")
    add("--data", type=Path, default=Path("runs/demo/data"), help="demo data, written if missing (default %(default)s)")
    add("--out", type=Path, default=Path("runs/bench_soak"), help="run folders (default %(default)s)")
    add("--csv", type=Path, default=None, help="write every sample of every run to this CSV file")
    args = parser.parse_args(argv)
    for name in ("minutes", "interval", "every_n_steps", "workers", "batch_size", "segments"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    return args


def warmup_seconds(args: argparse.Namespace) -> float:
    """``--warmup-minutes``, else the larger of 20% of the run and 2 minutes, at most half the run."""
    run = 60 * args.minutes
    return 60 * args.warmup_minutes if args.warmup_minutes is not None else min(max(0.2 * run, 120.0), run / 2)


def write_csv(path: Path, samples: list[Sample]) -> None:
    """Every sample, one row each, with the fields of :class:`Sample` as columns."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[field.name for field in dataclasses.fields(Sample)])
        writer.writeheader()
        writer.writerows(dataclasses.asdict(s) for s in samples)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if not sys.platform.startswith("linux") or not Path(f"/proc/{os.getpid()}/task").is_dir():
        raise SystemExit("soak.py reads /proc/<pid>/status, fd and task/*/children: it runs on Linux only")
    if args.threads:
        torch.set_num_threads(args.threads)
    warmup = warmup_seconds(args)
    print(header(args) + f"; warm-up {warmup:.0f} s", flush=True)
    results = []
    for persistent in {"true": [True], "false": [False], "both": [True, False]}[args.persistent_workers]:
        sampler = soak(args, persistent)
        end = sampler.take()
        results.append((persistent, sampler.samples, verdicts(sampler.samples, end, warmup, args.workers)))
    if args.csv:
        write_csv(args.csv, [s for _, samples, _ in results for s in samples])
    for persistent, samples, lines in results:
        print(f"\npersistent_workers={str(persistent).lower()}: {len(samples)} samples, warm-up {warmup:.0f} s (*)")
        print_report(samples, lines, warmup)
    return 0 if all(ok for _, _, lines in results for ok, _ in lines) else 1


if __name__ == "__main__":
    raise SystemExit(main())
