"""`reskd analyze`: the key-finding analysis (modes A-E) on tiny real checkpoints of demo-video runs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from matplotlib.image import imread
from demo_configs import write_config
from torch import Tensor, nn

from reskd_lightning.analysis import ANALYSIS_MODES, NetworkAtResolution, RoundTrip, analyze, load_network, round_trip
from reskd_lightning.lightning_cli import cli_main
from reskd_lightning.module import ResKDModule
from reskd_lightning.tools.analyze import main as analyze_main
from reskd_lightning.tools.config import load_config


def load_data(config: Path, *overrides: str):  # type: ignore[no-untyped-def]
    """The config's DataModule, as `reskd analyze` reads it (the model is not built)."""
    return load_config(config, list(overrides), build_model=False, callbacks=False).datamodule

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Checkpoints of 2-step runs: a TSN-R18 at 64 px, one at 32 px, and a ResKD student (32 px <- 64 px)."""
    root = tmp_path_factory.mktemp("runs")
    high_cfg = write_config(root / "high.yaml", demo_root, root / "high", "teacher")  # 64 px
    low_cfg = write_config(root / "low.yaml", demo_root, root / "low", "low")  # 32 px
    high = root / "high" / "teacher.ckpt"
    student_cfg = write_config(root / "student.yaml", demo_root, root / "student", "student", high)
    for config in (high_cfg, low_cfg, student_cfg):
        cli_main(["fit", "--config", str(config), "--trainer.limit_val_batches", "0"])
    return {
        "high": high, "low": root / "low" / "low.ckpt", "student": root / "student" / "student.ckpt",
        "config": high_cfg, "student_config": student_cfg,
    }  # fmt: skip


def read_rows(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    with path.open() as f:
        return {(row["mode"], row["resolution"]): row for row in csv.DictReader(f)}


def test_analyze_writes_every_mode_at_every_resolution(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # The config's CSVLogger (trainer section) also receives the table and the plots.
    config = yaml.safe_load(runs["config"].read_text())
    config["trainer"]["logger"]["init_args"]["save_dir"] = str(tmp_path / "logs")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "analysis"
    analyze_main([
        "--config", str(tmp_path / "config.yaml"), "--high", str(runs["high"]),
        "--low-res", f"32={runs['low']}", f"48={tmp_path / 'never_trained.ckpt'}",
        "--student", str(runs["student"]),  # the checkpoint knows its resolution (32)
        "--resolutions", "64", "48", "32", "--out", str(out), "--data.batch_size", "2",
    ])  # fmt: skip

    rows = read_rows(out / "analysis.csv")
    done = {key for key, row in rows.items() if row["value"]}
    assert done == {("A", "64"), ("B", "48"), ("B", "32"), ("C", "32"), ("D", "64"), ("D", "48"), ("D", "32"),
                    ("E", "32")}  # fmt: skip
    for key in done:
        row = rows[key]
        assert row["metric"] == "val/acc1" and 0.0 <= float(row["value"]) <= 1.0 and not row["note"]
        assert row["description"] == ANALYSIS_MODES[key[0]]
    gmacs = {key: float(rows[key]["gmacs"]) for key in done}
    # Cost falls with resolution; one architecture costs the same at one resolution whatever trained it; D
    # runs A's network at the high resolution.
    assert gmacs[("A", "64")] > gmacs[("B", "48")] > gmacs[("B", "32")] > 0
    assert gmacs[("C", "32")] == gmacs[("E", "32")] == gmacs[("B", "32")]
    assert gmacs[("D", "32")] == gmacs[("D", "48")] == gmacs[("A", "64")]
    # Resizing to the clip's own size is the identity: D at the high resolution is A.
    assert rows[("D", "64")]["value"] == rows[("A", "64")]["value"]
    assert rows[("A", "64")]["checkpoint"] == str(runs["high"])
    assert rows[("E", "32")]["checkpoint"] == str(runs["student"])
    # The missing checkpoint leaves its mode out, with the reason.
    missing = rows[("C", "48")]
    assert missing["value"] == "" and missing["note"].startswith("left out: checkpoint")
    assert "never_trained.ckpt' does not exist" in missing["note"]

    for name in ("accuracy_vs_resolution.png", "accuracy_vs_gmacs.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
        assert imread(out / name).shape[2] in (3, 4)  # decodes
    md = (out / "analysis.md").read_text()
    printed = capsys.readouterr().out
    header = "| mode | description | resolution | metric | value | gmacs | checkpoint | note |"
    assert md.splitlines()[0] == header
    assert header in printed and "| E | ResKD student | 32 | val/acc1 |" in printed
    assert "one clip of 2 frames, one view" in printed and "one clip of 2 frames, one view" in md
    assert "left out: (C) network trained at low res at 48 px: checkpoint" in printed

    log_dir = tmp_path / "logs" / "lightning_logs" / "version_0" / "analysis"
    logged = sorted(p.name for p in log_dir.iterdir())
    assert logged == ["accuracy_vs_gmacs.png", "accuracy_vs_resolution.png", "table.csv"]


def test_analyze_leaves_out_modes_without_checkpoints(runs: dict[str, Path], tmp_path: Path) -> None:
    datamodule = load_data(runs["config"], "--data.batch_size", "4")
    rows = analyze(
        datamodule, high=tmp_path / "missing_teacher.ckpt", low_res={32: runs["low"]}, resolutions=[64, 32],
        limit_batches=1, trainer_kwargs=dict(accelerator="cpu", enable_progress_bar=False),
    )  # fmt: skip
    by_mode = {row["mode"]: row for row in rows}
    assert len(rows) == 5 and [row["mode"] for row in rows] == ["A", "B", "C", "D", "E"]
    for mode in "ABD":
        assert by_mode[mode]["value"] is None
        assert "missing_teacher.ckpt' does not exist" in by_mode[mode]["note"]
    assert by_mode["E"]["value"] is None
    assert by_mode["E"]["note"] == "left out: no checkpoint given (--student)"
    assert 0.0 <= by_mode["C"]["value"] <= 1.0 and by_mode["C"]["resolution"] == 32


def test_each_mode_feeds_its_network_the_right_input_size(runs: dict[str, Path]) -> None:
    # B shows A's network the r-px view; D shows it the high-resolution view after a round trip through r px
    # (the same input size as A, not r: with r, D would be B again).
    from reskd_lightning.models import TSN

    sizes: list[tuple[int, int]] = []
    network = TSN(4, backbone="resnet18")
    # Batches of 4 are the evaluation's (the FLOP count runs one clip).
    network.register_forward_pre_hook(
        lambda _m, args: sizes.append(tuple(args[0].shape[-2:])) if args[0].shape[0] == 4 else None
    )
    datamodule = load_data(runs["config"], "--data.batch_size", "4")
    configured_views = list(datamodule.hparams.resolutions)
    rows = analyze(
        datamodule, high=network, resolutions=[64, 32], high_resolution=64, limit_batches=1,
        trainer_kwargs=dict(accelerator="cpu", enable_progress_bar=False),
    )  # fmt: skip
    evaluated = [(row["mode"], row["resolution"]) for row in rows if row["value"] is not None]
    assert sorted(evaluated) == [("A", 64), ("B", 32), ("D", 32), ("D", 64)]
    # Plan order: A at 64, B at 32, D at 64, D at 32; one batch each.
    assert sizes == [(64, 64), (32, 32), (64, 64), (64, 64)]
    # The views came from the DataModule's seam (views_at); its configured views are as they were.
    assert datamodule.hparams.resolutions == configured_views


def test_views_at_makes_only_the_asked_views_for_a_while(runs: dict[str, Path]) -> None:
    datamodule = load_data(runs["config"], "--data.batch_size", "2", "--model.teacher", "reskd_lightning.models.TSN",
                           "--model.teacher_resolution", "48", "--model.allow_student_above_teacher", "true")  # fmt: skip
    assert datamodule.hparams.resolutions == [64, 48]  # linked from the model's resolutions
    batch = {"video": torch.randint(0, 256, (2, 3, 2, 64, 64), dtype=torch.uint8), "label": torch.zeros(2)}
    with datamodule.views_at([32, 40, 32]) as same:
        assert same is datamodule
        assert sorted(datamodule.on_after_batch_transfer(dict(batch), 0)["clips"]) == [32, 40]
        assert datamodule.hparams.resolutions == [64, 48]  # what is logged and saved stays as configured
    assert sorted(datamodule.on_after_batch_transfer(dict(batch), 0)["clips"]) == [48, 64]
    with pytest.raises(ValueError, match="positive numbers of pixels"):
        with datamodule.views_at([0]):
            pass


@pytest.mark.parametrize("size", [(64, 64), (48, 64)])
def test_mode_d_feeds_the_bilinear_down_then_up_resize_of_the_clip(size: tuple[int, int]) -> None:
    seen: list[Tensor] = []

    class Recorder(nn.Module):
        num_classes = 4

        def forward(self, clip: Tensor) -> Tensor:
            seen.append(clip)
            return clip.mean((1, 2, 3, 4)).unsqueeze(1).expand(-1, 4)

    clip = torch.randn(2, 3, 4, *size)
    RoundTrip(Recorder(), 32)(clip)
    # Independently: every frame bilinearly (align_corners=False, no antialias) to short side 32, then back.
    height, width = size
    low = (32, round(width * 32 / height))
    frames = clip.transpose(1, 2).reshape(-1, 3, height, width)
    down = F.interpolate(frames, size=low, mode="bilinear", align_corners=False, antialias=False)
    up = F.interpolate(down, size=size, mode="bilinear", align_corners=False)
    expected = up.reshape(2, 4, 3, *size).transpose(1, 2)
    assert seen[0].shape == clip.shape and torch.equal(seen[0], expected)
    assert torch.equal(round_trip(clip, min(size)), clip)  # at the clip's own resolution: the identity


def test_load_network_builds_a_plain_state_dict_from_the_config_network(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    student = ResKDModule.load_from_checkpoint(runs["student"], weights_only=False)
    exported = student.export_student(tmp_path / "student.pth")  # a plain state dict + resolution
    # The config's network, as the loader makes it (a num_classes -> network factory), not built with the model.
    spec = load_config(runs["student_config"], build_model=False).model_args["student"]
    loaded = load_network(exported, network=spec)
    assert isinstance(loaded, NetworkAtResolution)
    assert loaded.resolution == 32 and loaded.checkpoint == str(exported)
    assert torch.equal(loaded.network.backbone.conv1.weight, student.student.backbone.conv1.weight)
    with pytest.raises(ValueError, match="plain state dict and no network"):
        load_network(exported)
    # A `reskd fit` checkpoint keeps its network as LightningCLI's {class_path, init_args}: rebuilt from that.
    hparams = torch.load(runs["student"], weights_only=False)["hyper_parameters"]
    assert hparams["student"]["class_path"].endswith(".TSN")
    from_fit = load_network(runs["student"])
    assert torch.equal(from_fit.network.backbone.conv1.weight, student.student.backbone.conv1.weight)
