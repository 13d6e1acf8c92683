"""The tools' layer: one file per tool with a ``main(argv)``, one config loader, one timer, one place for plots,
and public seams instead of other modules' private state. Read from the source (``ast``), as
tests/test_package_structure.py reads the imports."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from reskd_lightning import analysis, benchmark, cli, efficiency

SRC = Path(__file__).resolve().parents[2] / "src" / "reskd_lightning"
MODULES = {p.relative_to(SRC).as_posix(): p for p in sorted(SRC.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(), filename=str(path)) for name, path in MODULES.items()}


def imported_names(tree: ast.AST) -> set[str]:
    """``module`` and ``module.name`` of every import in ``tree`` (inside functions and TYPE_CHECKING too)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def files_where(predicate) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(name for name, tree in TREES.items() if predicate(tree))


@pytest.mark.parametrize("command, module", sorted({**cli.TOOLS, "predict --video": "predict"}.items()))
def test_each_tool_is_a_file_under_tools_with_a_main(command: str, module: str) -> None:
    tool = importlib.import_module(f"reskd_lightning.tools.{module}")
    assert callable(tool.main) and tool.main.__doc__ and f"reskd {command.split()[0]}" in tool.main.__doc__
    assert f"tools/{module}.py" in MODULES


def test_one_config_loader() -> None:
    # Only the CLI's module and the loader know LightningCLI and its parser; the other parsers are gone.
    parsers = ("LightningCLI", "LightningArgumentParser", "ArgumentParser")
    users = files_where(
        lambda tree: any(
            name.rsplit(".", 1)[-1] in parsers and ("jsonargparse" in name or "pytorch_lightning.cli" in name)
            for name in imported_names(tree)
        )
    )
    # usage_errors.py builds a throwaway parser of one class's arguments, only to suggest a misspelt key's match
    assert users == ["lightning_cli.py", "tools/config.py", "usage_errors.py"]
    assert not hasattr(cli, "load_data_module") and not hasattr(benchmark, "ConfigOnlyCLI")
    assert not hasattr(analysis, "load_config") and not hasattr(analysis, "_build_from_spec")


def test_plots_in_one_place_and_one_timer() -> None:
    # matplotlib: the figures in plots.py; reporting.py only names the Figure type it saves.
    assert files_where(lambda tree: any(n.startswith("matplotlib") for n in imported_names(tree))) == [
        "plots.py", "reporting.py"
    ]  # fmt: skip

    def times(tree: ast.AST) -> bool:
        return any(
            isinstance(node, ast.Attribute) and node.attr in ("perf_counter", "process_time", "synchronize")
            for node in ast.walk(tree)
        )

    assert files_where(times) == ["efficiency.py"]
    timers = ("measure_inference", "throughput", "time_repeats", "_timed")
    defining = files_where(
        lambda tree: any(isinstance(node, ast.FunctionDef) and node.name in timers for node in ast.walk(tree))
    )
    assert defining == ["efficiency.py"] and not hasattr(efficiency, "throughput")


def test_no_module_reads_anothers_private_state() -> None:
    # benchmark uses module.student_only(), predictions module.eval_probabilities(), analysis the DataModule's
    # views_at(): no one else touches the module's taps, torch's hook registry or the data's configured views.
    private = {"_eval_logits", "_tap_hooks", "_forward_hooks", "_student_only"}
    readers = files_where(
        lambda tree: any(isinstance(node, ast.Attribute) and node.attr in private for node in ast.walk(tree))
    )
    assert readers == ["module.py"]

    def writes_resolutions(tree: ast.AST) -> bool:
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else []
            for target in targets:
                if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
                    if target.slice.value == "resolutions":
                        return True
        return False

    assert files_where(writes_resolutions) == []


def test_renamed_names() -> None:
    # Analysis modes A-E are ANALYSIS_MODES (MODES meant interpolation modes elsewhere); a network at a
    # resolution is a NetworkAtResolution, loaded by load_network.
    assert set(analysis.ANALYSIS_MODES) == set("ABCDE")
    assert not hasattr(analysis, "MODES") and not hasattr(analysis, "Run") and not hasattr(analysis, "load_run")
    assert analysis.load_network.__annotations__["return"] in ("NetworkAtResolution", analysis.NetworkAtResolution)
