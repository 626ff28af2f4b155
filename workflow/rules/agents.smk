"""Imported agents (config ``agents``): their checks, their probes, how each is imported.

An agent trained elsewhere (SB3 / RL Zoo, CleanRL) is one checkpoint, or a series of them
(results/runs/{env}/{name}/seed0/checkpoints/iterNNNN.pt at each file's iteration, written
by rule ``import_agent`` in train.smk), probed like a run's.

Included by the Snakefile and run when Snakemake parses the workflow, before any job (with
the SLURM executor, in every job too), so it imports neither torch nor gymnasium's
environments nor matplotlib.
"""
import os


def validate_agents(config):
    """config ``agents``: env ids, files, and what each source can be probed with."""
    for name, agent in config["agents"].items():
        message = cached("env-id", {"env": agent["env"], "gymnasium": _distribution_version("gymnasium")},
                         ("pgprobe.envs",), lambda env=agent["env"]: _env_id_problem(env))
        if message:
            fail(f"agents.{name}.env", message)
        for key in ("path", "vecnormalize", "obs_stats"):   # a series: checked by agent_checkpoints
            if key in agent and isinstance(agent[key], str) and "{steps}" not in agent[key] \
                    and not os.path.isfile(agent[key]):
                fail(f"agents.{name}.{key}", f"{agent[key]!r} is not a file")
        if agent["source"] == "cleanrl":
            if "vecnormalize" in agent:
                fail(f"agents.{name}.vecnormalize", "is for sb3 agents; a cleanrl agent takes obs_stats")
            unknown = sorted({"steps", "landscapes"} & set(agent.get("probes", PROBES)))
            if unknown:
                fail(f"agents.{name}.probes", f"{', '.join(unknown)} need the agent's update rule, which is "
                     "unknown for CleanRL agents: list only gradients, values, baselines")
        if agent["source"] == "sb3" and "obs_stats" in agent:
            fail(f"agents.{name}.obs_stats", "is for cleanrl agents; an sb3 agent takes vecnormalize")
        if agent["source"] == "sb3" and "num_steps" in agent:
            fail(f"agents.{name}.num_steps", "is for cleanrl agents; an sb3 agent's batch is read from its zip")


def setup_agents(config):
    """The plan's imported agents: AGENTS (config ``agents``), AGENT_PROBES {name: probes} and
    AGENT_CKPTS {name: {iteration: files and step count}}."""
    global AGENTS, AGENT_PROBES, AGENT_CKPTS
    AGENTS = config["agents"]
    AGENT_PROBES = {name: list(agent.get("probes", PROBES)) for name, agent in AGENTS.items()}
    AGENT_CKPTS = {name: agent_checkpoints(name, agent) for name, agent in AGENTS.items()}


def agent_probed() -> list:
    """(env, agent name, seed 0, probe, iteration) for each probe of each imported checkpoint."""
    return [(agent["env"], name, 0, p, i) for name, agent in AGENTS.items() for p in AGENT_PROBES[name]
            for i in AGENT_CKPTS[name]]


def agent_imports() -> list:
    """(env, agent name, seed 0, iteration) of every imported checkpoint."""
    return [(agent["env"], name, 0, i) for name, agent in AGENTS.items() for i in AGENT_CKPTS[name]]


def agent_checkpoints(name, agent) -> dict:
    """{iteration: {"files": {"model", "vecnormalize" | "obs_stats"}, "steps": S or None}} of
    one config agent.  One file: iteration 0 (its import records the updates it made).  A
    series (``path`` a {steps} pattern or a list; its pair likewise): one checkpoint per file
    at ⌈S/B⌉ − 1 (SB3) / ⌊S/B⌋ (CleanRL), resolved by pgprobe.importers.series (cached
    under the matched files' sizes and mtimes), those of ``steps`` only when given; a broken
    series stops parsing with one line."""
    import glob

    pair = "vecnormalize" if agent["source"] == "sb3" else "obs_stats"
    series = lambda value: isinstance(value, list) or "{steps}" in str(value)  # noqa: E731
    if not series(agent["path"]):
        if "steps" in agent:
            fail(f"agents.{name}.steps", "selects checkpoints of a series: expected path to be a "
                 "{steps} pattern or a list")
        if pair in agent and series(agent[pair]):
            fail(f"agents.{name}.{pair}", "gives a series for one path file: expected one file")
        files = {"model": agent["path"], **({pair: agent[pair]} if pair in agent else {})}
        return {0: {"files": files, "steps": None}}
    listed = sorted(f for key in ("path", pair) if key in agent for value in
                    (agent[key] if isinstance(agent[key], list) else [agent[key]])
                    for f in glob.glob(glob.escape(value).replace(glob.escape("{steps}"), "*")))
    stats = [[f, os.stat(f).st_size, os.stat(f).st_mtime_ns] for f in listed]

    def compute():
        from pgprobe.errors import PgprobeError
        from pgprobe.importers.series import resolve_series

        try:
            members = resolve_series(agent["source"], agent["path"], {pair: agent.get(pair)},
                                     num_steps=agent.get("num_steps", 2048), where="path")
        except PgprobeError as exc:
            return {"error": str(exc)}
        return {"members": [[m.iteration, m.steps, {"model": m.path, **m.pairs}] for m in members]}

    resolved = cached("agent-series", {"agent": agent, "files": stats, "helper": "agent_checkpoints 1"},
                      ("pgprobe.importers.series",), compute)
    if "error" in resolved:
        fail(f"agents.{name}", resolved["error"])
    chosen = agent.get("steps", [steps for _, steps, _ in resolved["members"]])
    missing = sorted(set(chosen) - {steps for _, steps, _ in resolved["members"]})
    if missing:
        fail(f"agents.{name}.steps", f"{missing[0]} is not a step count of the series "
             f"({', '.join(str(steps) for _, steps, _ in resolved['members'])})")
    return {int(i): {"files": files, "steps": int(steps)} for i, steps, files in resolved["members"]
            if steps in chosen}


def agent_probe_paths(probe) -> list:
    """The probe files of the imported agents that run ``probe`` (every checkpoint of a series)."""
    return [probe_path(probe, agent["env"], name, 0, i) for name, agent in AGENTS.items()
            if probe in AGENT_PROBES[name] for i in AGENT_CKPTS[name]]


def agent_inputs(wildcards) -> dict:
    """The files of one imported checkpoint (a changed file reruns its import)."""
    checkpoints = AGENT_CKPTS[wildcards.agent]
    if int(wildcards.iteration) not in checkpoints:
        raise ValueError(f"agent {wildcards.agent} has no checkpoint at iteration {wildcards.iteration}: "
                         f"its iterations are {', '.join(map(str, checkpoints))}")
    return checkpoints[int(wildcards.iteration)]["files"]


def agent_import_command(wildcards) -> str:
    """``pgprobe import`` arguments of one imported checkpoint (shell-quoted)."""
    import shlex

    agent = AGENTS[wildcards.agent]
    entry = AGENT_CKPTS[wildcards.agent][int(wildcards.iteration)]
    files = entry["files"]
    words = [agent["source"], "--model", files["model"], "--env", agent["env"], "--name", wildcards.agent]
    if entry["steps"] is not None:
        words += ["--steps", entry["steps"]]
    if agent["source"] == "sb3" and "vecnormalize" in files:
        words += ["--vecnormalize", files["vecnormalize"]]
    if agent["source"] == "cleanrl":
        words += ["--obs-stats", files["obs_stats"]] if "obs_stats" in files else ["--raw-observations"]
        if "num_steps" in agent:
            words += ["--num-steps", agent["num_steps"]]
    return " ".join(shlex.quote(str(w)) for w in words)
