"""`reskd benchmark` and its measuring functions, on tiny TSN-R18 configs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml
from pytorch_lightning.loggers import CSVLogger
from torch.nn.modules.batchnorm import _BatchNorm

from reskd_lightning import FeatureMapKD, ResKDModule
from reskd_lightning.benchmark import measure_training_step, run_benchmark, synthetic_batch
from reskd_lightning.efficiency import measure_inference
from reskd_lightning.models import TSN
from reskd_lightning.tools.benchmark import main as benchmark_main


def tiny_config(tmp_path: Path) -> Path:
    """TSN-R18 student at 32 px <- TSN-R18 teacher at 64 px, 2 segments; a GPU/DDP trainer section and a
    teacher checkpoint that does not exist, as in a recipe run on a laptop."""
    tsn = {"class_path": "reskd_lightning.models.TSN", "init_args": {"backbone": "resnet18"}}
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "gpu", "devices": 8, "strategy": "ddp", "precision": "16-mixed",
            "logger": {"class_path": "pytorch_lightning.loggers.CSVLogger",
                       "init_args": {"save_dir": str(tmp_path / "logs"), "name": "bench"}},
            "callbacks": [
                {"class_path": "reskd_lightning.FeatureMapKD", "init_args": {"weight": 100}},
                {"class_path": "pytorch_lightning.callbacks.ModelCheckpoint"},
            ],
        },
        "model": {"student": tsn, "teacher": tsn, "teacher_ckpt": str(tmp_path / "missing.ckpt"),
                  "student_resolution": 32, "teacher_resolution": 64},
        "data": {"train_list": str(tmp_path / "train.txt"), "num_classes": 4, "num_segments": 2, "crop_size": 64,
                 "batch_size": 8},
    }  # fmt: skip
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_benchmark_tool_prints_the_table_and_writes_csv_and_png(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    benchmark_main([
        "--config", str(tiny_config(tmp_path)), "--batch", "2", "--iters", "2", "--warmup", "1", "--out", str(out),
        "--device", "cpu", "--logger", "--model.student_resolution", "16",
    ])  # fmt: skip
    text = capsys.readouterr().out
    assert f"teacher_ckpt {tmp_path / 'missing.ckpt'} not loaded: file not found" in text
    assert "clips 2 x 3 x 2 x 64 x 64 (uint8), distillers ['feature_map_kd']" in text
    assert "fp32 (the config's precision 16-mixed needs a GPU)" in text
    for measurement in ("student inference", "teacher inference", "student step", "teacher forward", "ResKD step"):
        assert f"| {measurement} |" in text
    assert "ResKD step / (student step + teacher forward) = " in text and "(target <= 1.10): " in text

    with (out / "benchmark.csv").open() as f:
        rows = {row["measurement"]: row for row in csv.DictReader(f)}
    assert rows["student step"]["resolution"] == "16"  # the override reached the model
    assert rows["teacher forward"]["resolution"] == "64"
    both = float(rows["student step"]["median_ms"]) + float(rows["teacher forward"]["median_ms"])
    assert float(rows["student step + teacher forward"]["median_ms"]) == pytest.approx(both)
    assert float(rows["ResKD step"]["ratio"]) == pytest.approx(float(rows["ResKD step"]["median_ms"]) / both)
    assert rows["ResKD step"]["target"] in ("ratio <= 1.1: PASS", "ratio <= 1.1: FAIL")
    assert (out / "benchmark.md").read_text().startswith("| measurement |")
    assert (out / "benchmark.png").read_bytes()[:4] == b"\x89PNG"
    # --logger: the config's CSVLogger got the table and the plot.
    log_dir = tmp_path / "logs" / "bench" / "version_0" / "benchmark"
    assert (log_dir / "table.csv").read_text() == (out / "benchmark.csv").read_text()
    assert (log_dir / "plot.png").read_bytes() == (out / "benchmark.png").read_bytes()


def bn_modes(network: torch.nn.Module) -> list[bool]:
    return [m.training for m in network.modules() if isinstance(m, _BatchNorm)]


def test_measurements_take_real_steps_and_keep_the_teacher_frozen_in_its_bn_mode(tmp_path: Path) -> None:
    module = ResKDModule(TSN(4, backbone="resnet18"), TSN(4, backbone="resnet18"), student_resolution=16,
                         teacher_resolution=32)  # fmt: skip
    module.train()
    teacher_before = {k: v.clone() for k, v in module.teacher.named_parameters()}
    student_before = module.student.backbone.conv1.weight.clone()
    batch = synthetic_batch(2, 2, 32, 4)
    assert batch["video"].dtype == torch.uint8 and batch["video"].shape == (2, 3, 2, 32, 32)

    timing = measure_inference(module.teacher, batch["video"], warmup=0, iters=2, name="teacher inference")
    assert (timing.resolution, timing.frames, timing.batch, len(timing.seconds)) == (32, 2, 2, 2)
    assert all(bn_modes(module.teacher)) and not module.teacher.training  # BN train mode survives eval timing

    steps = measure_training_step(module, batch, distillers=[FeatureMapKD()], warmup=0, iters=2)
    assert list(steps) == ["student_step", "teacher_forward", "reskd_step"]
    assert all(len(t.seconds) == 2 and len(t.cpu_seconds) == 2 and t.median_s > 0 for t in steps.values())
    assert (steps["student_step"].resolution, steps["teacher_forward"].resolution) == (16, 32)
    assert [d.name for d in module.distillers] == ["feature_map_kd"]
    assert not torch.equal(module.student.backbone.conv1.weight, student_before)  # optimizer.step ran
    assert all(torch.equal(v, teacher_before[k]) for k, v in module.teacher.named_parameters())
    assert all(bn_modes(module.teacher))

    # Without a teacher only the student's step is measured; with a logger and no out_dir, only the logger
    # gets files.
    logger = CSVLogger(tmp_path, name="logs")
    result = run_benchmark(ResKDModule(TSN(4, backbone="resnet18"), student_resolution=16), frames=2, size=32,
                           batch_size=2, warmup=0, iters=1, device="cpu", loggers=logger)  # fmt: skip
    assert [r["measurement"] for r in result.rows] == ["student inference", "student step"]
    assert result.ratio is None and result.files == [] and "only the student" in result.summary()
    assert sorted(p.name for p in (Path(logger.log_dir) / "benchmark").iterdir()) == ["plot.png", "table.csv"]


def test_benchmark_tool_logs_table_plot_and_config_to_an_offline_wandb_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wandb = pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)  # the tool makes wandb offline by itself
    config = yaml.safe_load(tiny_config(tmp_path).read_text())
    config["trainer"]["logger"] = {"class_path": "pytorch_lightning.loggers.WandbLogger",
                                   "init_args": {"save_dir": str(tmp_path), "project": "reskd-test"}}  # fmt: skip
    (tmp_path / "wandb.yaml").write_text(yaml.safe_dump(config))
    benchmark_main(["--config", str(tmp_path / "wandb.yaml"), "--batch", "2", "--iters", "1", "--warmup", "0",
                    "--out", str(tmp_path / "out"), "--device", "cpu", "--logger"])  # fmt: skip
    run = wandb.run
    assert run is not None and run.offline
    run_config, files = dict(run.config), Path(run.dir)
    run.finish()
    assert run_config["model"]["student_resolution"] == 32 and run_config["data"]["batch_size"] == 8
    table = json.loads(next((files / "media" / "table" / "benchmark").glob("table_*.table.json")).read_text())
    assert "ResKD step" in [row[0] for row in table["data"]]
    assert list((files / "media" / "images" / "benchmark").glob("plot_*.png"))
