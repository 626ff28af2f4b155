"""Collect: one dataset per probe over all envs, algos, seeds and iterations.

  collect_NAME           results/datasets/NAME.nc      <- results/probes/NAME/**/iter*.nc
  collect_training       results/datasets/training.nc  <- results/runs/**/train.nc
  collect_sample_regime  results/datasets/sample_regime.nc <- results/regime/**/train.nc

``pgprobe collect`` merges with xarray.combine_by_coords (see pgprobe.collect).
"""

COLLECT_CODE = code_hash("pgprobe.collect")
_collect_res = config["resources"]["collect"]


for _name in PROBES:

    rule:
        name:
            f"collect_{_name}"
        input:
            [
                probe_path(_name, e, a, s, i)
                for (e, a, s) in RUNS
                for i in PROBE_ITERS[_name]
            ]
            + agent_probe_paths(_name),
        output:
            dataset_path(_name),
        params:
            probe=_name,
            code=COLLECT_CODE,
        log:
            f"logs/collect/{_name}.log",
        benchmark:
            f"benchmarks/collect/{_name}.tsv"
        threads: _collect_res["threads"]
        resources:
            mem_mb=_collect_res["mem_mb"],
            runtime=_collect_res["runtime"],
            cpus_per_task=_collect_res["threads"],
        conda:
            "../../envs/pgprobe.yaml"
        shell:
            "pgprobe collect --probe {params.probe}"
            " --inputs {input:q} --out {output:q} > {log:q} 2>&1"


rule collect_training:
    input:
        [f"{run_dir(e, a, s)}/train.nc" for (e, a, s) in RUNS],
    output:
        dataset_path("training"),
    params:
        code=COLLECT_CODE,
    log:
        "logs/collect/training.log",
    benchmark:
        "benchmarks/collect/training.tsv"
    threads: _collect_res["threads"]
    resources:
        mem_mb=_collect_res["mem_mb"],
        runtime=_collect_res["runtime"],
        cpus_per_task=_collect_res["threads"],
    conda:
        "../../envs/pgprobe.yaml"
    shell:
        "pgprobe collect --probe training --inputs {input:q} --out {output:q} > {log:q} 2>&1"


if REGIME_RUNS:

    rule collect_sample_regime:
        input:
            [f"{regime_dir(e, a, n, c, s)}/train.nc" for (e, a, n, c, s) in REGIME_RUNS],
        output:
            dataset_path("sample_regime"),
        params:
            code=COLLECT_CODE,
            coords=canonical(
                [
                    {"steps_per_iteration": int(n), "lr_scale": float(c)}
                    for (e, a, n, c, s) in REGIME_RUNS
                ]
            ),
        log:
            "logs/collect/sample_regime.log",
        benchmark:
            "benchmarks/collect/sample_regime.tsv"
        threads: _collect_res["threads"]
        resources:
            mem_mb=_collect_res["mem_mb"],
            runtime=_collect_res["runtime"],
            cpus_per_task=_collect_res["threads"],
        conda:
            "../../envs/pgprobe.yaml"
        shell:
            "pgprobe collect --probe sample_regime --inputs {input:q} --coords {params.coords:q}"
            " --out {output:q} > {log:q} 2>&1"
