"""`reskd` as a user runs it: fit on real demo videos, the two ResKD stages, shipped configs, tools."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
import yaml

from reskd_lightning import ResKDModule
from reskd_lightning.cli import cli_main, main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def write_config(path: Path, demo_root: Path, root: Path, stage: str, teacher_ckpt: Path | None = None) -> Path:
    """A tiny two-stage demo: teacher TSN-R18 at 64 px, student at 32 px, 2 segments, 2 steps."""
    tsn = {"class_path": "reskd_lightning.models.TSN", "init_args": {"backbone": "resnet18", "dropout": 0.0}}
    config: dict[str, Any] = {
        "seed_everything": 0,
        "trainer": {
            "max_epochs": 1,
            "limit_train_batches": 2,
            "limit_val_batches": 2,
            "accelerator": "cpu",
            "default_root_dir": str(root),
            "enable_progress_bar": False,
            "logger": {"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"save_dir": str(root)}},
            "callbacks": [
                {
                    "class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
                    "init_args": {"dirpath": str(root), "filename": stage, "enable_version_counter": False},
                }
            ],
        },
        "model": {"student": tsn, "student_resolution": 64 if stage == "teacher" else 32},
        "data": {
            "demo_data": str(demo_root),
            "num_classes": 4,
            "num_segments": 2,
            "short_side": 64,
            "crop_size": 64,
            "batch_size": 4,
            "num_workers": 0,
        },
    }
    if stage == "student":
        config["model"].update(teacher=tsn, teacher_ckpt=str(teacher_ckpt), teacher_resolution=64)
        config["trainer"]["callbacks"].insert(
            0, {"class_path": "reskd_lightning.FeatureMapKD", "init_args": {"weight": 100}}
        )
    path.write_text(yaml.safe_dump(config))
    return path


def test_cli_fit_teacher_then_student_writes_checkpoints(
    demo_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    teacher_cfg = write_config(tmp_path / "teacher.yaml", demo_root, tmp_path / "teacher", "teacher")
    cli = cli_main(["fit", "--config", str(teacher_cfg)])
    teacher_ckpt = tmp_path / "teacher" / "teacher.ckpt"
    assert teacher_ckpt.is_file() and cli.trainer.global_step == 2
    assert "val/acc1" in cli.trainer.callback_metrics

    student_cfg = write_config(tmp_path / "student.yaml", demo_root, tmp_path / "student", "student", teacher_ckpt)
    cli = cli_main(["fit", "--config", str(student_cfg)])
    assert cli.datamodule.hparams.resolutions == [64, 32]  # linked from the model's resolutions
    # The teacher came from the stage-1 checkpoint ...
    stage1 = torch.load(teacher_ckpt, weights_only=False)["state_dict"]
    assert torch.equal(cli.model.teacher.backbone.conv1.weight, stage1["student.backbone.conv1.weight"])
    # ... and is not in the student's checkpoint; the distillation term was logged.
    state = torch.load(tmp_path / "student" / "student.ckpt", weights_only=False)["state_dict"]
    assert state and not [k for k in state if k.startswith("teacher.")]
    assert float(cli.trainer.callback_metrics["train/distill/feature_map_kd_epoch"]) > 0
    assert "final val/acc1 = " in caplog.text  # what `reskd fit` prints at the end

    # Validation from the checkpoint runs the student alone at its resolution.
    cli = cli_main(["validate", "--config", str(student_cfg), "--ckpt_path", str(tmp_path / "student" / "student.ckpt")])
    assert 0.0 <= float(cli.trainer.callback_metrics["val/acc1"]) <= 1.0

    # Test and predict use the test list (the demo's val list): multi-clip views averaged, probabilities out.
    ckpt = str(tmp_path / "student" / "student.ckpt")
    cli = cli_main(["test", "--config", str(student_cfg), "--ckpt_path", ckpt])
    assert 0.0 <= float(cli.trainer.callback_metrics["test/acc1"]) <= 1.0
    cli = cli_main(["predict", "--config", str(student_cfg), "--ckpt_path", ckpt, "--trainer.limit_predict_batches", "1"])
    predictions = cli.trainer.predict_loop.predictions
    assert predictions[0]["probs"].shape == (4, 4) and torch.allclose(predictions[0]["probs"].sum(-1), torch.ones(4))

    # The checkpoint alone rebuilds the module: LightningCLI stored the networks' class paths.
    restored = ResKDModule.load_from_checkpoint(tmp_path / "student" / "student.ckpt")
    assert (restored.student_resolution, restored.teacher_resolution) == (32, 64)
    assert torch.equal(restored.student.backbone.conv1.weight, cli.model.student.backbone.conv1.weight)
    assert torch.equal(restored.teacher.backbone.conv1.weight, stage1["student.backbone.conv1.weight"])


def test_cli_reports_a_missing_teacher_checkpoint(demo_root: Path, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "s.yaml", demo_root, tmp_path, "student", tmp_path / "no_teacher.ckpt")
    with pytest.raises(FileNotFoundError, match=r"no_teacher.ckpt.*does not exist: train the teacher stage first"):
        cli_main(["--config", str(cfg)], run=False)  # run=False: no subcommand


def test_cli_reports_a_label_beyond_num_classes(demo_root: Path, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "t.yaml", demo_root, tmp_path, "teacher")
    with pytest.raises(ValueError, match=r"train.txt: video '.*' has label 3.*num_classes"):
        cli_main(["fit", "--config", str(cfg), "--data.num_classes", "3"])


# Every shipped config round-trips in process in tests/test_recipes.py; this one goes through a real process.
@pytest.mark.parametrize("name", ["anet.yaml"])
def test_shipped_configs_round_trip_through_print_config(name: str, tmp_path: Path) -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "reskd_lightning.cli", "fit", "--config", str(CONFIGS / name), "--print_config"],
        capture_output=True, text=True, check=True,
    ).stdout
    (tmp_path / "printed.yaml").write_text(printed)
    again = subprocess.run(
        [sys.executable, "-m", "reskd_lightning.cli", "fit", "--config", str(tmp_path / "printed.yaml"),
         "--print_config"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert yaml.safe_load(again) == yaml.safe_load(printed)


def test_anet_recipe_instantiates_the_papers_pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The student's ImageNet weights come through torchvision's real download path; here they are already in
    # the cache, as after a first download. The teacher checkpoint is a stage-1 style file.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    weights = torchvision.models.ResNet50_Weights.IMAGENET1K_V1
    cached = tmp_path / "torch" / "hub" / "checkpoints" / Path(weights.url).name
    cached.parent.mkdir(parents=True)
    imagenet = torchvision.models.resnet50().state_dict()
    torch.save(imagenet, cached)
    from reskd_lightning.models import TSN

    teacher = TSN(200, backbone="resnet152")
    torch.save({"state_dict": {f"student.{k}": v for k, v in teacher.state_dict().items()}}, tmp_path / "t.ckpt")
    del teacher
    cli = cli_main(
        ["--config", str(CONFIGS / "anet.yaml"), "--model.teacher_ckpt", str(tmp_path / "t.ckpt"),
         "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.strategy", "auto",
         "--trainer.precision", "32-true"],
        run=False,
    )
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


def test_demo_data_tool_writes_real_videos(tmp_path: Path) -> None:
    main(["demo-data", str(tmp_path / "demo"), "--num-train-per-class", "1", "--num-val-per-class", "1",
          "--num-frames", "4", "--size", "32"])
    lines = (tmp_path / "demo" / "train.txt").read_text().splitlines()
    assert len(lines) == 4 and all((tmp_path / "demo" / line.split()[0]).is_file() for line in lines)


def test_help_lists_lightning_subcommands_and_tools(capsys: pytest.CaptureFixture) -> None:
    main(["--help"])
    text = capsys.readouterr().out
    assert "fit,validate,test,predict" in text and "demo-data" in text


def test_check_data_lists_every_unreadable_video(demo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    lines = (demo_root / "val.txt").read_text().splitlines()
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 2048)
    (tmp_path / "val.txt").write_text(
        "".join(f"{demo_root / line}\n" for line in lines) + f"{tmp_path / 'broken.mp4'} 1\n{tmp_path / 'gone.mp4'} 2\n"
    )
    config = tmp_path / "data.yaml"
    config.write_text(
        f"trainer: {{max_epochs: 1}}\nmodel: {{student_resolution: 28}}\n"
        f"data:\n  val_list: {tmp_path / 'val.txt'}\n  short_side: 64\n  crop_size: 56\n  num_segments: 2\n  num_workers: 1\n"
    )
    with pytest.raises(SystemExit, match="2 unreadable videos"):
        main(["check-data", "--config", str(config), "--num-workers", "0"])
    out = capsys.readouterr().out
    assert f"val: 10 videos from {tmp_path / 'val.txt'}, 2 unreadable" in out
    assert f"record 8: {tmp_path / 'broken.mp4'}: VideoDecodeError" in out
    assert f"record 9: {tmp_path / 'gone.mp4'}: FileNotFoundError" in out
    (tmp_path / "val.txt").write_text("".join(f"{demo_root / line}\n" for line in lines))
    main(["check-data", "--config", str(config), "--data.num_segments", "4"])  # all readable: no exit
    assert "val: 8 videos" in capsys.readouterr().out
