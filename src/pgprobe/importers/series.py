"""A checkpoint series: the saved checkpoints of one training run, imported as one run.

A series is given as a *pattern* (the file path with ``{steps}`` where the environment step
count stands, e.g. SB3's ``CheckpointCallback``: ``logs/rl_model_{steps}_steps.zip`` with
``logs/rl_model_vecnormalize_{steps}_steps.pkl``) or as a *list* of files (the step count is
then the last number in each file's name).  Each model file pairs with the statistics file
(VecNormalize / obs_stats) of the same step count.

Each file becomes the checkpoint of one run at its iteration, the number of updates its
parameters went through, with the step count S kept as ``env_steps``; B is the agent's
batch (SB3: ``n_steps`` · ``n_envs``; CleanRL: ``num_steps``):

* SB3: iteration = ⌈S / B⌉ − 1.  ``CheckpointCallback`` (and pgprobe's own callback) save
  during the environment step that brings ``num_timesteps`` to S, before the update of the
  rollout that step belongs to; checked against the zip's ``num_timesteps`` (= S) and, for
  PPO without ``target_kl``, its ``_n_updates`` (= iteration · ``n_epochs``).
* CleanRL: iteration = ⌊S / B⌋ (a file saved after the update of iteration S / B).

Refused, each with one line: no file matching the pattern; two files of one step count; a
gap (the step counts must be equally spaced, s_k = s_0 + k·d, as a save frequency gives them:
a missing file is named); two files of one iteration (spacing below the batch); a model file
without its statistics pair; mixed architectures or batch sizes (a series is one run);
a step count that disagrees with the zip's ``num_timesteps``.  A list is held to the same
spacing (it describes one run's saves); to probe some checkpoints only, the workflow's
``agents.NAME.steps`` selects them, the whole series still checked.  Step counts that are
not multiples of the batch are accepted (``CheckpointCallback``'s ``save_freq`` rarely is
one): such a file has the parameters of its iteration and the VecNormalize statistics of
step S.

This module reads no tensors for SB3 (the zip's ``data`` JSON only) and imports torch only
for CleanRL files, so the workflow can resolve a series when it parses the config.
"""
from __future__ import annotations

import glob
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PgprobeError

STEPS = "{steps}"
GLOB_CHARACTERS = set("*?[]")
# What each source pairs its model files with (the keys of config ``agents``).
PAIR_KEYS = {"sb3": ("vecnormalize",), "cleanrl": ("obs_stats",)}
PAIR_NAMES = {"vecnormalize": "VecNormalize statistics", "obs_stats": "observation statistics"}


@dataclass
class Member:
    """One checkpoint of a series: its file, paired files, step count and iteration."""
    steps: int
    path: str
    pairs: dict = field(default_factory=dict)
    iteration: int = -1


def is_series(path) -> bool:
    """Whether a config/CLI ``path`` value describes a series (a list, or a ``{steps}`` pattern)."""
    return isinstance(path, (list, tuple)) or (isinstance(path, str) and STEPS in path)


def steps_in_name(path: str, where: str) -> int:
    """The step count of a listed file: the last number in its file name."""
    numbers = re.findall(r"\d+", Path(path).name)
    if not numbers:
        raise PgprobeError(f"{where}: file name {Path(path).name!r} holds no step count: expected the "
                           "steps in the name (e.g. rl_model_100000_steps.zip)")
    return int(numbers[-1])


def _pattern_files(pattern: str, where: str) -> dict[int, str]:
    """{step count: file} of the files matching ``pattern`` (``{steps}`` matches digits)."""
    if pattern.count(STEPS) != 1:
        raise PgprobeError(f"{where}: pattern {pattern!r} has {pattern.count(STEPS)} {STEPS}: expected "
                           "exactly one, where the step count stands")
    head, tail = pattern.split(STEPS)
    if GLOB_CHARACTERS & set(head + tail):
        raise PgprobeError(f"{where}: pattern {pattern!r} has glob characters: expected literal text and "
                           f"one {STEPS} where the step count stands (e.g. rl_model_{STEPS}_steps.zip)")
    regex = re.compile(re.escape(head) + r"(\d+)" + re.escape(tail) + r"\Z")
    found: dict[int, str] = {}
    for path in sorted(glob.glob(glob.escape(head) + "*" + glob.escape(tail))):
        match = regex.match(path)
        if not match:
            continue
        steps = int(match.group(1))
        if steps in found:
            raise PgprobeError(f"{where}: {found[steps]!r} and {path!r} both hold step {steps}: "
                               "expected one file per step count")
        found[steps] = path
    return found


def _listed_files(paths, where: str) -> dict[int, str]:
    found: dict[int, str] = {}
    for path in paths:
        if not isinstance(path, str):
            raise PgprobeError(f"{where}: {path!r} is not a file name")
        steps = steps_in_name(path, where)
        if steps in found:
            raise PgprobeError(f"{where}: {found[steps]!r} and {path!r} both hold step {steps}: "
                               "expected one file per step count")
        found[steps] = path
    return found


def series_files(value, where: str) -> dict[int, str]:
    """{step count: file} of a pattern or a list (files checked to exist)."""
    found = _pattern_files(value, where) if isinstance(value, str) else _listed_files(value, where)
    for path in found.values():
        if not Path(path).is_file():
            raise PgprobeError(f"{where}: {path!r} is not a file")
    return found


def check_spacing(steps: list[int], where: str) -> None:
    """Equally spaced step counts (s_k = s_0 + k·d); a gap names the first missing step."""
    steps = sorted(steps)
    if len(steps) < 3:
        return
    spacing = min(b - a for a, b in zip(steps, steps[1:]))
    for a, b in zip(steps, steps[1:]):
        if b - a != spacing:
            missing = a + spacing
            raise PgprobeError(f"{where}: gap in steps: {a} is followed by {b}, but the series is saved "
                               f"every {spacing} steps ({', '.join(map(str, steps[:4]))}"
                               f"{', ...' if len(steps) > 4 else ''}): the checkpoint of step {missing} is missing")


# ----------------------------------------------------------------------------- per source
def sb3_summary(path: str, where: str) -> dict:
    """What a series must share, from a SB3 zip's ``data`` JSON (no tensors, no unpickling):
    the architecture (policy_kwargs, spaces), the batch, and the counters."""
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data").decode("utf-8"))
    except (OSError, KeyError, zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PgprobeError(f"{where}: {path!r} is not an SB3 model zip with a JSON 'data' member: "
                           f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise PgprobeError(f"{where}: {path!r}: member 'data' is not a JSON object")
    kwargs = data.get("policy_kwargs") or {}
    if isinstance(kwargs, dict) and ":serialized:" in kwargs:
        kwargs = {k: v for k, v in kwargs.items() if k not in (":type:", ":serialized:")}
    space = lambda key: (data.get(key) or {}).get("_shape") if isinstance(data.get(key), dict) else None  # noqa: E731
    architecture = {"net_arch": kwargs.get("net_arch") if isinstance(kwargs, dict) else None,
                    "activation_fn": kwargs.get("activation_fn") if isinstance(kwargs, dict) else None,
                    "observation shape": space("observation_space"), "action shape": space("action_space")}
    try:
        batch = int(data["n_steps"]) * int(data["n_envs"])
    except (KeyError, TypeError, ValueError):
        raise PgprobeError(f"{where}: {path!r} has no n_steps / n_envs: expected an on-policy SB3 model "
                           "(PPO or A2C)") from None
    return {"architecture": architecture, "batch": batch, "num_timesteps": data.get("num_timesteps"),
            "n_updates": data.get("_n_updates"), "n_epochs": data.get("n_epochs"),
            "target_kl": data.get("target_kl")}


def cleanrl_summary(path: str, where: str, num_steps: int) -> dict:
    """The layer shapes of a CleanRL state dict (read with weights_only) and the batch."""
    from ..checkpoint import safe_torch_load

    state = safe_torch_load(path, f"{where}: {path!r}")
    if not isinstance(state, dict):
        raise PgprobeError(f"{where}: {path!r} is not a state dict")
    shapes = {key: list(getattr(value, "shape", ())) for key, value in state.items()}
    return {"architecture": {"layers": shapes}, "batch": int(num_steps)}


def sb3_iteration(steps: int, summary: dict, path: str, where: str) -> int:
    """⌈S / B⌉ − 1, checked against the zip's own counters."""
    batch = summary["batch"]
    if steps < 1:
        raise PgprobeError(f"{where}: {path!r} is at step {steps}: expected a positive step count")
    iteration = (steps - 1) // batch
    if isinstance(summary["num_timesteps"], int) and summary["num_timesteps"] != steps:
        raise PgprobeError(f"{where}: {path!r} is named for step {steps} but the model's num_timesteps is "
                           f"{summary['num_timesteps']}: expected the step count it was saved at")
    n_updates, n_epochs = summary["n_updates"], summary["n_epochs"]
    if summary["target_kl"] is None and isinstance(n_updates, int) and isinstance(n_epochs, int) \
            and n_updates != iteration * n_epochs:
        raise PgprobeError(f"{where}: {path!r} at step {steps} has made {n_updates} epochs of updates, "
                           f"not {iteration} x {n_epochs} (batch {batch}): expected a checkpoint saved "
                           "during a rollout, as CheckpointCallback saves them")
    return iteration


def resolve_series(source: str, path, pairs: dict | None = None, num_steps: int = 2048,
                   where: str = "series") -> list[Member]:
    """The members of a series, sorted by step count, with their pairs and iterations.

    ``path``: a ``{steps}`` pattern or a list of files; ``pairs``: {"vecnormalize": pattern
    or list} (SB3) / {"obs_stats": ...} (CleanRL), each optional; ``num_steps``: CleanRL's
    batch.  One-line PgprobeError for a broken series (see the module docstring)."""
    if source not in PAIR_KEYS:
        raise PgprobeError(f"{where}: source {source!r}: expected sb3 or cleanrl")
    models = series_files(path, where)
    if not models:
        raise PgprobeError(f"{where}: no file matches {path!r}")
    members = [Member(steps, file) for steps, file in sorted(models.items())]
    for key, value in (pairs or {}).items():
        if value is None:
            continue
        if key not in PAIR_KEYS[source]:
            raise PgprobeError(f"{where}: {key} is not for {source} agents (expected "
                               f"{', '.join(PAIR_KEYS[source])})")
        if not is_series(value):
            raise PgprobeError(f"{where}: {key} {value!r} is one file for a series: expected one per "
                               f"checkpoint, a {STEPS} pattern or a list paired by step count")
        paired = series_files(value, f"{where} {key}")
        for member in members:
            if member.steps not in paired:
                raise PgprobeError(f"{where}: {member.path!r} (step {member.steps}) has no {PAIR_NAMES[key]} "
                                   f"pair: no {key} file of step {member.steps}")
            member.pairs[key] = paired[member.steps]
    check_spacing([m.steps for m in members], where)
    first = None
    by_iteration: dict[int, Member] = {}
    for member in members:
        summary = (sb3_summary(member.path, where) if source == "sb3"
                   else cleanrl_summary(member.path, where, num_steps))
        if first is None:
            first = (member, summary)
        else:
            for key in ("architecture", "batch"):
                if summary[key] != first[1][key]:
                    mine, theirs = summary[key], first[1][key]
                    if key == "architecture":
                        differs = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
                        mine, theirs = ({k: d.get(k) for k in differs} for d in (mine, theirs))
                    raise PgprobeError(f"{where}: mixed {'architectures' if key == 'architecture' else 'batch sizes'}: "
                                       f"{member.path!r} has {key} {mine} but {first[0].path!r} has {theirs}: "
                                       "expected one run's checkpoints")
        member.iteration = (sb3_iteration(member.steps, summary, member.path, where) if source == "sb3"
                            else member.steps // summary["batch"])
        if member.iteration in by_iteration:
            raise PgprobeError(f"{where}: steps {by_iteration[member.iteration].steps} and {member.steps} are both "
                               f"iteration {member.iteration} (batch {summary['batch']}): expected at most one "
                               "checkpoint per update")
        by_iteration[member.iteration] = member
    return members
