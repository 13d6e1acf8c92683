"""`reskd` as a user runs it: fit on real demo videos, the two ResKD stages, shipped configs, the tools' dispatch."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from demo_configs import write_config

from reskd_lightning import ResKDModule
from reskd_lightning.cli import TOOLS, main, tool
from reskd_lightning.lightning_cli import cli_main
from reskd_lightning.tools.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


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
        load_config(cfg)  # ResKDCLI with run=False, as every tool reads a config


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


def test_demo_data_tool_writes_real_videos(tmp_path: Path) -> None:
    main(["demo-data", str(tmp_path / "demo"), "--num-train-per-class", "1", "--num-val-per-class", "1",
          "--num-frames", "4", "--size", "32"])
    lines = (tmp_path / "demo" / "train.txt").read_text().splitlines()
    assert len(lines) == 4 and all((tmp_path / "demo" / line.split()[0]).is_file() for line in lines)


def test_help_lists_lightning_subcommands_and_tools(capsys: pytest.CaptureFixture) -> None:
    main(["--help"])
    text = capsys.readouterr().out
    assert "fit,validate,test,predict" in text and "demo-data" in text


@pytest.mark.parametrize("command", [*TOOLS, "predict"])
def test_cli_only_dispatches_each_tool_to_the_main_of_its_module(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `reskd TOOL ARGS` calls reskd_lightning.tools.<module>.main(ARGS); `reskd predict` is the predict tool
    # only with --video or --list.
    import importlib

    module = importlib.import_module(f"reskd_lightning.tools.{TOOLS.get(command, 'predict')}")
    assert tool(TOOLS.get(command, "predict")) is module.main
    calls: list[list[str]] = []
    monkeypatch.setattr(module, "main", lambda argv: calls.append(list(argv)))
    argv = ["--ckpt_path", "x.ckpt", "--video", "a.mp4"] if command == "predict" else ["--config", "x.yaml"]
    main([command, *argv])
    assert calls == [argv]


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
