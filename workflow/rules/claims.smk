"""Claims: the paper's claims as statistics with 95% bootstrap CIs and verdicts.

  pgprobe claims --datasets KIND=results/datasets/KIND.nc ... --settings JSON
      --out results/claims.nc --table figures/claims.md

Reads the collected datasets of the probes the config runs (a claim whose dataset is not
collected is "not measured"); params hold config claims and a hash of pgprobe.claims.
"""

CLAIM_DATASETS = [n for n in ("gradients", "values", "baselines", "landscapes", "sample_regime")
                  if n in DATASET_NAMES()]


rule claims:
    input:
        **{kind: dataset_path(kind) for kind in CLAIM_DATASETS},
    output:
        dataset="results/claims.nc",
        table=report("figures/claims.md", caption="../report/claims.rst", category="Claims",
                     labels={"figure": "claims"}),
    params:
        datasets=" ".join(f"{kind}={dataset_path(kind)}" for kind in CLAIM_DATASETS),
        settings=canonical(config["claims"]),
        code=code_hash("pgprobe.claims"),
    log:
        "logs/claims.log",
    benchmark:
        "benchmarks/claims.tsv"
    threads: 1
    resources:
        mem_mb=config["resources"]["collect"]["mem_mb"],
        runtime=config["resources"]["collect"]["runtime"],
    conda:
        "../../envs/pgprobe.yaml"
    shell:
        "pgprobe claims --datasets {params.datasets} --settings {params.settings:q}"
        " --out {output.dataset:q} --table {output.table:q} > {log:q} 2>&1"
