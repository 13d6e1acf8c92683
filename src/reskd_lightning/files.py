"""Atomic file writes: a temporary file next to the target, moved into place only once it is complete.

The temporary file is named ``.<target name>.tmp-<host>-<pid>-<8 hex digits>`` and lives in the target's own
folder, so the final ``os.replace`` is a rename on one filesystem: atomic, whatever ``$TMPDIR`` is. A process
killed mid-write (SIGKILL, out of memory, a preempted job) leaves the old target whole and that temporary file
behind; :func:`stale_temps` finds such leftovers by their name and :func:`remove_stale_temps` deletes those whose
writer is gone.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import threading
from pathlib import Path
from typing import Callable, NamedTuple

#: ``.<target>.tmp-<host>-<pid>-<token>``: what :func:`atomic_write` names its temporary files, and nothing else.
TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.tmp-(?P<host>[A-Za-z0-9._-]+)-(?P<pid>\d+)-(?P<token>[0-9a-f]{8})$")

_in_flight: set[str] = set()  # names of this process's temporary files still being written
_in_flight_lock = threading.Lock()


def _host() -> str:
    """This machine's name as temporary file names carry it (characters other than ``[A-Za-z0-9.-]`` as ``_``)."""
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "localhost"


def _new_temp(path: Path) -> Path:
    """A new empty temporary file beside ``path`` (created exclusively, with the umask's permissions)."""
    while True:
        tmp = path.parent / f".{path.name}.tmp-{_host()}-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        with _in_flight_lock:
            _in_flight.add(tmp.name)
        return tmp


def fsync_path(path: str | os.PathLike) -> None:
    """Flush ``path`` (a file, or a folder and so the names in it) to the disk; a folder that cannot be synced
    (Windows, some network filesystems) is left as it is."""
    is_dir = os.path.isdir(path)
    if is_dir and os.name == "nt":
        return
    fd = os.open(path, os.O_RDWR if os.name == "nt" else os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        if not is_dir:
            raise
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object], *, fsync: bool = False) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``.

    An interrupted or failing ``write`` leaves the previous ``path`` as it was and no temporary file behind (a
    killed process leaves its temporary file: see :func:`remove_stale_temps`). With ``fsync``, the file is flushed
    to the disk before the rename and the folder after it, so the new ``path`` also survives a power loss.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp(path)
    try:
        write(tmp)
        if fsync:
            fsync_path(tmp)
        os.replace(tmp, path)
        if fsync:
            fsync_path(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
        with _in_flight_lock:
            _in_flight.discard(tmp.name)
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


class StaleTemps(NamedTuple):
    """:func:`atomic_write`'s temporary files left in a folder by writers that are gone."""

    #: Written on this machine by a process that no longer runs (or by this one, and no longer in flight).
    removable: list[Path]
    #: Written on another machine (a shared filesystem): whether that writer still runs cannot be told from here.
    other_hosts: list[Path]


def _process_runs(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine."""
    if os.name == "nt":
        return True  # os.kill(pid, 0) would terminate the process on Windows: assume it runs
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def stale_temps(folder: str | os.PathLike) -> StaleTemps:
    """:func:`atomic_write`'s temporary files in ``folder`` whose writer is gone (a missing folder has none).

    Only plain files named as :data:`TEMP_NAME` count, so a user's own file is never one. One written on this
    machine is stale when its process no longer runs (a pid reused since then keeps it until that process ends);
    one written on another machine is listed apart, in ``other_hosts``.
    """
    removable: list[Path] = []
    other_hosts: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return StaleTemps([], [])
    host = _host()
    with _in_flight_lock:
        in_flight = set(_in_flight)
    for entry in entries:
        match = TEMP_NAME.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        path = Path(folder) / entry.name
        if match["host"] != host:
            other_hosts.append(path)
        elif int(match["pid"]) == os.getpid():
            if entry.name not in in_flight:  # ours, not being written: an earlier process had this pid
                removable.append(path)
        elif not _process_runs(int(match["pid"])):
            removable.append(path)
    return StaleTemps(sorted(removable), sorted(other_hosts))


def remove_stale_temps(folder: str | os.PathLike) -> StaleTemps:
    """Delete the temporary files of dead writers in ``folder`` (see :func:`stale_temps`); returns what was found:
    ``removable`` (now removed) and ``other_hosts`` (left, for the caller to report)."""
    found = stale_temps(folder)
    for path in found.removable:
        path.unlink(missing_ok=True)
    return found
