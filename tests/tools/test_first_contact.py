"""A user's first minutes with `reskd`: short errors, a quiet demo run, a fast `--help`."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from demo_configs import write_config
from pytorch_lightning import Callback, LightningModule, Trainer

from reskd_lightning.cli import TOOLS, main


def edited_config(tmp_path: Path, demo_root: Path, edit: Any, stage: str = "teacher") -> Path:
    """The tests' tiny demo config with ``edit(config_dict)`` applied."""
    teacher_ckpt = tmp_path / "teacher" / "teacher.ckpt"  # where the teacher stage writes it
    path = write_config(tmp_path / f"{stage}.yaml", demo_root, tmp_path / stage, stage, teacher_ckpt)
    config = yaml.safe_load(path.read_text())
    edit(config)
    path.write_text(yaml.safe_dump(config))
    return path


def rename(section: str, old: str, new: str) -> Any:
    def edit(config: dict[str, Any]) -> None:
        node = config
        for key in section.split("."):
            node = node[key]
        node[new] = node.pop(old)

    return edit


@pytest.mark.parametrize(("section", "key", "typo"), [
    ("data", "batch_size", "batch_sise"),
    ("model.student.init_args", "backbone", "backbon"),  # an init argument of a class_path entry
])  # fmt: skip
def test_a_misspelt_key_in_the_config_file_ends_in_one_short_line_naming_the_file_and_the_closest_key(
    section: str, key: str, typo: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config = edited_config(tmp_path, tmp_path / "unused", rename(section, key, typo))
    expected = f"unknown key '{section}.{typo}' — did you mean '{section}.{key}'?"
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", str(config)])
    assert exit_.value.code == 2  # a usage error, as argparse's
    err = capsys.readouterr().err
    assert f"reskd fit: error: {config}: {expected}" in err
    assert len(err.splitlines()) <= 5, err  # not jsonargparse's 100-line usage


def test_a_misspelt_override_ends_in_one_line_with_the_closest_option_and_fit_help_still_lists_them_all(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config = edited_config(tmp_path, tmp_path / "unused", lambda c: None)
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", str(config), "--data.batch_sise", "4"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "reskd fit: error: unknown option '--data.batch_sise' — did you mean '--data.batch_size'?" in err
    assert "(`reskd fit --help` lists every option)" in err and len(err.splitlines()) <= 5, err
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--data.batch_size" in out and "--model.teacher_ckpt" in out and len(out.splitlines()) > 100


def test_a_missing_video_list_ends_reskd_in_one_line_and_reskd_debug_shows_the_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nothere.txt"
    config = edited_config(tmp_path, tmp_path / "unused", lambda c: c["data"].update(
        demo_data=None, train_list=str(missing), val_list=str(missing)))  # fmt: skip
    monkeypatch.delenv("RESKD_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["reskd", "fit", "--config", str(config)])  # as the console script runs
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        f"reskd: error: video list {str(missing)!r} does not exist or is not a file (set RESKD_DEBUG=1 for the "
        "traceback)"
    )
    assert "Traceback" not in err
    monkeypatch.setenv("RESKD_DEBUG", "1")
    with pytest.raises(FileNotFoundError, match="nothere.txt"):  # the exception itself: Python prints it in full
        main()
    monkeypatch.delenv("RESKD_DEBUG")
    with pytest.raises(FileNotFoundError, match="nothere.txt"):  # in process, with argv: the exception as well
        main(["fit", "--config", str(config)])


class PressCtrlC(Callback):
    """Raises KeyboardInterrupt at the first training batch, as a user's Ctrl-C would."""

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        raise KeyboardInterrupt


def test_ctrl_c_during_fit_exits_with_130(demo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Lightning catches the KeyboardInterrupt, shuts down and calls sys.exit(1); a shell expects 128 + SIGINT.
    config = edited_config(tmp_path, demo_root, lambda c: c["trainer"]["callbacks"].append(
        {"class_path": f"{__name__}.PressCtrlC"}))  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["reskd", "fit", "--config", str(config)])  # as the console script runs
    handler = signal.getsignal(signal.SIGINT)  # Lightning ignores SIGINT from then on: give pytest its own back
    try:
        with pytest.raises(SystemExit) as exit_:
            main()
    finally:
        signal.signal(signal.SIGINT, handler)
    assert exit_.value.code == 130


def test_the_two_stage_demo_fit_prints_no_warning_that_asks_nothing_of_the_user(
    demo_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    quick = ["--trainer.log_every_n_steps", "1"]  # 2 batches an epoch: Lightning rightly warns at the default 50
    with warnings.catch_warnings(record=True) as caught:
        # What `reskd` shows (Python's default filters: no DeprecationWarning from libraries), each time it
        # happens, not once per process, so an earlier test cannot hide one.
        warnings.simplefilter("always")
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.filterwarnings("ignore", category=category)
        main(["fit", "--config", str(teacher := edited_config(tmp_path, demo_root, lambda c: None)), *quick])
        main(["fit", "--config", str(edited_config(tmp_path, demo_root, lambda c: None, "student")), *quick])
        first_runs = len(caught)
        main(["fit", "--config", str(teacher), *quick])  # again, into the folder of the first teacher's checkpoint
    # Actionable, and depends on the machine's CPUs: the tests' configs read videos in the main process.
    actionable = ("does not have many workers",)
    printed = [str(w.message) for w in caught if not any(a in str(w.message) for a in actionable)]
    # Before: the args warning (pytest's sys.argv), the first run's "Checkpoint directory ... is not empty", the
    # frozen teacher's "Found 52 module(s) in eval mode", Lightning's own LeafSpec deprecation in torch's pytree.
    assert printed[:first_runs] == []
    # A second run would overwrite the first one's checkpoint: that warning stays.
    folder = os.path.realpath(tmp_path / "teacher")  # as ModelCheckpoint names it
    assert printed == [f"Checkpoint directory {folder} exists and is not empty."]
    assert not [r for r in caplog.records if r.getMessage().startswith("💡")]  # Lightning's litlogger ad
    assert (tmp_path / "student" / "student.ckpt").is_file()


def test_help_of_reskd_and_of_every_tool_imports_neither_torch_nor_lightning() -> None:
    # Every tool: `reskd prepare --help` imported torch and Lightning (about 4 s) until its parser's settings
    # moved out of the modules that write the frames and reskd_lightning.data imported its names lazily.
    helps = [["--help"], ["predict", "--video", "a.mp4", "--help"], *[[t, "--help"] for t in TOOLS]]
    code = (
        "import sys\nfrom reskd_lightning.cli import main\n"
        f"for argv in {helps!r}:\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'pytorch_lightning', 'jsonargparse'}))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.splitlines()[-1] == "[]", run.stdout[-2000:]
    assert [t for t in TOOLS if f"usage: reskd {t}" not in run.stdout] == []
    # The presets and choices of `reskd prepare` are listed without the modules that use them.
    assert "--preset {anet,anet-jpg,anet-video,jpg}" in run.stdout and "--layout {frames,video}" in run.stdout


def test_reskd_lightning_data_imports_its_names_on_first_use_and_still_gives_every_one() -> None:
    code = (
        "import sys\nimport reskd_lightning.data as data\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'pytorch_lightning'}))\n"
        "from reskd_lightning.data import annotations\nprint(annotations.__name__)\n"  # the submodule, as ever
        "from reskd_lightning.data import *\n"  # every name of __all__, each imported from its submodule
        "print([n for n in data.__all__ if n not in globals() or n not in dir(data)], len(data.__all__))\n"
        "print(VideoDataModule.__module__, write_demo_dataset.__module__, DEMO_CLASSES is data.demo.DEMO_CLASSES)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.splitlines() == [
        "[]",
        "reskd_lightning.data.annotations",
        "[] 50",
        "reskd_lightning.data.datamodule reskd_lightning.data.demo True",
    ], run.stdout


def analysis_row(mode: str, resolution: int, gmacs: float, value: float) -> dict[str, Any]:
    from reskd_lightning.analysis import ANALYSIS_MODES

    return dict(mode=mode, description=ANALYSIS_MODES[mode], resolution=resolution, metric="val/acc1", value=value,
                gmacs=gmacs)  # fmt: skip


def test_the_cost_plot_says_gmacs_and_none_of_its_labels_overlap(tmp_path: Path) -> None:
    import itertools

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from reskd_lightning.plots import accuracy_vs_gmacs, plot_analysis

    # A TSN-like table: B, C and E at 112 px share one cost (and nearly one value); D's points all have A's cost.
    rows = [analysis_row("A", 224, 32.9, 0.80), analysis_row("B", 112, 8.2, 0.55), analysis_row("B", 160, 16.8, 0.70),
            analysis_row("C", 112, 8.2, 0.56), analysis_row("C", 160, 16.8, 0.705), analysis_row("D", 112, 32.9, 0.78),
            analysis_row("D", 160, 32.9, 0.79), analysis_row("E", 112, 8.2, 0.565)]  # fmt: skip
    fig = accuracy_vs_gmacs(rows)
    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    (ax,) = fig.axes
    texts = [*ax.texts, ax.title, ax.xaxis.label, ax.yaxis.label, *fig.legends[0].get_texts()]
    # One label for B, C and E at 112 px, one for B and C at 160 px; D's two and A's.
    assert sorted(t.get_text() for t in ax.texts) == ["112", "112", "160", "160", "224"]
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    overlapping = [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2) if box_a.overlaps(box_b)]
    assert overlapping == []
    # Multiply-adds are MACs; "GFLOPs" would be twice the number.
    assert "GMACs" in ax.get_xlabel() and not [t for t in texts if "FLOP" in t.get_text()]
    assert set(plot_analysis(rows, tmp_path)) == {"accuracy_vs_resolution", "accuracy_vs_gmacs"}
    assert (tmp_path / "accuracy_vs_gmacs.png").read_bytes()[:4] == b"\x89PNG"
