"""Plan: what the configured study costs, before it runs.

  plan_jobs  results/plan/jobs.json: the DAG's jobs, from the same runs, iterations, shards
             and settings the rules use (``plan_jobs`` in study.smk)
  plan       results/plan.tsv, figures/plan.md: those jobs priced by ``pgprobe plan`` from
             measured per-pair costs (pgprobe/plan_costs.yaml): CPU-hours and peak memory
             per rule and in total

It has no inputs, so ``snakemake --cores 1 figures/plan.md --configfile X`` prices a study
without running any of it.  Not part of ``all``.
"""


localrules:
    plan_jobs,
    plan,


rule plan_jobs:
    output:
        "results/plan/jobs.json",
    params:
        jobs=lambda wildcards: canonical(plan_jobs(config)),
    log:
        "logs/plan_jobs.log",
    run:
        write_text_atomic(output[0], params.jobs, log[0])


rule plan:
    input:
        "results/plan/jobs.json",
    output:
        data="results/plan.tsv",
        table="figures/plan.md",
    params:
        code=code_hash("pgprobe.plan"),
    log:
        "logs/plan.log",
    conda:
        "../../envs/pgprobe.yaml"
    shell:
        "pgprobe plan --jobs {input:q} --out {output.data:q} --table {output.table:q} > {log:q} 2>&1"
