"""Tables and plots to files and to the active Lightning logger (wandb or CSV).

Every table a tool prints is also written as ``<name>.csv`` and ``<name>.md`` (:func:`write_table`) and every
plot as a PNG (:func:`save_plot`), atomically, so an interrupted run never leaves half a file. The same results
go to the run's logger: a ``wandb.Table`` and a ``wandb.Image`` for a ``WandbLogger``; a CSV file and a copy
of the PNG in the logger's ``log_dir`` for a ``CSVLogger`` (or any logger with a ``log_dir``); nothing for
other loggers.

wandb runs offline unless the user can sync: :func:`wandb_offline_by_default` sets ``WANDB_MODE=offline`` when
``WANDB_MODE`` is unset and no W&B credentials are found (:func:`wandb_credentials_found`: ``WANDB_API_KEY``,
``WANDB_IDENTITY_TOKEN_FILE`` or a ``.netrc`` entry for the W&B server, as ``wandb login`` writes); ``reskd``
calls it before building loggers, so a run without credentials never waits for a network or a login prompt.
With credentials wandb's own default (online) is kept. An offline run is uploaded later with
``wandb sync <save_dir>/wandb/offline-run-*``.
"""

from __future__ import annotations

import csv
import io
import netrc
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence
from urllib.parse import urlsplit

from pytorch_lightning.loggers import Logger, WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from .files import atomic_write, write_text_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Loggers = Sequence[Logger] | Logger | None


# --------------------------------------------------------------------------------------------------- files
def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every key of every row, in order of first appearance."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return list(columns)


def _plain(value: Any) -> Any:
    """A cell as CSV, Markdown and wandb accept it: numbers, strings and booleans as they are, None empty."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a 0-d tensor or numpy scalar
        return value.item()
    return str(value)


def _csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    columns = _columns(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else _plain(row.get(c)) for c in columns])
    return buffer.getvalue()


def _md_cell(value: Any) -> str:
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """``rows`` as a Markdown table (one column per key; floats with 3 decimals, or 1 from 10 up)."""
    columns = _columns(rows)
    if not columns:
        return ""
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(_md_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _check_name(name: str) -> None:
    if not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise ValueError(f"a table or image name must be a relative name without '..', got {name!r}")


def write_table(rows: list[dict[str, Any]], out_dir: str | Path, name: str) -> tuple[Path, Path]:
    """Write ``rows`` as ``<out_dir>/<name>.csv`` and ``<out_dir>/<name>.md`` (a Markdown table), atomically.

    Columns are every key of every row, in order of first appearance; a missing value is an empty cell.
    Returns the two paths.
    """
    _check_name(name)
    out_dir = Path(out_dir)
    csv_path = write_text_atomic(out_dir / f"{name}.csv", _csv_text(rows))
    md_path = write_text_atomic(out_dir / f"{name}.md", markdown_table(rows))
    return csv_path, md_path


def save_plot(fig: "Figure", path: str | Path) -> Path:
    """Save a matplotlib figure as a PNG, atomically; rendered by Agg, so no display is needed.

    Build figures with ``matplotlib.figure.Figure()`` in scripts (no pyplot, no GUI backend); a pyplot figure
    works as well.
    """
    path = Path(path)
    # savefig with format="png" renders with Agg whatever the interactive backend is.
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))


# ------------------------------------------------------------------------------------------------ loggers
def _as_list(loggers: Loggers) -> list[Logger]:
    if loggers is None or loggers is False:
        return []
    if isinstance(loggers, Logger):
        return [loggers]
    return [lg for lg in loggers if lg is not None]


def _log_dir(logger: Logger) -> Path | None:
    log_dir = getattr(logger, "log_dir", None)
    return Path(log_dir) if log_dir else None


@rank_zero_only
def log_table(loggers: Loggers, name: str, rows: list[dict[str, Any]]) -> None:
    """Log a table to each logger: a ``wandb.Table`` under ``name`` for a ``WandbLogger``; the CSV file
    ``<log_dir>/<name>.csv`` for a ``CSVLogger`` (or any logger with a ``log_dir``); nothing for others.
    Rank zero only."""
    _check_name(name)
    columns = _columns(rows)
    for logger in _as_list(loggers):
        if isinstance(logger, WandbLogger):
            data = [[_plain(row.get(c)) for c in columns] for row in rows]
            logger.log_table(key=name, columns=columns, data=data)
        elif (log_dir := _log_dir(logger)) is not None:
            write_text_atomic(log_dir / f"{name}.csv", _csv_text(rows))


@rank_zero_only
def log_image(loggers: Loggers, name: str, path: str | Path) -> None:
    """Log a PNG to each logger: ``WandbLogger.log_image`` under ``name``; for a ``CSVLogger`` (or any logger
    with a ``log_dir``) a copy ``<log_dir>/<name>.png``; nothing for others. Rank zero only."""
    _check_name(name)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image to log at {path}")
    for logger in _as_list(loggers):
        if isinstance(logger, WandbLogger):
            logger.log_image(key=name, images=[str(path)])
        elif (log_dir := _log_dir(logger)) is not None:
            target = log_dir / f"{name}{path.suffix or '.png'}"
            atomic_write(target, lambda tmp: shutil.copyfile(path, tmp))


@rank_zero_only
def log_config(loggers: Loggers, config: Mapping[str, Any]) -> None:
    """Put ``config`` (a run's whole configuration, a plain nested dict) into every ``WandbLogger``'s run config.

    Lightning logs the module's and the DataModule's hyper-parameters only; ``reskd`` calls this with the full
    LightningCLI config (trainer, callbacks, optimizer included). Other loggers are left alone: their runs
    already keep ``config.yaml``. Rank zero only.
    """
    for logger in _as_list(loggers):
        if isinstance(logger, WandbLogger):
            logger.experiment.config.update(dict(config), allow_val_change=True)


@rank_zero_only
def log_file(loggers: Loggers, path: str | Path) -> None:
    """Put the file at ``path`` (e.g. ``reskd test``'s per-video ``predictions_test.csv``) into every
    ``WandbLogger``'s run, under its own name in the run's files (offline: linked into the run folder, uploaded by
    ``wandb sync``). Other loggers are left alone: the file is already on disk. Rank zero only.

    A whole file rather than a ``wandb.Table``: wandb cuts a logged table to its first 10,000 rows
    (``wandb.Table.MAX_ROWS``), fewer than the videos of a Kinetics-400 or FCVID test set."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file to log at {path}")
    for logger in _as_list(loggers):
        if isinstance(logger, WandbLogger):
            logger.experiment.save(str(path.resolve()), base_path=str(path.resolve().parent), policy="now")


#: W&B servers whose ``.netrc`` entry ``wandb login`` writes when ``WANDB_BASE_URL`` is unset: api.wandb.ai, and
#: since wandb 0.31 its default base URL api.forge.coreweave.com (``wandb/sdk/lib/urls.py``), which also reads the
#: api.wandb.ai entry.
WANDB_DEFAULT_HOSTS = ("api.wandb.ai", "api.forge.coreweave.com")


def _netrc_path() -> Path:
    """The ``.netrc`` file wandb reads: ``$NETRC``, else ``~/.netrc``, else ``~/_netrc`` (as wandb's ``wbnetrc``)."""
    if os.environ.get("NETRC"):
        return Path(os.environ["NETRC"]).expanduser()
    found = [p for p in (Path("~/.netrc").expanduser(), Path("~/_netrc").expanduser()) if p.exists()]
    return found[0] if found else Path("~/.netrc").expanduser()


def wandb_credentials_found() -> bool:
    """Whether wandb would find credentials without asking: ``WANDB_API_KEY`` or ``WANDB_IDENTITY_TOKEN_FILE``
    set, or a ``.netrc`` entry with a password for the server (``WANDB_BASE_URL``'s host, else W&B's own).

    A server chosen with ``wandb login --host`` alone (kept in wandb's settings file, not in the environment) is
    not seen: set ``WANDB_BASE_URL`` or ``WANDB_MODE=online`` for it."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL", "")).netloc
    hosts = (host,) if host and host not in WANDB_DEFAULT_HOSTS else WANDB_DEFAULT_HOSTS
    try:
        entries = netrc.netrc(str(_netrc_path()))
    except (OSError, netrc.NetrcParseError):  # no file, or one wandb cannot read either
        return False
    return any((entry := entries.authenticators(host)) is not None and bool(entry[2]) for host in hosts)


def wandb_offline_by_default() -> None:
    """Set ``WANDB_MODE=offline`` unless the user has set ``WANDB_MODE`` or wandb has credentials
    (:func:`wandb_credentials_found`), so that a run never waits for a network or a login prompt; ``reskd`` calls
    it before it builds loggers. With credentials, wandb's default (online) is kept; ``WANDB_MODE=offline`` keeps
    such a run local too."""
    if "WANDB_MODE" not in os.environ and not wandb_credentials_found():
        os.environ["WANDB_MODE"] = "offline"
