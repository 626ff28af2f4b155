"""Fit ``pgprobe plan``'s cost coefficients (src/pgprobe/plan_costs.yaml) from measured studies.

    python bench/fit_plan_costs.py --study DIR CONFIG [--study DIR CONFIG ...] \\
        [--env-cost-envs Hopper-v5 Walker2d-v5 Humanoid-v5] --out src/pgprobe/plan_costs.yaml

Each study is a finished workflow directory (its ``benchmarks/`` files, Snakemake's CPU
seconds and peak RSS per job) and the ``--configfile`` it ran with.  Its job list comes
from the workflow's ``plan_jobs`` rule (run in the study's directory on that config), and
each job's state-action pairs from ``pgprobe.plan.job_pairs``, so the fit and the plan
count work the same way.  Per rule r:

  overhead_r      fixed rules (configs, collect, figures, claims): median CPU-s of their jobs;
                  rules that scale: median CPU-s of the landscapes gather (a probe job that
                  loads a checkpoint and writes a dataset and samples nothing)
  cpu_s_per_pair  Σ_j (CPU-s_j − overhead_r) / Σ_j c_e · pairs_j (a ratio estimator: big
                  jobs weigh most)
  base_mb         max_j (peak RSS_j − held_j allowance)

The episode-length table L_e(iteration) is the mean of ``mean_episode_length`` over the
studies' training runs of task e (all algorithms and seeds, ±5 iterations), and the task
cost factor c_e is the sampler's CPU-s per pair on e over Hopper-v5's
(bench/sampler_throughput.py's sampler, measured here, one worker).  It prints the
per-rule fit and, per study, the estimate against the measured total CPU-s.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import xarray as xr
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))


def job_list(config: Path, scratch: Path) -> dict:
    """The study's job list: the workflow's plan_jobs rule run in the study's own directory
    (``scratch``; agents' files are relative to it)."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(scratch), "--cores", "1",
           "results/plan/jobs.json", "--quiet", "rules", "--forcerun", "plan_jobs", "--configfile", str(config)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads((scratch / "results/plan/jobs.json").read_text())


def benchmark_path(study: Path, job: dict) -> Path:
    rule, env, algo, seed, it = job["rule"], job["env"], job["algo"], job["seed"], job["iteration"]
    if rule == "train":
        return study / f"benchmarks/train/{env}/{algo}/seed{seed}.tsv"
    if rule == "train_regime":
        return study / f"benchmarks/regime/{env}/{algo}/steps{job['steps']}_lr{format(job['scale'], 'g')}/seed{seed}.tsv"
    if rule.startswith("probe_"):
        parts = rule.split("_")
        suffix = {"shard": f".shard{job.get('shard')}", "directions": ".directions"}.get(parts[-1], "")
        return study / f"benchmarks/probes/{parts[1]}/{env}/{algo}/seed{seed}/iter{int(it):04d}{suffix}.tsv"
    if rule.startswith("collect_"):
        return study / f"benchmarks/collect/{rule[len('collect_'):]}.tsv"
    if rule.startswith("figure_"):
        return study / f"benchmarks/figures/{rule[len('figure_'):]}.tsv"
    if rule == "claims":
        return study / "benchmarks/claims.tsv"
    return None


def read_benchmark(path: Path) -> tuple[float, float] | None:
    """(CPU-s, peak RSS MB) of a Snakemake benchmark file, or None when absent."""
    if path is None or not path.exists():
        return None
    rows = list(csv.DictReader(path.open(), delimiter="\t"))
    if not rows:
        return None
    row = rows[-1]
    return float(row["cpu_time"]), float(row["max_rss"])


def episode_length_table(studies: list[Path]) -> dict:
    """Per task: {iteration: mean episode length} over the studies' training runs
    (results/runs/ENV/ALGO/seedS/train.nc; every algorithm and seed; ±5 iterations; the
    checkpoint-0 policy's episodes are those of iteration 1's batch)."""
    curves: dict[str, list] = defaultdict(list)
    for study in studies:
        for path in sorted(study.glob("results/runs/*/*/seed*/train.nc")):
            env = path.parts[-4]
            with xr.open_dataset(path) as ds:
                curve = ds["mean_episode_length"].squeeze(drop=True).load()
            curves[env].append(curve.drop_vars([c for c in curve.coords if c != "iteration"]))
    table = {}
    for env, runs in curves.items():
        curve = xr.concat(runs, "run", join="outer").mean("run", skipna=True)
        smooth = curve.rolling(iteration=11, center=True, min_periods=1).mean()
        iterations = curve["iteration"].values
        marks = [int(i) for i in iterations if i % 25 == 0 or i == iterations.max()]
        table[env] = {i: round(float(smooth.sel(iteration=i)), 1) for i in marks}
        # iteration k's batch is sampled by checkpoint k - 1's policy: checkpoint 0 = iteration 1
        table[env] = {0: round(float(curve.isel(iteration=0)), 1), **table[env]}
    return table


def landscape_episode_fraction(studies: list[tuple[Path, Path]], costs: dict) -> dict:
    """Per task: Σ steps of the landscape shards' episodes / Σ the plan's episode count × L_e
    (perturbed policies end their episodes sooner than the trained one)."""
    from pgprobe import plan as planning

    actual, planned = defaultdict(float), defaultdict(float)
    for study, config in studies:
        plan = job_list(config, study)
        for job in plan["jobs"]:
            if job["rule"] != "probe_landscapes_shard" or job["algo"] not in ("ppo", "trpo"):
                continue
            path = study / (f"results/probes/landscapes/{job['env']}/{job['algo']}/seed{job['seed']}/"
                            f"iter{int(job['iteration']):04d}.shard{job['shard']}.nc")
            if not path.exists():
                continue
            with xr.open_dataset(path) as ds:
                actual[job["env"]] += float(ds["episode_length"].sum())
            planned[job["env"]] += planning.job_pairs(job, plan, {**costs, "landscape_episode_fraction": {}})[0]
    return {env: round(actual[env] / planned[env], 3) for env in planned if planned[env]}


def env_cost(envs: list[str], steps: int) -> dict:
    from sampler_throughput import make_agent, sampler_steps_per_second
    cpu_per_pair = {}
    for env in envs:
        _, cpu_rate = sampler_steps_per_second(make_agent(env), 8, steps, 1, 8)
        cpu_per_pair[env] = 1.0 / cpu_rate
        print(f"sampler on {env}: {cpu_rate:.0f} pairs per CPU-s")
    reference = cpu_per_pair.get("Hopper-v5") or next(iter(cpu_per_pair.values()))
    return {env: round(value / reference, 3) for env, value in cpu_per_pair.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", nargs=2, action="append", metavar=("DIR", "CONFIG"), required=True)
    parser.add_argument("--validate", nargs=2, action="append", default=[], metavar=("DIR", "CONFIG"),
                        help="a measured study priced with the fitted costs but not used to fit them")
    parser.add_argument("--env-cost-envs", nargs="+", default=["Hopper-v5", "Walker2d-v5", "Humanoid-v5"])
    parser.add_argument("--env-cost-steps", type=int, default=2048)
    parser.add_argument("--commit", required=True, help="commit the studies ran at")
    parser.add_argument("--machine", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    from pgprobe import plan as planning

    studies = [(Path(d).resolve(), Path(c).resolve()) for d, c in args.study]
    costs = {"measured": {"commit": args.commit, "machine": args.machine,
                          "studies": ", ".join(str(c.relative_to(REPO)) if c.is_relative_to(REPO) else c.name
                                               for _, c in studies)},
             "env_cost": env_cost(args.env_cost_envs, args.env_cost_steps),
             "episode_length": episode_length_table([d for d, _ in studies]),
             "rules": {}}
    costs["landscape_episode_fraction"] = landscape_episode_fraction(studies, costs)
    samples: dict[str, list] = defaultdict(list)      # rule -> [(cpu, rss, weighted pairs, held allowance MB)]
    plans = []
    for n, (study, config) in enumerate(studies):
        plan = job_list(config, study)
        plans.append((study, plan))
        dims = {}
        for job in plan["jobs"]:
            measured = read_benchmark(benchmark_path(study, job))
            if measured is None:
                continue
            pairs, held, _ = planning.job_pairs(job, plan, costs)
            factor = costs["env_cost"].get(job["env"], 1.0) if job["env"] else 1.0
            allowance = held * planning.held_bytes_per_pair(planning._dims(job["env"], dims)) / 2 ** 20 \
                if job["env"] and held else 0.0
            key = planning._rule_key(job["rule"])
            if job["algo"] not in (None, "ppo", "trpo"):
                continue        # imported agents: networks of other sizes (the plan assumes pgprobe's)
            samples[key].append((measured[0], measured[1], factor * pairs, allowance))

    gather = [cpu for cpu, _, _, _ in samples.get("probe_landscapes", [])]
    probe_overhead = statistics.median(gather) if gather else 3.0
    for rule, rows in sorted(samples.items()):
        scaled = any(pairs > 0 for _, _, pairs, _ in rows)
        overhead = probe_overhead if scaled else statistics.median(cpu for cpu, _, _, _ in rows)
        entry = {"overhead_cpu_s": round(overhead, 2), "jobs_measured": len(rows),
                 "base_mb": round(max(rss - held for _, rss, _, held in rows), 0)}
        if scaled:
            entry["cpu_s_per_pair"] = float(f"{sum(cpu - overhead for cpu, _, _, _ in rows) / sum(p for _, _, p, _ in rows):.4g}")
        costs["rules"][rule] = entry
        print(f"{rule:32s} jobs {len(rows):4d}  overhead {overhead:7.2f} CPU-s  "
              f"per pair {entry.get('cpu_s_per_pair', 0) * 1e6:8.1f} µCPU-s  base {entry['base_mb']:.0f} MB")
    costs["rules"]["default"] = {"overhead_cpu_s": round(probe_overhead, 2), "jobs_measured": 0,
                                 "base_mb": max(e["base_mb"] for e in costs["rules"].values())}
    Path(args.out).write_text("# pgprobe plan's cost coefficients: written by bench/fit_plan_costs.py (see its docstring).\n"
                              + yaml.safe_dump(costs, sort_keys=False))
    for n, (directory, config) in enumerate(args.validate):
        plans.append((Path(directory).resolve(), job_list(Path(config).resolve(), Path(directory).resolve())))
    for study, plan in plans:
        rows = planning.price(plan, costs)
        estimate = sum(r["cpu_s"] for r in rows)
        priced = [row for row in rows]
        jobs = [job for job in plan["jobs"] if job["rule"] not in planning.IN_PROCESS_RULES]
        measured = [read_benchmark(benchmark_path(study, job)) for job in jobs]
        total = sum(m[0] for m in measured if m)
        covered = sum(row["cpu_s"] for row, m in zip(priced, measured) if m)
        print(f"{study}: estimate {estimate / 3600:.3f} CPU-h for {len(jobs)} jobs; over the "
              f"{sum(1 for m in measured if m)} jobs with benchmark files: estimate {covered / 3600:.3f}, "
              f"measured {total / 3600:.3f} CPU-h, ratio {covered / total:.3f}" if total else f"{study}: no benchmarks")
        own = [(row, m) for row, m in zip(priced, measured) if m and not row["imported_agent"]]
        if len(own) < sum(1 for m in measured if m):
            est, meas = sum(r["cpu_s"] for r, _ in own), sum(m[0] for _, m in own)
            print(f"    without imported agents' jobs: estimate {est / 3600:.3f}, measured {meas / 3600:.3f} CPU-h, "
                  f"ratio {est / meas:.3f}")
        by_rule: dict[str, list] = defaultdict(lambda: [0.0, 0.0])
        for row, m in zip(priced, measured):
            if m and not row["imported_agent"]:
                by_rule[planning._rule_key(row["rule"])][0] += row["cpu_s"]
                by_rule[planning._rule_key(row["rule"])][1] += m[0]
        for rule, (est, meas) in sorted(by_rule.items(), key=lambda kv: -kv[1][1]):
            print(f"    {rule:32s} estimate {est:9.0f} CPU-s  measured {meas:9.0f} CPU-s  ratio {est / meas:.2f}")


if __name__ == "__main__":
    main()
