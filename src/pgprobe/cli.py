"""The ``pgprobe`` command line: every workflow step is one subcommand.

  pgprobe train --env ENV --algo {ppo,trpo} --seed S [--config FILE] --out DIR
  pgprobe probe PROBE ...        (one module per probe under pgprobe.probes)
  pgprobe collect / figure ...   (registered by their modules)
  pgprobe import {sb3,cleanrl} ... (pgprobe.importers.cli)

Bad input ends with ``pgprobe: error: <one line>`` and exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import PgprobeError

# Modules that add subcommands: each defines ``add_parser(subparsers)`` which registers a
# parser whose ``func(args)`` runs the command.
PROBE_MODULES = ["gradients", "steps", "values", "baselines", "landscapes"]
TOP_LEVEL_MODULES = ["pgprobe.collect", "pgprobe.figures.cli", "pgprobe.importers.cli", "pgprobe.claims", "pgprobe.plan",
                     "pgprobe.power"]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive integer")
    return value


def nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a non-negative integer")
    return value


def _cmd_train(args) -> None:
    from .config import load_config
    from .train import train

    config = load_config(args.config)
    out = train(args.env, args.algo, args.seed, config, args.out, resume_dir=args.resume_dir,
                progress=not args.no_progress)
    print(f"wrote {out}/train.nc and checkpoints")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``command`` given (the first word of argv), the probe
    modules (which import torch, ~1 s) are loaded only if that command is ``probe``."""
    parser = argparse.ArgumentParser(prog="pgprobe", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train one PPO/TRPO agent, writing checkpoints and train.nc")
    train.add_argument("--env", required=True, help="gymnasium continuous-control id, e.g. Hopper-v5")
    train.add_argument("--algo", required=True, choices=["ppo", "trpo"])
    train.add_argument("--seed", required=True, type=nonnegative_int)
    train.add_argument("--config", help="YAML config (section 'training')")
    train.add_argument("--out", required=True, help="run directory")
    train.add_argument("--resume-dir", help="where resume state lives (default OUT/resume)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=_cmd_train)

    probe = sub.add_parser("probe", help="measure one checkpoint")
    probe_sub = probe.add_subparsers(dest="probe", required=True)
    for name in PROBE_MODULES if command in (None, "probe") else []:
        importlib.import_module(f"pgprobe.probes.{name}").add_parser(probe_sub)
    for name in TOP_LEVEL_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    command = words[0] if words and not words[0].startswith("-") else None
    parser = build_parser(command)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except PgprobeError as exc:
        print(f"pgprobe: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pgprobe: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from .train import Terminated
        if isinstance(exc, Terminated):
            print(f"pgprobe: {exc}", file=sys.stderr)
            return 143
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
