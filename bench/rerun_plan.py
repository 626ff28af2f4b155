"""What a change reruns on a finished default study: the jobs `snakemake -n` plans, per rule.

    python bench/rerun_plan.py [--workdir DIR]

The finished study is made without running a job (bench/parse_time.py: every planned
output created empty, then ``snakemake --touch --forceall``), so the plan is a real
study's.  Prints one line per change: the config merged over config.yaml and the planned
jobs.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parse_time import snakemake, touched_study  # noqa: E402

CHANGES = {
    "probes.gradients.estimates: 8": "probes:\n  gradients:\n    estimates: 8\n",
    "probes.gradients.reference_samples: 262144": "probes:\n  gradients:\n    reference_samples: 262144\n",
    "probes.baselines.estimates: 6": "probes:\n  baselines:\n    estimates: 6\n",
    "probes.landscapes.trajectory_counts: [1, 5, 10]": "probes:\n  landscapes:\n    trajectory_counts: [1, 5, 10]\n",
    "probes.values.heldout_streams: 8": "probes:\n  values:\n    heldout_streams: 8\n",
    "probe_iterations.default: [0, 50, 100, 300]": "probe_iterations:\n  default: [0, 50, 100, 300]\n",
    "training.checkpoint_every: 25": "training:\n  checkpoint_every: 25\n",
    "training.hyperparameters.trpo.max_kl: 0.05": "training:\n  hyperparameters:\n    trpo: {max_kl: 0.05}\n",
    "figures.fig6.n_boot: 200": "figures:\n  fig6: {n_boot: 200}\n",
}


def planned_jobs(workdir: Path, config: Path) -> dict[str, int]:
    _, result = snakemake(workdir, "-n", config=config)
    text = result.stdout
    if "Nothing to be done" in text + result.stderr:
        return {}
    table = text[text.index("Job stats:"):]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)
            if m.group(1) != "total"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="finished default study to reuse (made if absent)")
    args = parser.parse_args()
    study = args.workdir or Path(tempfile.mkdtemp(prefix="pgprobe-finished-"))
    _, plan = snakemake(study, "-n") if (study / ".snakemake").is_dir() else (None, None)
    if plan is None or "Nothing to be done" not in plan.stdout + plan.stderr:
        touched_study(study)      # new, or stale after a code change: record it afresh
    for label, text in CHANGES.items():
        config = study / "change.yaml"
        config.write_text(text)
        jobs = planned_jobs(study, config)
        line = ", ".join(f"{rule} {n}" for rule, n in jobs.items() if rule != "all") or "nothing"
        print(f"{label}: {line}")


if __name__ == "__main__":
    main()
