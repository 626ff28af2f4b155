"""Throughput of the Humanoid slice's big references against bare ``env.step``, in one run.

    python docs/measurements/humanoid/throughput.py STUDY_DIR [--bare-steps 50000]

For every reference shard of the slice — the workflow's (Snakemake benchmark files under
STUDY_DIR/benchmarks/probes/{gradients,baselines}/, CPU seconds in ``cpu_time``) and the
paper-size ones of ``paper_references.sh`` (``/usr/bin/time -v`` logs next to the shards,
user + system seconds) — the state-action pairs it sampled per CPU-second, then bare
``env.step`` on Humanoid-v5 (random actions, resets on termination) measured by this
process on the same machine, and the ratio

    ratio = (reference pairs / shard CPU-s) / (bare env.step steps / CPU-s).

A shard's pairs are read from its NetCDF (a gradients shard's ``count``, a baselines
shard's ``reference_sample`` dimension); its CPU time includes everything the shard does
(policy and value forward passes, per-pair gradients or returns), so the ratio is the
fraction of bare simulator speed a reference achieves per core.
"""
from __future__ import annotations

import argparse
import csv
import re
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr

REPOSITORY = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPOSITORY / "bench"))


def shard_pairs(path: Path) -> int:
    """State-action pairs a shard sampled: a gradients shard's ``count`` (pairs summed), a
    baselines shard's ``reference_sample`` dimension."""
    with xr.open_dataset(path) as shard:
        if "count" in shard:
            return int(shard["count"].values)
        if "reference_sample" in shard.sizes:
            return int(shard.sizes["reference_sample"])
    raise SystemExit(f"{path}: neither a gradients nor a baselines reference shard")


def time_log_cpu(path: Path) -> tuple[float, float, float]:
    """(CPU seconds = user + system, wall seconds, max RSS in MB) from ``/usr/bin/time -v``."""
    text = path.read_text(errors="replace")

    def field(label: str) -> str:
        match = re.search(rf"{re.escape(label)}: (.+)", text)
        if not match:
            raise SystemExit(f"{path}: no {label!r} line (is it a /usr/bin/time -v log?)")
        return match.group(1).strip()

    wall = 0.0
    for part in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":"):
        wall = wall * 60 + float(part)
    cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
    return cpu, wall, float(field("Maximum resident set size (kbytes)")) / 1024


def benchmark_cpu(path: Path) -> tuple[float, float, float]:
    record = list(csv.DictReader(path.open(), delimiter="\t"))[-1]
    return float(record["cpu_time"]), float(record["s"]), float(record["max_rss"])


def rows(study: Path):
    """(label, pairs, cpu_s, wall_s, rss_mb) for every finished reference shard."""
    for probe in ("gradients", "baselines"):
        for bench in sorted((study / "benchmarks" / "probes" / probe).rglob("*.shard*.tsv")):
            relative = bench.relative_to(study / "benchmarks" / "probes" / probe)
            shard = study / "results" / "probes" / probe / relative.with_suffix(".nc")
            if shard.exists():
                yield (f"workflow {probe} {relative.with_suffix('')}", shard_pairs(shard),
                       *benchmark_cpu(bench))
        for log in sorted((study / "results" / "paper_references" / probe).rglob("*.shard*.log.time")):
            shard = log.with_name(log.name.replace(".log.time", ".nc"))
            if shard.exists():
                label = log.relative_to(study / "results" / "paper_references" / probe)
                yield (f"paper-size {probe} {str(label).replace('.log.time', '')}", shard_pairs(shard),
                       *time_log_cpu(log))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--bare-steps", type=int, default=50000)
    args = parser.parse_args()
    from sampler_throughput import bare_steps_per_second

    found = list(rows(args.study))
    if not found:
        raise SystemExit(f"{args.study}: no finished reference shards")
    _, bare_cpu = bare_steps_per_second("Humanoid-v5", args.bare_steps)
    print(f"bare Humanoid-v5 env.step: {bare_cpu:.0f} steps per CPU-second "
          f"({args.bare_steps} random-action steps, this process, {time.strftime('%Y-%m-%d %H:%M')})\n")
    groups: dict[str, list] = {}
    for label, pairs, cpu, wall, rss in found:
        source, probe, path = label.split(maxsplit=2)     # path: ENV/ALGO/seedS/iterNNNN.shardK
        kind = f"{source} {probe} {path.split('.shard')[0]}"
        groups.setdefault(kind, []).append((pairs, cpu, wall, rss))
    print("| references | shards | pairs | CPU-s | pairs / CPU-s | ratio to bare env.step | "
          "wall s per shard | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for kind, entries in groups.items():
        pairs, cpu, wall, rss = (np.array(column, float) for column in zip(*entries))
        rate = pairs.sum() / cpu.sum()
        print(f"| {kind} | {len(entries)} | {pairs.sum():.3g} | {cpu.sum():.0f} | {rate:.0f} | "
              f"{rate / bare_cpu:.2f} | {np.median(wall):.0f} | {rss.max():.0f} |")


if __name__ == "__main__":
    main()
