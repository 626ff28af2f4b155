"""The SLURM profile, tested against a real single-node SLURM cluster.

tests/slurm/start_cluster.sh installs Debian's munge + slurm-wlm if needed and starts
munged, slurmctld and slurmd on this machine (root only); the tests run Snakemake with
``--executor slurm`` through workflow/profiles/slurm with tests/slurm/profile on top,
on small throw-away Snakefiles.  Tests marked ``slurm`` skip, with the reason, where the
cluster cannot run (not root, no apt-get, packages not installable), except in CI
(CI=true) as root on Debian, where that is a failure; each has a pytest-timeout so that a
hung cluster fails in minutes.

The other tests check the profiles themselves (plugin flag names, group coverage of the
workflow's rules) and need no cluster.
"""
from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _load_helpers():
    name = "pgprobe_slurm_test_helpers"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "tests" / "slurm" / "helpers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


helpers = _load_helpers()

REAL_PROFILE = REPO / "workflow" / "profiles" / "slurm" / "config.yaml"
TEST_PROFILE = REPO / "tests" / "slurm" / "profile" / "config.yaml"


def _profile(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


# --------------------------------------------------------------------------- no cluster


def test_profiles_use_existing_plugin_flags():
    """Every slurm-* key names a setting of the installed executor plugin (a typo would
    make snakemake fail at start-up, or a renamed flag be silently different)."""
    # read the plugin's source rather than importing it: the import runs `scontrol show
    # config` (10 s timeout) when SLURM is installed but no cluster is up
    spec = importlib.util.find_spec("snakemake_executor_plugin_slurm")
    if spec is None or spec.origin is None:
        pytest.skip("snakemake-executor-plugin-slurm is not installed")
    tree = ast.parse(Path(spec.origin).read_text())
    settings = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ExecutorSettings")
    flags = {
        "slurm-" + n.target.id.replace("_", "-")
        for n in settings.body
        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
    }
    for path in (REAL_PROFILE, TEST_PROFILE):
        profile = _profile(path)
        assert profile["executor"] == "slurm"
        used = {k for k in profile if k.startswith("slurm-")}
        assert used <= flags, f"{path}: unknown plugin flags {sorted(used - flags)}"
    assert "slurm-status-command" in flags and "slurm-init-seconds-before-status-checks" in flags
    test = _profile(TEST_PROFILE)
    assert test["slurm-status-command"] == "squeue"
    # the plugin falls back to sacct (which fails without accounting) unless the test
    # cluster's MinJobAge >= 3 x the initial delay; and the whole-DAG test checks every
    # job's state when it ends, so its first job must still be listed then (CI once ran
    # it for 920 s against a MinJobAge of 600 s and found job 85 forgotten)
    min_job_age = _cluster_min_job_age()
    assert 3 * test["slurm-init-seconds-before-status-checks"] <= min_job_age
    assert TINY_SLURM_TIMEOUT_S < min_job_age


def _cluster_min_job_age() -> int:
    """start_cluster.sh's MIN_JOB_AGE, the MinJobAge it writes into slurm.conf."""
    script = (REPO / "tests" / "slurm" / "start_cluster.sh").read_text()
    assert "MinJobAge=$MIN_JOB_AGE" in script
    return int(re.search(r"^MIN_JOB_AGE=(\d+)$", script, re.M).group(1))


def test_test_profile_overrides_all_default_resources():
    """A later --profile replaces the whole default-resources list of an earlier one, so
    the test profile must carry every key of the real one (e.g. group_slots)."""
    real = _profile(REAL_PROFILE)["default-resources"]
    test = _profile(TEST_PROFILE)["default-resources"]
    assert set(real) <= set(test), sorted(set(real) - set(test))
    for key in ("slurm_account", "slurm_partition", "runtime", "mem_mb", "cpus_per_task"):
        assert key in real
    assert _profile(REAL_PROFILE)["precommand"] == _profile(TEST_PROFILE)["precommand"]
    assert "HDF5_USE_FILE_LOCKING=FALSE" in _profile(REAL_PROFILE)["precommand"]


def test_profile_groups_cover_small_rules():
    """Snakemake matches `groups:` entries by exact rule name: every collect_* and
    figure_* rule of the workflow (and probe_values) must be listed in the profile."""
    if not (REPO / "Snakefile").exists():
        pytest.skip("no Snakefile yet")
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--list-rules", "--workflow-profile", "none"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env=helpers.slurm_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rules = {line.strip() for line in proc.stdout.splitlines() if re.fullmatch(r"\s*\w+\s*", line)}
    small = {r for r in rules if r.startswith(("collect_", "figure_"))} | ({"probe_values"} & rules)
    assert small, f"no collect_*/figure_* rules in: {sorted(rules)}"
    groups = _profile(REAL_PROFILE)["groups"]
    missing = sorted(small - set(groups))
    assert not missing, f"add to groups: in {REAL_PROFILE.relative_to(REPO)}: {missing}"
    components = _profile(REAL_PROFILE)["group-components"]
    assert set(groups.values()) <= set(components)


@pytest.mark.parametrize("environ, euid, debian, required", [
    ({"CI": "true"}, 0, True, True),
    ({"CI": "1"}, 0, True, True),
    ({}, 0, True, False),
    ({"CI": "true"}, 1000, True, False),
    ({"CI": "true"}, 0, False, False),
])
def test_cluster_required_in_ci_as_root_on_debian(environ, euid, debian, required):
    assert helpers.cluster_required(environ, euid, debian) is required


@pytest.mark.parametrize("ci, outcome", [("true", "Failed"), ("", "Skipped")])
def test_unavailable_cluster_fails_in_ci_and_skips_elsewhere(monkeypatch, tmp_path, ci, outcome):
    """As root on Debian with CI=true, a cluster that cannot come up fails the test."""
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(helpers, "cannot_run_reason", lambda: "no slurmctld here")
    monkeypatch.setattr(helpers.os, "geteuid", lambda: 0)
    (tmp_path / "debian_version").write_text("12\n")
    monkeypatch.setattr(helpers, "DEBIAN_MARKER", tmp_path / "debian_version")
    with pytest.raises(BaseException) as caught:
        with helpers.slurm_cluster():
            pass
    assert type(caught.value).__name__ == outcome
    assert "no slurmctld here" in str(caught.value)


# --------------------------------------------------------------------------- on SLURM
# pytest-timeout per test (the first one also starts, maybe installs, the cluster): a hung
# cluster fails the test in minutes instead of at CI's limit.
SMALL_SLURM_TIMEOUT_S = 900
TINY_SLURM_TIMEOUT_S = 1800


@pytest.fixture(scope="module")
def slurm_cluster():
    with helpers.slurm_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="module")
def slurm_cluster_beside_tiny_workflow():
    """The same cluster (shared: helpers.slurm_cluster), for the test that also needs the
    local tiny run: it runs on that fixture's xdist worker (conftest XDIST_GROUP_OF_FIXTURE),
    while the small SLURM tests run on another."""
    with helpers.slurm_cluster() as cluster:
        yield cluster


SNAKEFILE_OK = textwrap.dedent(
    r'''
    localrules: all

    rule all:
        input: "second.txt", "figures/fig3.txt", "figures/fig4.txt"

    rule first:
        output: "first.txt"
        log: "logs/first.log"
        shell: 'echo "first $SLURM_JOB_ID" > {output}; hostname > {log}'

    rule second:
        input: "first.txt"
        output: "second.txt"
        shell:
            'cat {input} > {output}; '
            'echo "second $SLURM_JOB_ID HDF5_USE_FILE_LOCKING=${{HDF5_USE_FILE_LOCKING:-unset}}" >> {output}'

    # named like workflow rules that the real profile puts into group "figures"
    rule figure_fig3:
        output: "figures/fig3.txt"
        shell: 'echo "$SLURM_JOB_ID" > {output}'

    rule figure_fig4:
        output: "figures/fig4.txt"
        shell: 'echo "$SLURM_JOB_ID" > {output}'
    '''
)

SNAKEFILE_BROKEN = textwrap.dedent(
    r'''
    # a and b run side by side (one CPU each on the 2-CPU test node), so that the
    # plugin sees a's success in the status check that sees b's failure: it then polls
    # again after 3 s instead of 3 + 10 + 10 s, and snakemake exits sooner.
    localrules: all

    rule all:
        input: "a.txt", "b.txt"

    rule a:
        output: "a.txt"
        shell: 'echo "a $SLURM_JOB_ID" > {output}'

    rule b:
        output: "b.txt"
        log: "logs/b.log"
        shell: 'echo "rule b is broken on purpose" > {log}; exit 3'
    '''
)

SNAKEFILE_FIXED = SNAKEFILE_BROKEN.replace(
    """shell: 'echo "rule b is broken on purpose" > {log}; exit 3'""",
    """shell: 'echo "b $SLURM_JOB_ID" > {output}; echo fixed > {log}'""",
)


def _slurmctld_log() -> str:
    path = helpers.STATE / "log" / "slurmctld.log"
    return path.read_text(errors="replace") if path.exists() else ""


def _assert_went_through_sbatch(run, rule_names):
    """Each submission is a real SLURM batch job: slurmctld logged the sbatch RPC, and
    `scontrol show job` knows it with our partition/account and the rule in its comment."""
    ctld = _slurmctld_log()
    seen = set()
    for sub in run.submitted:
        jid = sub["slurm_jobid"]
        assert re.search(rf"_slurm_rpc_submit_batch_job: JobId={jid}\b", ctld), jid
        info = helpers.scontrol_show_job(jid)
        assert info.get("BatchFlag") == "1", info
        assert info.get("Partition") == "local" and info.get("Account") == "pgprobe", info
        seen.add(info.get("Comment", ""))
    for name in rule_names:
        assert any(c.startswith(name) for c in seen), (name, seen)


@pytest.mark.slurm
@pytest.mark.timeout(SMALL_SLURM_TIMEOUT_S)
def test_workflow_runs_through_sbatch(slurm_cluster, tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE_OK)
    # the job must get HDF5_USE_FILE_LOCKING from the profile, not from this process
    run = helpers.run_snakemake_on_slurm(
        tmp_path, tmp_path / "Snakefile", unset_env=["HDF5_USE_FILE_LOCKING"], timeout=600
    )
    print(f"snakemake on SLURM: {run.wall_s:.1f} s wall")
    assert run.returncode == 0, run.output_tail()

    first = (tmp_path / "first.txt").read_text().split()
    second = (tmp_path / "second.txt").read_text().split()
    fig3 = (tmp_path / "figures/fig3.txt").read_text().split()
    fig4 = (tmp_path / "figures/fig4.txt").read_text().split()
    assert first[0] == "first" and second[2] == "second"
    # each rule ran inside a SLURM job (SLURM_JOB_ID set by slurmd), in different jobs
    assert first[1].isdigit() and second[3].isdigit() and first[1] != second[3]
    # precommand of the profile exported the variable into the job
    assert second[4] == "HDF5_USE_FILE_LOCKING=FALSE"
    # figure_fig3/4 share one group job (profile groups + group-components)
    assert fig3 == fig4 and fig3[0] not in (first[1], second[3])

    # three sbatch calls: first, second, one group job; `all` ran locally
    assert sorted(run.slurm_jobids) == sorted({first[1], second[3], fig3[0]}), run.output_tail()
    _assert_went_through_sbatch(run, ["rule_first", "rule_second", "rule_figures"])
    group = next(s for s in run.submitted if s["slurm_jobid"] == fig3[0])
    info = helpers.scontrol_show_job(fig3[0])
    # members run one after another: runtime summed (2 x 10 min), CPUs not summed
    assert info["TimeLimit"] == "00:20:00" and info["NumCPUs"] == "1", info
    for sub in run.submitted:     # the plugin's per-job SLURM logs (kept by the profile)
        assert sub["slurm_log"].is_file(), sub
        assert sub["slurm_log"].is_relative_to(tmp_path / ".snakemake" / "slurm_logs")
    assert "group_figures" in str(group["slurm_log"])
    assert (tmp_path / "logs/first.log").read_text().strip()


@pytest.mark.slurm
@pytest.mark.timeout(SMALL_SLURM_TIMEOUT_S)
def test_failing_rule_then_fixed_rerun(slurm_cluster, tmp_path):
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(SNAKEFILE_BROKEN)
    run = helpers.run_snakemake_on_slurm(tmp_path, snakefile, timeout=600)
    print(f"failing run: {run.wall_s:.1f} s wall")
    assert run.returncode != 0, run.output_tail()
    assert (tmp_path / "a.txt").exists() and not (tmp_path / "b.txt").exists()
    # the error report names the rule's log (and the SLURM log of the job)
    error = run.output[run.output.index("Error in rule b:"):]
    error = error[: error.find("\n\n")] if "\n\n" in error else error
    assert "logs/b.log" in error, error
    b_sub = [s for s in run.submitted if "rule_b" in str(s["slurm_log"])]
    assert len(b_sub) == 1 and str(b_sub[0]["slurm_log"]) in error, error
    assert "broken on purpose" in (tmp_path / "logs/b.log").read_text()
    assert helpers.scontrol_show_job(b_sub[0]["slurm_jobid"])["JobState"] == "FAILED"
    _assert_went_through_sbatch(run, ["rule_a", "rule_b"])
    a_mtime = (tmp_path / "a.txt").stat().st_mtime_ns

    # fix the rule; the rerun submits b only (a is complete and up to date)
    snakefile.write_text(SNAKEFILE_FIXED)
    rerun = helpers.run_snakemake_on_slurm(tmp_path, snakefile, timeout=600)
    print(f"rerun: {rerun.wall_s:.1f} s wall")
    assert rerun.returncode == 0, rerun.output_tail()
    assert len(rerun.submitted) == 1 and "rule_b" in str(rerun.submitted[0]["slurm_log"]), rerun.output_tail()
    assert (tmp_path / "a.txt").stat().st_mtime_ns == a_mtime
    b_out = (tmp_path / "b.txt").read_text().split()
    assert b_out[0] == "b" and b_out[1] == rerun.submitted[0]["slurm_jobid"]
    assert (tmp_path / "logs/b.log").read_text().strip() == "fixed"
    _assert_went_through_sbatch(rerun, ["rule_b"])


def _comparable(ds):
    """A dataset without what legitimately differs between two runs of the same job:
    seconds of wall time (variables named *wall_time*) and the attributes (creation
    time, sources' paths)."""
    return ds.drop_vars([name for name in ds.variables if "wall_time" in str(name)])


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.timeout(TINY_SLURM_TIMEOUT_S)
def test_tiny_config_through_slurm_matches_local_run(slurm_cluster_beside_tiny_workflow, tiny_workflow_dir,
                                                     tmp_path):
    """The whole tiny-config DAG through the real profile: every non-local job is a SLURM
    batch job (ungrouped rules one per rule instance, collect/figure/probe_values in group
    jobs), and every dataset equals the local run's with the same seeds."""
    import xarray as xr

    run = helpers.run_snakemake_on_slurm(tmp_path, REPO / "Snakefile", REPO / "tests" / "tiny_config.yaml",
                                         timeout=1500)
    print(f"tiny config on SLURM: {run.wall_s:.1f} s wall, {len(run.submitted)} sbatch jobs")
    assert run.returncode == 0, run.output_tail()

    local_counts = _job_counts((tiny_workflow_dir / "first_run.log").read_text())
    assert _job_counts(run.output) == local_counts
    local_rules = {"all", "training_config", "regime_training_config"}
    groups = _profile(REAL_PROFILE)["groups"]
    by_log_dir = {}
    for sub in run.submitted:
        top = sub["slurm_log"].relative_to(tmp_path / ".snakemake" / "slurm_logs").parts[0]
        by_log_dir.setdefault(top, []).append(sub)
    for rule, count in local_counts.items():
        if rule in local_rules or rule in groups:
            continue
        assert len(by_log_dir.get(f"rule_{rule}", [])) == count, (rule, sorted(by_log_dir))
    grouped = [top for top in by_log_dir if top.startswith("group_")]
    assert {top.split("_")[1] for top in grouped} == {"collect", "figures", "probes"}, grouped
    assert len(run.submitted) == sum(map(len, by_log_dir.values()))
    for sub in run.submitted:
        assert helpers.scontrol_show_job(sub["slurm_jobid"]).get("JobState") == "COMPLETED", sub
    _assert_went_through_sbatch(run, ["rule_train", "rule_probe_gradients_shard", "rule_figures"])

    local_datasets = sorted((tiny_workflow_dir / "results" / "datasets").glob("*.nc"))
    assert len(local_datasets) == 7, local_datasets
    for local_path in local_datasets:
        with xr.open_dataset(local_path) as local, \
                xr.open_dataset(tmp_path / "results" / "datasets" / local_path.name) as remote:
            xr.testing.assert_equal(_comparable(remote), _comparable(local))
            assert remote.attrs["pgprobe_dataset"] == local.attrs["pgprobe_dataset"]
    local_figures = sorted(p.name for p in (tiny_workflow_dir / "figures").glob("*.pdf"))
    assert sorted(p.name for p in (tmp_path / "figures").glob("*.pdf")) == local_figures


def _job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a snakemake run: {rule: count}."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats:"))
    counts = {}
    for row in lines[start + 3:]:
        parts = row.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts
