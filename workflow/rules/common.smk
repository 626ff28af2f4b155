"""Config validation, the static plan (runs, checkpoints, shards, figures), code hashes.

Everything here runs when Snakemake parses the workflow, before any job.  Rules get only
the config subsection they use in ``params`` (canonical JSON strings), plus a hash of the
pgprobe source files they execute (``code_hash``), so that Snakemake's params trigger
reruns exactly the jobs whose inputs in the wide sense changed.
"""
import ast
import copy
import hashlib
import json
import math
import os
import re
import sys
from pathlib import Path

import jsonschema
import yaml

import pgprobe
from pgprobe.errors import PgprobeError

PROBES = ["gradients", "steps", "values", "baselines", "landscapes"]
SHARDED_PROBES = ["gradients", "baselines", "landscapes"]

# How each probe learns its shard count: a key of its settings, or a command-line flag of
# its NAME-shard command.  (The gather command always takes --shards FILE ....)
SHARD_COUNT_SETTING = {"gradients": "reference_shards", "baselines": "true_value_shards"}
SHARD_COUNT_FLAG = {"landscapes": "--shard-count"}

# Dataset name -> the pgprobe module whose code makes it (collect is shared).
PACKAGE_DIR = Path(pgprobe.__file__).resolve().parent
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


def validate_config(config, schema_path):
    """Validate (and fill defaults into) ``config``; one-line exit naming the bad key."""
    with open(schema_path) as fh:
        schema = yaml.safe_load(fh)
    validator = _defaults_validator()(schema)
    errors = list(validator.iter_errors(config))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        fail(*_schema_error(error))
    _validate_semantics(config)


def _validate_semantics(config):
    from pgprobe.config import resolve_hyperparameters, training_overrides
    from pgprobe.envs import check_env_id

    for i, env in enumerate(config["envs"]):
        try:
            check_env_id(env)
        except PgprobeError as exc:
            fail(f"envs[{i}]", str(exc))
    for i, env in enumerate(config["sample_regime"]["envs"]):
        try:
            check_env_id(env)
        except PgprobeError as exc:
            fail(f"sample_regime.envs[{i}]", str(exc))
    training = config["training"]
    for i, it in enumerate(training["checkpoint_iterations"]):
        if it > training["iterations"]:
            fail(f"training.checkpoint_iterations[{i}]",
                 f"{it} is beyond training.iterations={training['iterations']}")
    for probe, its in config["probe_iterations"].items():
        for i, it in enumerate(its):
            if it not in training["checkpoint_iterations"]:
                fail(f"probe_iterations.{probe}[{i}]",
                     f"{it} is not one of training.checkpoint_iterations "
                     f"{sorted(training['checkpoint_iterations'])}")
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
    for probe, count in config["sharding"].items():
        key = SHARD_COUNT_SETTING.get(probe)
        if key and key in config["probes"].get(probe, {}):
            fail(f"probes.{probe}.{key}", f"set the shard count with sharding.{probe}")
    _validate_probe_settings(config)
    make = config["figures"]["make"]
    if make != "all":
        known = figure_registry()
        for i, name in enumerate(make):
            if name not in known:
                fail(f"figures.make[{i}]", f"unknown figure {name!r}: expected one of {', '.join(known)}")


# Each probe module's own settings check (cross-key constraints the schema cannot express,
# e.g. min_sample_count <= max_sample_count), run at parse time so no job starts with them.
PROBE_SETTINGS_CHECK = {"gradients": "resolve_settings", "steps": "resolve_settings",
                        "baselines": "checked_settings", "landscapes": "validate_settings",
                        "values": "parse_settings"}


def _validate_probe_settings(config):
    import importlib

    for probe in PROBES:
        try:
            probe_module = importlib.import_module(f"pgprobe.probes.{probe}")
        except ModuleNotFoundError:
            continue  # the probe's jobs will fail with the import error
        check = getattr(probe_module, PROBE_SETTINGS_CHECK[probe], None)
        if check is None:
            continue
        settings = probe_settings(config, probe)
        try:
            if probe == "values":
                check(settings, probe_module.DEFAULTS, probe_module.SETTING_KINDS, probe)
            else:
                check(settings)
        except PgprobeError as exc:
            message = str(exc)
            for prefix in (f"probes.{probe} ", f"probes.{probe}: ", f"{probe} settings: "):
                message = message[len(prefix):] if message.startswith(prefix) else message
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
            "checkpoint_iterations": sorted(training["checkpoint_iterations"]),
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
    from pgprobe.figures import registry
    from pgprobe.figures.cli import sorted_names

    figures = registry()
    return {name: figures[name] for name in sorted_names(figures)}


def fmt_scale(scale) -> str:
    return format(float(scale), "g")


def setup(config):
    """Module-level plan: runs, checkpoint iterations, shards, figures, wildcard patterns."""
    global RUNS, CKPT_ITERS, PROBE_ITERS, SHARDS, REGIME_RUNS, FIGURES, MADE_FIGURES, ENV_PATTERN
    RUNS = [(e, a, s) for e in config["envs"] for a in config["algos"] for s in config["seeds"]]
    CKPT_ITERS = sorted(config["training"]["checkpoint_iterations"])
    PROBE_ITERS = {p: sorted(config["probe_iterations"].get(p, CKPT_ITERS)) for p in PROBES}
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
    envs = sorted(set(config["envs"]) | set(regime["envs"]), key=len, reverse=True)
    ENV_PATTERN = "|".join(re.escape(e) for e in envs)


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


def stage_dir(kind, parts, section_json, code) -> str:
    """Where a training job runs and keeps its resume state, outside its declared outputs.

    Keyed by a hash of the run's training section and the training code, so a killed job
    resumes from its last iteration, while a changed config or code starts afresh.
    """
    digest = hashlib.sha256((section_json + code).encode()).hexdigest()[:12]
    return f"results/resume/{kind}/{'/'.join(map(str, parts))}/{digest}"


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
    code = code_hash(f"pgprobe.probes.{probe}")
    shards = SHARDS.get(probe, 1)
    ckpt_path = "results/runs/{env}/{algo}/seed{seed}/checkpoints/iter{iteration}.pt"
    base = f"results/probes/{probe}/{{env}}/{{algo}}/seed{{seed}}/iter{{iteration}}"
    logs = f"logs/probes/{probe}/{{env}}/{{algo}}/seed{{seed}}/iter{{iteration}}"
    benchmarks = f"benchmarks/probes/{probe}/{{env}}/{{algo}}/seed{{seed}}/iter{{iteration}}"
    count_flag = f" {SHARD_COUNT_FLAG[probe]} {shards}" if probe in SHARD_COUNT_FLAG else ""
    return res, shard_res, settings, code, shards, ckpt_path, base, logs, benchmarks, count_flag


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
