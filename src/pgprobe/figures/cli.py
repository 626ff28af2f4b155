"""``pgprobe figure``: draw one figure of the paper from collected datasets.

Usage::

  pgprobe figure fig8 --datasets training=results/datasets/training.nc \\
      [--options '{"envs": ["Hopper-v5"], "smoothing": 5}'] --out figures/fig8.pdf
  pgprobe figure --list        # every figure, the datasets it needs, its caption

``--datasets`` takes one ``KIND=PATH`` per dataset the figure needs (``pgprobe figure
--list`` shows which); a file holding another kind of data (its ``pgprobe_dataset``
attribute) is refused.  ``--options`` is a JSON object (the workflow passes config
``figures.NAME``).  The PDF carries no creation date, so reruns are byte-identical.
"""
from __future__ import annotations

import argparse
import json
import sys

from ..errors import PgprobeError


def parse_dataset_args(items: list[str]) -> dict[str, str]:
    paths: dict[str, str] = {}
    for item in items:
        kind, sep, path = item.partition("=")
        if not sep or not kind or not path:
            raise PgprobeError(f"--datasets {item!r}: expected KIND=PATH, e.g. training=results/datasets/training.nc")
        if kind in paths:
            raise PgprobeError(f"--datasets: {kind!r} given twice")
        paths[kind] = path
    return paths


def parse_options(text: str | None) -> dict:
    if text is None or text == "":
        return {}
    try:
        options = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PgprobeError(f"--options is not valid JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(options, dict):
        raise PgprobeError(f"--options: expected a JSON object, got {type(options).__name__}")
    return options


def make_figure(name: str, dataset_paths: dict[str, str], options: dict, out) -> None:
    """Open the datasets (checking their kind), apply the style, draw and save ``name``."""
    from ..datasets import open_dataset
    from . import registry
    from .style import apply_style

    figures = registry()
    if name not in figures:
        raise PgprobeError(f"unknown figure {name!r}: expected one of {', '.join(sorted_names(figures))}")
    entry = figures[name]
    needed = entry["datasets"]
    missing = [k for k in needed if k not in dataset_paths]
    if missing:
        raise PgprobeError(f"figure {name} needs --datasets {' '.join(f'{k}=PATH' for k in missing)}")
    extra = [k for k in dataset_paths if k not in needed]
    if extra:
        raise PgprobeError(f"figure {name} does not use dataset(s) {', '.join(extra)} "
                           f"(it uses {', '.join(needed)})")
    datasets = {kind: open_dataset(dataset_paths[kind], kind) for kind in needed}
    apply_style(options)
    entry["func"](datasets, options, out)


def sorted_names(figures) -> list[str]:
    """fig1 < fig2 < ... < fig20 < figA4_... < fig_sample_regime."""
    import re

    def key(name):
        match = re.fullmatch(r"fig(\d+)", name)
        return (0, int(match.group(1)), "") if match else (1, 0, name)
    return sorted(figures, key=key)


def _cmd(args) -> None:
    from . import registry

    if args.list:
        figures = registry()
        for name in sorted_names(figures):
            entry = figures[name]
            print(f"{name}\t{','.join(entry['datasets'])}\t{entry.get('caption', '')}")
        return
    if not args.name or not args.out:
        raise PgprobeError("expected a figure NAME and --out FILE (or --list)")
    make_figure(args.name, parse_dataset_args(args.datasets or []), parse_options(args.options), args.out)
    print(f"wrote {args.out}", file=sys.stderr)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("figure", help="draw one figure (fig1 ... fig20, ...) from collected datasets",
                                   description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", help="figure name, e.g. fig8 (see --list)")
    parser.add_argument("--datasets", nargs="+", metavar="KIND=PATH",
                        help="collected datasets, e.g. training=results/datasets/training.nc")
    parser.add_argument("--options", help="JSON object of figure options (config figures.NAME)")
    parser.add_argument("--out", help="output file (.pdf, .svg or .png)")
    parser.add_argument("--list", action="store_true", help="list the figures and the datasets they need")
    parser.set_defaults(func=_cmd)
