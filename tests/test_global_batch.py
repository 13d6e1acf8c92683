"""A recipe runs on any number of GPUs or nodes as it is: GlobalBatch keeps the official global batch by
accumulating gradients, and `reskd fit` starts under torchrun and under SLURM's srun (its environment) alike."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml
from demo_configs import write_config

from reskd_lightning import GlobalBatch, ResKDModule, VideoDataModule
from reskd_lightning.global_batch import plan_global_batch
from reskd_lightning.models import TSN

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize(
    ("processes", "accumulate", "global_batch"),
    [(1, 8, 64), (2, 4, 64), (4, 2, 64), (8, 1, 64), (3, 3, 72), (5, 2, 80), (16, 1, 128)],
)
def test_the_papers_64_videos_on_any_number_of_gpus(processes: int, accumulate: int, global_batch: int) -> None:
    # The official ActivityNet/Mini-Kinetics TSN runs: 8 videos x 8 GPUs (CVMI-Lab/ResKD
    # configs/myconfig/rkd/rkd_r152_1x1x16_200e_actnet.py: videos_per_gpu=8, 8 GPUs per its README).
    plan = plan_global_batch(64, per_device=8, processes=processes)
    assert (plan.accumulate, plan.global_batch, plan.exact) == (accumulate, global_batch, global_batch == 64)
    assert plan_global_batch(64, 8, processes, keep_by="scale_lr").accumulate == 1


def test_every_shipped_recipe_keeps_its_global_batch_and_saves_last() -> None:
    for path in sorted(CONFIGS.glob("*.yaml")):
        trainer = yaml.safe_load(path.read_text())["trainer"]
        names = [c["class_path"] for c in trainer["callbacks"]]
        checkpoints = [c for c in trainer["callbacks"] if c["class_path"].endswith("ModelCheckpoint")]
        assert checkpoints and all(c["init_args"].get("save_last") for c in checkpoints), path.name
        if path.name.startswith("demo"):
            continue
        assert "reskd_lightning.GlobalBatch" in names, path.name
        assert "accumulate_grad_batches" not in trainer and trainer["devices"] == "auto", path.name


def _module() -> ResKDModule:
    return ResKDModule(student=TSN(4, backbone="resnet18", dropout=0.0), student_resolution=32, lr_base_batch_size=16)


def _data(demo_root: Path) -> VideoDataModule:
    return VideoDataModule(
        demo_data=str(demo_root), num_segments=2, short_side=64, crop_size=64, resolutions=[32], batch_size=2,
        num_workers=0,
    )  # fmt: skip


def test_two_processes_accumulate_to_the_global_batch_and_keep_the_lr(demo_root: Path, tmp_path: Path) -> None:
    keep = GlobalBatch(size=16)
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=1, limit_train_batches=8, limit_val_batches=0,
        default_root_dir=str(tmp_path), logger=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[keep],
    )  # fmt: skip
    trainer.fit(_module(), datamodule=_data(demo_root))
    ckpt = torch.load(next((tmp_path / "checkpoints").glob("*.ckpt")), weights_only=False)
    # 2 videos x 2 processes x 4 steps = 16: the 16 demo videos, 4 batches per process, make 1 optimiser step
    assert ckpt["global_step"] == 1
    # the global batch is lr_base_batch_size's 16, so the paper's lr (0.01) is not scaled: 4 steps of 4 videos
    # without GlobalBatch would have scaled it to 0.0025
    assert ckpt["optimizer_states"][0]["param_groups"][0]["initial_lr"] == pytest.approx(0.01)


def test_the_accumulation_is_not_set_twice(demo_root: Path, tmp_path: Path) -> None:
    trainer = pl.Trainer(
        accelerator="cpu", accumulate_grad_batches=2, callbacks=[GlobalBatch(size=16)], max_steps=1, logger=False,
        default_root_dir=str(tmp_path), enable_progress_bar=False,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"accumulate_grad_batches=2 and GlobalBatch\(size=16\) both set"):
        trainer.fit(_module(), datamodule=_data(demo_root))


def _launch_config(demo_root: Path, tmp_path: Path) -> Path:
    path = write_config(tmp_path / "teacher.yaml", demo_root, tmp_path, "teacher")
    config = yaml.safe_load(path.read_text())
    config["trainer"]["callbacks"].insert(0, {"class_path": "reskd_lightning.GlobalBatch", "init_args": {"size": 16}})
    config["trainer"].update(accelerator="cpu", devices=2, strategy="ddp", limit_train_batches=4, limit_val_batches=1)
    config["data"]["batch_size"] = 2
    path.write_text(yaml.safe_dump(config))
    return path


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TORCHELASTIC_", "LOCAL_RANK"))}
    env.update(OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="1", WANDB_MODE="offline", **extra)
    return env


def test_reskd_fit_under_torchrun_with_two_processes(demo_root: Path, tmp_path: Path) -> None:
    # README: torchrun --nnodes N --nproc_per_node G -m reskd_lightning.cli fit --config RECIPE
    config = _launch_config(demo_root, tmp_path)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517"]
    run = subprocess.run(
        [*torchrun, "-m", "reskd_lightning.cli", "fit", "--config", str(config)], env=_env(), capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "global batch: 2 videos x 2 process(es) x 4 accumulated step(s) = 16 videos per optimiser step" in run.stderr
    assert torch.load(tmp_path / "teacher.ckpt", weights_only=False)["global_step"] == 1


def test_reskd_fit_under_slurms_srun_environment_with_two_tasks(demo_root: Path, tmp_path: Path) -> None:
    # What `srun --ntasks-per-node 2 reskd fit ...` gives each task (Lightning's SLURMEnvironment reads these); the
    # README's sbatch script runs exactly this command, one task per GPU.
    config = _launch_config(demo_root, tmp_path)
    slurm = dict(SLURM_NTASKS="2", SLURM_NTASKS_PER_NODE="2", SLURM_NNODES="1", SLURM_NODEID="0",
                 SLURM_JOB_ID="4242", SLURM_JOB_NAME="reskd", SLURM_NODELIST="127.0.0.1")  # fmt: skip
    tasks = [
        subprocess.Popen(
            [sys.executable, "-m", "reskd_lightning.cli", "fit", "--config", str(config)],
            env=_env(**slurm, SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank)), stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for rank in range(2)
    ]
    errors = [task.communicate(timeout=300)[1] for task in tasks]
    assert [task.returncode for task in tasks] == [0, 0], errors[0][-3000:]
    assert "global batch: 2 videos x 2 process(es) x 4 accumulated step(s)" in errors[0]
    assert torch.load(tmp_path / "teacher.ckpt", weights_only=False)["global_step"] == 1
