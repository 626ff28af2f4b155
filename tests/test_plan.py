"""pgprobe plan: work per job from settings, the cost model, the per-rule table."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pgprobe import plan as planning
from pgprobe.errors import PgprobeError
from pgprobe.probes.common import defaults

COSTS = {
    "measured": {"commit": "abc", "machine": "test", "studies": "synthetic"},
    "env_cost": {"Hopper-v5": 1.0, "Walker2d-v5": 2.0},
    "episode_length": {"Hopper-v5": {0: 20.0, 100: 220.0, 500: 620.0}},
    "rules": {
        "train": {"overhead_cpu_s": 5.0, "cpu_s_per_pair": 1e-3, "base_mb": 300},
        "probe_gradients": {"overhead_cpu_s": 3.0, "cpu_s_per_pair": 2e-4, "base_mb": 400},
        "probe_gradients_shard": {"overhead_cpu_s": 3.0, "cpu_s_per_pair": 1e-4, "base_mb": 400},
        "probe_landscapes_shard": {"overhead_cpu_s": 3.0, "cpu_s_per_pair": 1e-4, "base_mb": 400},
        "collect": {"overhead_cpu_s": 1.0, "base_mb": 100},
        "default": {"overhead_cpu_s": 3.0, "base_mb": 400},
    },
}


def _plan(jobs, **settings):
    probe_settings = {p: {**defaults(p), **settings.get(p, {})} for p in
                      ("gradients", "steps", "values", "baselines", "landscapes")}
    return {"jobs": jobs, "probe_settings": probe_settings,
            "shards": {"gradients": 2, "steps": 1, "values": 1, "baselines": 2, "landscapes": 2},
            "training": {"Hopper-v5 ppo": {"iterations": 10, "checkpoint_iterations": [0, 10],
                                           "hyperparameters": {"common": {"steps_per_iteration": 512}}},
                         "Walker2d-v5 ppo": {"iterations": 10, "checkpoint_iterations": [0, 10],
                                             "hyperparameters": {}}},
            "regime": {}}


def job(rule, env="Hopper-v5", iteration=100, **extra):
    return {"rule": rule, "env": env, "algo": "ppo", "seed": 0, "iteration": iteration, **extra}


def test_episode_length_interpolates_the_measured_table_and_falls_back_to_the_time_limit():
    assert planning.episode_length(COSTS, "Hopper-v5", 50) == (120.0, True)
    assert planning.episode_length(COSTS, "Hopper-v5", 300) == (420.0, True)
    assert planning.episode_length(COSTS, "Hopper-v5", 2000) == (620.0, True)
    assert planning.episode_length(COSTS, "Humanoid-v5", 50) == (1000.0, False)


def test_pairs_per_job_by_hand():
    plan = _plan([], gradients={"sample_counts": [128, 256], "estimates": 3, "reference_samples": 4096},
                 values={"heldout_streams": 2, "heldout_steps": 100, "true_value_states": 4,
                         "true_value_rollouts": 5, "true_value_horizon": 150},
                 landscapes={"alpha_points": 3, "beta_points": 2, "step_sample_counts": [100, 1000],
                             "trajectory_counts": [1, 4]},
                 baselines={"sample_counts": [10, 20], "estimates": 2, "true_value_streams": 6,
                            "true_value_stream_steps": 100, "true_value_epochs": 3})
    pairs = lambda j: planning.job_pairs(j, plan, COSTS)[:2]  # noqa: E731
    # a true-value shard samples and keeps its 600 / 2 rows; the gather samples its estimates
    # and fits 3 epochs over all 600 rows, which it holds
    assert pairs(job("probe_baselines_shard", shard=1)) == (300, 300)
    assert pairs(job("probe_baselines")) == (2 * (10 + 20) + 3 * 600, 600)
    assert pairs(job("train")) == (10 * 512, 512)
    assert pairs(job("probe_gradients")) == (3 * (128 + 256), 256)          # reference in the shards
    assert pairs(job("probe_gradients_shard", shard=1)) == (4096 / 2, 0)
    # 4 states x 5 rollouts of min(L(100) = 220, horizon 150) steps, plus 2 x 100 held out
    assert pairs(job("probe_values")) == (2 * 100 + 4 * 5 * 150, 200)
    # 2 regimes x 3 x 2 points x 4 episodes of L(300) = 420 steps, over 2 shards
    assert pairs(job("probe_landscapes_shard", iteration=300, shard=0)) == (2 * 3 * 2 * 4 * 420 / 2, 0)
    halved = {**COSTS, "landscape_episode_fraction": {"Hopper-v5": 0.5}}   # perturbed policies fall sooner
    assert planning.job_pairs(job("probe_landscapes_shard", iteration=300, shard=0), plan, halved)[0] == \
        2 * 3 * 2 * 4 * 420 / 2 * 0.5
    assert pairs(job("probe_landscapes_directions")) == (1100, 1000)
    assert pairs(job("probe_landscapes")) == (0, 0)                         # the gather
    assert planning.job_pairs(job("probe_landscapes_shard", env="Humanoid-v5", shard=0), plan, COSTS)[2] is False


def test_price_applies_overhead_rate_and_task_factor_and_flags_assumptions():
    plan = _plan([job("train"), job("train", env="Walker2d-v5"), job("collect_values", env=None),
                  job("import_agent"), job("training_config")])
    rows = planning.price(plan, COSTS)
    assert [r["rule"] for r in rows] == ["train", "train", "collect_values", "import_agent"]
    assert rows[0]["cpu_s"] == pytest.approx(5.0 + 1e-3 * 5120)
    walker_steps = 10 * 2048                                                # Table 1's steps per iteration
    assert rows[1]["cpu_s"] == pytest.approx(5.0 + 1e-3 * 2.0 * walker_steps)
    assert rows[2]["cpu_s"] == 1.0 and rows[3]["cpu_s"] == 3.0 and not rows[3]["rule_measured"]
    # memory: 2 float32 copies of obs 11 + act 3, and 8 float64 scalars, per held pair, over the base
    assert rows[0]["peak_mb"] == pytest.approx(300 + 512 * 2 * (4 * 14 + 64) / 2 ** 20)
    summary = planning.summarize(rows)
    total = summary[-1]
    assert total["rule"] == "total" and total["jobs"] == 4
    assert total["cpu_hours"] == pytest.approx(sum(r["cpu_s"] for r in rows) / 3600)
    assert summary[0]["rule"] == "train" and summary[0]["jobs"] == 2       # largest first
    text = planning.markdown(summary, COSTS)
    assert "| train | 2 |" in text and "rule not measured" in text and "| collect_* | 1 |" in text


def test_a_task_s_own_measured_rate_replaces_the_rule_rate_times_its_factor():
    costs = {**COSTS, "task_rules": {"Walker2d-v5": {"train": {"cpu_s_per_pair": 5e-3, "base_mb": 700}}}}
    plan = _plan([job("train"), job("train", env="Walker2d-v5"), job("probe_gradients", env="Walker2d-v5")])
    hopper, walker, gradients = planning.price(plan, costs)
    assert hopper["cpu_s"] == pytest.approx(5.0 + 1e-3 * 5120)             # no entry: the rule's rate
    assert walker["cpu_s"] == pytest.approx(5.0 + 5e-3 * 10 * 2048)          # own rate, no factor 2
    assert walker["peak_mb"] == pytest.approx(700 + 2048 * 2 * (4 * 23 + 64) / 2 ** 20)
    assert gradients["cpu_s"] == pytest.approx(3.0 + 2e-4 * 2.0 * gradients["pairs"])   # other rule: r x c_e


def test_baselines_gather_holds_one_copy_and_unmeasured_perturbed_episodes_are_flagged():
    costs = {**COSTS, "rules": {**COSTS["rules"], "probe_baselines": {"overhead_cpu_s": 3.0, "base_mb": 400,
                                                                       "cpu_s_per_pair": 1e-5}},
             "landscape_episode_fraction": {"Hopper-v5": 0.9}}
    plan = _plan([job("probe_baselines"), job("probe_landscapes_shard", shard=0),
                  job("probe_landscapes_shard", env="Walker2d-v5", shard=0), job("probe_landscapes", env="Walker2d-v5")],
                 baselines={"true_value_streams": 10, "true_value_stream_steps": 100})
    baselines, hopper, walker, gather = planning.price(plan, costs)
    assert baselines["peak_mb"] == pytest.approx(400 + 1000 * 1 * (4 * 14 + 64) / 2 ** 20)
    assert hopper["perturbed_episodes_measured"] and not walker["perturbed_episodes_measured"]
    assert gather["perturbed_episodes_measured"]                              # the gather steps nothing
    assumed = {e["rule"]: e["assumed"] for e in planning.summarize([hopper, walker])}
    assert assumed["probe_landscapes_shard"] == {"Walker2d-v5 perturbed policies' episodes as long as the trained one's",
                                                 "Walker2d-v5 episodes at the time limit"}


def test_unknown_rule_in_the_job_list_is_an_error():
    with pytest.raises(PgprobeError, match="unknown rule 'probe_magic'"):
        planning.job_pairs(job("probe_magic"), _plan([]), COSTS)


def test_packaged_costs_price_every_rule_of_a_study():
    costs = planning.load_costs()
    for rule in ("train", "train_regime", "probe_gradients", "probe_gradients_shard", "probe_steps",
                 "probe_values", "probe_baselines", "probe_baselines_shard", "probe_landscapes",
                 "probe_landscapes_directions", "probe_landscapes_shard", "collect", "figure", "default"):
        assert rule in costs["rules"], rule
    assert costs["env_cost"]["Hopper-v5"] == 1.0


def test_cli_unreadable_job_list_is_one_line(tmp_path):
    bad = tmp_path / "jobs.json"
    bad.write_text("{not json")
    result = subprocess.run([sys.executable, "-m", "pgprobe.cli", "plan", "--jobs", str(bad)],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "cannot read the job list" in result.stderr


def test_cli_writes_the_tables(tmp_path):
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps(_plan([job("train"), job("collect_values", env=None)])))
    costs = tmp_path / "costs.yaml"
    import yaml
    costs.write_text(yaml.safe_dump(COSTS))
    subprocess.run([sys.executable, "-m", "pgprobe.cli", "plan", "--jobs", str(jobs), "--costs", str(costs),
                    "--out", str(tmp_path / "plan.tsv"), "--table", str(tmp_path / "plan.md")], check=True,
                   capture_output=True)
    lines = (tmp_path / "plan.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["rule", "jobs", "pairs", "cpu_hours", "peak_mb"]
    assert lines[-1].split("\t")[:3] == ["total", "2", "5120"]
