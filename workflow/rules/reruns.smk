"""What reruns a job: the config sections its params hold and the hash of the code it runs.

Rules get only the config subsection they use in ``params`` (canonical JSON strings), plus
a hash of the pgprobe source files they execute (``code_hash``), so that Snakemake's params
trigger reruns exactly the jobs whose inputs in the wide sense changed.

Included by the Snakefile and run when Snakemake parses the workflow, before any job (with
the SLURM executor, in every job too), so it imports neither torch nor gymnasium's
environments nor matplotlib.
"""
import ast
import functools
import hashlib
import json
from pathlib import Path


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


def training_section_json(wildcards):
    return canonical(training_section(config, wildcards.env, wildcards.algo))


def regime_section_json(wildcards):
    return canonical(regime_section(config, wildcards.env, wildcards.algo, wildcards.steps,
                                    float(wildcards.scale)))


# How each probe learns its shard count: a key of its settings, or a command-line flag of
# its NAME-shard command.  (The gather command always takes --shards FILE ....)
SHARD_COUNT_SETTING = {"gradients": "reference_shards", "baselines": "true_value_shards",
                       "landscapes": "grid_shards"}


# The module constant listing the settings that a probe's shard jobs read.
SHARD_KEYS_CONSTANT = {"gradients": "REFERENCE_KEYS", "baselines": "REFERENCE_KEYS"}


def probe_settings(config, probe) -> dict:
    """config probes.PROBE plus the shard count where the probe keeps it in its settings."""
    settings = dict(config["probes"][probe])
    key = SHARD_COUNT_SETTING.get(probe)
    if key:
        settings[key] = int(config["sharding"][probe])
    return settings


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


def direction_settings(config, probe) -> dict:
    settings = probe_settings(config, probe)
    keys = module_constant(f"pgprobe.probes.{probe}", DIRECTIONS_PROBES[probe])
    return {k: settings[k] for k in keys if k in settings}


# ---------------------------------------------------------------------------- code hashes
# Modules left out of code hashes: argument plumbing only (changing it must not rerun
# every job).  The figure registry imports figure modules dynamically, so each figure job
# hashes just its own module.
CODE_HASH_EXCLUDE = {"pgprobe.cli", "pgprobe.figures"}


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


@functools.lru_cache(maxsize=None)
def _imported_modules(name: str, path: Path) -> frozenset:
    """The pgprobe modules that module ``name`` (file ``path``) imports anywhere in its body.
    Cached: every code hash walks the same modules, and parsing them is most of a
    workflow parse's time (each SLURM job parses the workflow twice)."""
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
    return frozenset(found)


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
