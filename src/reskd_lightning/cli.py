"""``reskd``: dispatches to LightningCLI's subcommands (fit, validate, test, predict) or to a tool.

Lightning's subcommands run :class:`~reskd_lightning.lightning_cli.ResKDCLI`; each tool is the ``main(argv)`` of
a module of :mod:`reskd_lightning.tools`. Nothing in the library imports this module.
"""

from __future__ import annotations

import importlib
import sys
from typing import Callable, Sequence

from .lightning_cli import cli_main  # also ``reskd_lightning.cli.cli_main``: the LightningCLI, run in process

#: ``reskd TOOL ...`` -> the module of :mod:`reskd_lightning.tools` whose ``main(argv)`` runs it.
TOOLS: dict[str, str] = {
    "analyze": "analyze",
    "benchmark": "benchmark",
    "demo-data": "demo_data",
    "check-data": "check_data",
    "flops": "flops",
    "export": "export",
}

USAGE = """usage: reskd {fit,validate,test,predict} --config CONFIG.yaml [--print_config] [overrides]
       reskd predict --ckpt_path X.ckpt --video a.mp4 [b.mp4 ...]   (top classes of your own videos)
       reskd export --ckpt_path X.ckpt --out student.pt [--program]   (the student alone, for deployment)
       reskd {tools} ...

Lightning subcommands: run `reskd fit --help` for every option.
Tools: {tools}; run `reskd TOOL --help`."""


def tool(module: str) -> Callable[[Sequence[str]], None]:
    """The ``main(argv)`` of ``reskd_lightning.tools.<module>`` (imported only when that tool runs)."""
    return importlib.import_module(f"{__package__}.tools.{module}").main


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``reskd`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in TOOLS:
        tool(TOOLS[args[0]])(args[1:])
        return
    if args[:1] == ["predict"] and any(a.split("=")[0] in ("--video", "--list") for a in args[1:]):
        tool("predict")(args[1:])  # a user's own videos; without --video/--list: LightningCLI's predict
        return
    if not args or args[0] in ("-h", "--help"):
        print(USAGE.replace("{tools}", ",".join(TOOLS)))
        return
    cli_main(argv)  # None: LightningCLI reads sys.argv itself


if __name__ == "__main__":
    main()
