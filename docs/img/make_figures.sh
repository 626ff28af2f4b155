#!/usr/bin/env bash
# The README's and the site's figures: pgprobe's own figure stage (`pgprobe figure`, as the
# workflow's figure rules call it) on the default run's committed datasets
# (docs/measurements/default_run/datasets/, made by `snakemake --cores 2` at commit de9c849),
# as PNG at a screen resolution.  Run from the repository root.
set -euo pipefail
D=docs/measurements/default_run/datasets
pgprobe figure fig1 --datasets gradients=$D/gradients.nc --options '{"dpi": 100}' --out docs/img/fig1.png
pgprobe figure fig8 --datasets training=$D/training.nc --options '{"smoothing": 5, "dpi": 100}' --out docs/img/fig8.png
pgprobe figure fig6 --datasets landscapes=$D/landscapes.nc --options '{"dpi": 80}' --out docs/img/fig6.png
