"""``pgprobe import``: write a pgprobe checkpoint from an agent trained elsewhere.

  pgprobe import sb3 --model MODEL.zip [--vecnormalize vecnormalize.pkl] --env ENV --out CKPT.pt
  pgprobe import cleanrl --model FILE.cleanrl_model --env ENV (--obs-stats STATS.npz | --raw-observations)
      [--activation tanh|relu] [--gamma G] [--gae-lambda L] [--num-steps N] --out CKPT.pt

A checkpoint series (one run's saved checkpoints, ``pgprobe.importers.series``): --model a
pattern with {steps} or several files, its pair (--vecnormalize / --obs-stats) likewise, and
--out-dir DIR instead of --out (DIR/iterNNNN.pt, one per file):

  pgprobe import sb3 --model 'logs/rl_model_{steps}_steps.zip' \
      --vecnormalize 'logs/rl_model_vecnormalize_{steps}_steps.pkl' --env ENV --out-dir DIR
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import PgprobeError


def _series_value(values: list[str] | None):
    """One --model / pair argument: None, a file, a {steps} pattern, or a list of files."""
    if values is None:
        return None
    return values[0] if len(values) == 1 else list(values)


def _run(args, pair_key: str, import_one) -> None:
    """Import one file (--out) or a series (--out-dir): the series is checked whole first
    (``resolve_series``), imported into a temporary directory, then moved into --out-dir."""
    from .series import is_series, resolve_series

    model, pair = _series_value(args.model), _series_value(getattr(args, pair_key))
    if not is_series(model):
        if args.out is None or args.out_dir is not None:
            raise PgprobeError("one --model file: expected --out CKPT.pt (--out-dir is for a series)")
        if is_series(pair):
            raise PgprobeError(f"--{pair_key.replace('_', '-')} gives a series for one --model file: expected one file")
        print(f"wrote {import_one(model, pair, args.out, args.steps)}")
        return
    if args.out_dir is None or args.out is not None:
        raise PgprobeError("--model gives a series: expected --out-dir DIR (one checkpoint per file), not --out")
    if args.steps is not None:
        raise PgprobeError("--steps is for one --model file: a series reads each file's steps from its name")
    members = resolve_series(args.source, model, {pair_key: pair}, num_steps=getattr(args, "num_steps", 2048),
                             where="--model")
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".import-", dir=out_dir))
    try:
        for member in members:
            import_one(member.path, member.pairs.get(pair_key), stage / f"iter{member.iteration:04d}.pt", member.steps)
        for member in members:
            name = f"iter{member.iteration:04d}.pt"
            os.replace(stage / name, out_dir / name)
            print(f"wrote {out_dir / name} (step {member.steps}, iteration {member.iteration})")
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _cmd_sb3(args) -> None:
    from .sb3 import import_sb3
    _run(args, "vecnormalize", lambda model, pair, out, steps: import_sb3(
        model, args.env, out, vecnormalize=pair, name=args.name, steps=steps))


def _cmd_cleanrl(args) -> None:
    from .cleanrl import import_cleanrl
    _run(args, "obs_stats", lambda model, pair, out, steps: import_cleanrl(
        model, args.env, out, obs_stats=pair, raw_observations=args.raw_observations,
        activation=args.activation, gamma=args.gamma, gae_lambda=args.gae_lambda, num_steps=args.num_steps,
        seed=args.seed, iteration=args.iteration, name=args.name, steps=steps))


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number in (0, 1]")
    return value


def _outputs(parser) -> None:
    from ..cli import nonnegative_int

    parser.add_argument("--out", help="checkpoint to write (.pt), for one --model file")
    parser.add_argument("--out-dir", help="directory for a series' checkpoints (iterNNNN.pt)")
    parser.add_argument("--steps", type=nonnegative_int, help="environment steps one --model file was saved at "
                        "(a series member; sets the iteration, see pgprobe.importers.series)")


def add_parser(subparsers) -> None:
    from ..cli import nonnegative_int, positive_int

    parser = subparsers.add_parser("import", help="write a pgprobe checkpoint from an SB3 or CleanRL agent",
                                   description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="source", required=True)
    sb3 = sub.add_parser("sb3", help="Stable-Baselines3 / RL Zoo PPO or A2C (MlpPolicy, Box actions)")
    sb3.add_argument("--model", required=True, nargs="+", help="the zip written by model.save(); a series: "
                     "a pattern with {steps} (rl_model_{steps}_steps.zip) or several zips")
    sb3.add_argument("--vecnormalize", nargs="+", help="vecnormalize.pkl (RL Zoo / VecNormalize.save); a series: "
                     "a {steps} pattern or files paired by step count; without it raw observations")
    sb3.add_argument("--env", required=True, help="gymnasium id of the task it was trained on")
    _outputs(sb3)
    sb3.add_argument("--name", help="the agent's name: the datasets' algo coordinate (default: its algorithm)")
    sb3.set_defaults(func=_cmd_sb3)

    cleanrl = sub.add_parser("cleanrl", help="CleanRL ppo_continuous_action.py agent (.cleanrl_model)")
    cleanrl.add_argument("--model", required=True, nargs="+", help="the .cleanrl_model file (agent.state_dict()); "
                         "a series: a pattern with {steps} or several files")
    cleanrl.add_argument("--env", required=True, help="gymnasium id of the task it was trained on")
    stats = cleanrl.add_mutually_exclusive_group()
    stats.add_argument("--obs-stats", nargs="+", help="(a series: a {steps} pattern or files) .npz with NormalizeObservation's mean, var and clip "
                       "(optional: return_var, reward_clip of NormalizeReward; epsilon)")
    stats.add_argument("--raw-observations", action="store_true",
                       help="the agent was trained without NormalizeObservation")
    cleanrl.add_argument("--activation", default="tanh", choices=["tanh", "relu"],
                         help="hidden activation (ppo_continuous_action.py: tanh)")
    cleanrl.add_argument("--gamma", type=_unit_float, default=0.99, help="discount (CleanRL default 0.99)")
    cleanrl.add_argument("--gae-lambda", type=_unit_float, default=0.95, help="GAE lambda (CleanRL default 0.95)")
    cleanrl.add_argument("--num-steps", type=positive_int, default=2048,
                         help="steps per rollout (CleanRL default 2048)")
    cleanrl.add_argument("--seed", type=nonnegative_int, default=0, help="seed recorded in the checkpoint")
    cleanrl.add_argument("--iteration", type=nonnegative_int, default=0,
                         help="iteration recorded in the checkpoint")
    _outputs(cleanrl)
    cleanrl.add_argument("--name", help="the agent's name: the datasets' algo coordinate (default: ppo)")
    cleanrl.set_defaults(func=_cmd_cleanrl)
