"""Tables and plots to files and loggers: CSV/Markdown, atomic writes, CSVLogger, offline wandb, the CLI config."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from demo_configs import write_config
from matplotlib.figure import Figure
from pytorch_lightning.loggers import CSVLogger, Logger, WandbLogger

from reskd_lightning.lightning_cli import cli_main
from reskd_lightning.reporting import log_image, log_table, save_plot, wandb_offline_by_default, write_table
from reskd_lightning.tools.config import load_config

ROWS = [
    {"measurement": "student step", "resolution": 112, "median_ms": 812.3456, "ratio": None},
    {"measurement": "ResKD step", "resolution": 224, "median_ms": 1999.5, "ratio": 1.0312, "note": "a|b"},
]


def figure() -> Figure:
    fig = Figure(figsize=(3, 2))
    fig.add_subplot().bar(["student", "teacher"], [3.0, 1.0])
    return fig


def test_write_table_writes_csv_and_markdown(tmp_path: Path) -> None:
    csv_path, md_path = write_table(ROWS, tmp_path / "out", "bench")
    assert (csv_path, md_path) == (tmp_path / "out" / "bench.csv", tmp_path / "out" / "bench.md")
    with csv_path.open() as f:
        read = list(csv.DictReader(f))
    # Columns are every key in order of first appearance; missing and None values are empty cells.
    assert list(read[0]) == ["measurement", "resolution", "median_ms", "ratio", "note"]
    assert read[0] == {"measurement": "student step", "resolution": "112", "median_ms": "812.3456", "ratio": "",
                       "note": ""}  # fmt: skip
    assert float(read[1]["ratio"]) == 1.0312 and read[1]["note"] == "a|b"
    lines = md_path.read_text().splitlines()
    assert lines[0] == "| measurement | resolution | median_ms | ratio | note |"
    assert lines[1] == "| --- | --- | --- | --- | --- |"
    assert lines[2] == "| student step | 112 | 812.3 |  |  |"
    assert lines[3] == "| ResKD step | 224 | 1999.5 | 1.031 | a\\|b |"


def test_atomic_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    write_table(ROWS, tmp_path, "bench")
    write_table(ROWS[:1], tmp_path, "bench")  # overwriting replaces the file whole
    save_plot(figure(), tmp_path / "plot.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.csv", "bench.md", "plot.png"]
    assert len((tmp_path / "bench.csv").read_text().splitlines()) == 2
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    class Unwritable(Figure):
        def savefig(self, fname, *args, **kwargs):  # type: ignore[override]
            Path(fname).write_bytes(b"half")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_plot(Unwritable(), tmp_path / "plot.png")
    # The failed save left the old PNG and no temporary file behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.csv", "bench.md", "plot.png"]
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"


def test_csv_logger_gets_the_table_and_the_png(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path, name="logs")
    png = save_plot(figure(), tmp_path / "plot.png")

    class NoFiles(Logger):  # a logger without a log_dir gets nothing, and no error
        name = version = "x"

        def log_metrics(self, metrics, step=None):  # type: ignore[no-untyped-def]
            pass

        def log_hyperparams(self, params, *args, **kwargs):  # type: ignore[no-untyped-def]
            pass

    log_table([logger, NoFiles()], "benchmark/steps", ROWS)
    log_image([logger, NoFiles(), None], "benchmark/steps", png)
    log_table(None, "nothing", ROWS)
    log_dir = Path(logger.log_dir)
    with (log_dir / "benchmark" / "steps.csv").open() as f:
        assert [r["measurement"] for r in csv.DictReader(f)] == ["student step", "ResKD step"]
    assert (log_dir / "benchmark" / "steps.png").read_bytes() == png.read_bytes()


def test_offline_wandb_logger_gets_a_table_and_an_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    wandb_offline_by_default()
    assert os.environ["WANDB_MODE"] == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    wandb_offline_by_default()  # the user's choice is kept
    assert os.environ["WANDB_MODE"] == "disabled"
    monkeypatch.setenv("WANDB_MODE", "offline")

    logger = WandbLogger(save_dir=str(tmp_path), offline=True, project="reskd-test")
    png = save_plot(figure(), tmp_path / "plot.png")
    log_table(logger, "benchmark/steps", ROWS)
    log_image([logger], "benchmark/plot", png)
    run_dir = Path(logger.experiment.dir)
    logger.experiment.finish()
    tables = list((run_dir / "media" / "table" / "benchmark").glob("steps_*.table.json"))
    assert len(tables) == 1
    table = json.loads(tables[0].read_text())
    assert table["columns"] == ["measurement", "resolution", "median_ms", "ratio", "note"]
    assert table["data"][1][:2] == ["ResKD step", 224] and table["data"][0][3] is None
    assert list((run_dir / "media" / "images" / "benchmark").glob("plot_*.png"))


def test_cli_puts_the_whole_config_into_the_wandb_run(
    demo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = write_config(tmp_path / "teacher.yaml", demo_root, tmp_path / "run", "teacher")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    load_config(cfg)  # ResKDCLI, as `reskd fit` and every tool read a config
    assert os.environ["WANDB_MODE"] == "offline"  # set by the CLI before it builds the loggers

    cli = cli_main([
        "fit", "--config", str(cfg), "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1",
        "--trainer.logger", "pytorch_lightning.loggers.WandbLogger", "--trainer.logger.offline", "true",
        "--trainer.logger.save_dir", str(tmp_path / "wandb"), "--trainer.logger.project", "reskd-test",
    ])  # fmt: skip
    experiment = cli.trainer.logger.experiment
    config = dict(experiment.config)
    experiment.finish()
    assert config["model"]["student_resolution"] == 64 and config["data"]["batch_size"] == 4
    assert config["model"]["num_classes"] == 4  # linked values too
    assert config["trainer"]["limit_train_batches"] == 1
    assert config["trainer"]["callbacks"][0]["class_path"] == "pytorch_lightning.callbacks.ModelCheckpoint"
    assert config["model"]["student"]["init_args"]["backbone"] == "resnet18"
