"""End-to-end tests of the Snakemake workflow on tests/tiny_config.yaml.

The whole DAG (training, sample-regime runs, every probe with its shards, every collect,
every figure) runs once in a temporary working directory
(``snakemake --directory TMP -s Snakefile --configfile tests/tiny_config.yaml``); the other
tests check what Snakemake would redo after a change:

* a second run does nothing;
* a probe parameter reruns that probe (its shards too), its collect and its figures, never
  training (dry run);
* a newer checkpoint mtime follows Snakemake's ``mtime`` rerun trigger: with the same
  content (checksum-recorded, < 1 MB) nothing reruns; without checksums everything
  downstream of it reruns and nothing upstream (dry runs);
* ``snakemake --report`` holds every figure;
* a figure option reruns only that figure (run for real; only figures/fig8.pdf changes);
* ``snakemake --lint`` is clean; an invalid config stops before any job with one line
  naming the key.
"""
from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
TINY = REPO / "tests" / "tiny_config.yaml"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the pgprobe CLI
    env.setdefault("SOURCE_DATE_EPOCH", "0")
    env.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
    return env


def snakemake(workdir: Path, *args: str, config: Path | None = TINY, timeout: int = 1800):
    cmd = [sys.executable, "-m", "snakemake", "--directory", str(workdir), "-s", str(SNAKEFILE),
           "--cores", "2"]
    if config is not None:
        cmd += ["--configfile", str(config)]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, env=_env(), timeout=timeout,
                          cwd=workdir)


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a snakemake run or dry run: {rule: count}."""
    counts: dict[str, int] = {}
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("job") and "count" in line and i + 1 < len(lines) \
                and lines[i + 1].startswith("---"):
            for row in lines[i + 2:]:
                parts = row.split()
                if len(parts) != 2 or parts[0] == "total":
                    break
                counts[parts[0]] = int(parts[1])
            break
    return counts


def write_config(workdir: Path, name: str, change: dict) -> Path:
    """tests/tiny_config.yaml with ``change`` merged in (dicts deep, other values replaced)."""
    config = yaml.safe_load(TINY.read_text())

    def merge(base, extra):
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                merge(base[key], value)
            else:
                base[key] = copy.deepcopy(value)
    merge(config, change)
    path = workdir / name
    path.write_text(yaml.safe_dump(config))
    return path


def output_mtimes(workdir: Path) -> dict[str, int]:
    return {str(p.relative_to(workdir)): p.stat().st_mtime_ns
            for top in ("results", "figures") for p in (workdir / top).rglob("*") if p.is_file()}


def figure_names_using(dataset: str) -> set[str]:
    from pgprobe.figures import registry
    return {name for name, entry in registry().items() if dataset in entry["datasets"]}


@pytest.fixture(scope="module")
def workdir(tiny_workflow_dir) -> Path:
    """The tiny config's whole DAG, run once per session (conftest.tiny_workflow_dir)."""
    return tiny_workflow_dir


# ---------------------------------------------------------------------------- the full DAG
@pytest.mark.slow
def test_full_dag_makes_every_dataset_and_figure(workdir):
    from pgprobe.datasets import open_dataset
    from pgprobe.figures import registry

    log = workdir.joinpath("first_run.log").read_text()
    counts = job_counts(log)
    for rule in ["training_config", "train", "regime_training_config", "train_regime",
                 "probe_gradients_shard", "probe_gradients", "probe_steps", "probe_values",
                 "probe_baselines_shard", "probe_baselines", "probe_landscapes_shard",
                 "probe_landscapes", "collect_training", "collect_sample_regime", "collect_gradients",
                 "collect_steps", "collect_values", "collect_baselines", "collect_landscapes"]:
        assert counts.get(rule, 0) > 0, f"rule {rule} did not run: {counts}"
    assert counts["train"] == 2 and counts["probe_gradients_shard"] == 4
    for name in registry():
        pdf = workdir / "figures" / f"{name}.pdf"
        assert pdf.is_file() and pdf.read_bytes()[:5] == b"%PDF-", name
        assert counts.get(f"figure_{name}") == 1
    assert len(registry()) >= 23  # fig1..fig20, two Appendix A.4 step figures, sample regime
    for kind in ["gradients", "steps", "values", "baselines", "landscapes"]:
        ds = open_dataset(workdir / "results" / "datasets" / f"{kind}.nc", kind)
        assert {"env", "algo", "seed", "iteration"} <= set(ds.dims)
        assert list(ds["algo"].values) == ["ppo", "trpo"]
    training = open_dataset(workdir / "results" / "datasets" / "training.nc", "training")
    assert dict(training.sizes)["iteration"] == 2 and {"env", "algo", "seed"} <= set(training.dims)
    regime = open_dataset(workdir / "results" / "datasets" / "sample_regime.nc", "sample_regime")
    assert list(regime["steps_per_iteration"].values) == [128, 256]
    # Checkpoints and train.nc were moved out of the stage; the stage is gone.
    run = workdir / "results" / "runs" / "Hopper-v5" / "ppo" / "seed0"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["iter0000.pt", "iter0002.pt"]
    assert not any((workdir / "results" / "resume").rglob("*.pt"))
    # Training got only its own config section.
    section = yaml.safe_load((workdir / "results/configs/train/Hopper-v5/ppo.yaml").read_text())
    assert set(section) == {"training"} and section["training"]["iterations"] == 2


@pytest.mark.slow
def test_second_run_does_nothing(workdir):
    result = snakemake(workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("probe, change, sharded", [
    ("values", {"heldout_steps": 128}, False),
    ("gradients", {"reference_samples": 512}, True),
])
def test_probe_parameter_reruns_probe_collect_figures_not_training(workdir, probe, change, sharded):
    config = write_config(workdir, f"probe_{probe}.yaml", {"probes": {probe: change}})
    dry = snakemake(workdir, "-n", config=config)
    assert dry.returncode == 0, dry.stderr[-3000:]
    counts = job_counts(dry.stdout)
    expected = {f"probe_{probe}", f"collect_{probe}", "all"} | {f"figure_{n}" for n in figure_names_using(probe)}
    if sharded:
        expected.add(f"probe_{probe}_shard")
    assert set(counts) == expected
    assert counts[f"probe_{probe}"] == 2  # ppo and trpo at the probed iteration
    assert "train" not in counts and "training_config" not in counts


@pytest.mark.slow
def test_newer_checkpoint_mtime_follows_snakemake_rerun_triggers(workdir):
    """Snakemake 9's ``mtime`` trigger (on by default): a job reruns when an input is newer
    than its oldest output, unless the input is at most ``--max-checksum-file-size`` (1 MB)
    and its SHA-256 equals the one recorded when the job last ran.  So touching a tiny
    checkpoint reruns nothing; with ``--max-checksum-file-size 0`` (or a checkpoint above
    1 MB, e.g. Humanoid's) it reruns every probe job reading it and everything downstream
    (shards, collects, figures), never the training job that wrote it."""
    ckpt = workdir / "results/runs/Hopper-v5/ppo/seed0/checkpoints/iter0002.pt"
    assert ckpt.stat().st_size < 1_000_000
    stat = ckpt.stat()
    try:
        os.utime(ckpt, ns=(stat.st_atime_ns, stat.st_mtime_ns + 3_600 * 10**9))
        same_content = snakemake(workdir, "-n")
        assert same_content.returncode == 0, same_content.stderr[-3000:]
        assert "Nothing to be done" in same_content.stdout + same_content.stderr
        dry = snakemake(workdir, "-n", "--max-checksum-file-size", "0")
        assert dry.returncode == 0, dry.stderr[-3000:]
        counts = job_counts(dry.stdout)
        assert "train" not in counts and "training_config" not in counts
        for probe in ["gradients", "steps", "values", "baselines", "landscapes"]:
            assert counts[f"probe_{probe}"] == 1  # the PPO checkpoint's job only
        assert counts["probe_gradients_shard"] == 2
        assert "collect_training" not in counts and "figure_fig8" not in counts
        assert counts.get("figure_fig6") == 1 and counts.get("collect_values") == 1
        assert re.search(r"Updated input files: .*iter0002\.pt", dry.stdout + dry.stderr)
    finally:
        os.utime(ckpt, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.mark.slow
def test_report_holds_every_figure_with_its_caption(workdir):
    from pgprobe.figures import registry

    result = snakemake(workdir, "--report", "report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    html = (workdir / "report.html").read_text()
    for name in registry():
        assert f"{name}.pdf" in html, name
    assert "Mean reward (paper Figure 8)" in html  # caption from workflow/report/fig8.rst


@pytest.mark.slow
def test_killed_probe_shard_alone_reruns(workdir, tmp_path):
    """kill -9 of a running gradients shard job, in a copy of the tiny run whose gradients
    probe outputs were removed (so the probe runs as for the first time, with
    ``--keep-going`` as in the SLURM profile): snakemake fails naming the rule, the
    killed job leaves no output, the other shards finish; the next run redoes only the
    killed shard and what depends on it (not training, not the finished shards), and the
    gathered dataset equals the uninterrupted run's."""
    import random
    import shutil
    import time

    import psutil
    import xarray as xr

    wd = tmp_path / "copy"
    shutil.copytree(workdir, wd, symlinks=True)          # copy2: mtimes kept
    with xr.open_dataset(wd / "results/datasets/gradients.nc") as ds:
        uninterrupted = ds.load()
    shutil.rmtree(wd / "results/probes/gradients")
    (wd / "results/datasets/gradients.nc").unlink()
    cmd = [sys.executable, "-m", "snakemake", "--directory", str(wd), "-s", str(SNAKEFILE), "--cores", "1",
           "--configfile", str(TINY), "--keep-going"]
    proc = subprocess.Popen(cmd, cwd=wd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    victim, deadline = None, time.time() + 300
    while victim is None:
        assert proc.poll() is None and time.time() < deadline, "no shard job started"
        for child in psutil.Process(proc.pid).children(recursive=True):
            try:
                if "gradients-shard" in child.cmdline():
                    victim = child
            except psutil.NoSuchProcess:
                pass
        time.sleep(0.02)
    args = victim.cmdline()
    killed_out = wd / args[args.index("--out") + 1]
    time.sleep(random.uniform(0.0, 0.3))
    victim.kill()
    output = proc.communicate(timeout=900)[0]
    assert proc.returncode != 0
    assert "Error in rule probe_gradients_shard" in output, output[-3000:]
    assert not killed_out.exists()
    finished = {p: p.stat().st_mtime_ns for p in (wd / "results/probes/gradients").rglob("*.shard*.nc")}
    assert len(finished) == 3 and killed_out not in finished, sorted(finished)

    dry = snakemake(wd, "-n")
    counts = job_counts(dry.stdout)
    expected = {"probe_gradients_shard", "probe_gradients", "collect_gradients", "all"} | \
        {f"figure_{n}" for n in figure_names_using("gradients")}
    assert set(counts) == expected, counts
    assert counts["probe_gradients_shard"] == 1 and counts["probe_gradients"] == 1
    rerun = snakemake(wd)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert job_counts(rerun.stdout + rerun.stderr) == counts
    assert killed_out.exists()
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    assert not [p for p in (wd / "results").rglob(".*.tmp*")], "temporary files left behind"
    with xr.open_dataset(wd / "results/datasets/gradients.nc") as ds:
        xr.testing.assert_equal(ds.load(), uninterrupted)


@pytest.mark.slow
def test_figure_option_reruns_only_that_figure(workdir):
    config = write_config(workdir, "fig_option.yaml", {"figures": {"fig8": {"smoothing": 2}}})
    dry = snakemake(workdir, "-n", config=config)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert set(job_counts(dry.stdout)) == {"figure_fig8", "all"}
    before = output_mtimes(workdir)
    result = snakemake(workdir, config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    after = output_mtimes(workdir)
    assert {k for k in after if after[k] != before.get(k)} == {"figures/fig8.pdf"}
    # (runs last among the tests sharing the workdir: the tiny config would now redo fig8)


# ---------------------------------------------------------------------------- static checks
@pytest.mark.slow
def test_lint_is_clean(tmp_path):
    result = snakemake(tmp_path, "--lint")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("change, key", [
    ({"training": {"iterations": "ten"}}, "training.iterations"),
    ({"envs": ["NoSuchTask-v0"]}, "envs[0]"),
    ({"probes": {"baselines": {"sample_counts": [-512]}}}, "probes.baselines.sample_counts[0]"),
    ({"probes": {"values": {"heldout_stream": 4}}}, "probes.values.heldout_stream"),
])
def test_invalid_config_stops_with_one_line_naming_the_key(tmp_path, change, key):
    config = write_config(tmp_path, "bad.yaml", change)
    result = snakemake(tmp_path, config=config)
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines()
             if line.strip() and not line.startswith("Config file ")]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"pgprobe config error: {key}: "), lines[0]
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()


@pytest.mark.slow
def test_paper_preset_passes_the_workflow_checks(tmp_path):
    """The paper preset passes validation and the plan's setup (``--list-rules`` parses the
    workflow without building the ~6700-job DAG; `snakemake -n` shows that plan)."""
    result = snakemake(tmp_path, "--list-rules", config=REPO / "workflow" / "presets" / "paper.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    rules = set(result.stdout.split())
    assert {"train", "probe_gradients_shard", "probe_landscapes_shard", "figure_fig20",
            "figure_fig_sample_regime"} <= rules


# ---------------------------------------------------------------------------- fast checks
def test_schema_probe_defaults_equal_module_defaults():
    """config.schema.yaml's probes.NAME defaults are the probe modules' DEFAULTS (the seed and
    the shard count are set elsewhere in the config: probe_seed, sharding.NAME)."""
    import importlib

    schema = yaml.safe_load(SCHEMA.read_text())
    elsewhere = {"seed", "reference_shards", "true_value_shards"}
    for probe, section in schema["properties"]["probes"]["properties"].items():
        module = importlib.import_module(f"pgprobe.probes.{probe}")
        schema_defaults = {k: v["default"] for k, v in section["properties"].items()}
        module_defaults = {k: v for k, v in module.DEFAULTS.items() if k not in elsewhere}
        assert schema_defaults == module_defaults, probe


def test_config_files_validate_against_schema():
    """config.yaml, the tiny config and the paper preset are valid (schema only)."""
    import jsonschema

    schema = yaml.safe_load(SCHEMA.read_text())
    for path in [REPO / "config.yaml", TINY, REPO / "workflow" / "presets" / "paper.yaml"]:
        jsonschema.Draft7Validator(schema).validate(yaml.safe_load(path.read_text()))
