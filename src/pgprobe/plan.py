"""``pgprobe plan``: what a study costs (CPU-hours, peak memory per rule) before it runs.

Usage (the workflow's ``plan`` rule writes the job list; see workflow/rules/plan.smk)::

  snakemake --cores 1 figures/plan.md --configfile workflow/presets/paper.yaml
  pgprobe plan --jobs results/plan/jobs.json --out results/plan.tsv --table figures/plan.md

Cost model of one job j of rule r on task e (coefficients in ``plan_costs.yaml``, fitted
by ``bench/fit_plan_costs.py`` from Snakemake benchmark files of measured studies):

  CPU-s(j)   = overhead_r + rate_{r,e} · pairs_r(j),   rate_{r,e} = rate_r · c_e where rule r
               was not measured on task e
  peak MB(j) = base_mb_{r,e} + held_r(j) · k_r · (4 B · (obs_dim_e + act_dim_e) + 8 · 8 B) / 2²⁰

* ``pairs_r(j)``: the state-action pairs the job steps through, from its settings
  (``job_pairs``): training iterations × steps per iteration; a probe's estimate grid
  Σ_N estimates · N, its reference or true-value sample, its held-out streams; episodes
  (landscapes true reward, values restored rollouts) count L_e(iteration) pairs each, the
  mean episode length measured in training at that iteration (the task's time limit where
  it was not measured: an upper bound); the landscapes' perturbed policies run episodes of
  L_e times the fraction measured on the task's landscape shards.
* ``rate_{r,e}``: CPU-s per pair of rule r on task e (sampling, forward and backward
  passes, updates and fits, all per pair), fitted on the task's measured jobs of that rule
  (``task_rules``).  Elsewhere ``rate_r · c_e``: ``rate_r`` is the rule's CPU-s per pair in
  Hopper-v5 terms over all measured tasks (``rules``), ``c_e`` a task's CPU per sampled pair
  relative to Hopper-v5 (bench/sampler_throughput.py's sampler, a fresh policy); tasks
  without it take c = 1 and are flagged.  ``base_mb_{r,e}``: likewise the task's, else the
  rule's.
* ``held_r(j)``: pairs the job holds in memory at once (an update batch, the true-value fit
  sample), ``k_r`` copies of each (``HELD_COPIES``: 1 for the baselines gather, measured on
  a 5·10⁶-pair fit; 2 elsewhere, an allowance that the default scale's jobs, whose peak
  memory is mostly the interpreter, torch and MuJoCo, cannot confirm).

CPU-hours are the sum over jobs; wall time on a machine is at least CPU-hours / cores.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import yaml

from .errors import PgprobeError

COSTS_FILE = "plan_costs.yaml"
# Rules whose work does not grow with the study's sample counts: a fixed cost per job.
FIXED_RULES_PREFIXES = ("training_config", "regime_training_config", "collect_", "figure_", "claims",
                        "import_agent")


def load_costs(path: str | Path | None = None) -> dict:
    text = Path(path).read_text() if path else resources.files("pgprobe").joinpath(COSTS_FILE).read_text()
    return yaml.safe_load(text)


def episode_length(costs: dict, env: str, iteration: int | None) -> tuple[float, bool]:
    """(mean episode length L_e at ``iteration``, measured?) from the costs file's table
    (linear interpolation; the last value beyond it), else the task's time limit."""
    table = costs.get("episode_length", {}).get(env)
    if table:
        points = sorted((int(k), float(v)) for k, v in table.items())
        it = 0 if iteration is None else int(iteration)
        if it <= points[0][0]:
            return points[0][1], True
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            if it <= x1:
                return y0 + (y1 - y0) * (it - x0) / (x1 - x0), True
        return points[-1][1], True
    return float(_time_limit(env)), False


def _time_limit(env: str) -> int:
    import gymnasium as gym

    from . import envs  # noqa: F401  (registers pgprobe's closed-form task)
    try:
        limit = gym.spec(env).max_episode_steps
    except gym.error.Error as exc:
        raise PgprobeError(f"env {env!r}: {exc}") from None
    return int(limit or 1000)


def _grid(settings: dict) -> list[int]:
    from .probes.common import sample_count_grid
    return sample_count_grid(settings)


def _steps_per_iteration(env: str, algo: str, section: dict) -> int:
    from .config import resolve_hyperparameters, training_overrides
    hp = resolve_hyperparameters(env, algo, training_overrides({"training": section}, env, algo))
    return int(hp["steps_per_iteration"])


def job_pairs(job: dict, plan: dict, costs: dict) -> tuple[float, float, bool]:
    """(pairs stepped, pairs held at once, episode lengths measured?) of one job."""
    rule, env, it = job["rule"], job["env"], job["iteration"]
    settings = plan["probe_settings"]
    shards = plan["shards"]
    measured = True

    def episodes(count, cap=None):
        nonlocal measured
        length, known = episode_length(costs, env, it)
        measured = measured and known
        return count * (min(length, cap) if cap else length)

    if rule == "train":
        section = plan["training"][f"{env} {job['algo']}"]
        per_iteration = _steps_per_iteration(env, job["algo"], section)
        return section["iterations"] * per_iteration, per_iteration, True
    if rule == "train_regime":
        section = plan["regime"][f"{env} {job['algo']} {job['steps']} {format(job['scale'], 'g')}"]
        return section["iterations"] * job["steps"], job["steps"], True
    if rule == "probe_gradients":
        s = settings["gradients"]
        pairs = sum(s["estimates"] * n for n in _grid(s))
        if shards["gradients"] == 1:
            pairs += s["reference_samples"]
        return pairs, max(_grid(s)), True
    if rule == "probe_gradients_shard":
        s = settings["gradients"]
        return s["reference_samples"] / shards["gradients"], 0, True
    if rule == "probe_steps":
        s = settings["steps"]
        return sum(s["estimates"] * n for n in _grid(s)) + s["reference_samples"], s["reference_samples"], True
    if rule == "probe_values":
        s = settings["values"]
        pairs = s["heldout_streams"] * s["heldout_steps"]
        pairs += episodes(s["true_value_states"] * s["true_value_rollouts"], s["true_value_horizon"])
        return pairs, s["heldout_streams"] * s["heldout_steps"], measured
    if rule in ("probe_baselines", "probe_baselines_shard"):
        s = settings["baselines"]
        reference = s["true_value_streams"] * s["true_value_stream_steps"]
        if rule == "probe_baselines_shard":        # keeps its rows (observations, returns) to write
            return reference / shards["baselines"], reference / shards["baselines"], True
        pairs = sum(s["estimates"] * n for n in s["sample_counts"]) + reference * s["true_value_epochs"]
        if shards["baselines"] == 1:
            pairs += reference
        return pairs, reference, True
    if rule in ("probe_landscapes", "probe_landscapes_directions", "probe_landscapes_shard"):
        s = settings["landscapes"]
        count = shards["landscapes"]
        directions = sum(s["step_sample_counts"])
        points = len(s["step_sample_counts"]) * s["alpha_points"] * s["beta_points"]
        # episodes of the perturbed policies: L_e × the fraction measured over landscape shards
        fraction = costs.get("landscape_episode_fraction", {}).get(env, 1.0)
        true_reward = episodes(points * max(s["trajectory_counts"])) * fraction
        if rule == "probe_landscapes_directions":
            return directions, max(s["step_sample_counts"]), True
        if rule == "probe_landscapes_shard":
            return true_reward / count, 0, measured
        if count > 1:           # the gather job
            return 0, 0, True
        return directions + true_reward, max(s["step_sample_counts"]), measured
    if rule.startswith(FIXED_RULES_PREFIXES):
        return 0, 0, True
    raise PgprobeError(f"job list: unknown rule {rule!r}")


# Rules run inside the Snakemake process (localrules writing a small file): no job to price.
IN_PROCESS_RULES = ("training_config", "regime_training_config")


def _rule_key(rule: str) -> str:
    """The costs file's entry for a rule: one for every collect_NAME, one for every figure_NAME."""
    for prefix in ("collect_", "figure_"):
        if rule.startswith(prefix):
            return prefix.rstrip("_")
    return rule


def _rule_costs(costs: dict, rule: str, env: str | None = None) -> tuple[dict, bool, bool]:
    """(coefficients, rule measured?, measured on this task?): rules absent from the costs
    file take its ``default`` entry (a probe's fixed cost; nothing per pair) and are flagged;
    a task's own coefficients (``task_rules``) override the rule's where measured."""
    rules = costs["rules"]
    key = _rule_key(rule)
    if key not in rules:
        return rules["default"], False, False
    own = costs.get("task_rules", {}).get(env or "", {}).get(key)
    if own:
        return {**rules[key], **own}, True, True
    return rules[key], True, False


def _dims(env: str, cache: dict) -> int:
    if env not in cache:
        from .envs import env_dims
        obs_dim, act_dim = env_dims(env)
        cache[env] = obs_dim + act_dim
    return cache[env]


# Copies of each held pair a rule keeps (default 2: numpy and torch).  The baselines gather
# reads its shards into one preallocated array and fits and predicts by indexing it: its
# 5·10⁶-pair Humanoid-v5 fit peaked at 9.5 GB = 1.3 GB + 1.1 copies (docs/measurements/humanoid).
HELD_COPIES = {"probe_baselines": 1}


def held_bytes_per_pair(obs_act_dim: int, rule: str | None = None) -> int:
    """Memory allowance per held state-action pair: ``HELD_COPIES`` (default two) float32
    copies of its observation and action and of eight float64 per-pair scalars (log-prob,
    value, reward, advantage, target, ...)."""
    return HELD_COPIES.get(rule, 2) * (4 * obs_act_dim + 8 * 8)


def price(plan: dict, costs: dict) -> list[dict]:
    """One row per job: rule, env, pairs, cpu_s, peak_mb, and flags of what was assumed."""
    rows, dims = [], {}
    for job in plan["jobs"]:
        rule = job["rule"]
        if rule in IN_PROCESS_RULES:
            continue
        env = job["env"]
        rc, rule_measured, task_measured = _rule_costs(costs, rule, env)
        pairs, held, lengths_measured = job_pairs(job, plan, costs)
        factor = 1.0 if task_measured or not env else costs["env_cost"].get(env)
        cpu = rc["overhead_cpu_s"] + rc.get("cpu_s_per_pair", 0.0) * (factor or 1.0) * pairs
        peak = rc["base_mb"] + held * held_bytes_per_pair(_dims(env, dims), _rule_key(rule)) / 2 ** 20 \
            if env and held else rc["base_mb"]
        perturbed_measured = (rule not in ("probe_landscapes_shard", "probe_landscapes") or not pairs
                              or env in costs.get("landscape_episode_fraction", {}))
        rows.append({"rule": rule, "env": env or "", "pairs": pairs, "cpu_s": cpu, "peak_mb": peak,
                     "env_cost_measured": factor is not None, "rule_measured": rule_measured,
                     "imported_agent": job.get("algo") not in (None, "ppo", "trpo"),
                     "episode_length_measured": lengths_measured,
                     "perturbed_episodes_measured": perturbed_measured})
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Per rule (collect_* and figure_* as one row each): jobs, pairs, CPU-hours, max peak
    MB; then a total row."""
    by_rule: dict[str, dict] = {}
    for row in rows:
        key = _rule_key(row["rule"])
        key = f"{key}_*" if key != row["rule"] else key
        entry = by_rule.setdefault(key, {"rule": key, "jobs": 0, "pairs": 0.0, "cpu_hours": 0.0,
                                                  "peak_mb": 0.0, "assumed": set()})
        entry["jobs"] += 1
        entry["pairs"] += row["pairs"]
        entry["cpu_hours"] += row["cpu_s"] / 3600
        entry["peak_mb"] = max(entry["peak_mb"], row["peak_mb"])
        if not row["env_cost_measured"]:
            entry["assumed"].add(f"{row['env']} cost per pair = Hopper-v5's")
        if row["imported_agent"]:
            entry["assumed"].add("imported agents cost what pgprobe's own networks cost")
        if not row["rule_measured"]:
            entry["assumed"].add("rule not measured: a probe job's fixed cost")
        if not row["episode_length_measured"]:
            entry["assumed"].add(f"{row['env']} episodes at the time limit")
        if not row.get("perturbed_episodes_measured", True):
            entry["assumed"].add(f"{row['env']} perturbed policies' episodes as long as the trained one's")
    table = sorted(by_rule.values(), key=lambda e: -e["cpu_hours"])
    total = {"rule": "total", "jobs": sum(e["jobs"] for e in table), "pairs": sum(e["pairs"] for e in table),
             "cpu_hours": sum(e["cpu_hours"] for e in table), "peak_mb": max((e["peak_mb"] for e in table), default=0),
             "assumed": set().union(*(e["assumed"] for e in table)) if table else set()}
    return table + [total]


def markdown(summary: list[dict], costs: dict) -> str:
    source = costs.get("measured", {})
    lines = ["# Study cost estimate (`pgprobe plan`)", "",
             f"Per-pair costs measured at commit {source.get('commit', '?')} on {source.get('machine', '?')} "
             f"({source.get('studies', '?')}).  CPU-hours sum over jobs; peak memory is the largest job's.", "",
             "| rule | jobs | state-action pairs | CPU-hours | peak memory (MB) | assumed |",
             "|---|---:|---:|---:|---:|---|"]
    for e in summary:
        name = f"**{e['rule']}**" if e["rule"] == "total" else e["rule"]
        lines.append(f"| {name} | {e['jobs']} | {e['pairs']:.3g} | {e['cpu_hours']:.2f} | {e['peak_mb']:.0f} | "
                     f"{'; '.join(sorted(e['assumed']))} |")
    return "\n".join(lines) + "\n"


def _write(path: str, text: str) -> None:
    from .atomic import atomic_output
    with atomic_output(path) as tmp:
        Path(tmp).write_text(text)


def write_tsv(summary: list[dict], path: str) -> None:
    text = "rule\tjobs\tpairs\tcpu_hours\tpeak_mb\n" + "".join(
        f"{e['rule']}\t{e['jobs']}\t{e['pairs']:.0f}\t{e['cpu_hours']:.4f}\t{e['peak_mb']:.0f}\n" for e in summary)
    _write(path, text)


def _cmd_plan(args) -> None:
    try:
        plan = json.loads(Path(args.jobs).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PgprobeError(f"--jobs {args.jobs!r}: cannot read the job list ({exc})") from None
    costs = load_costs(args.costs)
    summary = summarize(price(plan, costs))
    text = markdown(summary, costs)
    if args.out:
        write_tsv(summary, args.out)
    if args.table:
        _write(args.table, text)
    print(text, end="")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("plan", help="estimate a study's CPU-hours and peak memory per rule")
    parser.add_argument("--jobs", required=True, help="job list written by the workflow's plan rule")
    parser.add_argument("--costs", help=f"cost coefficients (default: the package's {COSTS_FILE})")
    parser.add_argument("--out", help="per-rule table (TSV)")
    parser.add_argument("--table", help="per-rule table (Markdown)")
    parser.set_defaults(func=_cmd_plan)


__all__ = ["job_pairs", "price", "summarize", "load_costs", "episode_length"]
