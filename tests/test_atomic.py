"""pgprobe.atomic on a shared file system: temporaries carry the host name, a dead writer's
temporary is removed only when provably dead, and the rename is made durable."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pgprobe import atomic


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write(target: Path, text: str = "new") -> None:
    with atomic.atomic_output(target) as tmp:
        tmp.write_text(text)


def test_temporary_name_holds_host_and_pid(tmp_path):
    seen = []
    with atomic.atomic_output(tmp_path / "data.nc") as tmp:
        seen.append(tmp.name)
        tmp.write_text("x")
    assert seen == [f".data.nc.tmp-{atomic.host_name()}-{os.getpid()}"]
    assert (tmp_path / "data.nc").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["data.nc"]


def test_stale_temporary_cleanup_spares_other_hosts_writers(tmp_path):
    """A temporary written on another node is kept even when its PID is dead here (PIDs are
    per node), until it is older than STALE_AFTER_S; on this host a dead writer's
    temporary goes at once and a live writer's stays."""
    dead = _dead_pid()
    other_host = tmp_path / f".data.nc.tmp-another-node.cluster-{dead}"
    other_host_old = tmp_path / f".data.nc.tmp-another-node-{dead + 1}"
    legacy = tmp_path / f".data.nc.tmp{dead}"
    here_dead = tmp_path / f".data.nc.tmp-{atomic.host_name()}-{dead}"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        here_live = tmp_path / f".data.nc.tmp-{atomic.host_name()}-{live.pid}"
        for path in (other_host, other_host_old, legacy, here_dead, here_live):
            path.write_text("partial")
        old = time.time() - atomic.STALE_AFTER_S - 60
        os.utime(other_host_old, (old, old))
        _write(tmp_path / "data.nc")
        assert other_host.exists() and legacy.exists() and here_live.exists()
        assert not here_dead.exists() and not other_host_old.exists()
        assert (tmp_path / "data.nc").read_text() == "new"
    finally:
        live.kill()
        live.wait()


def test_rename_is_followed_by_a_directory_fsync(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        return real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", recording_fsync)
    _write(tmp_path / "data.nc")
    assert synced == [False, True]      # the file, then its directory


@pytest.mark.parametrize("name", ["data.nc", "iter0002.pt"])
def test_other_files_temporaries_are_left_alone(tmp_path, name):
    foreign = tmp_path / f".other.nc.tmp-{atomic.host_name()}-{_dead_pid()}"
    foreign.write_text("partial")
    _write(tmp_path / name)
    assert foreign.exists()
