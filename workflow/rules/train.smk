"""Training: one job per env x algo x seed (and per sample-regime grid point).

``training_config`` writes the part of config ``training`` that applies to one env and
algorithm to results/configs/train/{env}/{algo}.yaml, the file ``pgprobe train --config``
reads (params hold exactly that section, so only a change to it reruns training).

``train`` runs ``pgprobe train`` in a stage directory under results/resume/ (outside the
declared outputs, keyed by a hash of the section and the training code), then delivers the
checkpoints and train.nc into results/runs/... as hard links (a copy where the file system
has none): the stage keeps every file until a later job of the same run replaces it, so a
kill at any instant (in training or in the delivery) loses nothing.  Snakemake deletes the
declared outputs of a failed or killed job; rerunning resumes at the last finished
iteration (``--resume-dir``; at once if training had finished) and delivers every file
again.  A changed config or training code gets a fresh stage, and the job removes the run's
stages of other configs or code before it starts.
"""

TRAIN_CODE = code_hash("pgprobe.train")


rule training_config:
    wildcard_constraints:
        algo="ppo|trpo",
    output:
        "results/configs/train/{env}/{algo}.yaml",
    params:
        section=training_section_json,
    log:
        "logs/configs/train/{env}/{algo}.log",
    run:
        write_training_config(output[0], params.section, log[0])


rule train:
    wildcard_constraints:
        algo="ppo|trpo",
    input:
        config="results/configs/train/{env}/{algo}.yaml",
    output:
        checkpoints=expand(
            "results/runs/{{env}}/{{algo}}/seed{{seed}}/checkpoints/iter{iteration:04d}.pt",
            iteration=CKPT_ITERS,
        ),
        train_nc="results/runs/{env}/{algo}/seed{seed}/train.nc",
    params:
        code=TRAIN_CODE,
        stage=lambda w: stage_dir(
            "runs", (w.env, w.algo, f"seed{w.seed}"), training_section_json(w), TRAIN_CODE
        ),
    log:
        "logs/train/{env}/{algo}/seed{seed}.log",
    benchmark:
        "benchmarks/train/{env}/{algo}/seed{seed}.tsv"
    threads: config["resources"]["train"]["threads"]
    resources:
        mem_mb=config["resources"]["train"]["mem_mb"],
        runtime=lambda w: train_runtime(
            config, training_section(config, w.env, w.algo), w.env, w.algo
        ),
        cpus_per_task=config["resources"]["train"]["threads"],
    conda:
        "../../envs/pgprobe.yaml"
    shell:
        TRAIN_SHELL


rule regime_training_config:
    output:
        "results/configs/regime/{env}/{algo}/steps{steps}_lr{scale}.yaml",
    params:
        section=regime_section_json,
    log:
        "logs/configs/regime/{env}/{algo}/steps{steps}_lr{scale}.log",
    run:
        write_training_config(output[0], params.section, log[0])


rule train_regime:
    input:
        config="results/configs/regime/{env}/{algo}/steps{steps}_lr{scale}.yaml",
    output:
        train_nc="results/regime/{env}/{algo}/steps{steps}_lr{scale}/seed{seed}/train.nc",
    params:
        code=TRAIN_CODE,
        stage=lambda w: stage_dir(
            "regime",
            (w.env, w.algo, f"steps{w.steps}_lr{w.scale}", f"seed{w.seed}"),
            regime_section_json(w),
            TRAIN_CODE,
        ),
    log:
        "logs/regime/{env}/{algo}/steps{steps}_lr{scale}/seed{seed}.log",
    benchmark:
        "benchmarks/regime/{env}/{algo}/steps{steps}_lr{scale}/seed{seed}.tsv"
    threads: config["resources"]["train"]["threads"]
    resources:
        mem_mb=config["resources"]["train"]["mem_mb"],
        runtime=lambda w: train_runtime(
            config,
            regime_section(config, w.env, w.algo, w.steps, float(w.scale)),
            w.env,
            w.algo,
        ),
        cpus_per_task=config["resources"]["train"]["threads"],
    conda:
        "../../envs/pgprobe.yaml"
    shell:
        REGIME_TRAIN_SHELL


rule import_agent:
    """An agent trained elsewhere (config ``agents``) as a pgprobe checkpoint (``pgprobe import``),
    one job per file of a series; its files are the inputs, so a changed file reruns that
    checkpoint's import and probes."""
    wildcard_constraints:
        agent="|".join(re.escape(name) for name in AGENTS) or "(?!)",
    input:
        unpack(agent_inputs),
    output:
        "results/runs/{env}/{agent}/seed0/checkpoints/iter{iteration}.pt",
    params:
        command=agent_import_command,
        code=code_hash("pgprobe.importers.cli"),
    log:
        "logs/import/{env}/{agent}/iter{iteration}.log",
    conda:
        "../../envs/pgprobe.yaml"
    shell:
        "pgprobe import {params.command} --out {output:q} > {log:q} 2>&1"
