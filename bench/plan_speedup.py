"""What a faster sampler does to ``pgprobe plan``'s estimate: reprice a job list with each
rule's per-pair CPU cost cut by the sampler's measured speedup, without rerunning a study.

    python bench/plan_speedup.py --jobs results/plan/jobs.json \\
        --speedup Hopper-v5=1.6 Walker2d-v5=1.3 Humanoid-v5=1.2

For task e with sampler speedup k_e (bench/sampler_throughput.py: sampler pairs per
CPU-second on the ``auto`` engine over the ``gymnasium`` engine, one worker) and rule r whose
per-pair cost is a fraction φ_r sampling, the per-pair rate becomes
rate_{r,e} · (1 − φ_r · (1 − 1/k_e)), where rate_{r,e} is the task's own measured rate
(``task_rules``) or the rule's rate times the task cost factor c_e.  Fixed overheads stay.
Two scenarios of φ are priced (the studies did not time the sampler apart from the rest of
a job, so φ is an assumption, stated here):

* ``sampling-bound``: φ = 1 for every rule that samples (the shards, gradients, values,
  steps, training): the most the sampler can give;
* ``conservative``: φ = 1 for landscape shards (true-reward episodes: sampling only), 0.5
  for gradient / baseline shards, the gradients and values probes and training (sampling
  next to per-pair gradients, value fits, updates), 0 elsewhere.
"""
from __future__ import annotations

import argparse
import copy
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

COSTS = Path(__file__).resolve().parents[1] / "src" / "pgprobe" / "plan_costs.yaml"
SCENARIOS = {
    "sampling-bound": {r: 1.0 for r in ("probe_landscapes_shard", "probe_gradients_shard",
                                        "probe_baselines_shard", "probe_gradients", "probe_values",
                                        "probe_steps", "train", "train_regime")},
    "conservative": {"probe_landscapes_shard": 1.0, "probe_gradients_shard": 0.5,
                     "probe_baselines_shard": 0.5, "probe_gradients": 0.5, "probe_values": 0.5,
                     "train": 0.5, "train_regime": 0.5},
}


def scaled_costs(costs: dict, speedups: dict, fractions: dict) -> dict:
    out = copy.deepcopy(costs)
    task_rules = out.setdefault("task_rules", {})
    for env, speedup in speedups.items():
        own = task_rules.setdefault(env, {})
        for rule, fraction in fractions.items():
            if rule not in costs["rules"] or "cpu_s_per_pair" not in costs["rules"][rule]:
                continue
            if rule in own:
                rate = own[rule]["cpu_s_per_pair"]
            else:
                rate = costs["rules"][rule]["cpu_s_per_pair"] * costs["env_cost"][env]
                own[rule] = {"base_mb": costs["rules"][rule]["base_mb"]}
            own[rule]["cpu_s_per_pair"] = rate * (1.0 - fraction * (1.0 - 1.0 / speedup))
    return out


def total_cpu_h(jobs: str, costs_path: str) -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "plan.md"
        subprocess.run([sys.executable, "-m", "pgprobe.cli", "plan", "--jobs", jobs, "--costs", costs_path,
                        "--table", str(table)], check=True, capture_output=True)
        text = table.read_text()
    total = re.search(r"\| \*\*total\*\* \| \d+ \| [^|]+ \| ([0-9.]+) \|", text)
    return float(total.group(1)), text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", required=True)
    parser.add_argument("--speedup", nargs="+", required=True, help="ENV=FACTOR")
    args = parser.parse_args()
    speedups = {k: float(v) for k, v in (item.split("=") for item in args.speedup)}
    costs = yaml.safe_load(COSTS.read_text())
    before, _ = total_cpu_h(args.jobs, str(COSTS))
    print(f"speedups (sampler, auto over gymnasium engine): {speedups}")
    print(f"{'scenario':<16}{'CPU-h before':>14}{'CPU-h after':>13}{'ratio':>8}")
    for name, fractions in SCENARIOS.items():
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
            yaml.safe_dump(scaled_costs(costs, speedups, fractions), fh)
        after, table = total_cpu_h(args.jobs, fh.name)
        Path(fh.name).unlink()
        print(f"{name:<16}{before:>14.1f}{after:>13.1f}{after / before:>8.2f}")
        rows = [line for line in table.splitlines() if line.startswith("| probe_") or line.startswith("| train")]
        for line in rows:
            cells = [c.strip() for c in line.strip("|").split("|")]
            print(f"    {cells[0]:<30}{cells[3]:>10} CPU-h")


if __name__ == "__main__":
    main()
