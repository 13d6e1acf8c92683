"""wandb without a network: offline by default when there are no credentials, one run across a resumed fit (the
id saved in the checkpoints), the whole CLI config, the distillation terms and evaluation files in the run."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch
import yaml
from pytorch_lightning.loggers import WandbLogger

from demo_configs import write_config
from reskd_lightning.lightning_cli import cli_main
from reskd_lightning.models import TSN
from reskd_lightning.reporting import log_file, wandb_credentials_found, wandb_offline_by_default
from reskd_lightning.wandb_run import (
    CHECKPOINT_KEY,
    resume_wandb_logger_args,
    wandb_run_of_checkpoint,
)

wandb = pytest.importorskip("wandb")
from wandb.proto import wandb_internal_pb2  # noqa: E402

KEY = "0123456789abcdef0123456789abcdef01234567"  # wandb API keys are 40 characters


# ------------------------------------------------------------------------------------- reading a run folder
def records(path: Path) -> Iterator[Any]:
    """The protobuf records of an offline run's ``run-<id>.wandb`` file.

    The file is a LevelDB log (github.com/google/leveldb/blob/main/doc/log_format.md) after a 7-byte header
    (``:W&B``, magic 0xBEE1, version): 32 KiB blocks of records, each a 4-byte CRC, a 2-byte little-endian length
    and a type (1 full, 2 first, 3 middle, 4 last part of one protobuf ``Record``); a block's last <7 bytes are
    padding. wandb 0.31 has no public reader of it (its own lives in the Go core)."""
    data, pos, block, part = path.read_bytes(), 7, 32768, b""
    assert data[:4] == b":W&B", f"{path} is not a wandb transaction log"
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        part, pos = part + data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(part)
            yield record
            part = b""


def read_run(folder: Path) -> dict[str, Any]:
    """An offline run folder's id, config (every update merged) and history rows (key -> value)."""
    run: dict[str, Any] = {"id": None, "config": {}, "history": []}
    for record in records(next(folder.glob("run-*.wandb"))):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run["id"] = record.run.run_id
            items = list(record.run.config.update)
        elif kind == "config":
            items = list(record.config.update)
        elif kind == "history":
            row = {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in record.history.item}
            run["history"].append(row)
            continue
        else:
            continue
        run["config"].update({"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in items})
    return run


# ---------------------------------------------------------------------------------------- offline default
@pytest.fixture()
def no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No wandb setting in the environment and an empty ``.netrc``: what a fresh machine has."""
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine github.com login me password not-wandb\n")
    monkeypatch.setenv("NETRC", str(netrc))
    return netrc


def test_wandb_is_offline_without_credentials_and_left_to_wandb_with_them(
    no_credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not wandb_credentials_found()  # a netrc entry for another host is not a wandb key
    wandb_offline_by_default()
    assert os.environ["WANDB_MODE"] == "offline"

    # `wandb login` writes the key to .netrc for W&B's server: wandb would sync, so the mode is left unset.
    monkeypatch.delenv("WANDB_MODE")
    no_credentials.write_text(f"machine api.wandb.ai\n  login user\n  password {KEY}\n")
    wandb_offline_by_default()
    assert "WANDB_MODE" not in os.environ
    # ... but only for the server wandb would talk to: a self-hosted WANDB_BASE_URL needs its own entry.
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org")
    assert not wandb_credentials_found()
    no_credentials.write_text(f"machine wandb.example.org login user password {KEY}\n")
    assert wandb_credentials_found()

    no_credentials.unlink()
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    wandb_offline_by_default()
    assert "WANDB_MODE" not in os.environ
    monkeypatch.setenv("WANDB_MODE", "disabled")
    wandb_offline_by_default()  # the user's choice is kept
    assert os.environ["WANDB_MODE"] == "disabled"


# ------------------------------------------------------------------------------------------ fit and resume
def reskd(*args: str) -> str:
    """``reskd ARGS`` in process; the wandb run's id. The run is finished as the process's exit would."""
    cli = cli_main(list(args))
    run_id = cli.trainer.logger.version
    wandb.finish()
    return run_id


@pytest.fixture(scope="module")
def runs(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A ResKD fit of one epoch to an offline WandbLogger, ``--ckpt_path last --trainer.max_epochs 2``, then
    ``reskd test`` of its checkpoint: the ids of the three wandb runs and their folders."""
    root = tmp_path_factory.mktemp("wandb_fit")
    teacher = root / "teacher.pt"  # a plain state dict of the teacher network: teacher_ckpt takes those
    torch.save(TSN(4, backbone="resnet18", dropout=0.0).state_dict(), teacher)
    config = yaml.safe_load(write_config(root / "s.yaml", demo_root, root / "run", "student", teacher).read_text())
    config["trainer"]["logger"] = {
        "class_path": "pytorch_lightning.loggers.WandbLogger",
        "init_args": {"save_dir": str(root / "logs"), "project": "reskd-test"},
    }
    config["trainer"]["callbacks"][-1]["init_args"]["save_last"] = True
    config["trainer"].update(log_every_n_steps=1, limit_val_batches=1, limit_test_batches=1, num_sanity_val_steps=0)
    (root / "s.yaml").write_text(yaml.safe_dump(config))
    cfg = ("--config", str(root / "s.yaml"))
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("WANDB_API_KEY", raising=False)
        mp.setenv("NETRC", str(root / "no_netrc"))
        mp.delenv("WANDB_MODE", raising=False)  # the CLI makes the run offline by itself: there are no credentials
        ids = {"first": reskd("fit", *cfg)}
        assert os.environ["WANDB_MODE"] == "offline"
        ids["resumed"] = reskd("fit", *cfg, "--ckpt_path", "last", "--trainer.max_epochs", "2")
        ids["test"] = reskd("test", *cfg, "--ckpt_path", str(root / "run" / "student.ckpt"))
    folders = sorted((root / "logs" / "wandb").glob("offline-run-*"))
    return {"root": root, "ids": ids, "config": root / "s.yaml", "folders": folders}


def test_a_resumed_fit_continues_the_same_offline_wandb_run(runs: dict[str, Any]) -> None:
    first = runs["ids"]["first"]
    assert runs["ids"]["resumed"] == first
    # Offline, each process writes its own folder; `wandb sync` uploads the folders of one id into one run.
    folders = [f for f in runs["folders"] if f.name.endswith(f"-{first}")]
    assert len(folders) == 2
    fits = [read_run(f) for f in folders]
    assert [r["id"] for r in fits] == [first, first]
    assert wandb_run_of_checkpoint(runs["root"] / "run" / "student.ckpt") == {"id": first, "project": "reskd-test"}
    assert fits[1]["config"]["trainer"]["logger"]["init_args"]["id"] == first  # also in the saved config.yaml

    steps = [[row["trainer/global_step"] for row in r["history"] if "trainer/global_step" in row] for r in fits]
    assert steps[0] and min(steps[1]) == max(steps[0]) + 1  # the resumed fit's steps go on from the first's


def test_the_wandb_run_gets_the_whole_cli_config_and_every_loss_term(runs: dict[str, Any]) -> None:
    fits = [read_run(f) for f in runs["folders"] if f.name.endswith(f"-{runs['ids']['first']}")]
    for run, epochs in zip(fits, (1, 2)):
        config = run["config"]
        assert config["data"]["batch_size"] == 4 and config["model"]["num_classes"] == 4  # linked values too
        assert config["trainer"]["max_epochs"] == epochs
        keys = set().union(*run["history"])
        assert {"train/ce_step", "train/distill/feature_map_kd_step", "train/loss_step", "val/acc1"} <= keys
    assert fits[1]["config"]["ckpt_path"] == "last"


def test_reskd_test_puts_its_metrics_and_per_video_predictions_in_a_wandb_run_of_its_own(
    runs: dict[str, Any],
) -> None:
    # Only `fit` continues the checkpoint's run: an evaluation's config would overwrite the training's.
    assert runs["ids"]["test"] != runs["ids"]["first"]
    (folder,) = [f for f in runs["folders"] if f.name.endswith(f"-{runs['ids']['test']}")]
    run = read_run(folder)
    assert run["config"]["ckpt_path"].endswith("student.ckpt")
    assert 0.0 <= next(row["test/acc1"] for row in run["history"] if "test/acc1" in row) <= 1.0
    predictions = (folder / "files" / "predictions_test.csv").read_text().splitlines()
    assert predictions[0].startswith("video,labels,top5_ids,top5_scores")
    assert len(predictions) == 1 + 8  # a header and the demo's 8 test videos (conftest: 4 classes x 2)


def test_an_id_in_the_config_wins_over_the_checkpoint_and_other_loggers_are_left_alone(
    runs: dict[str, Any], tmp_path: Path
) -> None:
    ckpt = runs["root"] / "run" / "student.ckpt"
    config = yaml.safe_load(runs["config"].read_text())
    config["trainer"]["logger"]["init_args"]["id"] = "mine"
    assert resume_wandb_logger_args(config, ckpt) is None and config["trainer"]["logger"]["init_args"]["id"] == "mine"

    config["trainer"]["logger"] = [
        {"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"save_dir": str(tmp_path)}},
        {"class_path": "pytorch_lightning.loggers.WandbLogger"},
    ]
    assert resume_wandb_logger_args(config, ckpt) == runs["ids"]["first"]
    assert config["trainer"]["logger"][1]["init_args"] == {"id": runs["ids"]["first"]}
    assert "id" not in config["trainer"]["logger"][0]["init_args"]

    # A checkpoint of a run without wandb (or from before the id was saved) starts a new run.
    checkpoint = torch.load(ckpt, weights_only=False)
    del checkpoint[CHECKPOINT_KEY]
    torch.save(checkpoint, tmp_path / "old.ckpt")
    config["trainer"]["logger"][1] = {"class_path": "pytorch_lightning.loggers.WandbLogger"}
    assert resume_wandb_logger_args(config, tmp_path / "old.ckpt") is None
    assert resume_wandb_logger_args(config, None) is None
    # "last" is looked up in the ModelCheckpoint's dirpath; without one it lies under the run id still unknown.
    assert resume_wandb_logger_args(config, "last") == runs["ids"]["first"]
    del config["trainer"]["callbacks"][-1]["init_args"]["dirpath"], config["trainer"]["logger"][1]["init_args"]
    assert resume_wandb_logger_args(config, "last") is None and "init_args" not in config["trainer"]["logger"][1]


def test_an_evaluation_file_lands_in_the_offline_run(tmp_path: Path) -> None:
    csv = tmp_path / "predictions_test.csv"
    csv.write_text("video,labels,top5_ids,top5_scores\na.mp4,1,1 0,0.9 0.1\n")
    logger = WandbLogger(save_dir=str(tmp_path), project="reskd-test")
    log_file([logger, None], csv)
    run_dir = Path(logger.experiment.dir)
    wandb.finish()
    assert (run_dir / "predictions_test.csv").read_text() == csv.read_text()
    with pytest.raises(FileNotFoundError, match="no file to log at .*missing.csv"):
        log_file(logger, tmp_path / "missing.csv")
