"""The shipped recipes (configs/*.yaml): each builds, holds the paper's values, and round-trips.

Every config is built once, on this CPU, with no download and no data: the overrides below turn the 8-GPU
DDP mixed-precision setting into one CPU process, drop the networks' ImageNet weights and the teacher
checkpoint. What a test checks is read from the built objects (or, for the values those overrides replace,
from the file itself).
"""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest
import torch
import yaml

from reskd_lightning.cli import cli_main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
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
        if isinstance(model.get(role), dict) and "pretrained" in model[role].get("init_args", {}):
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
    """What the tests check, read from a built CLI, which is then dropped (R152s and Swins are big)."""
    model, data, trainer = cli.model, cli.datamodule, cli.trainer
    distillers = [
        (type(c).__name__, c.weight, getattr(c, "temperature", None))
        for c in trainer.callbacks
        if type(c).__name__.endswith("KD")
    ]
    checkpoints = [c for c in trainer.callbacks if type(c).__name__ == "ModelCheckpoint"]
    # configure_optimizers as on the recipe's 8 GPUs, and on 2 GPUs (the lr scaling rule's worked example).
    groups = {}
    for devices in (8, 2):
        model._trainer = SimpleNamespace(
            datamodule=data, world_size=devices, accumulate_grad_batches=trainer.accumulate_grad_batches,
            max_epochs=trainer.max_epochs,
        )
        configured = model.configure_optimizers()
        model._trainer = None
        optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
        # initial_lr: the lr before the schedule's factor at epoch 0 (a warm-up starts lower)
        groups[devices] = {
            g.get("name", "all"): (g.get("initial_lr", g["lr"]), g["weight_decay"]) for g in optimizer.param_groups
        }
    scheduler = configured["lr_scheduler"]["scheduler"] if isinstance(configured, dict) else None
    return {
        "num_classes": model.num_classes,
        "student": network_of(model.student),
        "teacher": network_of(model.teacher),
        "student_resolution": model.student_resolution,
        "teacher_resolution": model.teacher_resolution,
        "teacher_bn_mode": model.teacher_bn_mode,
        "metric": model.metric,
        "sampling": tuple(data.settings[k] for k in ("num_segments", "clip_len", "frame_interval")),
        "flip": data.settings["flip"],
        "views": data.hparams.resolutions,
        "batch_size": data.hparams.batch_size,
        "crop_size": data.hparams.crop_size,
        "max_epochs": trainer.max_epochs,
        "gradient_clip": (trainer.gradient_clip_val, trainer.gradient_clip_algorithm),
        "accumulate_grad_batches": trainer.accumulate_grad_batches,
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
            cli = cli_main(["--config", str(CONFIGS / real), *offline_overrides(real)], run=False)
            _BUILT[real] = summarise(real, cli)
            del cli
        return _BUILT[real]

    return get


# ------------------------------------------------------------------------------------------------ the table
#: The paper's settings per dataset: classes, metric, (segments, clip_len, frame_interval), epochs, flip.
DATASETS = {
    "anet": dict(num_classes=200, metric="mAP", sampling=(16, 1, 1), epochs=200, flip=True),
    "fcvid": dict(num_classes=239, metric="mAP", sampling=(16, 1, 1), epochs=200, flip=True),
    "minik": dict(num_classes=200, metric="accuracy", sampling=(8, 1, 1), epochs=100, flip=True),
    "sthv2": dict(num_classes=174, metric="accuracy", sampling=(8, 1, 1), epochs=100, flip=False),
    "k400_slowonly": dict(num_classes=400, metric="accuracy", sampling=(1, 8, 8), epochs=150, flip=True),
    "k400_swin": dict(num_classes=400, metric="accuracy", sampling=(1, 32, 2), epochs=60, flip=True),
}

CNN_GROUPS = {"bias_lr_mult": 2.0, "bias_decay_mult": 0.0, "norm_decay_mult": 0.0, "no_decay_keys": [], "lr_mults": {}}
SWIN_GROUPS = {
    "bias_lr_mult": 1.0, "bias_decay_mult": 1.0, "norm_decay_mult": 0.0,
    "no_decay_keys": ["relative_position_bias_table", "absolute_pos_embed"], "lr_mults": {"backbone.": 0.1},
}

#: The paper's optimisation per network family.
FAMILIES = {
    "tsn": dict(
        optimizer="SGD", lr=0.01, momentum=0.9, weight_decay=1e-4, param_groups=CNN_GROUPS, lr_base_batch_size=64,
        scheduler=None, clip=(20, "norm"), precision="16-mixed", accumulate=1, distiller=("FeatureMapKD", 100, None),
        # {group: (lr on 8 GPUs, weight decay)}; on 2 GPUs every lr is 1/4 of it (0.01 -> 0.0025)
        groups={"lr x1, wd x1": (0.01, 1e-4), "lr x2, wd x0": (0.02, 0.0), "lr x1, wd x0": (0.01, 0.0)},
    ),
    "slowonly": dict(
        optimizer="SGD", lr=0.01, momentum=0.9, weight_decay=1e-4, param_groups=CNN_GROUPS, lr_base_batch_size=64,
        scheduler=("WarmupMultiStepLR", dict(milestones=[90, 130], gamma=0.1, warmup_epochs=10)),
        clip=(40, "norm"), precision="16-mixed", accumulate=1, distiller=("FeatureMapKD", 100, None),
        groups={"lr x1, wd x1": (0.01, 1e-4), "lr x2, wd x0": (0.02, 0.0), "lr x1, wd x0": (0.01, 0.0)},
    ),
    "swin": dict(
        optimizer="AdamW", lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05, param_groups=SWIN_GROUPS,
        lr_base_batch_size=8 * 8 * 16,
        scheduler=("WarmupCosineLR", dict(max_epochs=60, warmup_epochs=2.5)),
        clip=(None, None), precision="bf16-mixed", accumulate=16, distiller=("LogitMapKD", 200, 2.0),
        groups={"lr x0.1, wd x1": (1e-4, 0.05), "lr x0.1, wd x0": (1e-4, 0.0), "lr x1, wd x1": (1e-3, 0.05)},
    ),
}

NETS = {
    "tsn_r152": ("TSN", "resnet152"), "tsn_r50": ("TSN", "resnet50"), "tsm_r50": ("TSM", "resnet50"),
    "slowonly_r50": ("SlowOnly", 50), "swin3d_b": ("VideoSwin", "swin3d_b"), "swin3d_s": ("VideoSwin", "swin3d_s"),
}

# (config, dataset, family, student, student resolution, teacher at 224 px or None, role)
RECIPES = [
    ("tsn_r152-224_16x1_200e_anet.yaml", "anet", "tsn", "tsn_r152", 224, None, "teacher"),
    ("tsn_r50-224_16x1_200e_anet.yaml", "anet", "tsn", "tsn_r50", 224, None, "teacher"),
    ("tsn_r50-112_16x1_200e_anet.yaml", "anet", "tsn", "tsn_r50", 112, None, "baseline"),
    ("tsn_r50-96_16x1_200e_anet.yaml", "anet", "tsn", "tsn_r50", 96, None, "baseline"),
    ("tsn_r50-72_16x1_200e_anet.yaml", "anet", "tsn", "tsn_r50", 72, None, "baseline"),
    ("reskd_tsn_r50-112_from_tsn_r152-224_16x1_200e_anet.yaml", "anet", "tsn", "tsn_r50", 112, "tsn_r152", "reskd"),
    ("reskd_tsn_r50-112_from_tsn_r50-224_16x1_200e_anet.yaml", "anet", "tsn", "tsn_r50", 112, "tsn_r50", "reskd"),
    ("reskd_tsn_r50-96_from_tsn_r152-224_16x1_200e_anet.yaml", "anet", "tsn", "tsn_r50", 96, "tsn_r152", "reskd"),
    ("reskd_tsn_r50-72_from_tsn_r152-224_16x1_200e_anet.yaml", "anet", "tsn", "tsn_r50", 72, "tsn_r152", "reskd"),
    ("tsn_r152-224_16x1_200e_fcvid.yaml", "fcvid", "tsn", "tsn_r152", 224, None, "teacher"),
    ("tsn_r50-112_16x1_200e_fcvid.yaml", "fcvid", "tsn", "tsn_r50", 112, None, "baseline"),
    ("reskd_tsn_r50-112_from_tsn_r152-224_16x1_200e_fcvid.yaml", "fcvid", "tsn", "tsn_r50", 112, "tsn_r152", "reskd"),
    ("tsn_r152-224_8x1_100e_minik.yaml", "minik", "tsn", "tsn_r152", 224, None, "teacher"),
    ("tsn_r50-224_8x1_100e_minik.yaml", "minik", "tsn", "tsn_r50", 224, None, "teacher"),
    ("tsn_r50-112_8x1_100e_minik.yaml", "minik", "tsn", "tsn_r50", 112, None, "baseline"),
    ("tsn_r50-96_8x1_100e_minik.yaml", "minik", "tsn", "tsn_r50", 96, None, "baseline"),
    ("tsn_r50-72_8x1_100e_minik.yaml", "minik", "tsn", "tsn_r50", 72, None, "baseline"),
    ("reskd_tsn_r50-112_from_tsn_r152-224_8x1_100e_minik.yaml", "minik", "tsn", "tsn_r50", 112, "tsn_r152", "reskd"),
    ("reskd_tsn_r50-112_from_tsn_r50-224_8x1_100e_minik.yaml", "minik", "tsn", "tsn_r50", 112, "tsn_r50", "reskd"),
    ("reskd_tsn_r50-96_from_tsn_r152-224_8x1_100e_minik.yaml", "minik", "tsn", "tsn_r50", 96, "tsn_r152", "reskd"),
    ("reskd_tsn_r50-72_from_tsn_r152-224_8x1_100e_minik.yaml", "minik", "tsn", "tsn_r50", 72, "tsn_r152", "reskd"),
    ("tsm_r50-224_8x1_100e_sthv2.yaml", "sthv2", "tsn", "tsm_r50", 224, None, "teacher"),
    ("tsm_r50-112_8x1_100e_sthv2.yaml", "sthv2", "tsn", "tsm_r50", 112, None, "baseline"),
    ("reskd_tsm_r50-112_from_tsm_r50-224_8x1_100e_sthv2.yaml", "sthv2", "tsn", "tsm_r50", 112, "tsm_r50", "reskd"),
    ("slowonly_r50-224_8x8_150e_k400.yaml", "k400_slowonly", "slowonly", "slowonly_r50", 224, None, "teacher"),
    ("slowonly_r50-112_8x8_150e_k400.yaml", "k400_slowonly", "slowonly", "slowonly_r50", 112, None, "baseline"),
    ("reskd_slowonly_r50-112_from_slowonly_r50-224_8x8_150e_k400.yaml", "k400_slowonly", "slowonly", "slowonly_r50",
     112, "slowonly_r50", "reskd"),
    ("swin3d_b-224_32x2_60e_k400.yaml", "k400_swin", "swin", "swin3d_b", 224, None, "teacher"),
    ("swin3d_s-112_32x2_60e_k400.yaml", "k400_swin", "swin", "swin3d_s", 112, None, "baseline"),
    ("reskd_swin3d_s-112_from_swin3d_b-224_32x2_60e_k400.yaml", "k400_swin", "swin", "swin3d_s", 112, "swin3d_b",
     "reskd"),
]

SHORT_NAMES = {
    "anet.yaml": "reskd_tsn_r50-112_from_tsn_r152-224_16x1_200e_anet.yaml",
    "fcvid.yaml": "reskd_tsn_r50-112_from_tsn_r152-224_16x1_200e_fcvid.yaml",
    "minik.yaml": "reskd_tsn_r50-112_from_tsn_r152-224_8x1_100e_minik.yaml",
    "sthv2.yaml": "reskd_tsm_r50-112_from_tsm_r50-224_8x1_100e_sthv2.yaml",
    "k400_slowonly.yaml": "reskd_slowonly_r50-112_from_slowonly_r50-224_8x8_150e_k400.yaml",
    "k400_swin.yaml": "reskd_swin3d_s-112_from_swin3d_b-224_32x2_60e_k400.yaml",
}

RESKD = [r for r in RECIPES if r[6] == "reskd"]
NAME = re.compile(r"^(?:reskd_(?P<s>[a-z0-9_]+)-(?P<sr>\d+)_from_(?P<t>[a-z0-9_]+)-224|(?P<n>[a-z0-9_]+)-(?P<nr>\d+))"
                  r"_(?P<frames>\d+x\d+)_(?P<epochs>\d+)e_(?P<ds>anet|fcvid|minik|sthv2|k400)\.yaml$")


# ------------------------------------------------------------------------------------------------ the tests
@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_every_config_builds_on_cpu_without_downloads_or_data(name: str, built: Any) -> None:
    summary = built(name)
    assert summary["num_classes"] > 0 and summary["student"] is not None
    assert summary["student_resolution"] in summary["views"]


def test_pretrained_null_really_skips_the_download(no_downloads: None) -> None:
    # The same config without the `pretrained` override reaches the (refused) download: the override is needed.
    name = "tsn_r50-112_16x1_200e_anet.yaml"
    with pytest.raises(DownloadRefused):
        cli_main(["--config", str(CONFIGS / name), *CPU], run=False)


@pytest.mark.parametrize(
    "name, dataset, family, student, resolution, teacher, role", RECIPES, ids=[r[0][: -len(".yaml")] for r in RECIPES]
)
def test_recipe_holds_the_papers_values(
    name: str, dataset: str, family: str, student: str, resolution: int, teacher: str | None, role: str, built: Any
) -> None:
    ds, fam, got = DATASETS[dataset], FAMILIES[family], built(name)
    raw = read(name)
    # data and networks
    assert got["num_classes"] == ds["num_classes"] and got["metric"] == ds["metric"]
    assert got["sampling"] == ds["sampling"] and got["flip"] is ds["flip"]
    assert got["student"] == NETS[student] and got["student_resolution"] == resolution
    assert got["teacher"] == (NETS[teacher] if teacher else None)
    assert got["views"] == sorted({resolution, 224} if teacher else {resolution}, reverse=True)
    assert (got["crop_size"], got["batch_size"]) == (224, 8)
    if teacher:
        assert got["teacher_resolution"] == 224 and got["teacher_bn_mode"] == "train"
        assert "pretrained" not in raw["model"]["teacher"]["init_args"]  # its weights come from teacher_ckpt
    assert raw["model"]["student"]["init_args"]["pretrained"] == "IMAGENET1K_V1"
    # training
    assert got["max_epochs"] == ds["epochs"] and got["gradient_clip"] == fam["clip"]
    assert got["accumulate_grad_batches"] == fam["accumulate"]
    assert got["distillers"] == ([fam["distiller"]] if role == "reskd" else [])
    # the original trainer, before the CPU overrides
    assert raw["trainer"]["precision"] == fam["precision"]
    assert (raw["trainer"]["accelerator"], raw["trainer"]["devices"], raw["trainer"]["strategy"]) == ("gpu", 8, "ddp")
    assert raw["seed_everything"] == 0
    # optimisation
    assert got["optimizer"] == fam["optimizer"] and got["optimizer_defaults"]["lr"] == pytest.approx(fam["lr"])
    assert got["optimizer_defaults"]["weight_decay"] == pytest.approx(fam["weight_decay"])
    if "momentum" in fam:
        assert got["optimizer_defaults"]["momentum"] == fam["momentum"]
    else:
        assert tuple(got["optimizer_defaults"]["betas"]) == fam["betas"]
    assert got["param_groups"] == fam["param_groups"]
    assert got["lr_base_batch_size"] == fam["lr_base_batch_size"]
    assert got["lr_base_batch_size"] == got["batch_size"] * raw["trainer"]["devices"] * got["accumulate_grad_batches"]
    if fam["scheduler"] is None:  # the module's default: per-epoch cosine to 0 over max_epochs
        assert "lr_scheduler" not in raw["model"] and got["scheduler_type"] == "LambdaLR"
        assert got["scheduler"].lr_lambdas[0](ds["epochs"]) == pytest.approx(0.0)
    else:
        cls, args = fam["scheduler"]
        assert got["scheduler_type"] == cls
        assert {k: getattr(got["scheduler"], k) for k in args} == args
    # configure_optimizers on the recipe's 8 GPUs: the paper's lr per group; on 2 GPUs, a quarter of it
    assert got["groups"][8] == {k: pytest.approx(v) for k, v in fam["groups"].items()}
    assert got["groups"][2] == {k: pytest.approx((lr / 4, wd)) for k, (lr, wd) in fam["groups"].items()}
    # bookkeeping
    stem = name[: -len(".yaml")]
    monitor = "val/mAP" if ds["metric"] == "mAP" else "val/acc1"
    filename = "teacher" if role == "teacher" else None
    assert got["checkpoint"] == [(monitor, "max", str(Path(f"work_dirs/{stem}").resolve()), filename, True)]
    assert raw["trainer"]["default_root_dir"] == f"work_dirs/{stem}"


def test_the_table_lists_every_recipe_file() -> None:
    recipes = {n for n in FILES if not n.startswith("demo")}
    assert recipes == {r[0] for r in RECIPES}


@pytest.mark.parametrize("name", [r[0] for r in RECIPES])
def test_recipe_name_says_what_it_trains(name: str) -> None:
    match = NAME.match(name)
    assert match, f"{name} does not follow [reskd_]{{net}}-{{res}}[_from_{{teacher}}-224]_{{frames}}_{{epochs}}e_{{dataset}}"
    row = next(r for r in RECIPES if r[0] == name)
    student, resolution = (match["s"], match["sr"]) if match["s"] else (match["n"], match["nr"])
    assert (student, int(resolution), match["t"]) == (row[3], row[4], row[5])
    assert int(match["epochs"]) == read(name)["trainer"]["max_epochs"]
    assert match["ds"] == row[1].split("_")[0]


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


@pytest.mark.parametrize("name", [r[0] for r in RESKD], ids=[r[0][: -len(".yaml")] for r in RESKD])
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
    assert {k: v for k, v in trained["init_args"].items() if k != "pretrained"} == model["teacher"]["init_args"]
    assert stage["model"]["student_resolution"] == model["teacher_resolution"] == 224
    assert stage["data"] == read(name)["data"]  # the same dataset, classes and sampling
    checkpoint = next(
        c["init_args"] for c in stage["trainer"]["callbacks"] if c["class_path"].endswith("ModelCheckpoint")
    )
    assert checkpoint["dirpath"] == f"work_dirs/{match['stage']}" and checkpoint["filename"] == "teacher"
    assert checkpoint["enable_version_counter"] is False  # always teacher.ckpt, never teacher-v1.ckpt
