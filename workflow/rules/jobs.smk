"""How each job runs: its shell command, resources, the files written in-process, its
report entry (helpers of the rule files, which hold rules only).

Training runs in a stage directory keyed by its params (``stage_dir``) and delivers its
files by hard links, so a killed job loses nothing (see train.smk).

Included by the Snakefile and run when Snakemake parses the workflow, before any job (with
the SLURM executor, in every job too), so it imports neither torch nor gymnasium's
environments nor matplotlib.
"""
import hashlib
import json
import math
import os
from pathlib import Path

import yaml


# ---------------------------------------------------------------------------- training
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


# ---------------------------------------------------------------------------- probes
def directions_flag(wildcards, input) -> str:
    """A shard job's ``--directions FILE`` where its probe has a directions file, else ''."""
    return f" --directions {input.directions}" if "directions" in input.keys() else ""


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


# ---------------------------------------------------------------------------- figures
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


# ---------------------------------------------------------------------------- in-process writes
def write_text_atomic(path, text, log=None):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(path).with_name(f".{Path(path).name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    if log:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        Path(log).write_text(f"wrote {path}\n")
