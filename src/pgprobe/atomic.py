"""Atomic file output: a kill at any instant leaves the old file, the new file or nothing.

Every NetCDF dataset, checkpoint and figure is written through :func:`atomic_output`:
the writer fills ``.NAME.tmp-HOST-PID`` in the target directory, fsyncs it, renames it
over NAME (``os.replace`` is atomic on POSIX within one file system) and fsyncs the
directory, so the rename itself survives a crash.  Temporaries of killed writers are
removed by the next write of NAME, but only when provably dead: written on this host by a
process that no longer exists, or (any host, since a PID says nothing about another node
of a shared file system) untouched for ``STALE_AFTER_S``.
"""
from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path
from typing import Iterator

from .errors import PgprobeError

# A temporary of another host (or of the old unnamed format) is removed once its last
# modification is this old: no writer pauses that long.
STALE_AFTER_S = 2 * 24 * 3600
TEMP_MARK = ".tmp-"


def ensure_directory(directory: Path) -> None:
    """Create ``directory`` (and parents); one-line PgprobeError if impossible or unwritable."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PgprobeError(f"cannot create output directory {str(directory)!r}: {exc.strerror}") from None
    if not os.access(directory, os.W_OK):
        raise PgprobeError(f"output directory {str(directory)!r} is not writable")


def host_name() -> str:
    """This node's name as it appears in temporary file names (no '/')."""
    return socket.gethostname().replace("/", "_") or "unknown-host"


def temporary_path(path: Path) -> Path:
    """``.NAME.tmp-HOST-PID`` next to ``path``."""
    return path.parent / f".{path.name}{TEMP_MARK}{host_name()}-{os.getpid()}"


def _writer(tmp: Path, name: str) -> tuple[str | None, int | None]:
    """(host, pid) of a temporary of NAME; (None, pid) for the old ``.NAME.tmpPID`` form."""
    suffix = tmp.name[len(name) + 1:]
    if suffix.startswith(TEMP_MARK):
        host, _, pid = suffix[len(TEMP_MARK):].rpartition("-")
        return (host, int(pid)) if host and pid.isdigit() else (None, None)
    pid = suffix[len(".tmp"):]
    return None, (int(pid) if pid.isdigit() else None)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:      # alive: another user's process
        return True
    return True


def remove_stale_temporaries(directory: Path, name: str, now: float | None = None) -> list[Path]:
    """Delete temporaries of NAME whose writer is provably gone; returns those deleted."""
    now = time.time() if now is None else now
    here = host_name()
    removed = []
    for tmp in directory.glob(f".{name}.tmp*"):
        host, pid = _writer(tmp, name)
        if pid is None:
            continue
        try:
            age = now - tmp.stat().st_mtime
        except FileNotFoundError:
            continue
        if (host == here and not _process_exists(pid)) or age > STALE_AFTER_S:
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def fsync_directory(directory: Path) -> None:
    """Flush a directory's entries (a rename in it) to disk; a no-op where unsupported."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on directories
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block succeeds, fsync it, rename
    it to ``path`` and fsync the directory; when it fails, delete it."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    ensure_directory(directory)
    remove_stale_temporaries(directory, path.name)
    tmp = temporary_path(directory / path.name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_directory(directory)
    finally:
        if tmp.exists():
            tmp.unlink()
