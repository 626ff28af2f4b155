"""``pgprobe import``: write a pgprobe checkpoint from an agent trained elsewhere.

  pgprobe import sb3 --model MODEL.zip [--vecnormalize vecnormalize.pkl] --env ENV --out CKPT.pt
  pgprobe import cleanrl --model FILE.cleanrl_model --env ENV (--obs-stats STATS.npz | --raw-observations)
      [--activation tanh|relu] [--gamma G] [--gae-lambda L] [--num-steps N] --out CKPT.pt
"""
from __future__ import annotations

import argparse


def _cmd_sb3(args) -> None:
    from .sb3 import import_sb3
    out = import_sb3(args.model, args.env, args.out, vecnormalize=args.vecnormalize, name=args.name)
    print(f"wrote {out}")


def _cmd_cleanrl(args) -> None:
    from .cleanrl import import_cleanrl
    out = import_cleanrl(args.model, args.env, args.out, obs_stats=args.obs_stats,
                         raw_observations=args.raw_observations, activation=args.activation,
                         gamma=args.gamma, gae_lambda=args.gae_lambda, num_steps=args.num_steps,
                         seed=args.seed, iteration=args.iteration, name=args.name)
    print(f"wrote {out}")


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number in (0, 1]")
    return value


def add_parser(subparsers) -> None:
    from ..cli import nonnegative_int, positive_int

    parser = subparsers.add_parser("import", help="write a pgprobe checkpoint from an SB3 or CleanRL agent",
                                   description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="source", required=True)
    sb3 = sub.add_parser("sb3", help="Stable-Baselines3 / RL Zoo PPO or A2C (MlpPolicy, Box actions)")
    sb3.add_argument("--model", required=True, help="the zip written by model.save()")
    sb3.add_argument("--vecnormalize", help="vecnormalize.pkl (RL Zoo / VecNormalize.save); "
                     "without it the agent is taken to see raw observations")
    sb3.add_argument("--env", required=True, help="gymnasium id of the task it was trained on")
    sb3.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    sb3.add_argument("--name", help="the agent's name: the datasets' algo coordinate (default: its algorithm)")
    sb3.set_defaults(func=_cmd_sb3)

    cleanrl = sub.add_parser("cleanrl", help="CleanRL ppo_continuous_action.py agent (.cleanrl_model)")
    cleanrl.add_argument("--model", required=True, help="the .cleanrl_model file (agent.state_dict())")
    cleanrl.add_argument("--env", required=True, help="gymnasium id of the task it was trained on")
    stats = cleanrl.add_mutually_exclusive_group()
    stats.add_argument("--obs-stats", help=".npz with NormalizeObservation's mean, var and clip "
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
    cleanrl.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    cleanrl.add_argument("--name", help="the agent's name: the datasets' algo coordinate (default: ppo)")
    cleanrl.set_defaults(func=_cmd_cleanrl)
