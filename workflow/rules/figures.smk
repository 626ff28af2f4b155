"""Figures: one rule per figure (figure_fig1 ... figure_fig20, the Appendix A.4 step
figures, figure_fig_sample_regime), each

  pgprobe figure NAME --datasets KIND=results/datasets/KIND.nc ... --options JSON --out figures/NAME.pdf

params hold only config figures.NAME and a hash of that figure's module, so a change to
one figure's options reruns that figure alone.  Outputs are marked for
``snakemake --report`` with captions from workflow/report/NAME.rst.
"""

_figure_res = config["resources"]["figures"]


for _fig, _entry in FIGURES.items():
    if not set(_entry["datasets"]) <= set(DATASET_NAMES()):
        continue  # e.g. fig_sample_regime when config sample_regime has no runs

    rule:
        name:
            f"figure_{_fig}"
        input:
            **{kind: dataset_path(kind) for kind in _entry["datasets"]},
        output:
            report(
                f"figures/{_fig}.pdf",
                caption=figure_caption(_fig),
                category=figure_category(_entry),
                labels={"figure": _fig},
            ),
        params:
            figure=_fig,
            datasets=" ".join(f"{kind}={dataset_path(kind)}" for kind in _entry["datasets"]),
            options=canonical(config["figures"].get(_fig, {})),
            code=code_hash(_entry["module"], "pgprobe.figures.cli"),
        log:
            f"logs/figures/{_fig}.log",
        benchmark:
            f"benchmarks/figures/{_fig}.tsv"
        threads: _figure_res["threads"]
        resources:
            mem_mb=_figure_res["mem_mb"],
            runtime=_figure_res["runtime"],
            cpus_per_task=_figure_res["threads"],
        conda:
            "../../envs/pgprobe.yaml"
        shell:
            "pgprobe figure {params.figure} --datasets {params.datasets}"
            " --options {params.options:q} --out {output:q} > {log:q} 2>&1"
