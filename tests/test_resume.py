"""Exact resume: a run stopped mid-epoch (a SIGKILL of ``reskd fit``, or a Trainer that stops) and resumed from
its last checkpoint ends with the weights, optimiser state, distiller schedule and logged values of the run that
was never interrupted, on the CPU, with 0 and 2 loader workers.

What has to continue for that: the data order and each sample's random choices (``ResumableLoader`` /
``ResumableSampler``; Lightning saves a loader's ``state_dict`` and restores it) and the main process' RNG, from
which the student's dropout draws (``RNGStateCheckpoint``; Lightning saves no RNG state).
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger

from demo_configs import write_config
from reskd_lightning import FeatureMapKD, ResKDModule, VideoDataModule
from reskd_lightning.data.resumable import ResumableLoader, ResumableSampler, SampleKey
from reskd_lightning.distill import LinearWarmup
from reskd_lightning.lightning_cli import cli_main
from reskd_lightning.models import TSN
from reskd_lightning.rng_state import RNGStateCheckpoint

TESTS = Path(__file__).resolve().parent
EPOCHS, STEPS_PER_EPOCH, STOP_AT = 2, 4, 6  # stopped after step 6: mid-way through the second epoch


class SigkillAtStep(pl.Callback):
    """Kills its own process with SIGKILL (no handler, no clean-up) as training step ``step + 1`` begins, after
    the checkpoint of step ``step`` is on disk; only on global rank ``rank`` when one is given (a DDP peer)."""

    def __init__(self, step: int, rank: int | None = None) -> None:
        self.step, self.rank = step, rank

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if trainer.global_step == self.step and self.rank in (None, trainer.global_rank):
            os.kill(os.getpid(), signal.SIGKILL)


def reskd_fit(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``reskd fit ARGS`` in a new process group (a DDP peer is its child), ``tests/`` importable for the kill.
    A run still going after ``timeout`` seconds is a hang: the whole group is killed and the test fails."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "reskd_lightning.cli", "fit", *args]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as process:  # fmt: skip
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the group this test started: both ranks
            out, err = process.communicate()
            pytest.fail(f"reskd fit {' '.join(args)} still ran after {timeout} s (a hang):\n{err[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, out, err)


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A teacher's weights as a plain state dict (any fixed teacher will do: only the student is compared)."""
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    torch.save(TSN(4, backbone="resnet18", dropout=0.0).state_dict(), path)
    return path


@pytest.fixture()
def keep_seed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """``seed_everything`` writes ``PL_GLOBAL_SEED`` (the training order's seed): undo it after the test."""
    monkeypatch.setenv("PL_GLOBAL_SEED", "0")


def assert_same_checkpoints(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Every tensor of the module and of the optimiser, the distillers' schedules and the loops' progress."""
    assert a["global_step"] == b["global_step"] == EPOCHS * STEPS_PER_EPOCH
    assert a["state_dict"].keys() == b["state_dict"].keys() and any(k.startswith("student.") for k in a["state_dict"])
    for key, tensor in a["state_dict"].items():
        assert torch.equal(tensor, b["state_dict"][key]), key
    for state_a, state_b in zip(a["optimizer_states"][0]["state"].values(), b["optimizer_states"][0]["state"].values()):
        assert torch.equal(state_a["momentum_buffer"], state_b["momentum_buffer"])
    assert a["lr_schedulers"] == b["lr_schedulers"]
    assert a["distillers"] == b["distillers"] and a["distillers"]
    assert a["loops"]["fit_loop"]["state_dict"] == b["loops"]["fit_loop"]["state_dict"]  # the loader's state too
    rng_a, rng_b = (c["callbacks"]["RNGStateCheckpoint"]["ranks"][0]["torch"] for c in (a, b))
    assert torch.equal(rng_a, rng_b)  # the dropout drew as often in both


def logged(folders: list[Path]) -> dict[tuple[int, str], float]:
    """Every value CSVLogger wrote in ``folders`` (later runs overwrite earlier ones), by (step, name)."""
    values: dict[tuple[int, str], float] = {}
    for folder in folders:
        with open(folder / "metrics.csv") as f:
            for row in csv.DictReader(f):
                for name, value in row.items():
                    if name not in ("step", "epoch") and value != "":
                        values[int(row["step"]), name] = float(value)
    return values


def assert_same_logs(uninterrupted: dict[tuple[int, str], float], resumed: dict[tuple[int, str], float]) -> None:
    """The values logged after the stop and at the end agree. The interrupted epoch's training means
    (``*_epoch``) are the exception: Lightning keeps no partial epoch aggregates in a checkpoint (its
    ``_ResultCollection`` is not saved), so the resumed run averages the steps after the stop only."""
    after = {k: v for k, v in uninterrupted.items() if k[0] >= STOP_AT and not k[1].endswith("_epoch")}
    assert any(name.startswith("val/") for _, name in after) and any(name.endswith("_weight") for _, name in after)
    assert {k: resumed[k] for k in after} == after


# ------------------------------------------------------------------------------------------------ the loader
Batches = list[tuple[list[int], list[int], list[int], torch.Tensor]]


def loader(demo_root: Path, num_workers: int, tmp_path: Path) -> ResumableLoader:
    """Training batches of 15 demo videos, every other one with a second label (one is drawn per sample), and an
    unreadable one (replaced by a record drawn at random): 16 videos, 4 batches of 4."""
    lines = [line.split() for line in (demo_root / "train.txt").read_text().splitlines()[:15]]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video" * 100)
    rows = [f"{path} {label}" + (" 3" if i % 2 else "") for i, (path, label) in enumerate(lines)] + [f"{broken} 0"]
    (tmp_path / "train.txt").write_text("\n".join(rows) + "\n")
    dm = VideoDataModule(
        train_list=str(tmp_path / "train.txt"), data_prefix=str(demo_root), num_classes=4, num_segments=2,
        short_side=64, crop_size=56, resolutions=[56], batch_size=4, num_workers=num_workers,
        persistent_workers=False, max_failed_fraction=0.5,
    )  # fmt: skip
    dm.setup("fit")
    return dm.train_dataloader()  # type: ignore[return-value]


def epoch_batches(dl: ResumableLoader, epoch: int) -> Batches:
    """Each batch's records, labels, retries and clips."""
    dl.sampler.set_epoch(epoch)  # as Lightning does before every epoch
    return [(b["index"].tolist(), b["label"].tolist(), b["retries"].tolist(), b["video"]) for b in dl]


def same(a: Batches, b: Batches) -> bool:
    return len(a) == len(b) and all(x[:3] == y[:3] and torch.equal(x[3], y[3]) for x, y in zip(a, b))


def test_training_batches_are_the_same_with_any_workers_and_resume_from_a_saved_position(
    demo_root: Path, tmp_path: Path, keep_seed_env: None
) -> None:
    first = loader(demo_root, 0, tmp_path)
    whole = [epoch_batches(first, epoch) for epoch in (0, 1)]
    assert len(whole[0]) == 4 and [b[0] for b in whole[0]] != [b[0] for b in whole[1]]  # reshuffled per epoch
    assert all(sum(r for b in epoch for r in b[2]) == 1 for epoch in whole)  # the unreadable video, replaced
    # The videos, their labels, stand-ins and random crops do not depend on the worker that loads them.
    assert same(epoch_batches(loader(demo_root, 2, tmp_path), 1), whole[1])
    # Two batches into epoch 1: the state says so, and a new loader given it yields the other two, from workers.
    first.sampler.set_epoch(1)
    iterator = iter(first)
    next(iterator), next(iterator)
    state = first.state_dict()
    assert state == {"epoch": 1, "consumed": 8, "seed": 0}
    resumed = loader(demo_root, 2, tmp_path)
    resumed.load_state_dict(state)
    assert same(epoch_batches(resumed, 1), whole[1][2:])
    # A state saved at an epoch's end: the resumed run's next epoch starts at its beginning.
    resumed.load_state_dict({"epoch": 0, "consumed": 16, "seed": 0})
    assert same(epoch_batches(resumed, 1), whole[1])


def test_loading_training_batches_leaves_the_main_process_rng_alone(
    demo_root: Path, tmp_path: Path, keep_seed_env: None
) -> None:
    # The dropout of the steps in between draws from it; a resumed run restores it, so the loader must not use it.
    dl = loader(demo_root, 0, tmp_path)
    before = torch.get_rng_state()
    assert len([batch["video"] for batch in dl]) == 4
    assert torch.equal(torch.get_rng_state(), before)


def test_ranks_read_disjoint_shares_of_one_order_that_lightning_keeps_under_ddp(demo_root: Path) -> None:
    dataset = list(range(10))
    shares = [list(ResumableSampler(dataset, num_replicas=2, rank=r, seed=3)) for r in (0, 1)]
    # Positions r, r + 2, ... of one order of 10: 5 each, every index once, each position its own seed.
    assert sorted(k.index for share in shares for k in share) == dataset
    assert len({k.seed for share in shares for k in share}) == 10 and all(isinstance(k, SampleKey) for k in shares[0])
    # Lightning replaces a training loader's sampler under DDP unless it is a DistributedSampler.
    assert isinstance(ResumableSampler(dataset), torch.utils.data.DistributedSampler)


# ------------------------------------------------------------------------------------------------ whole runs
def trainer_run(
    root: Path, demo_root: Path, teacher: Path, num_workers: int, max_steps: int = -1, version: int = 0,
    ckpt_path: str | None = None,
) -> None:
    """The demo student (TSN-R18, dropout 0.5) with a FeatureMapKD warming up over 1.5 epochs; seed 0."""
    pl.seed_everything(0)
    module = ResKDModule(
        student=TSN(4, backbone="resnet18", dropout=0.5), teacher=TSN(4, backbone="resnet18", dropout=0.0),
        teacher_ckpt=str(teacher), num_classes=4, student_resolution=32, teacher_resolution=64,
    )  # fmt: skip
    dm = VideoDataModule(
        demo_data=str(demo_root), num_segments=2, short_side=64, crop_size=64, resolutions=[64, 32], batch_size=4,
        num_workers=num_workers,
    )  # fmt: skip
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=EPOCHS, limit_train_batches=STEPS_PER_EPOCH, limit_val_batches=1,
        num_sanity_val_steps=1, log_every_n_steps=1, enable_progress_bar=False, enable_model_summary=False,
        max_steps=max_steps, logger=CSVLogger(str(root), name="", version=version), default_root_dir=str(root),
        callbacks=[
            FeatureMapKD(weight=100, weight_schedule=LinearWarmup(warmup=1.5)),
            RNGStateCheckpoint(),
            ModelCheckpoint(dirpath=str(root), every_n_train_steps=2, save_last=True, save_top_k=0),
        ],
    )  # fmt: skip
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_trainer_stopped_mid_epoch_resumes_to_the_uninterrupted_weights_and_logs(
    num_workers: int, demo_root: Path, teacher_file: Path, tmp_path: Path, keep_seed_env: None
) -> None:
    trainer_run(tmp_path / "a", demo_root, teacher_file, num_workers)
    trainer_run(tmp_path / "b", demo_root, teacher_file, num_workers, max_steps=STOP_AT)
    stopped = torch.load(tmp_path / "b" / "last.ckpt", weights_only=False)
    progress = stopped["loops"]["fit_loop"]["epoch_progress"]["current"]
    assert stopped["global_step"] == STOP_AT and progress["completed"] == 1  # the second epoch is under way
    trainer_run(tmp_path / "b", demo_root, teacher_file, num_workers, version=1, ckpt_path="last")
    a, b = (torch.load(tmp_path / run / "last.ckpt", weights_only=False) for run in ("a", "b"))
    assert_same_checkpoints(a, b)
    assert_same_logs(logged([tmp_path / "a" / "version_0"]), logged([tmp_path / "b" / f"version_{v}" for v in (0, 1)]))


def fit_config(path: Path, demo_root: Path, root: Path, teacher: Path, kill_at: int | None = None) -> Path:
    """The tiny demo student's config (``demo_configs``), 2 epochs of 4 steps, dropout 0.5, 2 loader workers,
    a checkpoint every 2 steps with ``last.ckpt``, a FeatureMapKD warming up over 1.5 epochs."""
    config = yaml.safe_load(write_config(path, demo_root, root, "student", teacher).read_text())
    trainer = config["trainer"]
    trainer.update(max_epochs=EPOCHS, limit_train_batches=STEPS_PER_EPOCH, limit_val_batches=1, log_every_n_steps=1)
    trainer["logger"]["init_args"].update(name="", save_dir=str(root))
    distiller, checkpoint = trainer["callbacks"]
    distiller["init_args"]["weight_schedule"] = {"class_path": "reskd_lightning.distill.LinearWarmup",
                                                 "init_args": {"warmup": 1.5}}  # fmt: skip
    checkpoint["init_args"].update(every_n_train_steps=2, save_last=True, save_top_k=0)
    trainer["callbacks"].append({"class_path": "reskd_lightning.rng_state.RNGStateCheckpoint"})
    if kill_at is not None:
        trainer["callbacks"].append({"class_path": "test_resume.SigkillAtStep", "init_args": {"step": kill_at}})
    config["model"]["student"]["init_args"]["dropout"] = 0.5
    config["data"]["num_workers"] = 2
    path.write_text(yaml.safe_dump(config))
    return path


def test_reskd_fit_killed_mid_epoch_resumes_with_ckpt_path_last_to_the_uninterrupted_run(
    demo_root: Path, teacher_file: Path, tmp_path: Path, keep_seed_env: None
) -> None:
    cli_main(["fit", "--config", str(fit_config(tmp_path / "a.yaml", demo_root, tmp_path / "a", teacher_file))])
    killed = fit_config(tmp_path / "b.yaml", demo_root, tmp_path / "b", teacher_file, kill_at=STOP_AT)
    run = reskd_fit("--config", str(killed), timeout=300)
    assert run.returncode == -signal.SIGKILL, run.stderr[-3000:]
    assert torch.load(tmp_path / "b" / "last.ckpt", weights_only=False)["global_step"] == STOP_AT
    resume = fit_config(tmp_path / "b.yaml", demo_root, tmp_path / "b", teacher_file)  # without the kill
    cli_main(["fit", "--config", str(resume), "--ckpt_path", "last"])
    a, b = (torch.load(tmp_path / run / "last.ckpt", weights_only=False) for run in ("a", "b"))
    assert_same_checkpoints(a, b)
    assert_same_logs(logged([tmp_path / "a" / "version_0"]), logged([tmp_path / "b" / f"version_{v}" for v in (0, 1)]))
