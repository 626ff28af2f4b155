"""Imported agents (config ``agents``): their checks, their probes, how each is imported.

An agent trained elsewhere (SB3 / RL Zoo, CleanRL) is one checkpoint
(results/runs/{env}/{name}/seed0/checkpoints/iter0000.pt, written by rule ``import_agent``
in train.smk) probed like a run's.

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
        for key in ("path", "vecnormalize", "obs_stats"):
            if key in agent and not os.path.isfile(agent[key]):
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


def setup_agents(config):
    """The plan's imported agents: AGENTS (config ``agents``) and AGENT_PROBES {name: probes}."""
    global AGENTS, AGENT_PROBES
    AGENTS = config["agents"]
    AGENT_PROBES = {name: list(agent.get("probes", PROBES)) for name, agent in AGENTS.items()}


def agent_probed() -> list:
    """(env, agent name, seed 0, probe, iteration 0) for each probe of each imported agent."""
    return [(agent["env"], name, 0, p, 0) for name, agent in AGENTS.items() for p in AGENT_PROBES[name]]


def agent_probe_paths(probe) -> list:
    """The probe files of the imported agents that run ``probe`` (one checkpoint each)."""
    return [probe_path(probe, agent["env"], name, 0, 0) for name, agent in AGENTS.items()
            if probe in AGENT_PROBES[name]]


def agent_inputs(wildcards) -> dict:
    agent = AGENTS[wildcards.agent]
    files = {"model": agent["path"]}
    for key in ("vecnormalize", "obs_stats"):
        if key in agent:
            files[key] = agent[key]
    return files


def agent_import_command(wildcards) -> str:
    """``pgprobe import`` arguments of one agent (shell-quoted)."""
    import shlex

    agent = AGENTS[wildcards.agent]
    words = [agent["source"], "--model", agent["path"], "--env", agent["env"], "--name", wildcards.agent]
    if agent["source"] == "sb3" and "vecnormalize" in agent:
        words += ["--vecnormalize", agent["vecnormalize"]]
    if agent["source"] == "cleanrl":
        words += ["--obs-stats", agent["obs_stats"]] if "obs_stats" in agent else ["--raw-observations"]
    return " ".join(shlex.quote(str(w)) for w in words)
