"""The shipped recipes (configs/*.yaml): each builds, holds the paper's values, and round-trips.

Every config is built once, on this CPU, with no download and no data: the overrides below turn the 8-GPU
DDP mixed-precision setting into one CPU process, drop the networks' ImageNet weights and the teacher
checkpoint. What a test checks is read from the built objects (or, for the values those overrides replace,
from the file itself).
"""

from __future__ import annotations

import re
import sys
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest
import torch
import yaml

from reskd_lightning.lightning_cli import cli_main
from reskd_lightning.tools.config import load_config

sys.path.insert(0, str(Path(__file__).parent))
from official import OFFICIAL, Fact  # noqa: E402

from reskd_lightning.global_batch import GlobalBatch, plan_global_batch  # noqa: E402
from recipe_table import BEGIN, END, ROWS, describe, expected_difference, official_of, render  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ALL_CONFIGS = sorted(p.name for p in CONFIGS.glob("*.yaml"))
FILES = [n for n in ALL_CONFIGS if not (CONFIGS / n).is_symlink()]  # each recipe once, not its short names

#: One CPU process in full precision instead of the recipes' 8 GPUs with DDP and mixed precision.
CPU = ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.strategy", "auto",
       "--trainer.precision", "32-true"]


def read(name: str) -> dict[str, Any]:
    return yaml.safe_load((CONFIGS / name).read_text())


def offline_overrides(name: str) -> list[str]:
    """The CPU overrides, plus what would download (ImageNet weights) or read a file (the teacher)."""
    model = read(name)["model"]
    args = list(CPU)
    for role in ("student", "teacher"):
        if isinstance(model.get(role), dict) and model[role].get("init_args", {}).get("pretrained"):
            args += [f"--model.{role}.init_args.pretrained", "null"]
    if model.get("teacher") is not None:
        args += ["--model.teacher_ckpt", "null"]
    return args


class DownloadRefused(RuntimeError):
    pass


def _refuse(*args: Any, **kwargs: Any) -> None:
    raise DownloadRefused(f"a test config tried to download {args[:1]}")


@pytest.fixture(scope="module")
def no_downloads(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Any weight download raises, and torch's cache is empty, so a `pretrained` left on fails loudly."""
    import torchvision.models._api

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
        mp.setattr(torch.hub, "load_state_dict_from_url", _refuse)
        mp.setattr(torch.hub, "download_url_to_file", _refuse)
        mp.setattr(torchvision.models._api, "load_state_dict_from_url", _refuse)
        yield


def network_of(net: Any) -> tuple[str, Any] | None:
    """``("TSN", "resnet50")``, ``("SlowOnly", 50)``, ``("VideoSwin", "swin3d_s")``; None for no network."""
    if net is None:
        return None
    size = getattr(net, "backbone_name", None) or getattr(net, "depth", None)
    return type(net).__name__, size


def summarise(name: str, cli: Any) -> dict[str, Any]:
    """What the tests check, read from a loaded config (``load_config``), which is then dropped (R152s and
    Swins are big)."""
    model, data, trainer = cli.model, cli.datamodule, cli.trainer
    distillers = [
        (type(c).__name__, c.weight, getattr(c, "temperature", None))
        for c in trainer.callbacks
        if type(c).__name__.endswith("KD")
    ]
    checkpoints = [c for c in trainer.callbacks if type(c).__name__ == "ModelCheckpoint"]
    # configure_optimizers as on the official 8 GPUs, and on 2 GPUs: GlobalBatch's accumulation for each.
    keep = [c for c in trainer.callbacks if isinstance(c, GlobalBatch)]
    groups, accumulate = {}, {}
    for devices in (8, 2):
        accumulate[devices] = plan_global_batch(keep[0].size, data.hparams.batch_size, devices).accumulate
        model._trainer = SimpleNamespace(
            datamodule=data, world_size=devices, accumulate_grad_batches=accumulate[devices],
            max_epochs=trainer.max_epochs, estimated_stepping_batches=100 * trainer.max_epochs,
        )
        configured = model.configure_optimizers()
        model._trainer = None
        optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
        # initial_lr: the lr before the schedule's factor at epoch 0 (a warm-up starts lower)
        groups[devices] = {
            g.get("name", "all"): (g.get("initial_lr", g["lr"]), g["weight_decay"]) for g in optimizer.param_groups
        }
    scheduler = configured["lr_scheduler"]["scheduler"] if isinstance(configured, dict) else None
    original = cli.parser.parse_args(["--config", str(CONFIGS / name)])  # without the CPU overrides
    return {
        "table": describe(cli, original, optimizer, scheduler),
        "num_classes": model.num_classes,
        "student": network_of(model.student),
        "teacher": network_of(model.teacher),
        "student_resolution": model.student_resolution,
        "teacher_resolution": model.teacher_resolution,
        "teacher_mode": model.teacher_mode,
        "metric": model.metric,
        "sampling": tuple(data.settings[k] for k in ("num_segments", "clip_len", "frame_interval")),
        "flip": data.settings["flip"],
        "views": data.hparams.resolutions,
        "batch_size": data.hparams.batch_size,
        "crop_size": data.hparams.crop_size,
        "max_epochs": trainer.max_epochs,
        "gradient_clip": (trainer.gradient_clip_val, trainer.gradient_clip_algorithm),
        "accumulate_grad_batches": trainer.accumulate_grad_batches,  # as configured: 1, GlobalBatch decides
        "global_batch": keep[0].size if len(keep) == 1 else None,
        "accumulate": accumulate,
        "distillers": distillers,
        "checkpoint": [(c.monitor, c.mode, c.dirpath, c.filename, c.save_last) for c in checkpoints],
        "optimizer": type(optimizer).__name__,
        "optimizer_defaults": dict(optimizer.defaults),
        "param_groups": asdict(model.param_groups) if model.param_groups is not None else None,
        "lr_base_batch_size": model.lr_base_batch_size,
        "groups": groups,
        "scheduler": scheduler,
        "scheduler_type": type(scheduler).__name__ if scheduler is not None else None,
    }


_BUILT: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module")
def built(no_downloads: None) -> Any:
    """Build a config once (by its real file: a short name shares its recipe's) and return its summary."""

    def get(name: str) -> dict[str, Any]:
        real = (CONFIGS / name).resolve().name
        if real not in _BUILT:
            cli = load_config(CONFIGS / real, offline_overrides(real), build_trainer=True)
            _BUILT[real] = summarise(real, cli)
            del cli
        return _BUILT[real]

    return get


RECIPES = sorted(OFFICIAL)
RESKD = [n for n in RECIPES if n.startswith("reskd_")]
SHORT_NAMES = {
    "anet.yaml": "reskd_tsn_r50-112_from_tsn_r152-224_16x1_200e_anet.yaml",
    "fcvid.yaml": "reskd_tsn_r50-112_from_tsn_r152-224_16x1_200e_fcvid.yaml",
    "minik.yaml": "reskd_tsn_r50-112_from_tsn_r152-224_8x1_100e_minik.yaml",
    "sthv2.yaml": "reskd_tsm_r50-112_from_tsm_r50-224_8x1_100e_sthv2.yaml",
    "k400_slowonly.yaml": "reskd_slowonly_r50-112_from_slowonly_r50-224_8x8_150e_k400.yaml",
    "k400_swin.yaml": "reskd_swin3d_s-112_from_swin3d_b-224_32x2_60e_k400.yaml",
}
NAME = re.compile(r"^(?:reskd_(?P<s>[a-z0-9_]+)-(?P<sr>\d+)_from_(?P<t>[a-z0-9_]+)-224|(?P<n>[a-z0-9_]+)-(?P<nr>\d+))"
                  r"_(?P<frames>\d+x\d+)_(?P<epochs>\d+)e_(?P<ds>anet|fcvid|minik|sthv2|k400)\.yaml$")
README = CONFIGS / "README.md"


def readme_tables() -> str:
    text = README.read_text()
    start, end = text.find(BEGIN), text.find(END)
    assert start >= 0 and end > start, f"configs/README.md has no {BEGIN!r} ... {END!r} section"
    return text[start : end + len(END)]


# ------------------------------------------------------------------------------------------------ the tests
@pytest.mark.parametrize("name", [f"{n}.yaml" for n in RECIPES])
def test_recipe_matches_its_official_config_value_by_value(name: str, built: Any) -> None:
    # configs/README.md shows each row beside the official value and its file and line (official.py)
    stem = name[: -len(".yaml")]
    rows = built(name)["table"]
    _, _, facts = official_of(stem)
    assert set(rows) == set(ROWS)
    for row in ROWS:
        official = facts.get(row, Fact("-", "-")).value
        why = expected_difference(stem, row)
        if why is None:
            assert rows[row] == official, f"{name}: {row} is {rows[row]!r}, the official config's {official!r}"
        else:  # a documented difference must still be one (else its note is stale)
            assert rows[row] != official, f"{name}: {row} now equals the official value; drop its note ({why})"


def test_readme_tables_are_rebuilt_from_the_configs(built: Any) -> None:
    rendered = render({n: built(f"{n}.yaml")["table"] for n in RECIPES})
    assert readme_tables() == rendered, (
        "configs/README.md's recipe tables differ from the configs: run "
        "`python tests/recipes/test_recipes.py --regenerate` and review the diff"
    )


@pytest.mark.parametrize("name", [f"{n}.yaml" for n in RECIPES])
def test_lr_follows_the_global_batch(name: str, built: Any) -> None:
    got = built(name)
    assert got["accumulate_grad_batches"] == 1  # no fixed accumulation: GlobalBatch computes it
    assert got["lr_base_batch_size"] == got["global_batch"] == got["batch_size"] * 8 * got["accumulate"][8]
    # on 2 GPUs GlobalBatch accumulates 4x as many steps, so the global batch and every group's lr stay the recipe's
    assert got["accumulate"][2] == 4 * got["accumulate"][8]
    assert got["groups"][2] == {k: pytest.approx((lr, wd)) for k, (lr, wd) in got["groups"][8].items()}


def test_every_recipe_file_has_its_official_facts() -> None:
    recipes = {n for n in FILES if not n.startswith("demo")}
    assert recipes == {f"{n}.yaml" for n in RECIPES}


@pytest.mark.parametrize("name", [f"{n}.yaml" for n in RECIPES])
def test_recipe_name_says_what_it_trains(name: str, built: Any) -> None:
    match = NAME.match(name)
    assert match, f"{name} does not follow [reskd_]{{net}}-{{res}}[_from_{{teacher}}-224]_{{frames}}_{{epochs}}e_{{dataset}}"
    got = built(name)
    resolution = match["sr"] or match["nr"]
    assert int(resolution) == got["student_resolution"]
    assert (match["t"] is None) == (got["teacher"] is None)
    assert int(match["epochs"]) == read(name)["trainer"]["max_epochs"]
    clip_len, frame_interval = got["sampling"][1:]
    segments = got["sampling"][0]
    assert match["frames"] == (f"{segments}x1" if clip_len == 1 else f"{clip_len}x{frame_interval}")


@pytest.mark.parametrize("short, target", SHORT_NAMES.items())
def test_short_name_is_a_relative_symlink_to_its_main_recipe(short: str, target: str) -> None:
    link = CONFIGS / short
    assert link.is_symlink() and Path(link.readlink()) == Path(target)  # relative: works in any checkout
    assert link.resolve() == (CONFIGS / target).resolve() and link.resolve().is_file()


@pytest.mark.parametrize("name", FILES)
def test_config_opens_with_a_comment_naming_its_command(name: str) -> None:
    text = (CONFIGS / name).read_text()
    assert text.startswith("#") and f"reskd fit --config configs/{name}" in text


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_config_round_trips_through_print_config(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    def print_config(path: Path) -> str:
        with pytest.raises(SystemExit) as exit_:
            cli_main(["fit", "--config", str(path), "--print_config"])
        assert exit_.value.code in (0, None)
        return capsys.readouterr().out

    printed = print_config(CONFIGS / name)
    (tmp_path / "printed.yaml").write_text(printed)
    again = print_config(tmp_path / "printed.yaml")
    assert yaml.safe_load(again) == yaml.safe_load(printed)
    assert yaml.safe_load(printed)["model"]["student"] is not None


@pytest.mark.parametrize("name", [f"{n}.yaml" for n in RESKD])
def test_reskd_teacher_ckpt_is_written_by_a_teacher_stage_of_the_same_network(name: str) -> None:
    model = read(name)["model"]
    match = re.fullmatch(r"work_dirs/(?P<stage>[^/]+)/teacher\.ckpt", model["teacher_ckpt"])
    assert match, model["teacher_ckpt"]
    stage_file = CONFIGS / f"{match['stage']}.yaml"
    assert stage_file.is_file() and not stage_file.is_symlink()
    stage = read(stage_file.name)
    # the stage trains the ResKD teacher's network (same class and arguments, but from ImageNet) alone at 224 px
    trained = stage["model"]["student"]
    assert "teacher" not in stage["model"]
    assert trained["class_path"] == model["teacher"]["class_path"]
    # the same network; only its drop path may differ: the official Swin-B stage trains with 0.2
    # (swin/swin_base_32x2x1_50e_k400.py:4), the ResKD teacher is built with 0.1 (_base_/models/rkd_swinb_swins.py:36)
    free = {"pretrained", "stochastic_depth_prob"}
    assert {k: v for k, v in trained["init_args"].items() if k not in free} == {
        k: v for k, v in model["teacher"]["init_args"].items() if k not in free
    }
    assert stage["model"]["student_resolution"] == model["teacher_resolution"] == 224
    same = ("preset", "list_format", "train_list", "val_list", "test_list", "data_prefix", "clip_len", "frame_interval")
    assert {k: stage["data"].get(k) for k in same} == {k: read(name)["data"].get(k) for k in same}
    checkpoint = next(
        c["init_args"] for c in stage["trainer"]["callbacks"] if c["class_path"].endswith("ModelCheckpoint")
    )
    assert checkpoint["dirpath"] == f"work_dirs/{match['stage']}" and checkpoint["filename"] == "teacher"
    assert checkpoint["enable_version_counter"] is False  # always teacher.ckpt, never teacher-v1.ckpt


def regenerate() -> None:
    """Rewrite configs/README.md's recipe tables from the configs (``--regenerate``)."""
    import contextlib

    with contextlib.ExitStack() as stack:
        mp = stack.enter_context(pytest.MonkeyPatch.context())
        mp.setattr(torch.hub, "load_state_dict_from_url", _refuse)
        rendered = render(
            {n: summarise(f"{n}.yaml", load_config(CONFIGS / f"{n}.yaml", offline_overrides(f"{n}.yaml"),
                                                   build_trainer=True))["table"]
             for n in RECIPES}
        )
    text = README.read_text()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + rendered + "\n"
    else:
        text = text[:start] + rendered + text[end + len(END):]
    README.write_text(text)
    print(f"wrote {len(RECIPES)} recipe tables to {README}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--regenerate"]:
        raise SystemExit("usage: python tests/recipes/test_recipes.py --regenerate")
    regenerate()
