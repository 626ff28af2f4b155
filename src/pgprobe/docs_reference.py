"""Reference pages of the documentation site, generated from their one source.

* the CLI page from the argparse parsers (``pgprobe.cli.build_parser``);
* the config page from ``workflow/schemas/config.schema.yaml`` and the probes' own
  ``probes/settings.schema.yaml`` (inserted as ``probes.NAME``, as the workflow does);
* the datasets page from what the probes actually write: ``make_tiny_study`` trains two
  tiny agents, runs every probe and collects the datasets, and ``dataset_specs`` reads
  each variable's dimensions, ``long_name`` and ``units`` off those files.  The result is
  kept in ``docs/reference/dataset_variables.json`` (regenerate with
  ``python -m pgprobe.docs_reference datasets``); tests/test_docs.py checks that it equals
  what a fresh tiny study writes, so it cannot drift from the code.

The MkDocs hook ``docs/hooks.py`` replaces the markers ``<!-- pgprobe:cli -->``,
``<!-- pgprobe:config -->`` and ``<!-- pgprobe:dataset KIND -->`` with these tables when
the site is built.
"""
from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIG_SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
SETTINGS_SCHEMA = Path(__file__).resolve().parent / "probes" / "settings.schema.yaml"
DATASET_SPECS = REPO / "docs" / "reference" / "dataset_variables.json"

# Collected datasets, in the order the datasets page shows them.
DATASET_KINDS = ["training", "sample_regime", "gradients", "steps", "values", "baselines", "landscapes"]
PROBES = ["gradients", "steps", "values", "baselines", "landscapes"]

# The tiny study behind the datasets page: as tests/tiny_config.yaml, smaller still.
TINY_TRAINING = {"iterations": 1, "checkpoint_iterations": [0, 1],
                 "hyperparameters": {"common": {"steps_per_iteration": 256, "minibatches": 4,
                                                "value_epochs": 2, "policy_epochs": 2}}}
TINY_PROBE_SETTINGS = {
    "gradients": {"sample_counts": [128, 256], "estimates": 2, "reference_samples": 512,
                  "reference_stream_steps": 256, "chunk_size": 2},
    "steps": {"sample_counts": [128, 256], "estimates": 2, "reference_samples": 512,
              "reference_stream_steps": 256, "chunk_size": 2},
    "values": {"heldout_streams": 2, "heldout_steps": 256, "true_value_states": 2,
               "true_value_rollouts": 2, "true_value_horizon": 20, "chunk_size": 2},
    "baselines": {"sample_counts": [128, 256], "estimates": 2, "true_value_streams": 4,
                  "true_value_stream_steps": 256, "true_value_validation_streams": 1,
                  "true_value_epochs": 2, "chunk_size": 2},
    "landscapes": {"alpha_points": 2, "beta_points": 2, "step_sample_counts": [128, 256],
                   "trajectory_counts": [1, 2], "chunk_size": 2},
}


def _cell(text) -> str:
    """Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


# ---------------------------------------------------------------- CLI

def _subcommands(parser: argparse.ArgumentParser):
    """(name, help, subparser) of each subcommand of ``parser``, in registration order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, helps.get(name, ""), sub


def _argument_rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        name = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.dest}`"
        if action.option_strings and action.nargs != 0:
            name += f" {action.metavar or action.dest.upper()}"
        notes = []
        if action.required and action.option_strings:
            notes.append("required")
        if action.choices is not None:
            notes.append("one of " + ", ".join(f"`{c}`" for c in action.choices))
        if action.default not in (None, False, argparse.SUPPRESS) and action.nargs != 0:
            notes.append(f"default `{action.default}`")
        rows.append(f"| {_cell(name)} | {_cell(action.help or '')} | {_cell('; '.join(notes))} |")
    return rows


def cli_markdown(parser: argparse.ArgumentParser | None = None) -> str:
    """Every ``pgprobe`` command and subcommand: usage, description, arguments."""
    if parser is None:
        from .cli import build_parser
        parser = build_parser()
    old_columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps usage lines to this width
    try:
        lines: list[str] = []

        def emit(prefix: str, help_text: str, sub: argparse.ArgumentParser, depth: int) -> None:
            children = list(_subcommands(sub))
            lines.append(f"{'#' * depth} `{prefix}`\n")
            if help_text:
                lines.append(f"{help_text[0].upper()}{help_text[1:]}.\n" if not help_text.endswith(".")
                             else f"{help_text}\n")
            if sub.description and sub.description.strip() != (help_text or "").strip():
                lines.append(f"{sub.description.strip()}\n")
            lines.append(f"```text\n{sub.format_usage().strip()}\n```\n")
            rows = _argument_rows(sub)
            if rows:
                lines.append("| argument | meaning | notes |\n|---|---|---|")
                lines.extend(rows)
                lines.append("")
            for name, child_help, child in children:
                emit(f"{prefix} {name}", child_help, child, min(depth + 1, 4))

        for name, help_text, sub in _subcommands(parser):
            emit(f"pgprobe {name}", help_text, sub, 2)
        return "\n".join(lines)
    finally:
        if old_columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old_columns


# ---------------------------------------------------------------- config

def _load_yaml(path: Path) -> dict:
    import yaml
    return yaml.safe_load(path.read_text())


def _resolve(spec: dict, definitions: dict) -> dict:
    """``spec`` with a ``$ref`` to ``#/definitions/NAME`` replaced by that definition
    (keys given next to the ``$ref``, e.g. ``default`` or ``description``, win)."""
    ref = spec.get("$ref")
    if not ref:
        return spec
    target = dict(definitions[ref.rsplit("/", 1)[-1]])
    target.update({k: v for k, v in spec.items() if k != "$ref"})
    return _resolve(target, definitions)


def _type_text(spec: dict, definitions: dict) -> str:
    spec = _resolve(spec, definitions)
    kind = spec.get("type", "")
    kinds = kind if isinstance(kind, list) else [kind]
    text = " or ".join(k for k in kinds if k)
    if "array" in kinds and "items" in spec:
        item = _resolve(spec["items"], definitions)
        inner = item.get("type", "")
        if "enum" in item:
            inner = " / ".join(str(v) for v in item["enum"])
        text = text.replace("array", f"list of {inner}" if inner else "list")
    if "enum" in spec:
        text = " / ".join(f"`{v}`" for v in spec["enum"])
    bounds = []
    for key, symbol in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"),
                        ("exclusiveMaximum", "<")):
        if key in spec:
            bounds.append(f"{symbol} {spec[key]}")
    if bounds:
        text += f" ({', '.join(bounds)})"
    return text


def _shared_definition(spec: dict, definitions: dict) -> str | None:
    """The name of the shared object definition ``spec`` refers to (figure options,
    resources, hyperparameters), which the page lists once rather than under every key."""
    ref = spec.get("$ref")
    if ref:
        name = ref.rsplit("/", 1)[-1]
        if definitions.get(name, {}).get("properties"):
            return name
    return None


def _config_rows(prefix: str, spec: dict, definitions: dict, rows: list[str], shared: set[str]) -> None:
    name = _shared_definition(spec, definitions)
    if name:
        shared.add(name)
        rows.append(f"| `{prefix}` | mapping: [`{name}`](#def-{name}) | | "
                    f"{_cell(spec.get('description') or definitions[name].get('description', ''))} |")
        return
    spec = _resolve(spec, definitions)
    properties = spec.get("properties") or {}
    extra = spec.get("additionalProperties")
    if properties or isinstance(extra, dict):
        if prefix:
            rows.append(f"| `{prefix}` | mapping | | {_cell(spec.get('description', ''))} |")
        for key, child in properties.items():
            _config_rows(f"{prefix}.{key}" if prefix else key, child, definitions, rows, shared)
        if isinstance(extra, dict):
            _config_rows(f"{prefix}.NAME", extra, definitions, rows, shared)
        return
    default = spec.get("default")
    default_text = "" if "default" not in spec else f"`{json.dumps(default)}`"
    rows.append(f"| `{prefix}` | {_cell(_type_text(spec, definitions))} | {_cell(default_text)} | "
                f"{_cell(spec.get('description', ''))} |")


TABLE_HEAD = "| key | type | default | meaning |\n|---|---|---|---|"


def config_markdown(schema_path: Path = CONFIG_SCHEMA, settings_path: Path = SETTINGS_SCHEMA) -> str:
    """One table per top-level section of the workflow config (key, type and range,
    default, meaning), then one per shared definition (figure options, resources,
    hyperparameters).  ``probes.NAME`` comes from the probes' settings schema, minus the
    keys the workflow sets from elsewhere (``x-set-by``)."""
    schema = _load_yaml(schema_path)
    definitions = schema.get("definitions", {})
    settings = _load_yaml(settings_path)
    probes = {}
    for name, spec in settings.items():
        spec = dict(spec)
        spec["properties"] = {k: v for k, v in spec["properties"].items() if "x-set-by" not in v}
        probes[name] = spec
    lines = []
    shared: set[str] = set()
    for section, spec in schema["properties"].items():
        spec = dict(_resolve(spec, definitions))
        if section == "probes":
            spec["properties"] = probes
        lines.append(f"### `{section}`\n")
        rows: list[str] = []
        if spec.get("properties") or isinstance(spec.get("additionalProperties"), dict):
            if spec.get("description"):
                lines.append(" ".join(spec["description"].split()) + "\n")
            for key, child in (spec.get("properties") or {}).items():
                _config_rows(f"{section}.{key}", child, definitions, rows, shared)
            if isinstance(spec.get("additionalProperties"), dict):
                _config_rows(f"{section}.NAME", spec["additionalProperties"], definitions, rows, shared)
        else:
            _config_rows(section, spec, definitions, rows, shared)
        lines.extend([TABLE_HEAD, *rows, ""])
    done: set[str] = set()
    while shared - done:  # a shared definition may refer to another
        name = sorted(shared - done)[0]
        done.add(name)
        spec = definitions[name]
        lines.append(f"### Shared: `{name}` {{#def-{name}}}\n")
        if spec.get("description"):
            lines.append(" ".join(spec["description"].split()) + "\n")
        rows = []
        for key, child in spec["properties"].items():
            _config_rows(key, child, definitions, rows, shared)
        lines.extend([TABLE_HEAD, *rows, ""])
    return "\n".join(lines)


# ---------------------------------------------------------------- datasets

def make_tiny_study(root: str | Path, workers: int = 1) -> dict[str, Path]:
    """Train tiny PPO and TRPO agents on Hopper-v5 (one iteration of 256 steps), run
    every probe on iteration 1 with the tiny settings above, and collect: the
    datasets every kind of the workflow writes, as ``{kind: path}`` (about a minute on
    one core).  Uses the ``pgprobe`` commands the workflow runs."""
    import yaml

    from .cli import main

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    config = root / "training.yaml"
    config.write_text(yaml.safe_dump({"training": TINY_TRAINING}))
    datasets = root / "datasets"
    datasets.mkdir(exist_ok=True)

    def run(argv: list[str]) -> None:
        status = main(argv)
        if status != 0:
            raise RuntimeError(f"pgprobe {' '.join(argv)} exited with {status}")

    runs = {}
    for algo in ("ppo", "trpo"):
        out = root / "runs" / algo
        run(["train", "--env", "Hopper-v5", "--algo", algo, "--seed", "0", "--config", str(config),
             "--out", str(out), "--no-progress"])
        runs[algo] = out
    run(["collect", "--probe", "training", "--inputs", *(str(runs[a] / "train.nc") for a in runs),
         "--out", str(datasets / "training.nc")])
    run(["collect", "--probe", "sample_regime", "--inputs", str(runs["ppo"] / "train.nc"),
         "--coords", json.dumps([{"steps_per_iteration": 256, "lr_scale": 1.0}]),
         "--out", str(datasets / "sample_regime.nc")])
    for probe in PROBES:
        outputs = []
        for algo, run_dir in runs.items():
            out = root / "probes" / probe / f"{algo}.nc"
            out.parent.mkdir(parents=True, exist_ok=True)
            run(["probe", probe, "--checkpoint", str(run_dir / "checkpoints" / "iter0001.pt"),
                 "--out", str(out), "--settings", json.dumps(TINY_PROBE_SETTINGS[probe]),
                 "--workers", str(workers)])
            outputs.append(str(out))
        run(["collect", "--probe", probe, "--inputs", *outputs, "--out", str(datasets / f"{probe}.nc")])
    return {kind: datasets / f"{kind}.nc" for kind in DATASET_KINDS}


def dataset_specs(paths: dict[str, Path]) -> dict:
    """{kind: {"dims": [...], "coords": [...], "variables": [...], "attributes": [...]}}
    read off the collected datasets ``paths`` ({kind: path}, any of DATASET_KINDS): each coordinate's and variable's name, dims, long_name
    and units (sizes and values are the study's, so they are left out)."""
    import xarray as xr

    specs = {}
    for kind in [k for k in DATASET_KINDS if k in paths]:
        with xr.open_dataset(paths[kind]) as ds:
            def entry(name):
                var = ds[name]
                return {"name": str(name), "dims": [str(d) for d in var.dims],
                        "long_name": str(var.attrs.get("long_name", "")),
                        "units": str(var.attrs.get("units", ""))}
            specs[kind] = {
                "dims": [str(d) for d in ds.dims],
                "coords": [entry(name) for name in ds.coords],
                "variables": [entry(name) for name in ds.data_vars],
                "attributes": sorted(str(k) for k in ds.attrs),
            }
    return specs


def datasets_markdown(specs: dict | None = None, kinds: list[str] | None = None) -> str:
    """For each collected dataset (``kinds``, default all): its dims, then a table of its
    coordinates and variables (name, dims, long_name, units), then its global attributes."""
    if specs is None:
        specs = json.loads(DATASET_SPECS.read_text())
    lines = []
    for kind in kinds or list(specs):
        spec = specs[kind]
        lines.append("Dimensions: " + ", ".join(f"`{d}`" for d in spec["dims"]) + ".\n")
        lines.append("| name | kind | dims | long_name | units |\n|---|---|---|---|---|")
        for role, entries in (("coordinate", spec["coords"]), ("variable", spec["variables"])):
            for e in entries:
                dims = ", ".join(e["dims"]) or "–"
                lines.append(f"| `{e['name']}` | {role} | {_cell(dims)} | {_cell(e['long_name'])} | "
                             f"{_cell(e['units'])} |")
        lines.append("")
        lines.append("Global attributes: " + ", ".join(f"`{a}`" for a in spec["attributes"]) + ".\n")
    return "\n".join(lines)


def write_dataset_specs(out: Path = DATASET_SPECS, workers: int = 1) -> Path:
    """Make a tiny study in a temporary directory and write its dataset specs to ``out``."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        specs = dataset_specs(make_tiny_study(tmp, workers=workers))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(specs, indent=1, ensure_ascii=False) + "\n")
    return out


MARKER = re.compile(r"<!-- pgprobe:(cli|config|dataset) ?([a-z_]*) -->")


def render(markdown: str, specs: dict | None = None) -> str:
    """``markdown`` with each generation marker replaced by its generated text:
    ``<!-- pgprobe:cli -->``, ``<!-- pgprobe:config -->``, ``<!-- pgprobe:dataset KIND -->``
    (``specs``: dataset specs to use instead of docs/reference/dataset_variables.json)."""
    def generate(match: re.Match) -> str:
        what, kind = match.groups()
        if what == "cli":
            return cli_markdown()
        if what == "config":
            return config_markdown()
        return datasets_markdown(specs, [kind])
    return MARKER.sub(generate, markdown)


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["datasets"]:
        sys.exit("usage: python -m pgprobe.docs_reference datasets   "
                 "(regenerates docs/reference/dataset_variables.json from a tiny study)")
    print(f"wrote {write_dataset_specs()}")
