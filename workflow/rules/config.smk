"""Is the config valid?  Its schema, defaults and cross-key checks, run at parse time.


Included by the Snakefile and run when Snakemake parses the workflow, before any job (with
the SLURM executor, in every job too), so it imports neither torch nor gymnasium's
environments nor matplotlib.  The checks that need them (env ids, each probe's own
settings check, the figure registry) run once and are cached under .snakemake/pgprobe/,
keyed by their inputs and the hash of the code they run (``cached``).  A bad config stops
the parse with one line naming the key (``fail``).

The other parts of the plan: study.smk (which runs, checkpoints, shards, figures and files
exist), reruns.smk (what a job's params hold, so what reruns it), agents.smk (imported agents).
"""
import copy
import functools
import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path

import jsonschema
import yaml


PROBES = ["gradients", "steps", "values", "baselines", "landscapes"]


# The pgprobe package's source directory (found without importing it).
PACKAGE_DIR = Path(importlib.util.find_spec("pgprobe").origin).resolve().parent
# Where parse-time checks cache their results (relative to the working directory).
PARSE_CACHE_DIR = Path(".snakemake") / "pgprobe" / "parse-cache"


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


@functools.lru_cache(maxsize=None)
def _parsed_yaml(path) -> dict:
    with open(path) as fh:
        return yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml: 10x faster


def load_yaml(path) -> dict:
    """A schema file, parsed once per process (a fresh copy each call: callers edit it)."""
    return copy.deepcopy(_parsed_yaml(str(path)))


def validate_config(config, schema_path):
    """Validate (and fill defaults into) ``config``; one-line exit naming the bad key."""
    for (section, key), message in REPLACED_KEYS.items():
        if isinstance(config.get(section), dict) and key in config[section]:
            fail(f"{section}.{key}", message)
    for probe, spec in load_yaml(PACKAGE_DIR / "probes" / "settings.schema.yaml").items():
        for key, setting in spec["properties"].items():
            given = config.get("probes") if isinstance(config.get("probes"), dict) else {}
            if "x-set-by" in setting and key in (given.get(probe) or {}):
                fail(f"probes.{probe}.{key}", f"is set by the workflow from {setting['x-set-by']}: set that instead")
    schema = load_yaml(schema_path)
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
    schemas = load_yaml(PACKAGE_DIR / "probes" / "settings.schema.yaml")
    for schema in schemas.values():
        schema["properties"] = {key: spec for key, spec in schema["properties"].items() if "x-set-by" not in spec}
    return schemas


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
    validate_agents(config)
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


def export_sampling_engine(config):
    """config ``sampling_engine`` as PGPROBE_SAMPLING_ENGINE in this process's environment, which
    every job's `pgprobe` command inherits (on SLURM each job re-parses the workflow and sets
    it again).  Set, never read, here: nothing for an ``envvars:`` assertion to check."""
    os.environ.update(PGPROBE_SAMPLING_ENGINE=config["sampling_engine"])
