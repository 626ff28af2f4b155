"""pgprobe: from training runs to checkpoints, probes, datasets and the paper's figures.

  snakemake --cores 2                          # the default config.yaml: every probe and figure
  snakemake --cores 2 figures/fig6.pdf         # one figure and what it needs
  snakemake -n --configfile workflow/presets/paper.yaml   # plan the paper-scale study
  snakemake --report report.html               # self-contained HTML report of every figure

The config (config.yaml, then any --configfile on top, key by key) is validated against
workflow/schemas/config.schema.yaml before any job runs.  Stages (workflow/rules/):
train.smk -> probes.smk -> collect.smk -> figures.smk, claims.smk.  See README.md, "Running the workflow".
"""


# The plan, before any rule (each file answers one question; see its docstring):
include: "workflow/rules/config.smk"  # is the config valid? (schema, cross-key checks)
include: "workflow/rules/study.smk"  # which runs, checkpoints, shards, figures and files exist
include: "workflow/rules/reruns.smk"  # what reruns a job (params sections, code hashes)
include: "workflow/rules/agents.smk"  # imported agents (config agents)
include: "workflow/rules/jobs.smk"  # how each job runs (shell, resources, in-process writes)


configfile: os.path.join(workflow.basedir, "config.yaml")


validate_config(config, os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml"))
setup(config)
export_sampling_engine(config)


wildcard_constraints:
    env=ENV_PATTERN,
    algo=ALGO_PATTERN,
    seed=r"\d+",
    iteration=r"\d{4}",
    shard=r"\d+",
    steps=r"\d+",
    scale=r"[0-9][0-9.e+-]*",


report: "workflow/report/workflow.rst"


localrules:
    all,
    training_config,
    regime_training_config,


rule all:
    input:
        all_targets(),
        "results/claims.nc",
        "figures/claims.md",
    default_target: True


include: "workflow/rules/train.smk"
include: "workflow/rules/probes.smk"
include: "workflow/rules/collect.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/claims.smk"
include: "workflow/rules/plan.smk"
