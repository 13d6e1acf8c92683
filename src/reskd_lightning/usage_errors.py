"""A mistyped config key or option in one line: the key, the closest valid one and the config file it is in.

:func:`usage_error` shortens jsonargparse's message (and its 100-line usage) for ``reskd fit|validate|test|predict``
(:meth:`~reskd_lightning.lightning_cli.ResKDCLI.parse_arguments`)."""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from pathlib import Path
from typing import Any, Sequence

import yaml
from jsonargparse import ArgumentParser


#: How jsonargparse reports a key no argument has: (pattern, the key from the match's groups).
_UNKNOWN_KEY = [
    (r"Subcommand '[^']+' does not accept option '([^']+)'", lambda m: m[1]),
    (r"Group '([^']+)' does not accept option '([^']+)'", lambda m: f"{m[1]}.{m[2]}"),
    (r"^unrecognized arguments: (--[^\s=]+)", lambda m: m[1]),
]
#: ... and a key that the class of a ``class_path`` entry does not take.
_UNKNOWN_INIT_ARG = re.compile(
    r'Parser key "([^"]+)":.*?Problem with given class_path \'([^\']+)\':\s*Option \'([^\']+)\' is not accepted', re.S
)


def usage_error(message: str, argv: Sequence[str], parser: ArgumentParser, subcommand: str | None = None) -> str:
    """jsonargparse's error ``message`` for the command line ``argv``, shortened when it is an unknown key: the
    key, the closest valid one (keys of ``parser``, and the arguments of a ``class_path`` entry's class) and the
    config file of ``argv`` it is in, e.g. ``configs/demo.yaml: unknown key 'data.batch_sise' - did you mean
    'data.batch_size'?``. Any other message is returned as it is."""
    nested = _UNKNOWN_INIT_ARG.search(message)
    if nested:
        section, class_path, name = nested.groups()
        key, valid = f"{section}.init_args.{name}", [f"{section}.init_args.{k}" for k in init_args_of(class_path)]
    else:
        found = next((to_key(m) for pattern, to_key in _UNKNOWN_KEY if (m := re.search(pattern, message))), None)
        if found is None:
            return message
        key, valid = found, [a.dest for a in parser._actions]  # argparse keeps no public list of the arguments
        valid = [k for k in valid if k not in ("help", "config", "print_config") and not k.endswith(".help")]
        if key.startswith("--"):  # a command-line option
            valid = [f"--{k}" for k in valid]
    closest = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    where = "" if key.startswith("--") else config_with_key(argv, key, subcommand)
    what = "unknown option" if key.startswith("--") else "unknown key"
    return f"{where + ': ' if where else ''}{what} '{key}'" + (f" — did you mean '{closest[0]}'?" if closest else "")


def init_args_of(class_path: str) -> list[str]:
    """The arguments a ``class_path`` entry's ``init_args`` may have (none when the class cannot be imported)."""
    module, _, name = class_path.rpartition(".")
    try:
        target = getattr(importlib.import_module(module), name)
        parser = ArgumentParser(exit_on_error=False)
        if inspect.isclass(target):
            parser.add_class_arguments(target)
        else:
            parser.add_function_arguments(target)
    except (ImportError, AttributeError, ValueError):
        return []
    return [a.dest for a in parser._actions if a.dest not in ("help",) and not a.dest.endswith(".help")]


def config_with_key(argv: Sequence[str], key: str, subcommand: str | None = None) -> str:
    """The last ``--config`` file of ``argv`` that sets the dotted ``key`` ("" when none does); a list on the
    way (``trainer.callbacks``) matches when any of its entries has the rest of the key."""
    files = [b for a, b in zip(argv, argv[1:]) if a in ("-c", "--config")]
    files += [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    for path in reversed(files):
        try:
            data = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError):
            continue
        if subcommand and isinstance(data, dict) and subcommand in data:
            data = data[subcommand]
        if _has_key(data, key.split(".")):
            return path
    return ""


def _has_key(data: Any, parts: list[str]) -> bool:
    if not parts:
        return True
    if isinstance(data, list):
        return any(_has_key(item, parts) for item in data)
    return isinstance(data, dict) and parts[0] in data and _has_key(data[parts[0]], parts[1:])
