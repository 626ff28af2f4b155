"""Helpers for tests that run Snakemake on the local single-node SLURM test cluster.

Typical use in a test module (import by path, as tests/test_slurm.py does, so that it
works whatever pytest's import mode and whether tests/ is a package)::

    name = "pgprobe_slurm_test_helpers"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "tests/slurm/helpers.py")
        sys.modules[name] = importlib.util.module_from_spec(spec)   # before exec (dataclasses)
        spec.loader.exec_module(sys.modules[name])
    helpers = sys.modules[name]

    @pytest.fixture(scope="module")
    def slurm_cluster():
        with helpers.slurm_cluster() as cluster:   # pytest.skip()s if it cannot run
            yield cluster

    def test_something(slurm_cluster, tmp_path):
        run = helpers.run_snakemake_on_slurm(
            tmp_path, REPO / "Snakefile", REPO / "tests/tiny_config.yaml", [], [])
        assert run.returncode == 0, run.output_tail()
        # run.submitted: one dict per sbatch (jobid, slurm_jobid, slurm_log)

The cluster is started by ``start_cluster.sh`` (installs munge + slurm-wlm with apt-get
if needed, root only) and stopped by ``stop_cluster.sh``.  Snakemake runs with
``--profile workflow/profiles/slurm --profile tests/slurm/profile``: the real profile
with the test profile on top (local account/partition, squeue status, short polling
delay).
"""
from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
START = HERE / "start_cluster.sh"
STOP = HERE / "stop_cluster.sh"
REAL_PROFILE = REPO / "workflow" / "profiles" / "slurm"
TEST_PROFILE = HERE / "profile"
STATE = Path(os.environ.get("PGPROBE_SLURM_STATE", "/tmp/pgprobe-slurm"))

#: present on Debian (and derivatives), the system the test cluster is built for
DEBIAN_MARKER = Path("/etc/debian_version")

#: exit status of start_cluster.sh when the cluster cannot run on this machine
CANNOT_RUN = 77

# "Job 3 has been submitted with SLURM jobid 17 (log: /…/.snakemake/slurm_logs/rule_b/17.log)."
_SUBMITTED = re.compile(
    r"Job (?P<job>\S+) has been submitted with SLURM jobid (?P<slurm>\d+) \(log: (?P<log>[^)]+)\)"
)


class ClusterUnavailable(RuntimeError):
    """The test cluster cannot run here (not root, no apt-get, packages not installable)."""


def cannot_run_reason() -> str | None:
    """Why the SLURM test cluster cannot run on this machine, or None if it can be tried."""
    if not sys.platform.startswith("linux"):
        return "the SLURM test cluster needs Linux"
    if os.geteuid() != 0:
        return "the SLURM test cluster must be started as root (it runs slurmctld/slurmd)"
    if not Path("/bin/bash").exists():
        return "bash is missing"
    have_slurm = all(
        any((Path(d) / cmd).exists() for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"))
        for cmd in ("slurmctld", "slurmd", "munged", "sbatch")
    )
    if not have_slurm and not any(Path(d, "apt-get").exists() for d in ("/usr/bin", "/bin")):
        return "SLURM is not installed and apt-get is not available to install it"
    return None


def cluster_required(environ=None, euid: int | None = None, debian: bool | None = None) -> bool:
    """Whether a SLURM test must run rather than skip: in CI (CI=true) as root on Debian,
    the setting the cluster is built for, an unavailable cluster is a failure."""
    environ = os.environ if environ is None else environ
    euid = os.geteuid() if euid is None else euid
    debian = DEBIAN_MARKER.exists() if debian is None else debian
    return environ.get("CI", "").strip().lower() in ("true", "1") and euid == 0 and debian


def unavailable(reason: str) -> None:
    """Skip the test (with ``reason``), or fail it where ``cluster_required()``."""
    import pytest

    if cluster_required():
        pytest.fail(f"SLURM test cluster unavailable in CI as root on Debian: {reason}", pytrace=False)
    pytest.skip(f"SLURM test cluster unavailable: {reason}")


def slurm_env(extra: dict[str, str] | None = None, unset: Iterable[str] = ()) -> dict[str, str]:
    """Environment for snakemake/SLURM client commands.

    Drops SLURM_* / SBATCH_* / SRUN_* variables (e.g. when pytest itself runs inside a
    SLURM job, they would point sbatch at the wrong cluster or allocation) and puts the
    running interpreter's bin directory first on PATH, so that jobs find the same
    `snakemake` and `pgprobe` executables (sbatch exports this environment).
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))
    }
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "/usr/bin:/bin")])
    for name in unset:
        env.pop(name, None)
    env.update(extra or {})
    return env


def start_cluster(timeout: float = 900) -> bool:
    """Run start_cluster.sh.  Returns True if this call started the daemons, False if
    they were already running.  Raises ClusterUnavailable (exit 77) or RuntimeError."""
    reason = cannot_run_reason()
    if reason:
        raise ClusterUnavailable(reason)
    proc = subprocess.run(
        ["bash", str(START)], env=slurm_env(), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=timeout,
    )
    if proc.returncode == CANNOT_RUN:
        raise ClusterUnavailable(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "start_cluster.sh: exit 77")
    if proc.returncode != 0:
        raise RuntimeError(
            f"start_cluster.sh failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return "already running" not in proc.stderr


def stop_cluster(timeout: float = 180) -> None:
    proc = subprocess.run(
        ["bash", str(STOP)], env=slurm_env(), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"stop_cluster.sh failed (exit {proc.returncode}):\n{proc.stderr}")


@dataclass
class Cluster:
    started_here: bool
    state: Path = STATE
    partition: str = "local"
    account: str = "pgprobe"


@contextlib.contextmanager
def slurm_cluster(stop: bool | None = None) -> Iterator[Cluster]:
    """Start the test cluster for the duration of the block; pytest.skip()s (with the
    reason) when it cannot run here, or fails where it must run (``cluster_required``).

    Several blocks (test modules, concurrent pytest sessions) may share the cluster:
    each holds a shared lock on $STATE/users.lock, and the last one to leave stops the
    cluster if a test started it (stop=None), always (stop=True) or never (stop=False).
    A cluster that was already running without the tests (started by hand) is left
    running when stop is None.
    """
    import fcntl

    reason = cannot_run_reason()
    if reason:
        unavailable(reason)
    STATE.mkdir(parents=True, exist_ok=True)
    marker = STATE / "started-by-tests"
    with open(STATE / "users.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)           # one start at a time
        try:
            started = start_cluster()
        except ClusterUnavailable as err:
            unavailable(str(err))
        if started:
            marker.touch()
        fcntl.flock(lock, fcntl.LOCK_SH)           # let other users in
        try:
            yield Cluster(started_here=started)
        finally:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                last_user = True
            except BlockingIOError:
                last_user = False
            if last_user and (stop or (stop is None and marker.exists())):
                stop_cluster()
                marker.unlink(missing_ok=True)


@dataclass
class SnakemakeRun:
    """Outcome of run_snakemake_on_slurm."""

    args: list[str]
    returncode: int
    output: str                                   # stdout and stderr, interleaved
    wall_s: float
    submitted: list[dict] = field(default_factory=list)   # one dict per sbatch

    @property
    def slurm_jobids(self) -> list[str]:
        return [s["slurm_jobid"] for s in self.submitted]

    def output_tail(self, lines: int = 120) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


def parse_submissions(output: str) -> list[dict]:
    """Jobs the plugin submitted with sbatch, from its log lines."""
    return [
        {"jobid": m["job"], "slurm_jobid": m["slurm"], "slurm_log": Path(m["log"])}
        for m in _SUBMITTED.finditer(output)
    ]


def run_snakemake_on_slurm(
    workdir: str | os.PathLike,
    snakefile: str | os.PathLike,
    configfile: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    targets: Sequence[str] = (),
    extra_args: Sequence[str] = (),
    *,
    profiles: Sequence[str | os.PathLike] = (REAL_PROFILE, TEST_PROFILE),
    env: dict[str, str] | None = None,
    unset_env: Iterable[str] = (),
    timeout: float = 900,
) -> SnakemakeRun:
    """Run ``python -m snakemake`` with the SLURM executor in `workdir` and wait for it.

    workdir     directory the workflow runs in (--directory; also the cwd, so the
                plugin's .snakemake/slurm_logs end up there)
    snakefile   path of the Snakefile (relative paths are taken from the cwd of the
                caller, i.e. made absolute here)
    configfile  one path or several (--configfile), or None
    targets     target files/rules (empty: the default target)
    extra_args  further snakemake flags, e.g. ["--forceall"] or ["--config", "x=1"]
    profiles    --profile entries, later ones override whole top-level keys
    env/unset_env  variables to add to / remove from the environment (see slurm_env)
    timeout     seconds; on expiry snakemake gets SIGINT (it then scancels its jobs),
                then SIGKILL, and TimeoutError is raised with the output so far.

    Returns a SnakemakeRun (returncode, combined output, wall time, submissions).  The
    output is also written to <workdir>/snakemake-slurm.<N>.log (N = 1, 2, ... per call).
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if configfile is None:
        configfiles: list[str] = []
    elif isinstance(configfile, (str, os.PathLike)):
        configfiles = [str(Path(configfile).resolve())]
    else:
        configfiles = [str(Path(c).resolve()) for c in configfile]
    args = [sys.executable, "-m", "snakemake", *map(str, targets),
            "--snakefile", str(Path(snakefile).resolve()),
            "--directory", str(workdir)]
    if configfiles:
        args += ["--configfile", *configfiles]
    args += [*map(str, extra_args)]
    for profile in profiles:     # repeated --profile: later ones override top-level keys
        args += ["--profile", str(Path(profile).resolve())]

    n = 1
    while (workdir / f"snakemake-slurm.{n}.log").exists():
        n += 1
    logfile = workdir / f"snakemake-slurm.{n}.log"
    t0 = time.monotonic()
    with open(logfile, "w") as log:
        log.write("$ " + shlex.join(args) + "\n")
        log.flush()
        proc = subprocess.Popen(
            args, cwd=workdir, env=slurm_env(env, unset_env), stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGINT)      # snakemake cancels its SLURM jobs
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            output = logfile.read_text(errors="replace")
            tail = "\n".join(output.splitlines()[-80:])
            raise TimeoutError(f"snakemake ran longer than {timeout} s:\n{tail}") from None
    wall = time.monotonic() - t0
    output = logfile.read_text(errors="replace")
    return SnakemakeRun(args, returncode, output, wall, parse_submissions(output))


def scontrol_show_job(slurm_jobid: str) -> dict[str, str]:
    """`scontrol show job -o ID` as a dict (empty once slurmctld forgot the job, which
    happens MinJobAge s after it ended: start_cluster.sh's MIN_JOB_AGE)."""
    proc = subprocess.run(
        ["scontrol", "show", "job", "-o", str(slurm_jobid)], env=slurm_env(),
        capture_output=True, text=True, timeout=30,
    )
    if proc.returncode != 0:
        return {}
    info = {}
    for token in proc.stdout.split():
        key, sep, value = token.partition("=")
        if sep:
            info[key] = value
    return info


def squeue_states(name: str | None = None) -> dict[str, str]:
    """{slurm job id: state} for all jobs slurmctld still knows (optionally by job name,
    which the plugin sets to its run id)."""
    cmd = ["squeue", "--noheader", "--states=all", "--format=%i|%T"]
    if name:
        cmd += ["--name", name]
    proc = subprocess.run(cmd, env=slurm_env(), capture_output=True, text=True, timeout=30)
    proc.check_returncode()
    return dict(line.split("|", 1) for line in proc.stdout.split())
