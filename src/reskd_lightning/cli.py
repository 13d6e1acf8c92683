"""``reskd``: dispatches to LightningCLI's subcommands (fit, validate, test, predict) or to a tool.

Lightning's subcommands run :class:`~reskd_lightning.lightning_cli.ResKDCLI`; each tool is the ``main(argv)`` of
a module of :mod:`reskd_lightning.tools`. Nothing in the library imports this module.

``main(argv)`` and :func:`run` raise what the command raises (for scripts and tests); ``main()``, the console
script, ends an error in one line, ``reskd: error: <message>`` and exit status 1 (``RESKD_DEBUG=1``: the
traceback), and a Ctrl-C with exit status 130. Nothing imports torch or Lightning before a command needs them:
``reskd --help`` and ``reskd TOOL --help`` start in a fraction of a second.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:
    from .lightning_cli import ResKDCLI

#: ``reskd TOOL ...`` -> the module of :mod:`reskd_lightning.tools` whose ``main(argv)`` runs it.
TOOLS: dict[str, str] = {
    "analyze": "analyze",
    "benchmark": "benchmark",
    "demo-data": "demo_data",
    "check-data": "check_data",
    "flops": "flops",
    "export": "export",
    "prepare": "prepare",
}

USAGE = """usage: reskd {fit,validate,test,predict} --config CONFIG.yaml [--print_config] [overrides]
       reskd predict --ckpt_path X.ckpt --video a.mp4 [b.mp4 ...]   (top classes of your own videos)
       reskd export --ckpt_path X.ckpt --out student.pt [--program]   (the student alone, for deployment)
       reskd prepare VIDEO_LIST --out DIR [--preset anet] [--shard i/n]   (frame folders or MJPEG, resumable)
       reskd {tools} ...

Lightning subcommands: run `reskd fit --help` for every option.
Tools: {tools}; run `reskd TOOL --help`."""


def tool(module: str) -> Callable[[Sequence[str]], None]:
    """The ``main(argv)`` of ``reskd_lightning.tools.<module>`` (imported only when that tool runs)."""
    return importlib.import_module(f"{__package__}.tools.{module}").main


def cli_main(args: Sequence[str] | None = None, run: bool = True) -> ResKDCLI:
    """:func:`reskd_lightning.lightning_cli.cli_main`, imported when called (it imports torch and Lightning)."""
    from .lightning_cli import cli_main as lightning_cli_main

    return lightning_cli_main(args, run=run)


def run(argv: Sequence[str] | None = None) -> None:
    """``reskd ARGS`` in process (``argv`` None: ``sys.argv[1:]``); raises what the command raises."""
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


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``reskd`` console script. Given ``argv`` (tests, scripts), it is :func:`run`: it raises
    what the command raises. Without (the console script, ``python -m reskd_lightning.cli``), an error ends in
    one line on stderr, ``reskd: error: <message>``, with exit status 1 (``RESKD_DEBUG=1``: the traceback), and
    Ctrl-C with exit status 130 and no traceback. Usage errors keep their own message and exit status (2)."""
    if argv is not None:
        run(argv)
        return
    try:
        run()
    except KeyboardInterrupt:
        sys.stderr.write("reskd: interrupted\n")
        raise SystemExit(130) from None  # 128 + SIGINT, as a shell reports a Ctrl-C
    except SystemExit as done:
        if isinstance(done.__context__, KeyboardInterrupt):  # the Trainer shut down on Ctrl-C and exited with 1
            raise SystemExit(130) from None
        raise
    except Exception as error:
        if os.environ.get("RESKD_DEBUG", "") not in ("", "0"):
            raise
        sys.stderr.write(f"reskd: error: {one_line(error)} (set RESKD_DEBUG=1 for the traceback)\n")
        raise SystemExit(1) from None


def one_line(error: BaseException) -> str:
    """What ``reskd`` prints of an error: the library's message as it is; the type too for any other error
    (a bug more likely than a wrong setting), and from a DataLoader worker, the original error's last line."""
    message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)  # no repr quotes
    message = message or type(error).__name__
    if "Original Traceback" in message:  # torch re-raises a worker's error with the worker's traceback in it
        message = [line for line in message.splitlines() if line.strip()][-1]
    expected = isinstance(error, (OSError, ValueError, KeyError)) or type(error).__module__.startswith(str(__package__))
    return message if expected else f"{type(error).__name__}: {message}"


if __name__ == "__main__":
    main()
