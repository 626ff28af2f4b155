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

import collections
import copy
import json
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
           "--cores", "2", *args]
    if config is not None:   # last: --configfile takes every word after it
        cmd += ["--configfile", str(config)]
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=timeout, cwd=workdir)


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
                 "probe_baselines_shard", "probe_baselines", "probe_landscapes_directions",
                 "probe_landscapes_shard", "probe_landscapes", "collect_training", "collect_sample_regime", "collect_gradients",
                 "collect_steps", "collect_values", "collect_baselines", "collect_landscapes", "claims"]:
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
    # Checkpoints and train.nc were delivered as hard links of the stage's files (no copy).
    run = workdir / "results" / "runs" / "Hopper-v5" / "ppo" / "seed0"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["iter0000.pt", "iter0002.pt"]
    staged = {p.name: p for p in (workdir / "results" / "resume" / "runs").rglob("checkpoints/*.pt")
              if "/ppo/" in str(p)}
    for delivered in (run / "checkpoints").iterdir():
        assert delivered.stat().st_ino == staged[delivered.name].stat().st_ino
    # The claims table: one row per claim, the one seed said.
    claims = open_dataset(workdir / "results" / "claims.nc", "claims")
    assert claims.sizes["claim"] >= 13 and set(claims["verdict"].values) <= {
        "reproduced", "contradicted", "inconclusive", "not measured"}
    table = (workdir / "figures" / "claims.md").read_text()
    assert "Training seeds in this study: 1 — one seed" in table
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
    expected = {f"probe_{probe}", f"collect_{probe}", "all", "claims"} | {f"figure_{n}" for n in figure_names_using(probe)}
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
    expected = {"probe_gradients_shard", "probe_gradients", "collect_gradients", "all", "claims"} | \
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


# ---------------------------------------------------------------------------- what a change reruns
# One test per row of docs/how-to/what-reruns.md's table "What a change reruns": the set of rules (and job
# counts) that `snakemake -n` plans after the change, on a finished tiny study.  The study
# is made without running a job (every planned output created empty, then recorded with
# `snakemake --touch --forceall`: the same params and code hashes as a real run), so these tests
# check the plan, in seconds.
RUN_SCOPE = {"all"}


@pytest.fixture(scope="module")
def touched_study(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("touched")
    summary = snakemake(workdir, "--summary")
    assert summary.returncode == 0, summary.stderr[-3000:]
    for line in summary.stdout.splitlines()[1:]:
        path = workdir / line.split("\t")[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    touched = snakemake(workdir, "--touch", "--forceall")   # --forceall: every job's metadata
    assert touched.returncode == 0, touched.stderr[-3000:]
    noop = snakemake(workdir, "-n")
    assert "Nothing to be done" in noop.stdout + noop.stderr, noop.stdout[-3000:]
    return workdir


def planned(workdir: Path, change: dict | None = None, name: str = "change.yaml", env: dict | None = None):
    """{rule: job count} that a dry run plans with tests/tiny_config.yaml + ``change``."""
    config = write_config(workdir, name, change or {})
    cmd = [sys.executable, "-m", "snakemake", "--directory", str(workdir), "-s", str(SNAKEFILE),
           "--cores", "2", "--configfile", str(config), "-n"]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**_env(), **(env or {})},
                            timeout=600, cwd=workdir)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return job_counts(result.stdout)


CLAIM_DATASETS = {"gradients", "values", "baselines", "landscapes", "sample_regime"}


def figures_of(*datasets: str) -> dict:
    """The figure jobs drawn from these datasets, and the claims job when it reads one of them."""
    jobs = {f"figure_{n}": 1 for d in datasets for n in figure_names_using(d)}
    return {**jobs, "claims": 1} if CLAIM_DATASETS & set(datasets) else jobs


def probe_jobs(probe: str, count: int = 2) -> dict:
    """The jobs of one probe at ``count`` checkpoints (tiny config: shards 2 per checkpoint)."""
    jobs = {f"probe_{probe}": count}
    if probe in ("gradients", "baselines", "landscapes"):
        jobs[f"probe_{probe}_shard"] = 2 * count
    if probe == "landscapes":
        jobs["probe_landscapes_directions"] = count
    return jobs


ALL_PROBES = ["gradients", "steps", "values", "baselines", "landscapes"]


@pytest.mark.slow
@pytest.mark.parametrize("probe, change", [
    ("gradients", {"estimates": 3}),
    ("baselines", {"estimates": 3}),
    ("baselines", {"true_value_validation_streams": 2}),
])
def test_estimate_setting_reruns_probe_not_its_reference_shards(touched_study, probe, change):
    counts = planned(touched_study, {"probes": {probe: change}})
    assert counts == {f"probe_{probe}": 2, f"collect_{probe}": 1, **figures_of(probe), "all": 1}


@pytest.mark.slow
@pytest.mark.parametrize("probe, change", [
    ("gradients", {"reference_samples": 512}),
    ("baselines", {"true_value_streams": 6}),
    ("landscapes", {"alpha_points": 3}),
])
def test_reference_setting_reruns_shards_probe_collect_figures(touched_study, probe, change):
    counts = planned(touched_study, {"probes": {probe: change}})
    assert counts == {**probe_jobs(probe), f"collect_{probe}": 1, **figures_of(probe), "all": 1}


@pytest.mark.slow
@pytest.mark.parametrize("change", [{"trajectory_counts": [1, 3]}])
def test_landscape_point_setting_reruns_shards_not_directions(touched_study, change):
    """The plane (update steps on large batches) depends only on DIRECTION_KEYS."""
    counts = planned(touched_study, {"probes": {"landscapes": change}})
    expected = {**probe_jobs("landscapes"), "collect_landscapes": 1, **figures_of("landscapes"), "all": 1}
    del expected["probe_landscapes_directions"]
    assert counts == expected


@pytest.mark.slow
@pytest.mark.parametrize("probe, change", [
    ("steps", {"estimates": 3}),
    ("values", {"heldout_steps": 128}),
])
def test_unsharded_probe_setting_reruns_that_probe(touched_study, probe, change):
    counts = planned(touched_study, {"probes": {probe: change}})
    assert counts == {f"probe_{probe}": 2, f"collect_{probe}": 1, **figures_of(probe), "all": 1}


@pytest.mark.slow
def test_training_hyperparameter_reruns_that_run_and_its_probes(touched_study):
    counts = planned(touched_study, {"training": {"hyperparameters": {"ppo": {"clip_epsilon": 0.3}}}})
    expected = {"training_config": 1, "train": 1, "collect_training": 1, "all": 1,
                # the sample-regime runs start from the PPO hyperparameters
                "regime_training_config": 2, "train_regime": 2, "collect_sample_regime": 1}
    for probe in ALL_PROBES:
        expected.update(probe_jobs(probe, count=1))    # the PPO checkpoint's
        expected[f"collect_{probe}"] = 1
    expected.update(figures_of("training", "sample_regime", *ALL_PROBES))
    assert counts == expected


@pytest.mark.slow
def test_checkpoint_schedule_reruns_training_and_every_probe(touched_study):
    counts = planned(touched_study, {"training": {"checkpoint_every": 1}})
    assert counts["training_config"] == 2 and counts["train"] == 2 and "train_regime" not in counts
    for probe in ALL_PROBES:
        assert counts[f"probe_{probe}"] == 2          # ppo and trpo at iteration 2


@pytest.mark.slow
def test_adding_a_probed_iteration_reruns_only_its_probes(touched_study):
    """Iteration 0 is on the tiny schedule (checkpoint_every 2): probing it too runs the
    probes of iteration 0, the collects and figures; no training, no probe of iteration 2."""
    counts = planned(touched_study, {"probe_iterations": {"default": [0, 2]}})
    expected = {"all": 1}
    for probe in ALL_PROBES:
        expected.update(probe_jobs(probe, count=2))     # ppo and trpo at iteration 0
        expected[f"collect_{probe}"] = 1
    expected.update(figures_of(*ALL_PROBES))
    assert counts == expected
    one_probe = planned(touched_study, {"probe_iterations": {"landscapes": [0, 2]}})
    assert one_probe == {**probe_jobs("landscapes"), "collect_landscapes": 1, **figures_of("landscapes"),
                         "all": 1}


@pytest.mark.slow
def test_claims_setting_reruns_only_the_claims(touched_study):
    assert planned(touched_study, {"claims": {"c1_far_below": 0.4}}) == {"claims": 1, "all": 1}


def test_figure_option_plans_only_that_figure(touched_study):
    assert planned(touched_study, {"figures": {"fig6": {"n_boot": 30}}}) == {"figure_fig6": 1, "all": 1}


def _edited_source(tmp_path: Path, relative: str) -> dict:
    """Environment whose pgprobe is a copy of src/pgprobe with ``relative`` edited (a comment)."""
    import shutil

    src = tmp_path / "src"
    shutil.copytree(REPO / "src" / "pgprobe", src / "pgprobe",
                    ignore=shutil.ignore_patterns("__pycache__"))
    path = src / "pgprobe" / relative
    path.write_text(path.read_text() + "\n# edited\n")
    return {"PYTHONPATH": str(src)}


@pytest.mark.slow
@pytest.mark.parametrize("relative, rules", [
    ("probes/values.py", {"probe_values"}),
    ("probes/gradients.py", {"probe_gradients", "probe_gradients_shard"}),
    ("probes/common.py", {f"probe_{p}" for p in ("gradients", "steps", "values", "baselines", "landscapes")}
     | {"probe_gradients_shard", "probe_baselines_shard", "probe_landscapes_shard", "probe_landscapes_directions"}),
    ("collect.py", set()),
    ("figures/values.py", set()),
])
def test_code_change_reruns_the_jobs_running_it(touched_study, tmp_path, relative, rules):
    counts = planned(touched_study, env=_edited_source(tmp_path, relative))
    ran = {rule for rule in counts if rule.startswith(("probe_", "train"))}
    assert ran == rules, counts
    if relative == "figures/values.py":
        assert set(counts) == {f"figure_{n}" for n, e in _registry().items()
                               if e["module"] == "pgprobe.figures.values"} | {"all"}
    if relative == "collect.py":
        assert {r for r in counts if r.startswith("collect_")} == {
            "collect_training", "collect_sample_regime", *(f"collect_{p}" for p in ALL_PROBES)}


@pytest.mark.slow
def test_training_code_change_reruns_training_and_everything_after(touched_study, tmp_path):
    counts = planned(touched_study, env=_edited_source(tmp_path, "train.py"))
    assert counts["train"] == 2 and counts["train_regime"] == 2
    assert all(counts[f"probe_{p}"] == 2 for p in ALL_PROBES)


def _registry() -> dict:
    from pgprobe.figures import registry
    return registry()


@pytest.mark.slow
def test_off_schedule_probe_iteration_is_a_one_line_error(tmp_path):
    config = write_config(tmp_path, "bad.yaml", {"probe_iterations": {"default": [1]}})
    result = snakemake(tmp_path, "-n", config=config)
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines()
             if line.strip() and not line.startswith("Config file ")]
    assert lines == ["pgprobe config error: probe_iterations.default[0]: 1 is not on the checkpoint "
                     "schedule (training.checkpoint_every=2, training.iterations=2: 0, 2)"], lines


def _heavy_modules_imported_by_parse(workdir: Path) -> list:
    code = ("import runpy, sys; sys.argv = ['snakemake', '--list-rules', '-s', %r, '--configfile', %r];"
            "\ntry: runpy.run_module('snakemake', run_name='__main__')\nexcept SystemExit: pass\n"
            "print('HEAVY', sorted(m for m in ('torch', 'gymnasium', 'matplotlib', 'mujoco') if m in sys.modules))"
            % (str(SNAKEFILE), str(TINY)))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(),
                            cwd=workdir, timeout=300)
    line = [line for line in result.stdout.splitlines() if line.startswith("HEAVY ")]
    assert line, result.stdout[-2000:] + result.stderr[-2000:]
    return eval(line[0][len("HEAVY "):])


@pytest.mark.slow
def test_parse_imports_no_torch_and_makes_no_environment(touched_study, tmp_path):
    """Parsing never imports torch or MuJoCo (no environment is made).  With warm caches
    (every job of a cluster run, every later snakemake call) it imports none of gymnasium
    and matplotlib either: the config checks that need them are cached in .snakemake/pgprobe."""
    assert _heavy_modules_imported_by_parse(touched_study) == []
    cold = _heavy_modules_imported_by_parse(tmp_path)
    assert "torch" not in cold and "mujoco" not in cold, cold


@pytest.mark.slow
def test_cached_config_checks_still_refuse_a_bad_config(tmp_path):
    """The parse-time checks are cached (.snakemake/pgprobe/parse-cache): a second parse of
    the same bad config in the same directory still stops with the same one line."""
    config = write_config(tmp_path, "bad.yaml", {"probes": {"baselines": {"true_value_validation_streams": 4}}})
    outputs = []
    for _ in range(2):
        result = snakemake(tmp_path, "-n", config=config)
        assert result.returncode != 0
        outputs.append([line for line in (result.stdout + result.stderr).splitlines()
                        if line.strip() and not line.startswith("Config file ")])
    assert outputs[0] == outputs[1] and len(outputs[0]) == 1, outputs
    assert outputs[0][0].startswith("pgprobe config error: probes.baselines: "), outputs[0]
    assert "true_value_validation_streams" in outputs[0][0]
    assert list((tmp_path / ".snakemake" / "pgprobe" / "parse-cache").glob("settings-baselines-*.json"))


# ---------------------------------------------------------------------------- train delivery
PPO_RUN = "results/runs/Hopper-v5/ppo/seed0"
PPO_OUTPUTS = [f"{PPO_RUN}/checkpoints/iter0000.pt", f"{PPO_RUN}/checkpoints/iter0002.pt", f"{PPO_RUN}/train.nc"]


def _killing_shims(directory: Path, kill_at: int) -> dict:
    """PATH shims for ln, cp and mv (the commands that deliver files) that run the real
    command and, at the ``kill_at``-th call of any of them, SIGKILL the shell running the
    job: a kill inside the delivery, after ``kill_at`` files were delivered."""
    import shutil

    directory.mkdir()
    for name in ("ln", "cp", "mv"):
        real = shutil.which(name)
        shim = directory / name
        shim.write_text(f"""#!/bin/sh
{real} "$@"; status=$?
count=$(( $(cat {directory}/count 2>/dev/null || echo 0) + 1 )); echo $count > {directory}/count
[ $count -eq {kill_at} ] && kill -9 $PPID
exit $status
""")
        shim.chmod(0o755)
    return {"PATH": f"{directory}{os.pathsep}{_env()['PATH']}"}


def _train_ppo(workdir: Path, env: dict | None = None):
    cmd = [sys.executable, "-m", "snakemake", "--directory", str(workdir), "-s", str(SNAKEFILE),
           "--cores", "1", *PPO_OUTPUTS, "--configfile", str(TINY)]
    return subprocess.run(cmd, capture_output=True, text=True, env={**_env(), **(env or {})},
                          timeout=900, cwd=workdir)


@pytest.fixture(scope="module")
def uninterrupted_training(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("train_once")
    result = _train_ppo(workdir)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return workdir


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", [1, 2, 3])
def test_kill_inside_train_delivery_loses_nothing(uninterrupted_training, tmp_path, kill_at):
    """SIGKILL of the train job after 1, 2 or all 3 of its files were delivered: the job
    fails and Snakemake deletes its outputs; the rerun delivers every checkpoint, equal
    byte for byte to an uninterrupted run's, and train.nc."""
    import xarray as xr

    workdir = tmp_path / "study"
    workdir.mkdir()
    killed = _train_ppo(workdir, _killing_shims(tmp_path / "shims", kill_at))
    assert killed.returncode != 0 and "Error in rule train" in killed.stdout + killed.stderr, \
        killed.stdout[-2000:] + killed.stderr[-2000:]
    assert not any((workdir / path).exists() for path in PPO_OUTPUTS)
    rerun = _train_ppo(workdir)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-3000:]
    for path in PPO_OUTPUTS[:2]:
        assert (workdir / path).read_bytes() == (uninterrupted_training / path).read_bytes(), path
    with xr.open_dataset(workdir / PPO_OUTPUTS[2]) as ds:
        assert list(ds["iteration"].values) == [1, 2]


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
    workflow without building the ~6600-job DAG; `snakemake -n` shows that plan)."""
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
    from pgprobe.probes.common import config_probe_schemas

    schema["properties"]["probes"]["properties"] = config_probe_schemas()   # as config.smk inserts them
    for path in [REPO / "config.yaml", TINY, REPO / "workflow" / "presets" / "paper.yaml",
                 REPO / "docs" / "measurements" / "agents_example" / "config.yaml"]:
        jsonschema.Draft7Validator(schema).validate(yaml.safe_load(path.read_text()))


# ---------------------------------------------------------------------------- imported agents
def _save_sb3_agent(directory: Path, steps: int) -> dict:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(1)
    venv = VecNormalize(make_vec_env("Hopper-v5", n_envs=1, seed=0))
    model = PPO("MlpPolicy", venv, seed=0, device="cpu", n_steps=256, batch_size=64, n_epochs=2,
                policy_kwargs={"net_arch": [32, 32]})
    model.learn(steps)
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory / "agent.zip")
    venv.save(str(directory / "vecnormalize.pkl"))
    return {"path": str(directory / "agent.zip"), "vecnormalize": str(directory / "vecnormalize.pkl"),
            "env": "Hopper-v5", "source": "sb3", "probes": ["values", "steps"]}


def test_imported_agent_is_probed_like_a_run_and_reruns_when_its_file_changes(tmp_path):
    """config agents: the SB3 agent is imported (rule import_agent) and probed; its datasets
    carry algo = its name and source = the library; a changed model file reruns its import
    and its probes only; a CleanRL agent asked for the update-based probes is a config error."""
    from pgprobe.datasets import open_dataset

    agent = _save_sb3_agent(tmp_path / "zoo", 512)
    config = write_config(tmp_path, "agents.yaml", {"agents": {"zoo_ppo": agent}})
    targets = [f"results/probes/{p}/Hopper-v5/zoo_ppo/seed0/iter0000.nc" for p in ("values", "steps")]
    first = snakemake(tmp_path, *targets, config=config)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    assert job_counts(first.stdout + first.stderr) == {"import_agent": 1, "probe_values": 1, "probe_steps": 1}
    values = open_dataset(tmp_path / targets[0], kind="values")
    assert list(values["algo"].values) == ["zoo_ppo"] and list(values["source"].values) == ["stable-baselines3"]
    steps = open_dataset(tmp_path / targets[1], kind="steps")
    assert (steps["estimate_norm"].values > 0).all()
    again = snakemake(tmp_path, *targets, "-n", config=config)
    assert "Nothing to be done" in again.stdout + again.stderr
    _save_sb3_agent(tmp_path / "zoo", 768)                                    # the user retrains it
    rerun = snakemake(tmp_path, *targets, "-n", config=config)
    assert job_counts(rerun.stdout) == {"import_agent": 1, "probe_values": 1, "probe_steps": 1}

    bad = write_config(tmp_path, "bad.yaml", {"agents": {"clean": {
        "path": agent["path"], "env": "Hopper-v5", "source": "cleanrl", "probes": ["gradients", "steps"]}}})
    refused = snakemake(tmp_path, "-n", config=bad)
    assert refused.returncode != 0
    assert "agents.clean.probes: steps need the agent's update rule" in refused.stdout + refused.stderr


@pytest.mark.slow
def test_excluded_runs_are_not_trained_or_probed(tmp_path):
    config = write_config(tmp_path, "exclude.yaml", {"algos": ["ppo", "trpo"], "seeds": [0, 1],
                                                     "exclude_runs": [{"env": "Hopper-v5", "algo": "trpo"}]})
    result = snakemake(tmp_path, "-n", "--quiet", "rules", config=config)
    assert result.returncode == 0, result.stderr[-2000:]
    counts = job_counts(result.stdout + result.stderr)
    included = write_config(tmp_path, "include.yaml", {"algos": ["ppo", "trpo"], "seeds": [0, 1]})
    full = job_counts((lambda r: r.stdout + r.stderr)(snakemake(tmp_path, "-n", "--quiet", "rules", config=included)))
    assert full["train"] == 4 and counts["train"] == 2
    assert counts["probe_values"] * 2 == full["probe_values"]
    bad = write_config(tmp_path, "bad.yaml", {"exclude_runs": [{"env": "Walker2d-v5", "algo": "ppo"}]})
    result = snakemake(tmp_path, "-n", config=bad)
    assert result.returncode != 0
    assert "pgprobe config error: exclude_runs[0]: Walker2d-v5 ppo is not a run of envs x algos" \
        in result.stdout + result.stderr


@pytest.mark.slow
def test_plan_lists_exactly_the_jobs_of_the_dag_and_prices_them(tmp_path):
    config = write_config(tmp_path, "plan.yaml", {"seeds": [0, 1], "probe_iterations": {"values": [0, 2]}})
    dry = snakemake(tmp_path, "-n", "--quiet", "rules", config=config)
    assert dry.returncode == 0, dry.stderr[-2000:]
    expected = job_counts(dry.stdout + dry.stderr)
    expected.pop("all")
    result = snakemake(tmp_path, "figures/plan.md", config=config)
    assert result.returncode == 0, result.stderr[-2000:]
    plan = json.loads((tmp_path / "results/plan/jobs.json").read_text())
    assert dict(collections.Counter(job["rule"] for job in plan["jobs"])) == expected
    rows = (tmp_path / "results/plan.tsv").read_text().splitlines()
    total = rows[-1].split("\t")
    in_process = expected["training_config"] + expected.get("regime_training_config", 0)   # localrules, no job
    assert total[0] == "total" and int(total[1]) == sum(expected.values()) - in_process
    assert "| **total** |" in (tmp_path / "figures/plan.md").read_text()
