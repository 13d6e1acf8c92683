"""A DDP peer that dies: ``reskd fit`` on two CPU processes (gloo), one of them SIGKILLed mid-epoch. The other
must not hang in its next collective: gloo sees the closed socket at once and raises ("Connection closed by
peer" / "Connection reset by peer"), Lightning's launcher takes the processes down, and the run exits non-zero
within seconds (``DDPStrategy(timeout=...)`` bounds a collective whose peer hangs instead of dying; Lightning's
default is 30 minutes). Then the run resumes from its last checkpoint on two processes and finishes.

Plain ``ddp`` re-launches the command it runs in, so it runs in a ``reskd fit`` subprocess, never in pytest.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import torch
import yaml

from demo_configs import write_config
from reskd_lightning.models import TSN
from test_resume import reskd_fit  # its SigkillAtStep is the kill, named in the config

#: 2 epochs of 2 steps on each of 2 processes; rank 1 dies as step 4 begins, mid-way through the second epoch.
EPOCHS, STEPS_PER_EPOCH, KILL_AT, KILLED_RANK = 2, 2, 3, 1
#: Gloo's wait on a peer that hangs rather than dies (``DDPStrategy(timeout=...)``, "h:m:s" in YAML).
COLLECTIVE_TIMEOUT = "0:02:00"  # also the rendezvous wait: room for a slow start on busy cores


def ddp_config(path: Path, demo_root: Path, root: Path, teacher: Path, kill: bool) -> Path:
    """The tiny demo student on 2 CPU processes, a checkpoint every step (``last.ckpt``), RNG states saved."""
    config = yaml.safe_load(write_config(path, demo_root, root, "student", teacher).read_text())
    trainer = config["trainer"]
    trainer.update(
        devices=2, max_epochs=EPOCHS, limit_train_batches=STEPS_PER_EPOCH, limit_val_batches=1, log_every_n_steps=1,
        strategy={"class_path": "pytorch_lightning.strategies.DDPStrategy",
                  "init_args": {"timeout": COLLECTIVE_TIMEOUT}},
    )  # fmt: skip
    trainer["callbacks"][1]["init_args"].update(every_n_train_steps=1, save_last=True, save_top_k=0)
    trainer["callbacks"].append({"class_path": "reskd_lightning.rng_state.RNGStateCheckpoint"})
    if kill:
        trainer["callbacks"].append(
            {"class_path": "test_resume.SigkillAtStep", "init_args": {"step": KILL_AT, "rank": KILLED_RANK}}
        )
    config["data"]["batch_size"] = 2
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_killed_ddp_peer_stops_the_other_at_once_and_the_run_resumes_from_last(
    demo_root: Path, tmp_path: Path
) -> None:
    teacher = tmp_path / "teacher.pt"
    torch.save(TSN(4, backbone="resnet18", dropout=0.0).state_dict(), teacher)
    root = tmp_path / "run"
    killed = reskd_fit("--config", str(ddp_config(tmp_path / "killed.yaml", demo_root, root, teacher, kill=True)),
                       timeout=240)  # fmt: skip
    ended = time.time()
    assert killed.returncode != 0, killed.stderr[-3000:]
    # The survivor's next collective failed on the closed socket, or Lightning's observer of the child processes
    # (it polls every 5 s) killed it; either way within seconds of the death, not after COLLECTIVE_TIMEOUT.
    assert any(
        sign in killed.stderr
        for sign in ("Connection closed by peer", "Connection reset by peer", f"terminated with code -{signal.SIGKILL}")
    ), killed.stderr[-3000:]
    last = root / "last.ckpt"
    saved = torch.load(last, weights_only=False)
    assert saved["global_step"] == KILL_AT
    # One step into the second epoch: 1 batch x 2 clips x 2 processes of its order handed out.
    assert saved["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [{"epoch": 1, "consumed": 4, "seed": 0}]
    assert ended - last.stat().st_mtime < 30, "the surviving process outlived its peer by more than 30 s"

    resumed = reskd_fit("--config", str(ddp_config(tmp_path / "resume.yaml", demo_root, root, teacher, kill=False)),
                        "--ckpt_path", "last", timeout=240)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Restoring states from the checkpoint path" in resumed.stderr + resumed.stdout
    final = torch.load(last, weights_only=False)
    assert final["global_step"] == EPOCHS * STEPS_PER_EPOCH  # saved as the last step ended
    # The loader went on from position 4 (from 0 it would stand at 4 after the one step left, not 8).
    assert final["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [{"epoch": 1, "consumed": 8, "seed": 0}]
    assert len(final["callbacks"]["RNGStateCheckpoint"]["ranks"]) == 2  # each process' RNG, gathered
