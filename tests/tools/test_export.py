"""`reskd export`: the student alone in a file (and a torch.export program) that gives the checkpoint's logits,
that `ResKDModule.load_student`'s function and `reskd predict` read, and that refuses the wrong files by name."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from demo_configs import write_config

from reskd_lightning import ResKDModule, __version__
from reskd_lightning.cli import main
from reskd_lightning.data.demo import DEMO_CLASSES
from reskd_lightning.lightning_cli import cli_main
from reskd_lightning.models import SlowOnly
from reskd_lightning.predictions import VideoPredictor
from reskd_lightning.student_export import (
    FORMAT,
    export_program,
    export_student,
    load_program,
    load_student,
)
from reskd_lightning.views import attach_views


@pytest.fixture(scope="module")
def run(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 2-step ResKD run on the demo videos (TSN-R18 student at 32 px <- teacher at 64 px), its checkpoint saved
    *with* the teacher, and `reskd export --program` of it."""
    root = tmp_path_factory.mktemp("export")
    teacher_cfg = write_config(root / "teacher.yaml", demo_root, root / "teacher", "teacher")
    cli_main(["fit", "--config", str(teacher_cfg), "--trainer.limit_val_batches", "0"])
    teacher = root / "teacher" / "teacher.ckpt"
    student_cfg = write_config(root / "student.yaml", demo_root, root / "student", "student", teacher)
    cli_main(["fit", "--config", str(student_cfg), "--trainer.limit_val_batches", "0", "--model.save_teacher", "true"])
    ckpt = root / "student" / "student.ckpt"
    main(["export", "--ckpt_path", str(ckpt), "--out", str(root / "out" / "student.pt"), "--program"])
    return {"ckpt": ckpt, "export": root / "out" / "student.pt", "program": root / "out" / "student.pt2"}


def test_export_holds_the_student_alone_and_what_rebuilds_it(run: dict[str, Path]) -> None:
    payload = torch.load(run["export"], weights_only=True)  # plain values and tensors only: no pickled objects
    checkpoint = torch.load(run["ckpt"], weights_only=False)
    assert any(k.startswith("teacher.") for k in checkpoint["state_dict"])  # the run saved its teacher ...
    assert set(payload) == {  # ... the export has no teacher, optimiser, schedule or distiller state
        "format", "format_version", "library_version", "state_dict", "student", "num_classes", "resolution",
        "mean", "std", "interpolation", "antialias", "frames", "data", "class_names",
    }  # fmt: skip
    student = {k[len("student."):]: v for k, v in checkpoint["state_dict"].items() if k.startswith("student.")}
    assert sorted(payload["state_dict"]) == sorted(student)
    assert all(torch.equal(payload["state_dict"][k], v) for k, v in student.items())
    assert (payload["format"], payload["format_version"], payload["library_version"]) == (FORMAT, 1, __version__)
    # LightningCLI's init_args; the class by the path of the module that defines it (reskd_lightning.TSN is it too)
    assert payload["student"] == {
        "class_path": "reskd_lightning.models.backbones.tsn.TSN",
        "init_args": checkpoint["hyper_parameters"]["student"]["init_args"],
    }
    assert (payload["num_classes"], payload["resolution"], payload["frames"]) == (4, 32, 2)  # 2 TSN segments
    assert (payload["interpolation"], payload["antialias"]) == ("bilinear", False)
    assert payload["mean"] == checkpoint["hyper_parameters"]["mean"] and payload["class_names"] == list(DEMO_CLASSES)
    data = checkpoint["datamodule_hyper_parameters"]
    test_pipeline = ("num_segments", "clip_len", "num_test_clips", "test_crop", "crop_size")
    assert {k: payload["data"][k] for k in test_pipeline} == {k: data[k] for k in test_pipeline}


def test_load_student_and_the_program_give_the_checkpoints_logits_on_a_fixed_clip(run: dict[str, Path]) -> None:
    reference = ResKDModule.load_from_checkpoint(run["ckpt"], weights_only=False).eval()  # teacher and all
    exported = load_student(run["export"])
    assert not exported.model.training and exported.resolution == reference.student_resolution
    # One fixed uint8 clip of 3 videos (the program was traced at 2: its batch is free), viewed by each side's
    # own options: the export keeps the module's normalisation and interpolation.
    video = torch.randint(0, 256, (3, 3, 2, 64, 64), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    ours = attach_views({"video": video}, [32], **reference.view_options)["clips"][32]
    theirs = attach_views({"video": video}, [exported.resolution], **exported.view_options)["clips"][32]
    assert torch.equal(ours, theirs)
    with torch.no_grad():
        expected = reference.student(ours).logits
        assert torch.equal(exported.model(theirs).logits, expected)
        program, metadata = load_program(run["program"])
        torch.testing.assert_close(program.module()(theirs), expected, atol=1e-5, rtol=0)
    assert metadata["input"]["shape"] == ["N", 3, 2, 32, 32] and metadata["class_names"] == list(DEMO_CLASSES)


def test_reskd_predict_gives_an_exported_student_the_checkpoints_top_classes(
    run: dict[str, Path], demo_root: Path, capsys: pytest.CaptureFixture
) -> None:
    videos = [str(demo_root / line.split()[0]) for line in (demo_root / "val.txt").read_text().splitlines()[:2]]
    printed = {}
    for source in ("ckpt", "export"):  # detected by content: the export's .pt says nothing
        main(["predict", "--ckpt_path", str(run[source]), "--video", *videos])
        printed[source] = capsys.readouterr().out
    assert printed["export"] == printed["ckpt"] and all(name in printed["export"] for name in DEMO_CLASSES)
    from_ckpt, from_export = VideoPredictor.from_checkpoint(run["ckpt"]), VideoPredictor.from_checkpoint(run["export"])
    assert from_export.module.teacher is None and from_export.class_names == list(DEMO_CLASSES)
    torch.testing.assert_close(
        from_export.probabilities(videos[0]), from_ckpt.probabilities(videos[0]), atol=1e-6, rtol=0
    )


def wrong_file(kind: str, run: dict[str, Path], tmp_path: Path) -> Path:
    """A file that is not an exported student, of the given kind."""
    path = tmp_path / f"{kind}.pt"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(b"not a checkpoint\n" * 8)
    elif kind == "weights_only":  # what ResKDModule.export_student wrote before the format had a version
        torch.save({"state_dict": {"w": torch.zeros(1)}, "num_classes": 4, "resolution": 32}, path)
    elif kind == "newer":
        torch.save({**torch.load(run["export"], weights_only=True), "format_version": 99}, path)
    else:
        return run[kind]
    return path


@pytest.mark.parametrize("kind, error, message", [
    ("ckpt", ValueError, r"student.ckpt is a Lightning checkpoint .*, not an exported student: write one with "
                         r"`reskd export --ckpt_path"),
    ("program", ValueError, r"student.pt2' is a torch.export program \(a .pt2 archive\), not an exported student"),
    ("garbage", ValueError, r"garbage.pt' could not be read"),
    ("empty", ValueError, r"empty.pt' is an empty file \(0 bytes\)"),
    ("weights_only", ValueError, r"weights_only.pt is a student's weights without how to rebuild it"),
    ("newer", ValueError, r"newer.pt is an exported student of format_version 99 .* reads format_version <= 1"),
])  # fmt: skip
def test_load_student_refuses_a_wrong_file_naming_it_and_what_was_expected(
    kind: str, error: type, message: str, run: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(error, match=message):
        load_student(wrong_file(kind, run, tmp_path))


def test_predict_refuses_a_program_by_name(run: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match=r"student.pt2' is a torch.export program .* not a `reskd fit` checkpoint"):
        VideoPredictor.from_checkpoint(run["program"])


def test_a_factory_student_is_rebuilt_and_a_built_one_needs_its_network(tmp_path: Path) -> None:
    net = functools.partial(SlowOnly, base_channels=4, dropout=0.0)  # the Python API's factory: class + kwargs
    clip = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    for name, student in (("factory", net), ("built", net(4))):
        module = ResKDModule(student, num_classes=4, student_resolution=32).eval()
        path = export_student(module, tmp_path / f"{name}.pt")  # without data settings
        if name == "built":
            with pytest.raises(ValueError, match=r"built.pt holds the student's weights but not its init arguments"):
                load_student(path)
        if name == "factory":  # loading never reads the student's `pretrained` weights: the file holds them
            payload = torch.load(path, weights_only=True)
            payload["student"]["init_args"]["pretrained"] = str(tmp_path / "gone.pth")
            torch.save(payload, path)
        exported = load_student(path, model=net(4) if name == "built" else None)
        assert exported.frames is None and exported.data is None and exported.class_names is None
        with torch.no_grad():
            assert torch.equal(exported.model(clip).logits, module.student(clip).logits)
        with pytest.raises(ValueError, match=rf"{name}.pt holds no data settings \('data'\)"):
            VideoPredictor.from_exported(exported)
        with pytest.raises(ValueError, match=rf"frames of the student's view are unknown \(.*{name}.pt has no data"):
            export_program(exported, tmp_path / f"{name}.pt2")


def test_export_help_names_the_program_option(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["export", "--help"])
    assert exit_.value.code == 0 and "--program" in capsys.readouterr().out
