"""Atomic file output: a kill at any instant leaves the old file, the new file or nothing.

Every NetCDF dataset, checkpoint and figure is written through :func:`atomic_output`:
the writer fills ``.NAME.tmpPID`` in the target directory, which is fsynced and renamed
over NAME (``os.replace`` is atomic on POSIX within one file system).  Temporaries of
writers that were killed (their PID is gone) are removed by the next write of NAME.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from .errors import PgprobeError


def ensure_directory(directory: Path) -> None:
    """Create ``directory`` (and parents); one-line PgprobeError if impossible or unwritable."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PgprobeError(f"cannot create output directory {str(directory)!r}: {exc.strerror}") from None
    if not os.access(directory, os.W_OK):
        raise PgprobeError(f"output directory {str(directory)!r} is not writable")


def remove_stale_temporaries(directory: Path, name: str) -> None:
    """Delete ``.NAME.tmpPID`` files whose writer process no longer exists."""
    for tmp in directory.glob(f".{name}.tmp*"):
        pid = tmp.name.rsplit(".tmp", 1)[-1]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except PermissionError:      # alive: another user's process
            pass


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block succeeds, fsync it and rename
    it to ``path``; when it fails, delete it."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    ensure_directory(directory)
    remove_stale_temporaries(directory, path.name)
    tmp = directory / f".{path.name}.tmp{os.getpid()}"
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
