"""Which runs, checkpoints, shards, figures and files exist: the study's static plan.

``setup(config)`` fills the module-level plan the rules read (RUNS, CKPT_ITERS, PROBE_ITERS,
SHARDS, REGIME_RUNS, FIGURES, MADE_FIGURES, the wildcard patterns); the path functions name
every file; ``plan_jobs`` lists every job for ``pgprobe plan``.

Included by the Snakefile and run when Snakemake parses the workflow, before any job (with
the SLURM executor, in every job too), so it imports neither torch nor gymnasium's
environments nor matplotlib.
"""
import re


SHARDED_PROBES = ["gradients", "baselines", "landscapes"]


def checkpoint_schedule(training) -> list:
    """Iterations training saves: 0, K, 2K, ... (K = training.checkpoint_every) and the last."""
    total, every = training["iterations"], training["checkpoint_every"]
    return sorted(set(range(0, total + 1, every)) | {total})


def figure_registry() -> dict:
    """{figure name: {"datasets", "module"}}, in pgprobe's figure order (cached: the
    registry imports every figure module, i.e. matplotlib and xarray)."""
    figure_modules = tuple(sorted(
        f"pgprobe.figures.{p.stem}" for p in (PACKAGE_DIR / "figures").glob("*.py")))

    def compute():
        from pgprobe.figures import registry
        from pgprobe.figures.cli import sorted_names

        figures = registry()
        return [[name, {"datasets": figures[name]["datasets"], "module": figures[name]["module"]}]
                for name in sorted_names(figures)]

    return dict(cached("figures", {}, figure_modules, compute))


def fmt_scale(scale) -> str:
    return format(float(scale), "g")


def setup(config):
    """Module-level plan: runs, checkpoint iterations, shards, figures, wildcard patterns."""
    global RUNS, CKPT_ITERS, PROBE_ITERS, SHARDS, REGIME_RUNS, FIGURES, MADE_FIGURES, ENV_PATTERN
    global ALGO_PATTERN
    excluded = {(x["env"], x["algo"]) for x in config["exclude_runs"]}
    RUNS = [(e, a, s) for e in config["envs"] for a in config["algos"] if (e, a) not in excluded
            for s in config["seeds"]]
    setup_agents(config)
    ALGO_PATTERN = "|".join(["ppo", "trpo", *(re.escape(name) for name in AGENTS)])
    CKPT_ITERS = checkpoint_schedule(config["training"])
    probed = config["probe_iterations"].get("default", CKPT_ITERS)
    PROBE_ITERS = {p: sorted(config["probe_iterations"].get(p, probed)) for p in PROBES}
    SHARDS = {p: int(config["sharding"].get(p, 1)) for p in SHARDED_PROBES}
    regime = config["sample_regime"]
    REGIME_RUNS = [(e, a, n, fmt_scale(c), s) for e in regime["envs"] for a in regime["algos"]
                   for n in regime["steps_per_iteration"] for c in regime["learning_rate_scales"]
                   for s in regime["seeds"]]
    FIGURES = figure_registry()
    make = config["figures"]["make"]
    names = list(FIGURES) if make == "all" else list(make)
    if make == "all" and not REGIME_RUNS:
        names = [n for n in names if "sample_regime" not in FIGURES[n]["datasets"]]
    MADE_FIGURES = names
    envs = sorted(set(config["envs"]) | set(regime["envs"]) | {a["env"] for a in AGENTS.values()},
                  key=len, reverse=True)
    ENV_PATTERN = "|".join(re.escape(e) for e in envs)


def plan_jobs(config) -> dict:
    """Every job of the study (``all`` and its inputs) with what prices it, for the plan rules;
    {"jobs": [{rule, env, algo, seed, iteration, kind}], "probe_settings": {probe: settings},
    "shards": {probe: count}, "training": {"env algo": section}, "regime": [...]}.  Built from
    the same plan (RUNS, PROBE_ITERS, SHARDS, ...) and settings the rules use."""
    jobs = []

    def add(rule, env=None, algo=None, seed=None, iteration=None, **extra):
        jobs.append({"rule": rule, "env": env, "algo": algo, "seed": seed, "iteration": iteration, **extra})

    for env, algo in sorted({(e, a) for e, a, _ in RUNS}):
        add("training_config", env, algo)
    for env, algo, seed in RUNS:
        add("train", env, algo, seed)
    for env, algo, steps, scale, seed in REGIME_RUNS:
        add("train_regime", env, algo, seed, steps=int(steps), scale=float(scale))
    for env, algo in sorted({(e, a) for e, a, _, _, _ in REGIME_RUNS}):
        for steps in config["sample_regime"]["steps_per_iteration"]:
            for scale in config["sample_regime"]["learning_rate_scales"]:
                add("regime_training_config", env, algo, steps=int(steps), scale=float(scale))
    for env, name, seed, iteration in agent_imports():
        add("import_agent", env, name, seed, iteration)
    probed = [(e, a, s, p, i) for p in PROBES for (e, a, s) in RUNS for i in PROBE_ITERS[p]]
    probed += agent_probed()
    for env, algo, seed, probe, iteration in probed:
        add(f"probe_{probe}", env, algo, seed, iteration)
        if SHARDS.get(probe, 1) > 1:
            for shard in range(SHARDS[probe]):
                add(f"probe_{probe}_shard", env, algo, seed, iteration, shard=shard)
            if probe in DIRECTIONS_PROBES:
                add(f"probe_{probe}_directions", env, algo, seed, iteration)
    for name in DATASET_NAMES():
        add(f"collect_{name}")
    for name in MADE_FIGURES:
        add(f"figure_{name}")
    add("claims")
    training = {f"{env} {algo}": training_section(config, env, algo) for env, algo in
                sorted({(e, a) for e, a, _ in RUNS})}
    regime = {f"{env} {algo} {steps} {scale}": regime_section(config, env, algo, steps, float(scale))
              for env, algo, steps, scale, _ in REGIME_RUNS}
    return {"jobs": jobs, "probe_settings": {p: probe_settings(config, p) for p in PROBES},
            "shards": {p: SHARDS.get(p, 1) for p in PROBES}, "training": training, "regime": regime}


def DATASET_NAMES():
    names = ["training", *PROBES]
    if REGIME_RUNS:
        names.append("sample_regime")
    return names


def run_dir(env, algo, seed) -> str:
    return f"results/runs/{env}/{algo}/seed{seed}"


def checkpoint_path(env, algo, seed, iteration) -> str:
    return f"{run_dir(env, algo, seed)}/checkpoints/iter{int(iteration):04d}.pt"


def probe_path(probe, env, algo, seed, iteration) -> str:
    return f"results/probes/{probe}/{env}/{algo}/seed{seed}/iter{int(iteration):04d}.nc"


def regime_dir(env, algo, steps, scale, seed) -> str:
    return f"results/regime/{env}/{algo}/steps{steps}_lr{scale}/seed{seed}"


def dataset_path(name) -> str:
    return f"results/datasets/{name}.nc"


def all_targets() -> list:
    return [dataset_path(n) for n in DATASET_NAMES()] + [f"figures/{n}.pdf" for n in MADE_FIGURES]
