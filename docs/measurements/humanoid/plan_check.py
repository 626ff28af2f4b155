"""``pgprobe plan``'s estimate against the paper-size jobs it was not fitted on.

    python docs/measurements/humanoid/plan_check.py STUDY_DIR

The packaged cost coefficients (src/pgprobe/plan_costs.yaml) are fitted on the workflow's
benchmark files of the claims study and of this slice (2,097,152-pair gradient references in
4 shards, 524,288-pair true-value fits in 4 shards).  The paper-size references of
``paper_references.sh`` (10,485,760 pairs in 16 gradient shards, 5,001,216 in 16 baselines
shards, and their gathers) ran from the CLI under ``/usr/bin/time -v``; this prices the same
jobs with the plan's model (the study's job list, ``results/plan/jobs.json``, with the
script's settings and 16 shards) and prints estimate against measured CPU-s (user + system)
and peak RSS per kind of job.  Jobs still running or not run are left out.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from pgprobe import plan as planning

HERE = Path(__file__).resolve().parent
SHARDS = 16


def script_settings() -> dict[str, dict]:
    """The gradients and baselines settings of paper_references.sh (its G= and B= lines)."""
    text = (HERE / "paper_references.sh").read_text()
    return {probe: json.loads(re.search(rf"^{var}='(.*)'$", text, re.M).group(1))
            for probe, var in (("gradients", "G"), ("baselines", "B"))}


def time_file(path: Path) -> tuple[float, float] | None:
    """(user + system CPU-s, max RSS MB) of a finished ``/usr/bin/time -v`` file, else None."""
    if not path.exists():
        return None
    text = path.read_text(errors="replace")
    fields = dict(re.findall(r"^\s*([A-Za-z ()/]+?):\s*([\d.:]+)\s*$", text, re.M))
    if "Maximum resident set size (kbytes)" not in fields or fields.get("Exit status") != "0":
        return None
    cpu = float(fields["User time (seconds)"]) + float(fields["System time (seconds)"])
    return cpu, float(fields["Maximum resident set size (kbytes)"]) / 1024


def main(study: Path) -> None:
    plan = json.loads((study / "results/plan/jobs.json").read_text())
    settings = script_settings()
    for probe, values in settings.items():
        plan["probe_settings"][probe] = {**plan["probe_settings"][probe], **values}
        plan["shards"][probe] = SHARDS
    costs = planning.load_costs()
    print(f"costs fitted at {costs['measured']['commit']} ({costs['measured']['studies']})\n")
    print("| job | checkpoint | jobs | pairs per job | CPU-s estimated | CPU-s measured | ratio | "
          "peak MB estimated | peak MB measured |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for probe, algo in (("gradients", "ppo"), ("baselines", "trpo")):
        out = study / f"results/paper_references/{probe}/Humanoid-v5/{algo}/seed0"
        base = {"env": "Humanoid-v5", "algo": algo, "seed": 0, "iteration": 500}
        kinds = [(f"probe_{probe}_shard", [{**base, "rule": f"probe_{probe}_shard", "shard": k}
                                           for k in range(SHARDS)],
                  [out / f"iter0500.shard{k}.log.time" for k in range(SHARDS)]),
                 (f"probe_{probe}", [{**base, "rule": f"probe_{probe}"}], [out / "iter0500.log.time"])]
        for rule, jobs, times in kinds:
            measured = [time_file(path) for path in times]
            done = [(job, m) for job, m in zip(jobs, measured) if m]
            if not done:
                print(f"| {rule} | {algo} seed 0 iter 500 | 0 of {len(jobs)} | | | | | | |")
                continue
            rows = planning.price({**plan, "jobs": [job for job, _ in done]}, costs)
            estimate, cpu = sum(r["cpu_s"] for r in rows), sum(m[0] for _, m in done)
            print(f"| {rule} | {algo} seed 0 iter 500 | {len(done)} of {len(jobs)} | {rows[0]['pairs']:.3g} | "
                  f"{estimate:.0f} | {cpu:.0f} | {estimate / cpu:.2f} | {max(r['peak_mb'] for r in rows):.0f} | "
                  f"{max(m[1] for _, m in done):.0f} |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
