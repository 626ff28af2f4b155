"""Fit ``pgprobe plan``'s cost coefficients (src/pgprobe/plan_costs.yaml) from measured studies.

    python bench/fit_plan_costs.py --study DIR CONFIG [--study DIR CONFIG ...] \\
        [--env-cost-envs Hopper-v5 Walker2d-v5 Humanoid-v5] [--keep-task-rules Humanoid-v5] \
        --out src/pgprobe/plan_costs.yaml
    python bench/fit_plan_costs.py --validate DIR CONFIG [CONFIG ...]   # the packaged costs

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

Per task e and rule r measured on it (``task_rules``): rate_{r,e} = Σ_j (CPU-s_j − overhead_r)
/ Σ_j pairs_j over e's jobs, and base_mb_{r,e} as above; the plan uses them instead of
rate_r · c_e (a task's backward passes and its trained policy's contacts do not scale like a
fresh policy's sampling).

The episode-length table L_e(iteration) is the mean of ``mean_episode_length`` over the
studies' training runs of task e (all algorithms and seeds, ±5 iterations), and the task
cost factor c_e is the sampler's CPU-s per pair on e over Hopper-v5's
(bench/sampler_throughput.py's sampler, measured here, one worker).  It prints the
per-rule fit and, per study, the estimate against the measured total CPU-s.  Without
``--study`` it fits nothing and prices the ``--validate`` studies (each a directory and the
config files it ran with, in order) with ``--costs`` (default: the packaged coefficients),
per rule CPU-s and the largest job's peak memory against the benchmark files'.
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


def job_list(config: Path | list[Path], scratch: Path) -> dict:
    """The study's job list: the workflow's plan_jobs rule run in the study's own directory
    (``scratch``; agents' files are relative to it) on its config file(s)."""
    configs = [config] if isinstance(config, Path) else config
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(scratch), "--cores", "1",
           "results/plan/jobs.json", "--quiet", "rules", "--forcerun", "plan_jobs",
           "--configfile", *map(str, configs)]
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
    for study, configs in studies:
        plan = job_list(configs, study)
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
        _, cpu_rate = sampler_steps_per_second(make_agent(env), 8, steps, 1, 8, "auto")
        cpu_per_pair[env] = 1.0 / cpu_rate
        print(f"sampler on {env}: {cpu_rate:.0f} pairs per CPU-s")
    reference = cpu_per_pair.get("Hopper-v5") or next(iter(cpu_per_pair.values()))
    return {env: round(value / reference, 3) for env, value in cpu_per_pair.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", nargs="+", action="append", default=[], metavar="DIR CONFIG",
                        help="a measured study to fit on: its directory, then its config files")
    parser.add_argument("--exclude", nargs="+", default=[], metavar="BENCHMARK",
                        help="benchmark files not to fit on (e.g. a resumed run's, which covers only "
                             "the iterations after the resume)")
    parser.add_argument("--env-cost-from", metavar="COSTS",
                        help="take the task factors c_e from this costs file instead of measuring them")
    parser.add_argument("--validate", nargs="+", action="append", default=[], metavar="DIR CONFIG",
                        help="a measured study (directory, then its config files) priced with the "
                             "costs but not used to fit them")
    parser.add_argument("--costs", help="without --study: the costs file to validate (default: packaged)")
    parser.add_argument("--env-cost-envs", nargs="+", default=["Hopper-v5", "Walker2d-v5", "Humanoid-v5"])
    parser.add_argument("--env-cost-steps", type=int, default=2048)
    parser.add_argument("--keep-task-rules", nargs="+", default=[], metavar="ENV",
                        help="tasks none of the studies ran: keep their per-task rates (task_rules) and "
                             "episode lengths from --costs (default: the packaged file), as measured there")
    parser.add_argument("--commit", help="commit the studies ran at (with --study)")
    parser.add_argument("--machine", help="with --study")
    parser.add_argument("--out", help="with --study: the costs file to write")
    args = parser.parse_args()
    if any(len(v) < 2 for v in args.validate + args.study):
        parser.error("--study and --validate take a study directory and at least one config file")
    if args.study and not (args.commit and args.machine and args.out):
        parser.error("--study needs --commit, --machine and --out")
    if not args.study and not args.validate:
        parser.error("nothing to do: give --study (fit) and/or --validate")

    from pgprobe import plan as planning

    plans = []
    if args.study:
        costs = fit(args, planning, plans)
    else:
        costs = planning.load_costs(args.costs)
    for directory, *configs in args.validate:
        study = Path(directory).resolve()
        plans.append((study, job_list([Path(c).resolve() for c in configs], study)))
    excluded = {Path(path).resolve() for path in args.exclude}
    for study, plan in plans:
        report(study, plan, costs, planning, excluded)


def fit(args, planning, plans: list) -> dict:
    """Fit the coefficients on ``args.study`` (appending each study's job list to ``plans``),
    write them to ``args.out`` and return them."""
    studies = [(Path(d).resolve(), [Path(c).resolve() for c in configs]) for d, *configs in args.study]
    excluded = {Path(path).resolve() for path in args.exclude}
    task_factors = (planning.load_costs(args.env_cost_from)["env_cost"] if args.env_cost_from
                    else env_cost(args.env_cost_envs, args.env_cost_steps))
    costs = {"measured": {"commit": args.commit, "machine": args.machine,
                          "studies": ", ".join(str(c.relative_to(REPO)) if c.is_relative_to(REPO) else c.name
                                               for _, configs in studies for c in configs)},
             "env_cost": task_factors,
             "episode_length": episode_length_table([d for d, _ in studies]),
             "rules": {}}
    costs["landscape_episode_fraction"] = landscape_episode_fraction(studies, costs)
    samples: dict[str, list] = defaultdict(list)   # rule -> [(cpu, rss, c_e·pairs, held MB, env, pairs)]
    for study, configs in studies:
        plan = job_list(configs, study)
        plans.append((study, plan))
        dims = {}
        for job in plan["jobs"]:
            path = benchmark_path(study, job)
            measured = None if path is None or path.resolve() in excluded else read_benchmark(path)
            if measured is None:
                continue
            if job["algo"] not in (None, "ppo", "trpo"):
                continue        # imported agents: networks of other sizes (the plan assumes pgprobe's)
            pairs, held, _ = planning.job_pairs(job, plan, costs)
            factor = costs["env_cost"].get(job["env"], 1.0) if job["env"] else 1.0
            allowance = held * planning.held_bytes_per_pair(planning._dims(job["env"], dims),
                                                            planning._rule_key(job["rule"])) / 2 ** 20 \
                if job["env"] and held else 0.0
            samples[planning._rule_key(job["rule"])].append(
                (measured[0], measured[1], factor * pairs, allowance, job["env"], pairs))

    gather = [row[0] for row in samples.get("probe_landscapes", [])]
    probe_overhead = statistics.median(gather) if gather else 3.0
    task_rules: dict[str, dict] = defaultdict(dict)
    for rule, rows in sorted(samples.items()):
        scaled = any(row[2] > 0 for row in rows)
        overhead = probe_overhead if scaled else statistics.median(row[0] for row in rows)
        entry = {"overhead_cpu_s": round(overhead, 2), "jobs_measured": len(rows),
                 "base_mb": round(max(row[1] - row[3] for row in rows), 0)}
        if scaled:
            entry["cpu_s_per_pair"] = _rate(rows, overhead, weighted=True)
            for env in sorted({row[4] for row in rows if row[4]}):
                own = [row for row in rows if row[4] == env]
                if sum(row[5] for row in own) > 0:
                    task_rules[env][rule] = {"cpu_s_per_pair": _rate(own, overhead, weighted=False),
                                             "base_mb": round(max(row[1] - row[3] for row in own), 0),
                                             "jobs_measured": len(own)}
        costs["rules"][rule] = entry
        print(f"{rule:32s} jobs {len(rows):4d}  overhead {overhead:7.2f} CPU-s  "
              f"per pair {entry.get('cpu_s_per_pair', 0) * 1e6:8.1f} µCPU-s  base {entry['base_mb']:.0f} MB"
              + "".join(f"\n    {env:28s} jobs {own['jobs_measured']:4d}  per pair "
                        f"{own['cpu_s_per_pair'] * 1e6:8.1f} µCPU-s  base {own['base_mb']:.0f} MB"
                        for env, rules in sorted(task_rules.items()) for r, own in rules.items() if r == rule))
    costs["rules"]["default"] = {"overhead_cpu_s": round(probe_overhead, 2), "jobs_measured": 0,
                                 "base_mb": max(e["base_mb"] for e in costs["rules"].values())}
    if args.keep_task_rules:
        kept = planning.load_costs(args.costs)
        for env in args.keep_task_rules:
            if env in task_rules:
                raise SystemExit(f"--keep-task-rules {env}: the studies measured {env}; fit it instead")
            task_rules[env] = kept["task_rules"][env]
            costs["episode_length"][env] = kept["episode_length"][env]
            if env in kept.get("landscape_episode_fraction", {}):
                costs["landscape_episode_fraction"][env] = kept["landscape_episode_fraction"][env]
        costs["measured"]["kept"] = (f"task_rules and episode lengths of {', '.join(args.keep_task_rules)} "
                                     f"from {kept['measured']['commit']} ({kept['measured']['studies']})")
    costs["task_rules"] = dict(task_rules)
    Path(args.out).write_text("# pgprobe plan's cost coefficients: written by bench/fit_plan_costs.py (see its docstring).\n"
                              + yaml.safe_dump(costs, sort_keys=False))
    return costs


def _rate(rows: list, overhead: float, weighted: bool) -> float:
    """CPU-s per pair: Σ (CPU-s − overhead) / Σ pairs (in Hopper-v5 terms when ``weighted``)."""
    pairs = sum(row[2] if weighted else row[5] for row in rows)
    return float(f"{sum(row[0] - overhead for row in rows) / pairs:.4g}")


def report(study: Path, plan: dict, costs: dict, planning, excluded: set) -> None:
    """Print the estimate against the study's benchmark files (but ``excluded``): total, then
    per rule CPU-s and the largest job's peak memory."""
    priced = planning.price(plan, costs)
    estimate = sum(r["cpu_s"] for r in priced)
    jobs = [job for job in plan["jobs"] if job["rule"] not in planning.IN_PROCESS_RULES]
    paths = [benchmark_path(study, job) for job in jobs]
    measured = [None if path is None or path.resolve() in excluded else read_benchmark(path) for path in paths]
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
    by_rule: dict[str, list] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0, 0])
    for row, m in zip(priced, measured):
        if m and not row["imported_agent"]:
            entry = by_rule[planning._rule_key(row["rule"])]
            entry[0] += row["cpu_s"]
            entry[1] += m[0]
            entry[2] = max(entry[2], row["peak_mb"])
            entry[3] = max(entry[3], m[1])
            entry[4] += 1
    for rule, (est, meas, est_mb, meas_mb, job_count) in sorted(by_rule.items(), key=lambda kv: -kv[1][1]):
        print(f"    {rule:28s} {job_count:4d} jobs  estimate {est:9.0f} CPU-s  measured {meas:9.0f} CPU-s  "
              f"ratio {est / meas:.2f}   peak {est_mb:7.0f} MB estimated, {meas_mb:7.0f} MB measured")


if __name__ == "__main__":
    main()
