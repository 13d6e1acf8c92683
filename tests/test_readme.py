"""Every command of README.md works as written: its `bash` blocks run on the demo data, in order, in one
working folder (blocks marked as needing a real dataset, a GPU, SLURM or the network are parsed instead:
`--print_config` for the Lightning subcommands, `--help` for the tools), and its Python snippet runs.

Small settings, the same for every run, keep the suite fast; they are the only change made to a command:
`fit`/`validate`/`test` get one epoch of two batches (`SHRINK`), and `check-data` and `analyze` read fewer
videos. `pip install` and virtualenv lines are what `.ci/run` did before the tests, and are skipped.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from reskd_lightning.cli import main as reskd

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

#: A block's marker, on the line before its fence: `<!-- needs: data -->` and the like.
BLOCK = re.compile(r"(?:<!-- (?P<marker>[^>]+?) -->\n)?```(?P<lang>bash|python)\n(?P<body>.*?)```", re.S)
#: Blocks that cannot run here: parsed only.
PARSE_ONLY = ("needs: data", "needs: gpu", "needs: slurm", "needs: network")
#: The small settings added to the commands that train or read a dataset.
SHRINK = {
    "fit": ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2"],
    "validate": ["--trainer.limit_val_batches", "2"],
    "test": ["--trainer.limit_test_batches", "2"],
    "check-data": ["--splits", "val"],
    "analyze": ["--limit-batches", "2"],
}
SKIPPED = ("python3 -m venv", ". .venv/bin/activate", "source .venv/bin/activate", "pip install")


def blocks() -> list[tuple[str | None, str, str]]:
    """``(marker, language, body)`` of every fenced bash or python block, in order."""
    return [(m["marker"], m["lang"], m["body"]) for m in BLOCK.finditer(README.read_text())]


def commands(body: str) -> Iterator[list[str]]:
    """The simple commands of a bash block: continuation lines joined, comments dropped, `&&` chains split."""
    text = re.sub(r"\\\n\s*", " ", body)
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for part in line.split("&&"):
            part = part.strip()
            if part and not part.startswith(SKIPPED):
                yield shlex.split(part, comments=True)


def reskd_args(words: list[str]) -> list[str] | None:
    """The `reskd` arguments of a command (`reskd ...`, `srun reskd ...`, `torchrun ... -m reskd_lightning.cli
    ...`, `sbatch --wrap '...'`), None for another program."""
    if words[:1] == ["reskd"]:
        return words[1:]
    if words[:1] == ["srun"]:
        return reskd_args(words[1:])
    if words and words[0] in ("torchrun", "python", "python3") and "reskd_lightning.cli" in words:
        return words[words.index("reskd_lightning.cli") + 1 :]
    if words[:1] == ["sbatch"] and "--wrap" in words:
        return reskd_args(shlex.split(words[words.index("--wrap") + 1]))
    return None


def parse_only(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Check a command that cannot run here: its config parses (Lightning subcommands) or its tool knows it."""
    if args[0] in ("fit", "validate", "test", "predict") and "--config" in args:
        with pytest.raises(SystemExit) as done:
            reskd([*args, "--print_config"])
        assert done.value.code in (0, None), f"reskd {' '.join(args)} --print_config failed"
        assert "model:" in capsys.readouterr().out
    else:
        with pytest.raises(SystemExit) as done:
            reskd([args[0], "--help"])
        assert done.value.code in (0, None)
        options = capsys.readouterr().out
        for option in (a.split("=")[0] for a in args[1:] if a.startswith("--")):
            assert option in options, f"`reskd {args[0]}` has no option {option}"


def run(args: list[str]) -> None:
    """Run a `reskd` command in process, with the small settings."""
    shrink = SHRINK.get(args[0], [])
    if args[0] in ("fit", "validate", "test") and "--print_config" in args:
        shrink = []
    reskd([*args, *shrink])


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder like the repository's root (its configs), where the commands write `runs/`."""
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_readme_has_the_two_commands_first_and_every_block_is_understood() -> None:
    found = blocks()
    assert found[0][0] is None and "reskd fit --config configs/demo_teacher.yaml" in found[0][2]
    assert found[1][0] == "test-command" and "python -m pytest" in found[1][2]
    for marker, lang, body in found:
        if lang == "bash" and marker in (None, "expect-failure"):
            for words in commands(body):
                assert reskd_args(words) is not None, f"README runs {words[0]!r}: mark the block (e.g. needs: data)"
        else:
            assert marker in (None, "expect-failure", *PARSE_ONLY, "test-command"), f"unknown README marker {marker!r}"


def test_every_readme_command_works_on_the_demo(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for marker, lang, body in blocks():
        if marker == "test-command":
            continue  # .ci/run runs it: it is this suite
        if lang == "python":
            # the snippet as written, with the run shortened as the commands are
            code = body.replace("max_epochs=12", "max_epochs=1, limit_train_batches=2, limit_val_batches=2")
            exec(compile(code, "README.md python block", "exec"), {})
            continue
        for words in commands(body):
            args = reskd_args(words)
            if args is None:
                continue  # another program in a parse-only block (tr, sbatch's script lines)
            if marker in PARSE_ONLY:
                parse_only(args, capsys)
            elif marker == "expect-failure":
                with pytest.raises(SystemExit) as done:
                    run(args)
                assert done.value.code == 2 and "did you mean" in capsys.readouterr().err
            else:
                run(args)
