"""Value-prediction probe (paper §2.2, eq. 4; Figures 3, 11 and 12).

Usage::

  pgprobe probe values --checkpoint runs/.../iter0150.pt --out values/iter0150.nc \\
      [--settings '{"heldout_streams": 4, "true_value_states": 0}'] [--workers N] [--seed S]

What it measures.  The mean relative error (``pgprobe.stats.mean_relative_error``)

  MRE = mean_i |V(s_i) − y_i| / max(|y_i|, 10⁻³ · mean_j |y_j|)

of the checkpoint's value net V against three targets y:

* ``gae``: the regression target of eq. (4), y_t = V_old(s_t) + A_t^GAE (γ, λ of the
  checkpoint).  On the "train" split V_old and A are exactly the fit batch's (the batch the
  value net was just fit on; ``Checkpoint.fit_batch``), so this is the training loss' MRE.
  On held-out rollouts V_old is the value net's own prediction at sampling time.
* ``returns``: the discounted return R_t = Σ_k γ^k r_{t+k} (rewards scaled exactly as in
  training, the value net's scale), a single-rollout Monte-Carlo sample of V^π(s_t) (eq. 3).
* ``undiscounted_returns`` (held-out only, diagnostic): Σ_k r_{t+k}, the undiscounted scaled
  reward-to-go of the rest of the episode, on complete episodes only (terminated or ended by
  the time limit; the stream's cut last trajectory is excluded).  The value net does not
  estimate this quantity (it targets the γ-discounted value).
* ``gae_authors`` / ``returns_authors``: the targets and MRE formulas of the paper's code
  (``authors_targets``, ``authors_mre``): the time limit is a terminal, returns are not
  bootstrapped where the stream cuts the last trajectory.  Under them the returns MRE has
  the paper's ≈50% size (docs/explanations/claims.md, "Figure 3's returns MRE").
* ``true_value`` (held-out only, beyond the paper): V^π(s_t) estimated by restoring the
  full simulator state of s_t (``pgprobe.envs.RestorePoint``: MuJoCo's integration state,
  with the previous step replayed so that derived data such as Humanoid's cfrc_ext are the
  original's) and averaging ``true_value_rollouts`` fresh rollouts of the frozen policy
  from it (frozen observation normalization, rewards scaled as
  in training, stopping where the episode's time limit would stop it).  Comparing it with
  the single-rollout return separates the return target's own sampling noise from the
  network's error (``return_noise_mre``).

``time_limit: false`` runs the held-out streams and the restored rollouts past the task's time
limit (episodes end only by termination): every target is then the time-unlimited one, which
an agent that bootstraps at the limit (SB3, pgprobe) estimates, and the only measurable one
where γ^limit > ``max_bootstrap_weight`` (the RL Zoo's Hopper PPO, γ = 0.999: 0.999^1000 =
0.37; give it ``heldout_steps`` well above the 2995 steps left out at each stream's end and
``true_value_horizon`` ≥ 2995).

Held-out data: ``heldout_streams`` fresh streams of ``heldout_steps`` steps of the frozen
policy (``pgprobe.sampling``).  Returns are bootstrapped with the value net where a
trajectory is cut without termination (time limit, or the stream's end): R_t contains
γ^k V(s_{t+k}) with k the steps to the cut.  That weight γ^k is stored per sample
(``bootstrap_weight``; 0 for trajectories that terminate), and the ``returns`` and
``true_value`` MREs only use samples with ``bootstrap_weight <= max_bootstrap_weight``
(default 0.05, i.e. the last ⌈log 0.05 / log γ⌉ = 299 steps before a cut are excluded at
γ = 0.99), so the network's own prediction contributes at most 5% to the target.  The
``gae`` MRE uses every sample (the eq. 4 target is bootstrapped by construction).  On the
train split the fit batch keeps no episode boundaries, so every sample is used for both
targets, exactly as ``train.nc``'s per-iteration ``value_mre_gae``/``value_mre_returns``.

Restored rollouts for ``true_value`` run min(``true_value_horizon``, time-limit steps left)
steps and are bootstrapped with γ^H V(s_H) where they stop without termination (the same
definition of "return" as the ``returns`` target; with H = 300 and γ = 0.99 the weight is
≤ 0.049).  States are drawn uniformly from the samples included in the returns MRE, so
``mre_on_true_value_states`` compares all three targets on the same states.  Environments
without a MuJoCo state (e.g. the closed-form bandit) get NaN for ``true_value``.

Dataset (kind "values"): dims split (train, heldout) × target (gae, returns, true_value,
undiscounted_returns) × sample, plus the run dims env, algo, seed, iteration (length 1;
files merge with ``xarray.combine_by_coords``).  Per-sample predictions, targets, inclusion masks and
bootstrap weights are kept so any MRE variant can be recomputed.  See
docs/reference/datasets.md (values.nc).

Paper scale: the paper does not state its held-out sample size; the defaults here
(4 × 2048 held-out samples, 32 states × 8 restored rollouts) are sized for the default
config on a 2-core machine.
"""
from __future__ import annotations

import math

import numpy as np
import xarray as xr

from ..advantages import discounted_returns, gae
from ..errors import PgprobeError
from .common import (add_common_arguments, complete_episode_mask, defaults, load_checked_checkpoint,
                     parse_settings, segment_bookkeeping)

PURPOSE_HELDOUT = 201
PURPOSE_TRUE_VALUE = 202
PURPOSE_TRUE_VALUE_STATES = 203

SPLITS = ["train", "heldout"]
TARGETS = ["gae", "returns", "true_value", "undiscounted_returns", "gae_authors", "returns_authors"]
# How ``mre`` is computed per target (the authors' targets keep their code's formulas).
MRE_FORMULAS = {
    "gae": "mean |V-y| / max(|y|, 1e-3 mean|y|)",
    "returns": "mean |V-y| / max(|y|, 1e-3 mean|y|)",
    "true_value": "mean |V-y| / max(|y|, 1e-3 mean|y|)",
    "undiscounted_returns": "mean |V-y| / max(|y|, 1e-3 mean|y|)",
    "gae_authors": "mean (V-y)^2 / |y| over non-terminal samples (PPO: max with the clipped V_old + "
                   "clip(V-V_old, +-eps)); a squared error over |y|, as the authors' value_loss_gae",
    "returns_authors": "mean |V-y| / |y| over non-terminal samples, no floor, as the authors' value_loss_returns",
}

DEFAULTS = defaults("values")   # settings.schema.yaml: the one source


def check_settings(given) -> dict:
    """The values probe's settings (one-line PgprobeError on a bad one)."""
    return parse_settings(given, "values")


# ---------------------------------------------------------------------------- the authors' targets
def authors_targets(rewards, values, next_values, terminated, truncated, segment_end,
                    gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(returns, GAE target V_old + A, non-terminal mask) as the paper's code computes them
    (MadryLab/implementation-matters, ``advantage_and_return``; read, not copied):

    * a path ends at every done, and gym v2's TimeLimit reported the time limit as done, so a
      time-limit end is a terminal: no bootstrap there, for returns and for GAE;
    * returns R_t = Σ_k γ^k r_{t+k} within the path, with NO bootstrap where the batch (our
      stream) cuts the last path: the rewards past the cut count as 0;
    * GAE with V(s_{t+1}) = 0 at a done and V(s_{T−1}) (the last state's own value) at the
      batch's last step; target y = V_old + A;
    * the MREs average over the samples with not_done = 1 (the done step itself is left
      out, the last step before a cut is kept).
    """
    rewards = np.asarray(rewards, np.float64)
    values = np.asarray(values, np.float64)
    done = np.asarray(terminated, bool) | np.asarray(truncated, bool)
    returns = discounted_returns(rewards, np.zeros_like(rewards), done, segment_end, gamma)
    bootstrap = np.asarray(next_values, np.float64).copy()
    bootstrap[-1] = values[-1]
    advantages = gae(rewards, values, bootstrap, done, segment_end, gamma, lam)
    return returns, values + advantages, ~done


def authors_mre(target: str, prediction, y, mask, old_values=None, clip_epsilon: float | None = None) -> float:
    """The authors' code's "MRE" of a target (``MRE_FORMULAS``): returns_authors the mean
    relative error |V − y|/|y|; gae_authors the squared error (V − y)² over |y|, with PPO's
    value clipping max((V − y)², (V_old + clip(V − V_old, ±ε) − y)²)."""
    mask = np.asarray(mask, bool) & np.isfinite(y) & np.isfinite(prediction)
    if not mask.any():
        return math.nan
    v, y = np.asarray(prediction, np.float64)[mask], np.asarray(y, np.float64)[mask]
    with np.errstate(divide="ignore"):
        if target == "returns_authors":
            return float(np.mean(np.abs(v - y) / np.abs(y)))
        error = (v - y) ** 2
        if clip_epsilon is not None and old_values is not None:
            old = np.asarray(old_values, np.float64)[mask]
            error = np.maximum(error, (old + np.clip(v - old, -clip_epsilon, clip_epsilon) - y) ** 2)
        return float(np.mean(error / np.abs(y)))


# ---------------------------------------------------------------------------- rollout helpers
def _restored_return(rollout, spec, gamma: float):
    """``reduce`` of a restored rollout: (discounted scaled return, bootstrapped with γ^k V(s_k)
    where it stops without termination; the first normalized observation)."""
    return float(discounted_returns(rollout.rewards, rollout.next_values, rollout.terminated,
                                    rollout.segment_end, gamma)[0]), rollout.obs[0]


def restored_values(agent, points: list, steps: np.ndarray, rollouts: int, seed_key: tuple,
                    workers: int, chunk_size: int, progress: str | None = None, time_limit: bool = True):
    """V^π at restored simulator states (``pgprobe.envs.RestorePoint``): mean and standard
    error over ``rollouts`` rollouts of the frozen policy from each, by the one rollout
    engine (``pgprobe.sampling``): restored after a seeded reset, at most ``steps[s]`` steps,
    stopping at the episode's end; each gives its discounted scaled return (eq. 3's R_t with
    a γ^k V(s_k) bootstrap where it stops without termination).  ``time_limit`` False: the
    rollouts run past the task's time limit (``StreamSpec.time_limit``).

    Returns (mean (S,), standard_error (S,), restored first normalized observations (S, obs_dim)).
    Deterministic given ``seed_key`` and independent of ``workers``.
    """
    from functools import partial

    from ..sampling import StreamSpec, sample_streams

    specs = [StreamSpec((*seed_key, s, k), int(steps[s]), start=points[s], single_episode=True,
                        time_limit=time_limit)
             for s in range(len(points)) for k in range(rollouts)]
    out = sample_streams(agent, specs, workers=workers, chunk_size=chunk_size,
                         reduce=partial(_restored_return, gamma=agent.gamma), progress=progress)
    totals = np.array([o[0] for o in out]).reshape(len(points), rollouts)
    first_obs = np.stack([o[1] for o in out]).reshape(len(points), rollouts, -1)[:, 0]
    se = totals.std(1, ddof=1) / math.sqrt(rollouts) if rollouts > 1 else np.full(len(points), np.nan)
    return totals.mean(1), se, first_obs


def restore_points(env_id: str, states: np.ndarray, actions: np.ndarray, episode_step: np.ndarray,
                   chosen: np.ndarray) -> list:
    """``RestorePoint`` of each chosen sample of concatenated streams (``states``: the
    simulator state each step started from; ``actions``: unclipped actions): at an episode's
    first step the state itself, else the previous step's state and its action, clipped to
    the action bounds exactly as the sampler clipped it."""
    from ..envs import RestorePoint, make_env

    env = make_env(env_id, _checked=True)
    low = np.asarray(env.action_space.low, np.float32)
    high = np.asarray(env.action_space.high, np.float32)
    env.close()
    points = []
    for j in chosen:
        if episode_step[j] == 0:
            points.append(RestorePoint(states[j]))
        else:
            action = np.minimum(np.maximum(np.asarray(actions[j - 1], np.float32), low), high)
            points.append(RestorePoint(states[j], states[j - 1], action))
    return points


def _max_episode_steps(env_id: str) -> int | None:
    import gymnasium as gym

    spec = gym.spec(env_id)
    return spec.max_episode_steps


def _supports_restore(env_id: str) -> bool:
    from ..envs import make_env, supports_restore

    env = make_env(env_id, _checked=True)
    ok = supports_restore(env)
    env.close()
    return ok


# ---------------------------------------------------------------------------- the probe
def _mre_masked(prediction, target, mask) -> float:
    from ..stats import mean_relative_error

    mask = np.asarray(mask, bool) & np.isfinite(target) & np.isfinite(prediction)
    if not mask.any():
        return math.nan
    return mean_relative_error(prediction[mask], target[mask])


def measure_values(checkpoint, settings: dict | None = None, seed: int = 0, workers: int = 1,
                   progress: bool = False) -> xr.Dataset:
    """Compute the values dataset for one loaded checkpoint (see the module docstring)."""
    from ..datasets import add_run_coords, provenance, variable
    from ..sampling import StreamSpec, sample_streams

    settings = check_settings(settings)
    hp = checkpoint.hyperparameters
    gamma, lam = float(hp["gamma"]), float(hp["gae_lambda"])
    agent = checkpoint.frozen_agent()

    # ---- train split: the fit batch, predictions of the fitted net.
    fit = checkpoint.fit_batch or {}
    if fit and len(fit.get("obs", [])):
        import torch

        with torch.no_grad():
            train_pred = checkpoint.value_net(torch.as_tensor(np.asarray(fit["obs"], np.float32))).numpy()
        train_pred = train_pred.astype(np.float64)
        train_targets = {"gae": np.asarray(fit["values"], np.float64) + np.asarray(fit["advantages"], np.float64),
                         "returns": np.asarray(fit["returns"], np.float64)}
        train_old = np.asarray(fit["values"], np.float64)
        if "segment_end" in fit:   # checkpoints from before pgprobe kept episode ends: no authors' targets
            ret_a, gae_a, mask_a = authors_targets(fit["rewards"], fit["values"], fit["next_values"],
                                                   fit["terminated"], fit["truncated"], fit["segment_end"],
                                                   gamma, lam)
            train_targets.update(gae_authors=gae_a, returns_authors=ret_a)
            train_authors_mask = mask_a
        else:
            train_targets.update(gae_authors=np.full(train_pred.size, np.nan),
                                 returns_authors=np.full(train_pred.size, np.nan))
            train_authors_mask = np.zeros(train_pred.size, bool)
    else:  # iteration 0: the value net has not been fit yet
        train_pred = np.zeros(0)
        train_old = np.zeros(0)
        train_targets = dict.fromkeys(["gae", "returns", "gae_authors", "returns_authors"], np.zeros(0))
        train_authors_mask = np.zeros(0, bool)

    # ---- held-out split: fresh streams of the frozen policy.
    restore = settings["true_value_states"] > 0 and _supports_restore(checkpoint.env_id)
    specs = [StreamSpec((int(seed), checkpoint.seed, checkpoint.iteration, PURPOSE_HELDOUT, i),
                        settings["heldout_steps"], time_limit=settings["time_limit"])
             for i in range(settings["heldout_streams"])]
    rollouts = sample_streams(agent, specs, workers=workers, chunk_size=settings["chunk_size"],
                              record_states=restore, progress="values: held-out" if progress else None)
    pred, gae_t, ret_t, weight, ep_step, states, undisc, complete = [], [], [], [], [], [], [], []
    authors = []
    for r in rollouts:
        authors.append(authors_targets(r.rewards, r.values, r.next_values, r.terminated, r.truncated,
                                       r.segment_end, gamma, lam))
        adv = gae(r.rewards, r.values, r.next_values, r.terminated, r.segment_end, gamma, lam)
        ret = discounted_returns(r.rewards, r.next_values, r.terminated, r.segment_end, gamma)
        w, s = segment_bookkeeping(r, gamma)
        zeros = np.zeros_like(r.rewards)
        undisc.append(discounted_returns(r.rewards, zeros, r.terminated, r.segment_end, 1.0))
        complete.append(complete_episode_mask(r))
        pred.append(r.values)
        gae_t.append(r.values + adv)
        ret_t.append(ret)
        weight.append(w)
        ep_step.append(s)
        if restore:
            states.append(r.sim_states)
    held_pred = np.concatenate(pred).astype(np.float64)
    held_gae = np.concatenate(gae_t)
    held_ret = np.concatenate(ret_t)
    held_weight = np.concatenate(weight)
    held_step = np.concatenate(ep_step)
    held_obs = np.concatenate([r.obs for r in rollouts])
    held_undisc = np.concatenate(undisc)
    held_ret_a, held_gae_a, held_mask_a = (np.concatenate([a[k] for a in authors]) for k in range(3))
    complete_mask = np.concatenate(complete)
    returns_mask = held_weight <= settings["max_bootstrap_weight"] + 1e-12
    episode_returns = [x for r in rollouts for x in r.episode_returns]

    # ---- optional true values from restored simulator states.
    held_true = np.full(held_pred.size, np.nan)
    held_true_se = np.full(held_pred.size, np.nan)
    true_mask = np.zeros(held_pred.size, bool)
    state_slots = settings["true_value_states"] if restore else 0
    true_sample = np.full(state_slots, -1, np.int64)        # padded to the setting's length
    true_obs = np.full((state_slots, held_obs.shape[1]), np.nan)
    if restore:
        candidates = np.flatnonzero(returns_mask)
        count = min(settings["true_value_states"], candidates.size)
        if count:
            rng = np.random.default_rng([int(seed), checkpoint.seed, checkpoint.iteration,
                                         PURPOSE_TRUE_VALUE_STATES])
            chosen = np.sort(rng.choice(candidates, count, replace=False))
            all_states = np.concatenate(states)
            limit = _max_episode_steps(checkpoint.env_id)
            horizon = np.full(count, settings["true_value_horizon"])
            if limit is not None and settings["time_limit"]:
                horizon = np.minimum(horizon, limit - held_step[chosen])
            points = restore_points(checkpoint.env_id, all_states, np.concatenate([r.actions for r in rollouts]),
                                    held_step, chosen)
            mean, se, first_obs = restored_values(
                agent, points, np.maximum(horizon, 1), settings["true_value_rollouts"],
                (int(seed), checkpoint.seed, checkpoint.iteration, PURPOSE_TRUE_VALUE),
                workers, settings["chunk_size"], "values: true V" if progress else None,
                time_limit=settings["time_limit"])
            restore_error = float(np.max(np.abs(first_obs - held_obs[chosen])))
            if restore_error != 0.0:
                raise PgprobeError(
                    f"values probe: restoring {checkpoint.env_id} simulator states is not exact (max "
                    f"|observation error| {restore_error:.3g} after restore); refusing to write a "
                    "true_value target (set true_value_states: 0 to skip it)")
            held_true[chosen], held_true_se[chosen] = mean, se
            true_mask[chosen] = True
            true_sample[:count], true_obs[:count] = chosen, held_obs[chosen]

    # ---- assemble.
    n_train, n_held = train_pred.size, held_pred.size
    # Fixed length (the fit batch size or the held-out size) so that files of one config
    # line up along ``sample`` without padding when merged.
    n = max(n_train, n_held, int(hp["steps_per_iteration"]), 1)
    pad = lambda x: np.concatenate([np.asarray(x, np.float64), np.full(n - len(x), np.nan)])  # noqa: E731
    pad_mask = lambda x: np.concatenate([np.asarray(x, np.int8), np.zeros(n - len(x), np.int8)])  # noqa: E731
    prediction = np.stack([pad(train_pred), pad(held_pred)])
    target_value = np.stack([
        np.stack([pad(train_targets["gae"]), pad(train_targets["returns"]), pad([]), pad([]),
                  pad(train_targets["gae_authors"]), pad(train_targets["returns_authors"])]),
        np.stack([pad(held_gae), pad(held_ret), pad(held_true), pad(held_undisc), pad(held_gae_a),
                  pad(held_ret_a)])])
    included = np.stack([
        np.stack([pad_mask(np.ones(n_train)), pad_mask(np.ones(n_train)), pad_mask([]), pad_mask([]),
                  pad_mask(train_authors_mask), pad_mask(train_authors_mask)]),
        np.stack([pad_mask(np.ones(n_held)), pad_mask(returns_mask), pad_mask(true_mask),
                  pad_mask(complete_mask), pad_mask(held_mask_a), pad_mask(held_mask_a)])])
    # V_old of the authors' clipped GAE error: the fit batch's pre-update values (train);
    # on held-out data the checkpoint's net is both V and V_old.
    old_values = np.stack([pad(train_old), pad(held_pred)])
    clip = float(hp["clip_epsilon"]) if hp.get("clip_value_loss") else None
    mre = np.array([[authors_mre(target, prediction[s], target_value[s, k], included[s, k], old_values[s], clip)
                     if target.endswith("_authors") else
                     _mre_masked(prediction[s], target_value[s, k], included[s, k])
                     for k, target in enumerate(TARGETS)] for s in range(len(SPLITS))])
    on_true = np.array([authors_mre(target, held_pred, t, true_mask, held_pred, clip) if target.endswith("_authors")
                        else _mre_masked(held_pred, t, true_mask)
                        for target, t in zip(TARGETS, (held_gae, held_ret, held_true, held_undisc, held_gae_a,
                                                       held_ret_a))])
    return_noise = _mre_masked(held_ret, held_true, true_mask)

    sample_units = "scaled return" if hp.get("normalize_rewards") else "return"
    ds = xr.Dataset(
        {
            "mre": variable(("split", "target"), mre, "mean relative error of the value net over "
                            "included samples (formula per target: mre_formula)", "1"),
            "included_count": variable(("split", "target"), included.sum(-1).astype(np.int64),
                                       "samples entering the MRE", "1"),
            "prediction": variable(("split", "sample"), prediction,
                                   "value-net prediction V(s) of the checkpoint", sample_units),
            "target_value": variable(("split", "target", "sample"), target_value,
                                     "regression target y (gae: V_old+A_GAE; returns: discounted "
                                     "return; true_value: mean of restored rollouts; "
                                     "undiscounted_returns: reward-to-go, gamma=1)", sample_units),
            "included": variable(("split", "target", "sample"), included,
                                 "1 if the sample enters the MRE of this split and target", "1"),
            "bootstrap_weight": variable(("sample",), pad(held_weight),
                                         "held-out: weight gamma^k of the value-net bootstrap "
                                         "inside the discounted return (0 if the episode terminates)", "1"),
            "episode_step": variable(("sample",), pad(held_step),
                                     "held-out: steps since the episode's reset", "steps"),
            "true_value_standard_error": variable(("sample",), pad(held_true_se),
                                                  "held-out: standard error of the restored-rollout "
                                                  "mean (true_value target)", sample_units),
            "mre_on_true_value_states": variable(("target",), on_true,
                                                 "held-out MRE of V against each target on the "
                                                 "states that have a true_value", "1"),
            "return_noise_mre": variable((), return_noise,
                                         "MRE of the single-rollout return against the true value "
                                         "on the same states (the returns target's own noise)", "1"),
            "heldout_mean_episode_return": variable(
                (), float(np.mean(episode_returns)) if episode_returns else math.nan,
                "mean undiscounted raw return of held-out episodes completed", "reward"),
            "true_value_sample": variable(("true_value_state",), true_sample,
                                          "held-out sample index of the restored state (-1: unused slot)", "1"),
            "true_value_observation": variable(("true_value_state", "observation_component"), true_obs,
                                               "normalized observation at the restored state (as the "
                                               "policy saw it; NaN: unused slot)", "1"),
            "heldout_episodes": variable((), len(episode_returns),
                                         "held-out episodes completed", "1"),
        },
        coords={
            "split": ("split", SPLITS, {"long_name": "data the MRE is measured on (train: the "
                                        "checkpoint's fit batch; heldout: fresh rollouts)", "units": "1"}),
            "target": ("target", TARGETS, {"long_name": "regression target", "units": "1"}),
            "mre_formula": ("target", [MRE_FORMULAS[t] for t in TARGETS],
                            {"long_name": "how mre is computed for this target", "units": "1"}),
            "sample": ("sample", np.arange(n), {"long_name": "sample index within the split "
                                                 "(NaN-padded)", "units": "1"}),
        })
    ds = add_run_coords(ds, checkpoint.env_id, checkpoint.label, checkpoint.seed, checkpoint.iteration,
                        source=checkpoint.source, env_steps=checkpoint.env_steps)
    ds.attrs = provenance("values", settings, checkpoint.sha256, probe_seed=int(seed),
                          gamma=gamma, gae_lambda=lam,
                          true_value_available=int(restore),
                          true_value_restore="full simulator state, previous step replayed; the first "
                                             "observation of every restored rollout equals the recorded one",
                          returns_treatment="returns/true_value MRE exclude samples whose discounted "
                                            "return puts weight > max_bootstrap_weight on a value-net "
                                            "bootstrap (cut trajectories)")
    return ds


# ---------------------------------------------------------------------------- CLI
def _cmd(args) -> None:
    from ..datasets import write_netcdf

    settings = check_settings(args.settings)
    checkpoint = load_checked_checkpoint(args.checkpoint)
    ds = measure_values(checkpoint, settings, seed=args.seed, workers=args.workers,
                        progress=not args.no_progress)
    write_netcdf(ds, args.out)
    mre = ds["mre"].isel(env=0, algo=0, seed=0, iteration=0)
    print(f"wrote {args.out}: held-out MRE gae={float(mre.sel(split='heldout', target='gae')):.4g} "
          f"returns={float(mre.sel(split='heldout', target='returns')):.4g}")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("values", help="value-net MRE vs GAE targets / returns (§2.2, Fig. 3, 11, 12)",
                                   description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.set_defaults(func=_cmd)
