"""Config validation, the static plan (runs, checkpoints, shards, figures), code hashes.

Everything here runs when Snakemake parses the workflow, before any job (with the SLURM
executor, in every job too), so it imports neither torch nor gymnasium's environments nor
matplotlib: the checks that need them (env ids, each probe's own settings check, the
figure registry) run once and are cached under .snakemake/pgprobe/ keyed by their inputs
and the hash of the code they run (``cached``).  Rules get only the config subsection they
use in ``params`` (canonical JSON strings), plus a hash of the pgprobe source files they
execute (``code_hash``), so that Snakemake's params trigger reruns exactly the jobs whose
inputs in the wide sense changed.
"""
import ast
import copy
import hashlib
import importlib.util
import json
import math
import os
import re
import sys
from pathlib import Path

import jsonschema
import yaml

PROBES = ["gradients", "steps", "values", "baselines", "landscapes"]
SHARDED_PROBES = ["gradients", "baselines", "landscapes"]

# How each probe learns its shard count: a key of its settings, or a command-line flag of
# its NAME-shard command.  (The gather command always takes --shards FILE ....)
SHARD_COUNT_SETTING = {"gradients": "reference_shards", "baselines": "true_value_shards",
                       "landscapes": "grid_shards"}
# The module constant listing the settings that a probe's shard jobs read.
SHARD_KEYS_CONSTANT = {"gradients": "REFERENCE_KEYS", "baselines": "REFERENCE_KEYS"}

# The pgprobe package's source directory (found without importing it).
PACKAGE_DIR = Path(importlib.util.find_spec("pgprobe").origin).resolve().parent
# Where parse-time checks cache their results (relative to the working directory).
PARSE_CACHE_DIR = Path(".snakemake") / "pgprobe" / "parse-cache"
# Modules left out of code hashes: argument plumbing only (changing it must not rerun
# every job).  The figure registry imports figure modules dynamically, so each figure job
# hashes just its own module.
CODE_HASH_EXCLUDE = {"pgprobe.cli", "pgprobe.figures"}


def fail(key, message):
    """Stop parsing with one line naming the config key."""
    sys.exit(f"pgprobe config error: {key}: {message}")


# ---------------------------------------------------------------------------- validation
def _defaults_validator():
    """Draft-7 validator that fills in schema defaults while validating."""
    base = jsonschema.Draft7Validator
    validate_properties = base.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        if isinstance(instance, dict):
            for name, sub in props.items():
                if name not in instance and isinstance(sub, dict) and "default" in sub:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, props, instance, schema)

    return jsonschema.validators.extend(base, {"properties": properties})


def _key(path) -> str:
    key = ""
    for part in path:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key or "(top level)"


def _schema_error(error) -> tuple[str, str]:
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = sorted(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in known)
        key = _key(list(error.absolute_path) + [extra[0]])
        expected = f"expected one of {', '.join(known)}" if known else "no keys allowed here"
        return key, f"unknown key ({expected})"
    message = " ".join(error.message.split())
    if len(message) > 200:
        message = message[:197] + "..."
    return _key(error.absolute_path), message


# Keys of earlier config versions: one-line error saying what replaced them.
REPLACED_KEYS = {
    ("training", "checkpoint_iterations"):
        "replaced by training.checkpoint_every (the save schedule) and probe_iterations.default "
        "(the iterations probed, on that schedule)",
}


def validate_config(config, schema_path):
    """Validate (and fill defaults into) ``config``; one-line exit naming the bad key."""
    for (section, key), message in REPLACED_KEYS.items():
        if isinstance(config.get(section), dict) and key in config[section]:
            fail(f"{section}.{key}", message)
    with open(PACKAGE_DIR / "probes" / "settings.schema.yaml") as fh:
        for probe, spec in yaml.safe_load(fh).items():
            for key, setting in spec["properties"].items():
                given = config.get("probes") if isinstance(config.get("probes"), dict) else {}
                if "x-set-by" in setting and key in (given.get(probe) or {}):
                    fail(f"probes.{probe}.{key}", f"is set by the workflow from {setting['x-set-by']}: set that instead")
    with open(schema_path) as fh:
        schema = yaml.safe_load(fh)
    schema["properties"]["probes"]["properties"] = probe_settings_schemas()
    validator = _defaults_validator()(schema)
    errors = list(validator.iter_errors(config))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        fail(*_schema_error(error))
    _validate_semantics(config)


def probe_settings_schemas() -> dict:
    """config.probes.NAME's schema: the package's probes/settings.schema.yaml (the one source
    of every probe setting), less the keys the workflow sets from other config keys
    (``x-set-by``: shard counts from sharding.NAME, the seed from probe_seed)."""
    with open(PACKAGE_DIR / "probes" / "settings.schema.yaml") as fh:
        schemas = yaml.safe_load(fh)
    for schema in schemas.values():
        schema["properties"] = {key: spec for key, spec in schema["properties"].items() if "x-set-by" not in spec}
    return schemas


def checkpoint_schedule(training) -> list:
    """Iterations training saves: 0, K, 2K, ... (K = training.checkpoint_every) and the last."""
    total, every = training["iterations"], training["checkpoint_every"]
    return sorted(set(range(0, total + 1, every)) | {total})


def _schedule_text(training) -> str:
    schedule = checkpoint_schedule(training)
    shown = ", ".join(map(str, schedule)) if len(schedule) <= 12 else \
        f"{', '.join(map(str, schedule[:5]))}, ..., {', '.join(map(str, schedule[-2:]))}"
    return (f"the checkpoint schedule (training.checkpoint_every={training['checkpoint_every']}, "
            f"training.iterations={training['iterations']}: {shown})")


def _validate_semantics(config):
    from pgprobe.config import resolve_hyperparameters, training_overrides
    from pgprobe.errors import PgprobeError

    for key, envs in (("envs", config["envs"]), ("sample_regime.envs", config["sample_regime"]["envs"])):
        for i, env in enumerate(envs):
            message = cached("env-id", {"env": env, "gymnasium": _distribution_version("gymnasium")},
                             ("pgprobe.envs",), lambda env=env: _env_id_problem(env))
            if message:
                fail(f"{key}[{i}]", message)
    for name, agent in config["agents"].items():
        message = cached("env-id", {"env": agent["env"], "gymnasium": _distribution_version("gymnasium")},
                         ("pgprobe.envs",), lambda env=agent["env"]: _env_id_problem(env))
        if message:
            fail(f"agents.{name}.env", message)
        for key in ("path", "vecnormalize", "obs_stats"):   # a series: checked by agent_checkpoints
            if key in agent and isinstance(agent[key], str) and "{steps}" not in agent[key] \
                    and not os.path.isfile(agent[key]):
                fail(f"agents.{name}.{key}", f"{agent[key]!r} is not a file")
        if agent["source"] == "cleanrl":
            if "vecnormalize" in agent:
                fail(f"agents.{name}.vecnormalize", "is for sb3 agents; a cleanrl agent takes obs_stats")
            unknown = sorted({"steps", "landscapes"} & set(agent.get("probes", PROBES)))
            if unknown:
                fail(f"agents.{name}.probes", f"{', '.join(unknown)} need the agent's update rule, which is "
                     "unknown for CleanRL agents: list only gradients, values, baselines")
        if agent["source"] == "sb3" and "obs_stats" in agent:
            fail(f"agents.{name}.obs_stats", "is for cleanrl agents; an sb3 agent takes vecnormalize")
        if agent["source"] == "sb3" and "num_steps" in agent:
            fail(f"agents.{name}.num_steps", "is for cleanrl agents; an sb3 agent's batch is read from its zip")
    training = config["training"]
    schedule = checkpoint_schedule(training)
    for probe, its in config["probe_iterations"].items():
        for i, it in enumerate(its):
            if it not in schedule:
                fail(f"probe_iterations.{probe}[{i}]", f"{it} is not on {_schedule_text(training)}")
    pairs = [(env, algo) for env in config["envs"] for algo in config["algos"]]
    for i, excluded in enumerate(config["exclude_runs"]):
        if (excluded["env"], excluded["algo"]) not in pairs:
            fail(f"exclude_runs[{i}]", f"{excluded['env']} {excluded['algo']} is not a run of "
                 f"envs x algos ({', '.join(config['envs'])} x {', '.join(config['algos'])})")
    for env in config["envs"]:
        for algo in config["algos"]:
            try:
                resolve_hyperparameters(env, algo, training_overrides(
                    {"training": training_section(config, env, algo)}, env, algo))
            except PgprobeError as exc:
                fail("training.hyperparameters", f"{env} {algo}: {exc}")
    regime = config["sample_regime"]
    for env in regime["envs"]:
        for algo in regime["algos"]:
            for steps in regime["steps_per_iteration"]:
                for scale in regime["learning_rate_scales"]:
                    try:
                        section = regime_section(config, env, algo, steps, scale)
                        resolve_hyperparameters(env, algo, training_overrides({"training": section}, env, algo))
                    except PgprobeError as exc:
                        fail("sample_regime", f"{env} {algo} steps {steps} scale {scale:g}: {exc}")
    _validate_probe_settings(config)
    make = config["figures"]["make"]
    if make != "all":
        known = figure_registry()
        for i, name in enumerate(make):
            if name not in known:
                fail(f"figures.make[{i}]", f"unknown figure {name!r}: expected one of {', '.join(known)}")


def _distribution_version(name) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


def _env_id_problem(env_id):
    """Why ``env_id`` is no gymnasium task (registry lookup, no environment made), or None.
    The jobs check the action and observation spaces (pgprobe.envs.check_env_id)."""
    import gymnasium

    import pgprobe.envs  # noqa: F401  (registers pgprobe's own tasks)

    try:
        gymnasium.spec(env_id)
    except Exception:  # gymnasium raises several error types for unknown / versioned ids
        return (f"unknown environment id {env_id!r}: expected a gymnasium continuous-control "
                "task such as Hopper-v5, Walker2d-v5, Humanoid-v5, HalfCheetah-v5, Pendulum-v1")
    return None


def cached(kind, inputs, modules, compute):
    """``compute()`` (JSON-able), cached in PARSE_CACHE_DIR under a hash of ``inputs`` and
    the code of ``modules``: parsing imports the heavy modules only when these change."""
    key = hashlib.sha256((canonical(inputs) + code_hash(*modules)).encode()).hexdigest()[:20]
    path = PARSE_CACHE_DIR / f"{kind}-{key}.json"
    try:
        return json.loads(path.read_text())["value"]
    except (OSError, ValueError, KeyError):
        pass
    value = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.{os.uname().nodename}")
        tmp.write_text(json.dumps({"value": value}))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only working directory: no cache, same result
    return value


# Each probe module's own settings check (cross-key constraints the schema cannot express,
# e.g. min_sample_count <= max_sample_count), run at parse time so no job starts with them.
PROBE_SETTINGS_CHECK = {probe: "check_settings" for probe in PROBES}


def _probe_settings_problem(probe, settings):
    """The probe module's own check of ``settings``: the one-line problem, or None."""
    import importlib

    from pgprobe.errors import PgprobeError

    try:
        probe_module = importlib.import_module(f"pgprobe.probes.{probe}")
    except ModuleNotFoundError:
        return None  # the probe's jobs will fail with the import error
    check = getattr(probe_module, PROBE_SETTINGS_CHECK[probe], None)
    if check is None:
        return None
    try:
        check(settings)
    except PgprobeError as exc:
        message = str(exc)
        for prefix in (f"probes.{probe} ", f"probes.{probe}: ", f"{probe} settings: "):
            message = message[len(prefix):] if message.startswith(prefix) else message
        return message
    return None


def _validate_probe_settings(config):
    for probe in PROBES:
        settings = probe_settings(config, probe)
        message = cached(f"settings-{probe}", settings, (f"pgprobe.probes.{probe}",),
                         lambda: _probe_settings_problem(probe, settings))
        if message:
            fail(f"probes.{probe}", message)


# ---------------------------------------------------------------------------- sections
def canonical(obj) -> str:
    """Canonical JSON (sorted keys): what params hold, so equal configs compare equal."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _hp_subset(hps: dict, env: str, algo: str) -> dict:
    out = {}
    if hps.get("common"):
        out["common"] = hps["common"]
    if hps.get(algo):
        out[algo] = hps[algo]
    per_env = ((hps.get("per_env") or {}).get(env) or {}).get(algo)
    if per_env:
        out["per_env"] = {env: {algo: per_env}}
    return out


def training_section(config, env, algo) -> dict:
    """The part of config ``training`` that applies to runs of (env, algo)."""
    training = config["training"]
    return {"iterations": training["iterations"],
            "checkpoint_iterations": checkpoint_schedule(training),
            "hyperparameters": _hp_subset(training["hyperparameters"], env, algo)}


def regime_section(config, env, algo, steps, scale) -> dict:
    """Training section of one sample-regime run: the main training hyperparameters, then
    sample_regime.hyperparameters, then N steps per iteration and the scaled policy LR (PPO)
    or KL bound (TRPO)."""
    from pgprobe.config import resolve_hyperparameters, training_overrides

    regime = config["sample_regime"]
    base = _hp_subset(config["training"]["hyperparameters"], env, algo)
    overrides = training_overrides({"training": {"hyperparameters": base}}, env, algo)
    overrides.update(regime.get("hyperparameters") or {})
    overrides.pop("total_iterations", None)
    overrides["steps_per_iteration"] = int(steps)
    key = "policy_lr" if algo == "ppo" else "max_kl"
    overrides[key] = float(resolve_hyperparameters(env, algo, overrides)[key]) * float(scale)
    return {"iterations": regime["iterations"], "checkpoint_iterations": [],
            "hyperparameters": {"common": dict(sorted(overrides.items()))}}


def module_constant(module, name):
    """A literal constant of a pgprobe module, read from its source (no import)."""
    path = _module_path(module)
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return ast.literal_eval(node.value)
    raise KeyError(f"{module} defines no constant {name}")


def shard_settings(config, probe) -> dict:
    """What a reference shard of ``probe`` reads from its settings: the keys its module
    names in ``SHARD_KEYS_CONSTANT`` (those defining the reference sample), nothing else,
    so that e.g. probes.gradients.estimates does not rerun the reference shards."""
    settings = probe_settings(config, probe)
    keys = module_constant(f"pgprobe.probes.{probe}", SHARD_KEYS_CONSTANT[probe])
    return {k: settings[k] for k in keys if k in settings}


# Probes whose sharded jobs read a per-checkpoint directions file (rule probe_NAME_directions),
# and the module constant naming the settings that file depends on.
DIRECTIONS_PROBES = {"landscapes": "DIRECTION_KEYS"}


def directions_flag(wildcards, input) -> str:
    """A shard job's ``--directions FILE`` where its probe has a directions file, else ''."""
    return f" --directions {input.directions}" if "directions" in input.keys() else ""


def direction_settings(config, probe) -> dict:
    settings = probe_settings(config, probe)
    keys = module_constant(f"pgprobe.probes.{probe}", DIRECTIONS_PROBES[probe])
    return {k: settings[k] for k in keys if k in settings}


def probe_settings(config, probe) -> dict:
    """config probes.PROBE plus the shard count where the probe keeps it in its settings."""
    settings = dict(config["probes"][probe])
    key = SHARD_COUNT_SETTING.get(probe)
    if key:
        settings[key] = int(config["sharding"][probe])
    return settings


# ---------------------------------------------------------------------------- code hashes
def _module_path(name: str):
    parts = name.split(".")
    if parts[0] != "pgprobe":
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _imported_modules(name: str, path: Path) -> set:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("pgprobe"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                modname = ".".join(base + (node.module.split(".") if node.module else []))
            else:
                modname = node.module or ""
            if not modname.startswith("pgprobe"):
                continue
            found.add(modname)
            for alias in node.names:  # "from . import x" may import a submodule x
                if _module_path(f"{modname}.{alias.name}") is not None:
                    found.add(f"{modname}.{alias.name}")
    return found


def _module_closure(entries) -> list:
    seen, todo = set(), list(entries)
    while todo:
        name = todo.pop()
        if name in seen or name in CODE_HASH_EXCLUDE and name not in entries:
            continue
        path = _module_path(name)
        if path is None:
            continue
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages run too
        todo.extend(_imported_modules(name, path))
    return sorted(seen)


_CODE_HASHES = {}


def code_hash(*entries) -> str:
    """Hash of the pgprobe source files that ``entries`` (module names) import, transitively."""
    if entries not in _CODE_HASHES:
        digest = hashlib.sha256()
        for name in _module_closure(entries):
            for part in (name.encode(), _module_path(name).read_bytes()):
                digest.update(part)
                digest.update(b"\0")
        _CODE_HASHES[entries] = digest.hexdigest()[:16]
    return _CODE_HASHES[entries]


# ---------------------------------------------------------------------------- the plan
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
    global AGENTS, AGENT_PROBES, AGENT_CKPTS, ALGO_PATTERN
    excluded = {(x["env"], x["algo"]) for x in config["exclude_runs"]}
    RUNS = [(e, a, s) for e in config["envs"] for a in config["algos"] if (e, a) not in excluded
            for s in config["seeds"]]
    AGENTS = config["agents"]
    AGENT_PROBES = {name: list(agent.get("probes", PROBES)) for name, agent in AGENTS.items()}
    AGENT_CKPTS = {name: agent_checkpoints(name, agent) for name, agent in AGENTS.items()}
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
    for name, agent in AGENTS.items():
        for iteration in AGENT_CKPTS[name]:
            add("import_agent", agent["env"], name, 0, iteration)
    probed = [(e, a, s, p, i) for p in PROBES for (e, a, s) in RUNS for i in PROBE_ITERS[p]]
    probed += [(agent["env"], name, 0, p, i) for name, agent in AGENTS.items() for p in AGENT_PROBES[name]
               for i in AGENT_CKPTS[name]]
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


def write_text_atomic(path, text, log=None):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(path).with_name(f".{Path(path).name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    if log:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        Path(log).write_text(f"wrote {path}\n")


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


def agent_checkpoints(name, agent) -> dict:
    """{iteration: {"files": {"model", "vecnormalize" | "obs_stats"}, "steps": S or None}} of
    one config agent.  One file: iteration 0 (its import records the updates it made).  A
    series (``path`` a {steps} pattern or a list; its pair likewise): one checkpoint per file
    at ⌈S/B⌉ − 1 (SB3) / ⌊S/B⌋ (CleanRL), resolved by pgprobe.importers.series (cached
    under the matched files' sizes and mtimes), those of ``steps`` only when given; a broken
    series stops parsing with one line."""
    import glob

    pair = "vecnormalize" if agent["source"] == "sb3" else "obs_stats"
    series = lambda value: isinstance(value, list) or "{steps}" in str(value)  # noqa: E731
    if not series(agent["path"]):
        if "steps" in agent:
            fail(f"agents.{name}.steps", "selects checkpoints of a series: expected path to be a "
                 "{steps} pattern or a list")
        if pair in agent and series(agent[pair]):
            fail(f"agents.{name}.{pair}", "gives a series for one path file: expected one file")
        files = {"model": agent["path"], **({pair: agent[pair]} if pair in agent else {})}
        return {0: {"files": files, "steps": None}}
    listed = sorted(f for key in ("path", pair) if key in agent for value in
                    (agent[key] if isinstance(agent[key], list) else [agent[key]])
                    for f in glob.glob(glob.escape(value).replace(glob.escape("{steps}"), "*")))
    stats = [[f, os.stat(f).st_size, os.stat(f).st_mtime_ns] for f in listed]

    def compute():
        from pgprobe.errors import PgprobeError
        from pgprobe.importers.series import resolve_series

        try:
            members = resolve_series(agent["source"], agent["path"], {pair: agent.get(pair)},
                                     num_steps=agent.get("num_steps", 2048), where="path")
        except PgprobeError as exc:
            return {"error": str(exc)}
        return {"members": [[m.iteration, m.steps, {"model": m.path, **m.pairs}] for m in members]}

    resolved = cached("agent-series", {"agent": agent, "files": stats, "helper": "agent_checkpoints 1"},
                      ("pgprobe.importers.series",), compute)
    if "error" in resolved:
        fail(f"agents.{name}", resolved["error"])
    chosen = agent.get("steps", [steps for _, steps, _ in resolved["members"]])
    missing = sorted(set(chosen) - {steps for _, steps, _ in resolved["members"]})
    if missing:
        fail(f"agents.{name}.steps", f"{missing[0]} is not a step count of the series "
             f"({', '.join(str(steps) for _, steps, _ in resolved['members'])})")
    return {int(i): {"files": files, "steps": int(steps)} for i, steps, files in resolved["members"]
            if steps in chosen}


def agent_probe_paths(probe) -> list:
    """The probe files of the imported agents that run ``probe`` (every checkpoint of a series)."""
    return [probe_path(probe, agent["env"], name, 0, i) for name, agent in AGENTS.items()
            if probe in AGENT_PROBES[name] for i in AGENT_CKPTS[name]]


def agent_inputs(wildcards) -> dict:
    """The files of one imported checkpoint (a changed file reruns its import)."""
    checkpoints = AGENT_CKPTS[wildcards.agent]
    if int(wildcards.iteration) not in checkpoints:
        raise ValueError(f"agent {wildcards.agent} has no checkpoint at iteration {wildcards.iteration}: "
                         f"its iterations are {', '.join(map(str, checkpoints))}")
    return checkpoints[int(wildcards.iteration)]["files"]


def agent_import_command(wildcards) -> str:
    """``pgprobe import`` arguments of one imported checkpoint (shell-quoted)."""
    import shlex

    agent = AGENTS[wildcards.agent]
    entry = AGENT_CKPTS[wildcards.agent][int(wildcards.iteration)]
    files = entry["files"]
    words = [agent["source"], "--model", files["model"], "--env", agent["env"], "--name", wildcards.agent]
    if entry["steps"] is not None:
        words += ["--steps", entry["steps"]]
    if agent["source"] == "sb3" and "vecnormalize" in files:
        words += ["--vecnormalize", files["vecnormalize"]]
    if agent["source"] == "cleanrl":
        words += ["--obs-stats", files["obs_stats"]] if "obs_stats" in files else ["--raw-observations"]
        if "num_steps" in agent:
            words += ["--num-steps", agent["num_steps"]]
    return " ".join(shlex.quote(str(w)) for w in words)


def regime_dir(env, algo, steps, scale, seed) -> str:
    return f"results/regime/{env}/{algo}/steps{steps}_lr{scale}/seed{seed}"


def dataset_path(name) -> str:
    return f"results/datasets/{name}.nc"


def all_targets() -> list:
    return [dataset_path(n) for n in DATASET_NAMES()] + [f"figures/{n}.pdf" for n in MADE_FIGURES]


def stage_dir(kind, parts, section_json, code) -> str:
    """Where a training job runs and keeps its resume state, outside its declared outputs.

    Keyed by a hash of the run's training section and the training code, so a killed job
    resumes from its last iteration, while a changed config or code starts afresh.
    """
    digest = hashlib.sha256((section_json + code).encode()).hexdigest()[:12]
    return f"results/resume/{kind}/{'/'.join(map(str, parts))}/{digest}"


def deliver_command(files, destination_dir) -> str:
    """Shell: hard-link (or copy) each of ``files`` (shell words) into ``destination_dir``,
    leaving the originals in the stage."""
    return (f"mkdir -p {destination_dir} && for f in {files}; do"
            f" ln -f \"$f\" {destination_dir}/ 2>/dev/null || cp -p \"$f\" {destination_dir}/; done")


def drop_other_stages(stage) -> str:
    """Shell: remove the stages of the same run made with another config or code."""
    return (f"mkdir -p {stage} && find $(dirname {stage}) -mindepth 1 -maxdepth 1"
            f" ! -name $(basename {stage}) -exec rm -rf {{{{}}}} +")


def train_shell(deliver_checkpoints: bool) -> str:
    """Shell of a training job: drop stale stages, train in the stage (resuming), deliver."""
    stage = "{params.stage:q}"
    run = "$(dirname {output.train_nc:q})"
    steps = [drop_other_stages(stage),
             f"pgprobe train --env {{wildcards.env:q}} --algo {{wildcards.algo}} --seed {{wildcards.seed}}"
             f" --config {{input.config:q}} --out {stage} --resume-dir {stage}/resume --no-progress"]
    if deliver_checkpoints:
        steps.append(deliver_command(f"{stage}/checkpoints/*.pt", f"{run}/checkpoints"))
    steps.append(deliver_command(f"{stage}/train.nc", run))
    return f"({' && '.join(steps)}) > {{log:q}} 2>&1"


TRAIN_SHELL = train_shell(deliver_checkpoints=True)
REGIME_TRAIN_SHELL = train_shell(deliver_checkpoints=False)


def train_runtime(config, section, env, algo) -> int:
    from pgprobe.config import resolve_hyperparameters, training_overrides

    hp = resolve_hyperparameters(env, algo, training_overrides({"training": section}, env, algo))
    res = config["resources"]["train"]
    steps = section["iterations"] * hp["steps_per_iteration"]
    return int(math.ceil(res["setup_minutes"] + res["minutes_per_million_steps"] * steps / 1e6))


def training_section_json(wildcards):
    return canonical(training_section(config, wildcards.env, wildcards.algo))


def regime_section_json(wildcards):
    return canonical(regime_section(config, wildcards.env, wildcards.algo, wildcards.steps,
                                    float(wildcards.scale)))


def probe_rule_values(probe):
    """What the rules of one probe need, computed once per probe at parse time."""
    res = config["resources"]["probes"][probe]
    shard_res = config["resources"]["shards"]
    settings = canonical(probe_settings(config, probe))
    shard_json = canonical(shard_settings(config, probe)) if probe in SHARD_KEYS_CONSTANT else None
    code = code_hash(f"pgprobe.probes.{probe}")
    shards = SHARDS.get(probe, 1)
    ckpt_path = "results/runs/{env}/{algo}/seed{seed}/checkpoints/iter{iteration}.pt"
    base = f"results/probes/{probe}/{{env}}/{{algo}}/seed{{seed}}/iter{{iteration}}"
    logs = f"logs/probes/{probe}/{{env}}/{{algo}}/seed{{seed}}/iter{{iteration}}"
    benchmarks = f"benchmarks/probes/{probe}/{{env}}/{{algo}}/seed{{seed}}/iter{{iteration}}"
    return res, shard_res, settings, shard_json, code, shards, ckpt_path, base, logs, benchmarks


def figure_caption(name):
    path = os.path.join(workflow.basedir, "workflow", "report", f"{name}.rst")
    return f"../report/{name}.rst" if os.path.exists(path) else "../report/figure.rst"


def figure_category(entry):
    return {
        "training": "Training",
        "sample_regime": "Training",
        "gradients": "Gradient estimates",
        "steps": "Gradient estimates",
        "baselines": "Value prediction",
        "values": "Value prediction",
        "landscapes": "Optimization landscapes",
    }.get(entry["datasets"][0], "Figures")


def write_training_config(path, section_json, log=None):
    """The YAML file `pgprobe train --config` reads: {training: <section>}."""
    text = ("# Written by the pgprobe workflow from config.yaml (training section for this run).\n"
            + yaml.safe_dump({"training": json.loads(section_json)}, sort_keys=True))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(path).with_name(f".{Path(path).name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    if log:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        Path(log).write_text(f"wrote {path}\n")
