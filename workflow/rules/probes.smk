"""Probes: one job per probe x checkpoint, plus scatter/gather of sharded references.

For every probe NAME (one rule each, so resources and job counts are per probe):

  probe_NAME        results/probes/NAME/{env}/{algo}/seed{seed}/iter{NNNN}.nc
                    = pgprobe probe NAME --checkpoint CKPT --settings JSON --workers {threads}
                      --seed PROBE_SEED --out FILE
  probe_NAME_shard  (when sharding.NAME > 1) results/probes/NAME/.../iter{NNNN}.shard{K}.nc
                    = pgprobe probe NAME-shard --checkpoint CKPT --shard K ... --out FILE.shardK.nc
                    and probe_NAME then gathers them with --shards FILE.shard0.nc ...
  probe_landscapes_directions  (sharded landscapes) .../iter{NNNN}.directions.nc
                    = pgprobe probe landscapes-directions ...: the plane (update step per
                    regime, random direction) and surrogate grid, computed once per
                    checkpoint; its shards read it (--directions FILE)

(Loop variables must not appear in shell: Snakemake formats the command when the job runs,
after the loop has finished, so the probe name travels in params.)

params hold config probes.NAME (canonical JSON; plus the shard count where the probe keeps
it in its settings), the probe seed and a hash of the probe's code: a change to any of
them reruns that probe, its collect and its figures, never training.  A shard job's params
hold only the settings its module lists as defining the reference sample
(``REFERENCE_KEYS``: sample count, stream length, shard count, chunk size, ...), so
e.g. probes.gradients.estimates reruns the gather job, not the reference shards.
"""


for _probe in PROBES:
    (_res, _shard_res, _settings, _shard_settings, _code, _shards, _ckpt, _base, _logs,
     _bench) = probe_rule_values(_probe)

    if _shards > 1 and _probe in DIRECTIONS_PROBES:

        rule:
            name:
                f"probe_{_probe}_directions"
            input:
                checkpoint=_ckpt,
            output:
                f"{_base}.directions.nc",
            params:
                probe=_probe,
                settings=canonical(direction_settings(config, _probe)),
                seed=config["probe_seed"],
                code=_code,
            log:
                f"{_logs}.directions.log",
            benchmark:
                f"{_bench}.directions.tsv"
            threads: _shard_res["threads"]
            resources:
                mem_mb=_shard_res["mem_mb"],
                runtime=_shard_res["runtime"],
                cpus_per_task=_shard_res["threads"],
            conda:
                "../../envs/pgprobe.yaml"
            shell:
                "pgprobe probe {params.probe}-directions --checkpoint {input.checkpoint:q}"
                " --settings {params.settings:q} --workers {threads} --seed {params.seed}"
                " --out {output:q} > {log:q} 2>&1"

    if _shards > 1:

        rule:
            name:
                f"probe_{_probe}_shard"
            input:
                checkpoint=_ckpt,
                **({"directions": f"{_base}.directions.nc"} if _probe in DIRECTIONS_PROBES else {}),
            output:
                f"{_base}.shard{{shard}}.nc",
            params:
                probe=_probe,
                settings=_shard_settings or _settings,
                seed=config["probe_seed"],
                code=_code,
                directions_flag=directions_flag,
            log:
                f"{_logs}.shard{{shard}}.log",
            benchmark:
                f"{_bench}.shard{{shard}}.tsv"
            threads: _shard_res["threads"]
            resources:
                mem_mb=_shard_res["mem_mb"],
                runtime=_shard_res["runtime"],
                cpus_per_task=_shard_res["threads"],
            conda:
                "../../envs/pgprobe.yaml"
            shell:
                "pgprobe probe {params.probe}-shard --checkpoint {input.checkpoint:q}"
                " --shard {wildcards.shard}{params.directions_flag}"
                " --settings {params.settings:q}"
                " --workers {threads} --seed {params.seed} --out {output:q} > {log:q} 2>&1"

        rule:
            name:
                f"probe_{_probe}"
            input:
                checkpoint=_ckpt,
                shards=expand(f"{_base}.shard{{shard}}.nc", shard=range(_shards), allow_missing=True),
            output:
                f"{_base}.nc",
            params:
                probe=_probe,
                settings=_settings,
                seed=config["probe_seed"],
                code=_code,
            log:
                f"{_logs}.log",
            benchmark:
                f"{_bench}.tsv"
            threads: _res["threads"]
            resources:
                mem_mb=_res["mem_mb"],
                runtime=_res["runtime"],
                cpus_per_task=_res["threads"],
            conda:
                "../../envs/pgprobe.yaml"
            shell:
                "pgprobe probe {params.probe} --checkpoint {input.checkpoint:q}"
                " --settings {params.settings:q} --workers {threads} --seed {params.seed}"
                " --shards {input.shards:q} --out {output:q} > {log:q} 2>&1"

    else:

        rule:
            name:
                f"probe_{_probe}"
            input:
                checkpoint=_ckpt,
            output:
                f"{_base}.nc",
            params:
                probe=_probe,
                settings=_settings,
                seed=config["probe_seed"],
                code=_code,
            log:
                f"{_logs}.log",
            benchmark:
                f"{_bench}.tsv"
            threads: _res["threads"]
            resources:
                mem_mb=_res["mem_mb"],
                runtime=_res["runtime"],
                cpus_per_task=_res["threads"],
            conda:
                "../../envs/pgprobe.yaml"
            shell:
                "pgprobe probe {params.probe} --checkpoint {input.checkpoint:q}"
                " --settings {params.settings:q} --workers {threads} --seed {params.seed}"
                " --out {output:q} > {log:q} 2>&1"
