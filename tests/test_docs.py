"""The documentation site cannot rot: it builds with ``mkdocs build --strict``, every Python
block of its pages runs, and its reference pages follow their sources (the argparse parsers,
the config schemas, the datasets the probes write)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _pages_with_python() -> dict[str, list[str]]:
    """{page: its ```python blocks} for every page of the site (docs/measurements/ keeps
    its own scripts and is not part of it)."""
    pages = {}
    for page in sorted(DOCS.rglob("*.md")):
        rel = page.relative_to(DOCS).as_posix()
        if rel.startswith("measurements/"):
            continue
        blocks = PYTHON_BLOCK.findall(page.read_text())
        if blocks:
            pages[rel] = blocks
    return pages


PAGES_WITH_PYTHON = _pages_with_python()


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> dict[str, Path]:
    """Every collected dataset kind, from two tiny real agents (Hopper-v5 PPO and TRPO, one
    iteration of 256 steps) and every probe at tiny settings (pgprobe.docs_reference)."""
    from pgprobe.docs_reference import make_tiny_study
    return make_tiny_study(tmp_path_factory.mktemp("docs_study"))


def test_mkdocs_build_strict(tmp_path):
    """The site builds with every warning an error (broken links, missing pages, pages not
    in the nav), and the generated reference pages are filled in."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), NO_MKDOCS_2_WARNING="1")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"),
                             "-d", str(tmp_path / "site")], capture_output=True, text=True, env=env,
                            cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    site = tmp_path / "site"
    cli = (site / "reference" / "cli" / "index.html").read_text()
    assert "pgprobe probe gradients" in cli and "--checkpoint" in cli and "pgprobe:cli" not in cli
    config = (site / "reference" / "config" / "index.html").read_text()
    assert "probes.gradients.estimates" in config and "training.checkpoint_every" in config
    datasets = (site / "reference" / "datasets" / "index.html").read_text()
    assert "mean_pairwise_cosine" in datasets and "pgprobe:dataset" not in datasets
    assert (site / "how-to" / "reproducibility" / "index.html").exists()


def test_every_tutorial_has_tested_python():
    """The tutorials with code are the ones the next test runs (so a change of fence
    style cannot silently leave them untested)."""
    assert {"tutorials/xarray.md", "tutorials/own-agent.md"} <= set(PAGES_WITH_PYTHON)
    assert len(PAGES_WITH_PYTHON["tutorials/xarray.md"]) >= 8


@pytest.fixture(scope="session")
def tiny_agent_study(tiny_study, tmp_path_factory) -> Path:
    """The own-agent tutorial's situation in small: a tiny SB3 PPO agent saved the RL Zoo
    way (VecNormalize; 128 steps, so its recorded iteration, 2, differs from pgprobe's
    PPO's 1), imported as ``zoo_ppo``, probed (gradients, values) and collected together
    with the tiny study's PPO.  Returns the datasets directory."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    from pgprobe.cli import main
    from pgprobe.docs_reference import TINY_PROBE_SETTINGS

    root = tmp_path_factory.mktemp("agent_study")
    torch.set_num_threads(1)
    venv = VecNormalize(make_vec_env("Hopper-v5", n_envs=1, seed=0))
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(128)
    run = root / "logs" / "ppo" / "Hopper-v5_1"
    (run / "Hopper-v5").mkdir(parents=True)
    model.save(run / "Hopper-v5.zip")
    venv.save(str(run / "Hopper-v5" / "vecnormalize.pkl"))
    checkpoint = root / "zoo_ppo.pt"
    assert main(["import", "sb3", "--model", str(run / "Hopper-v5.zip"), "--vecnormalize",
                 str(run / "Hopper-v5" / "vecnormalize.pkl"), "--env", "Hopper-v5", "--out", str(checkpoint),
                 "--name", "zoo_ppo"]) == 0
    datasets = root / "datasets"
    datasets.mkdir()
    study_root = tiny_study["gradients"].parents[1]
    for probe in ("gradients", "values"):
        out = root / f"{probe}_zoo_ppo.nc"
        assert main(["probe", probe, "--checkpoint", str(checkpoint), "--out", str(out), "--settings",
                     json.dumps(TINY_PROBE_SETTINGS[probe]), "--workers", "1"]) == 0
        assert main(["collect", "--probe", probe, "--inputs", str(study_root / "probes" / probe / "ppo.nc"),
                     str(out), "--out", str(datasets / f"{probe}.nc")]) == 0
    return datasets


@pytest.mark.parametrize("page", sorted(PAGES_WITH_PYTHON))
def test_tutorial_python_blocks_run(page, tiny_study, tiny_agent_study, tmp_path, monkeypatch):
    """Every ```python block of the page runs, in order, in one namespace, from a directory
    that looks like the repository root after a study: ``docs/`` (the committed datasets
    under docs/measurements/ that the xarray tutorial reads) and ``results/datasets/``
    (for pages that read a workflow's output: the tiny study; for the own-agent tutorial,
    pgprobe's PPO and an imported SB3 agent)."""
    (tmp_path / "docs").symlink_to(DOCS)
    (tmp_path / "results").mkdir()
    study = tiny_agent_study if page == "tutorials/own-agent.md" else tiny_study["gradients"].parent
    (tmp_path / "results" / "datasets").symlink_to(study)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "__tutorial__"}
    for index, block in enumerate(PAGES_WITH_PYTHON[page]):
        try:
            exec(compile(block, f"{page} python block {index}", "exec"), namespace)
        except Exception as exc:  # name the block that broke
            raise AssertionError(f"{page}, python block {index} failed: {exc!r}\n{block}") from exc


def test_dataset_reference_is_what_the_probes_write(tiny_study):
    """docs/reference/dataset_variables.json, from which the datasets page is rendered,
    equals the names, dims, long_names and units that the probes write now.  After
    changing a probe's variables: ``python -m pgprobe.docs_reference datasets``."""
    from pgprobe.docs_reference import DATASET_SPECS, dataset_specs
    committed = json.loads(DATASET_SPECS.read_text())
    fresh = dataset_specs(tiny_study)
    assert set(fresh) == set(committed)
    for kind in fresh:
        assert fresh[kind] == committed[kind], (
            f"{kind}.nc as the probes write it differs from docs/reference/dataset_variables.json; "
            "regenerate it with `python -m pgprobe.docs_reference datasets`")


def _row(markdown: str, name: str) -> str:
    rows = [line for line in markdown.splitlines() if line.startswith(f"| `{name}` |")]
    assert len(rows) == 1, rows
    return rows[0]


def test_training_units_in_code_change_the_reference_page(tmp_path, monkeypatch):
    """Change mean_return's units in pgprobe.train.TRAIN_VARIABLES (the table train.nc is
    written from): a fresh tiny run, collected, renders a datasets page with the new units."""
    from pgprobe import train
    from pgprobe.cli import main
    from pgprobe.docs_reference import TINY_TRAINING, dataset_specs, render

    marker = "<!-- pgprobe:dataset training -->"
    assert _row(render(marker), "mean_return").endswith("| reward |")
    table = [(name, long_name, "kilojoule" if name == "mean_return" else units)
             for name, long_name, units in train.TRAIN_VARIABLES]
    monkeypatch.setattr(train, "TRAIN_VARIABLES", table)
    config = tmp_path / "training.yaml"
    config.write_text(json.dumps({"training": TINY_TRAINING}))
    assert main(["train", "--env", "Hopper-v5", "--algo", "ppo", "--seed", "0", "--config", str(config),
                 "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert main(["collect", "--probe", "training", "--inputs", str(tmp_path / "run" / "train.nc"),
                 "--out", str(tmp_path / "training.nc")]) == 0
    page = render(marker, dataset_specs({"training": tmp_path / "training.nc"}))
    assert _row(page, "mean_return").endswith("| kilojoule |")
    assert _row(page, "std_return").endswith("| reward |")


def test_probe_units_in_code_change_the_reference_page(tiny_study, tmp_path, monkeypatch):
    """Change the units the gradients probe gives pairwise_cosine (through the
    ``pgprobe.datasets.variable`` every probe builds its variables with): the probe's
    fresh dataset renders a datasets page with the new units."""
    from pgprobe import datasets
    from pgprobe.cli import main
    from pgprobe.docs_reference import TINY_PROBE_SETTINGS, dataset_specs, render

    original = datasets.variable

    def variable(dims, data, long_name, units, **attrs):
        if long_name.startswith("cosine similarity between two independent"):
            units = "radian"
        return original(dims, data, long_name, units, **attrs)
    monkeypatch.setattr(datasets, "variable", variable)
    checkpoint = tiny_study["gradients"].parents[1] / "runs" / "ppo" / "checkpoints" / "iter0001.pt"
    out = tmp_path / "gradients_ppo.nc"
    assert main(["probe", "gradients", "--checkpoint", str(checkpoint), "--out", str(out), "--settings",
                 json.dumps(TINY_PROBE_SETTINGS["gradients"]), "--workers", "1"]) == 0
    assert main(["collect", "--probe", "gradients", "--inputs", str(out), "--out", str(tmp_path / "g.nc")]) == 0
    marker = "<!-- pgprobe:dataset gradients -->"
    assert _row(render(marker), "pairwise_cosine").endswith("| 1 |")
    page = render(marker, dataset_specs({"gradients": tmp_path / "g.nc"}))
    assert _row(page, "pairwise_cosine").endswith("| radian |")


def test_cli_and_config_pages_follow_their_sources(tmp_path):
    """A new CLI argument and a new config key appear on their generated pages."""
    import yaml

    from pgprobe.cli import build_parser
    from pgprobe.docs_reference import CONFIG_SCHEMA, cli_markdown, config_markdown

    parser = build_parser()
    assert "--frobnicate" not in cli_markdown(parser)
    train_parser = next(a for a in parser._actions if a.dest == "command").choices["train"]
    train_parser.add_argument("--frobnicate", type=int, default=3, help="turn the knob")
    assert "| `--frobnicate` FROBNICATE | turn the knob | default `3` |" in cli_markdown(parser).splitlines()

    schema = yaml.safe_load(CONFIG_SCHEMA.read_text())
    schema["properties"]["training"]["properties"]["warmup"] = {
        "type": "integer", "minimum": 0, "default": 7, "description": "iterations before the first update"}
    path = tmp_path / "schema.yaml"
    path.write_text(yaml.safe_dump(schema))
    assert "training.warmup" not in config_markdown()
    assert _row(config_markdown(path), "training.warmup") == \
        "| `training.warmup` | integer (≥ 0) | `7` | iterations before the first update |"


QUICKSTART = """```bash
python3 -m venv .venv && . .venv/bin/activate && pip install -r envs/requirements.txt
snakemake --cores 2
pytest
```"""


def test_readme_is_a_front_page():
    """README.md: at most 250 lines, the three quickstart commands unchanged, the command
    that serves the site, and every relative link and image pointing at a file that exists."""
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    assert QUICKSTART in text
    assert "mkdocs serve" in text
    targets = re.findall(r"\]\(([^)#\s]+)", text)
    assert any(t.endswith(".png") for t in targets)
    missing = [t for t in targets if not t.startswith(("http://", "https://")) and not (REPO / t).exists()]
    assert not missing, missing
