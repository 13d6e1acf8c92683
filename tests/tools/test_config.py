"""`load_config`: the one config loader of the tools, tests and notebooks, built on ResKDCLI (run=False)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
import yaml
from demo_configs import write_config
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger

from reskd_lightning import FeatureMapKD
from reskd_lightning.lightning_cli import cli_main
from reskd_lightning.models import TSN
from reskd_lightning.tools.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def teacher_file(path: Path) -> Path:
    """A stage-1 style checkpoint of a TSN-R18 with 4 classes."""
    torch.save({"state_dict": {f"student.{k}": v for k, v in TSN(4, backbone="resnet18").state_dict().items()}}, path)
    return path


def test_the_loader_builds_what_reskd_fit_builds(demo_root: Path, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "student.yaml", demo_root, tmp_path, "student", teacher_file(tmp_path / "t.ckpt"))
    cli = cli_main(["--config", str(cfg), "--data.batch_size", "2"], run=False)
    loaded = load_config(cfg, ["--data.batch_size", "2"], build_trainer=True)
    # The same seed, so the same initial weights; the same links (classes, views), the same trainer.
    assert loaded.model.state_dict().keys() == cli.model.state_dict().keys()
    assert all(torch.equal(v, cli.model.state_dict()[k]) for k, v in loaded.model.state_dict().items())
    assert dict(loaded.model.hparams) == dict(cli.model.hparams)
    assert dict(loaded.datamodule.hparams) == dict(cli.datamodule.hparams)
    assert loaded.datamodule.hparams.resolutions == [64, 32] and loaded.datamodule.hparams.batch_size == 2
    assert [type(c) for c in loaded.trainer.callbacks] == [type(c) for c in cli.trainer.callbacks]
    assert (loaded.trainer.max_epochs, loaded.trainer.limit_train_batches) == (1, 2)
    assert loaded.to_dict() == yaml.safe_load(cli.parser.dump(cli.config, skip_link_targets=False))
    assert loaded.to_dict()["model"]["num_classes"] == 4  # a linked value
    # The configured callbacks and loggers, and the rest of the trainer section as Trainer arguments.
    assert [type(c) for c in loaded.callbacks] == [FeatureMapKD, ModelCheckpoint]
    assert [type(lg) for lg in loaded.loggers] == [CSVLogger]
    assert "callbacks" not in loaded.trainer_kwargs and "logger" not in loaded.trainer_kwargs
    assert loaded.trainer_kwargs["max_epochs"] == 1 and loaded.trainer_kwargs["accelerator"] == "cpu"
    assert loaded.model_args is None and loaded.skipped_teacher_ckpt is None


def test_teacher_checkpoint_modes(demo_root: Path, tmp_path: Path) -> None:
    ckpt = teacher_file(tmp_path / "t.ckpt")
    cfg = write_config(tmp_path / "student.yaml", demo_root, tmp_path, "student", ckpt)
    stage1 = torch.load(ckpt)["state_dict"]["student.backbone.conv1.weight"]
    loaded = load_config(cfg)
    assert torch.equal(loaded.model.teacher.backbone.conv1.weight, stage1) and loaded.trainer is None
    skipped = load_config(cfg, teacher_ckpt="skip")
    assert skipped.skipped_teacher_ckpt == str(ckpt)
    assert not torch.equal(skipped.model.teacher.backbone.conv1.weight, stage1)
    missing = write_config(tmp_path / "m.yaml", demo_root, tmp_path, "student", tmp_path / "missing.ckpt")
    assert load_config(missing, teacher_ckpt="if_exists").skipped_teacher_ckpt == str(tmp_path / "missing.ckpt")
    assert load_config(cfg, teacher_ckpt="if_exists").skipped_teacher_ckpt is None
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        load_config(missing)
    with pytest.raises(ValueError, match="teacher_ckpt must be one of"):
        load_config(cfg, teacher_ckpt="maybe")  # type: ignore[arg-type]


def test_without_the_model_the_networks_are_factories_and_a_data_only_config_reads(
    demo_root: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.ckpt"  # not read: the model is not built
    cfg = write_config(tmp_path / "student.yaml", demo_root, tmp_path, "student", missing)
    loaded = load_config(cfg, build_model=False, callbacks=False, loggers=False)
    assert loaded.model is None and loaded.callbacks == [] and loaded.loggers == []
    args = loaded.model_args
    assert args["teacher_ckpt"] == str(missing) and args["student_resolution"] == 32 and args["num_classes"] == 4
    student = args["student"](4)
    assert isinstance(student, TSN) and student.num_classes == 4 and student.backbone_name == "resnet18"
    assert loaded.datamodule.hparams.resolutions == [64, 32]

    data_only = tmp_path / "data.yaml"
    data_only.write_text(yaml.safe_dump({"data": {"demo_data": str(demo_root), "num_classes": 4, "num_segments": 2}}))
    loaded = load_config(data_only, ["--data.batch_size", "3"], build_model=False)
    assert loaded.model_args["student"] is None and loaded.datamodule.hparams.batch_size == 3
    with pytest.raises(SystemExit):  # a model is built only from a config that names its network
        load_config(data_only)


def test_anet_recipe_instantiates_the_papers_pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The student's ImageNet weights come through torchvision's real download path; here they are already in
    # the cache, as after a first download. The teacher checkpoint is a stage-1 style file.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    weights = torchvision.models.ResNet50_Weights.IMAGENET1K_V1
    cached = tmp_path / "torch" / "hub" / "checkpoints" / Path(weights.url).name
    cached.parent.mkdir(parents=True)
    imagenet = torchvision.models.resnet50().state_dict()
    torch.save(imagenet, cached)
    teacher = TSN(200, backbone="resnet152")
    torch.save({"state_dict": {f"student.{k}": v for k, v in teacher.state_dict().items()}}, tmp_path / "t.ckpt")
    del teacher
    cli = load_config(
        CONFIGS / "anet.yaml",
        ["--model.teacher_ckpt", str(tmp_path / "t.ckpt"), "--trainer.accelerator", "cpu", "--trainer.devices", "1",
         "--trainer.strategy", "auto", "--trainer.precision", "32-true"],
        build_trainer=True,
    )  # fmt: skip
    model, data = cli.model, cli.datamodule
    assert (model.num_classes, model.student_resolution, model.teacher_resolution) == (200, 112, 224)
    assert torch.equal(model.student.backbone.conv1.weight, imagenet["conv1.weight"])
    assert len(model.teacher.backbone.layer3) == 36 and len(model.student.backbone.layer3) == 6
    assert data.settings["num_segments"] == 16 and data.hparams.resolutions == [224, 112]
    assert model.metric == "mAP" and data.metric == "mAP"  # the activitynet preset, linked to the model
    assert cli.trainer.gradient_clip_val == 20 and cli.trainer.max_epochs == 200
    distillers = [c for c in cli.trainer.callbacks if type(c).__name__ == "FeatureMapKD"]
    assert len(distillers) == 1 and distillers[0].weight == 100
    optimizer = model.optimizer_factory(model.trainable_parameters())
    assert (optimizer.defaults["lr"], optimizer.defaults["momentum"], optimizer.defaults["weight_decay"]) == (
        0.01, 0.9, 1e-4
    )
