"""Workflow parse time: what every Snakemake invocation (and, with the SLURM executor,
every job) pays before it does anything.

    python bench/parse_time.py [--repeats 3] [--workdir DIR]

Prints, in seconds (median of ``--repeats`` runs, 2-core machine unless stated):

* ``parse``: ``snakemake --list-rules`` (parse and validate the config, no DAG) in an
  empty directory, for the default config and ``workflow/presets/paper.yaml``; the first
  (cold) run and the median of the later (warm) runs are shown apart, since the workflow
  caches its config checks under ``.snakemake/pgprobe/``;
* ``dry run``: ``snakemake -n figures/fig6.pdf`` in an empty directory (parse + DAG);
* ``no-op``: ``snakemake --cores 1`` on a finished default study.  The finished study is
  made without running anything: every planned output is created empty and recorded with
  ``snakemake --touch --forceall`` (made once in ``--workdir``; the plan, params and code hashes are
  those of a real finished study).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
PAPER = REPO / "workflow" / "presets" / "paper.yaml"


def snakemake(workdir: Path, *args: str, config: Path | None = None) -> tuple[float, subprocess.CompletedProcess]:
    """Run snakemake in ``workdir``; (wall seconds, result).  Fails loudly on error."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--cores", "1"]
    if config is not None:
        cmd += ["--configfile", str(config)]
    start = time.perf_counter()
    result = subprocess.run(cmd + list(args), cwd=workdir, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(cmd + list(args))} failed in {workdir}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return wall, result


def touched_study(workdir: Path, config: Path | None = None) -> Path:
    """A finished study without running a job: every planned output created empty, then
    recorded by ``snakemake --touch --forceall`` (metadata of every job: params, code, inputs)."""
    workdir.mkdir(parents=True, exist_ok=True)
    _, summary = snakemake(workdir, "--summary", config=config)
    for line in summary.stdout.splitlines()[1:]:
        path = workdir / line.split("\t")[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    snakemake(workdir, "--touch", "--forceall", config=config)
    return workdir


def timings(repeats: int, workdir: Path | None) -> list[tuple[str, str]]:
    rows = []
    for label, config in (("default", None), ("paper", PAPER)):
        with tempfile.TemporaryDirectory() as tmp:
            walls = [snakemake(Path(tmp), "--list-rules", config=config)[0] for _ in range(repeats + 1)]
        rows.append((f"parse ({label} config, cold)", f"{walls[0]:.2f}"))
        rows.append((f"parse ({label} config, warm)", f"{statistics.median(walls[1:]):.2f}"))
    with tempfile.TemporaryDirectory() as tmp:
        walls = [snakemake(Path(tmp), "-n", "figures/fig6.pdf")[0] for _ in range(repeats)]
    rows.append(("dry run figures/fig6.pdf (empty study)", f"{statistics.median(walls):.2f}"))
    study = workdir or Path(tempfile.mkdtemp(prefix="pgprobe-finished-"))
    _, plan = snakemake(study, "-n") if (study / ".snakemake").is_dir() else (None, None)
    if plan is None or "Nothing to be done" not in plan.stdout + plan.stderr:
        touched_study(study)      # new, or stale after a code change: record it afresh
    walls = []
    for _ in range(repeats):
        wall, result = snakemake(study)
        if "Nothing to be done" not in result.stdout + result.stderr:
            sys.exit(f"the finished study at {study} is not finished:\n{result.stdout[-2000:]}")
        walls.append(wall)
    rows.append(("no-op snakemake (finished default study)", f"{statistics.median(walls):.2f}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per timing (median)")
    parser.add_argument("--workdir", type=Path, help="finished default study to reuse (made if absent)")
    args = parser.parse_args()
    rows = timings(args.repeats, args.workdir)
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value} s")


if __name__ == "__main__":
    main()
