"""CPU time, wall time and peak memory per kind of job of a finished study, from the
Snakemake benchmark files under STUDY_DIR/benchmarks/ (one TSV per job).

    python docs/measurements/claims_study/job_costs.py STUDY_DIR > job_costs.md
"""
from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path


def kind(relative: Path) -> str:
    parts = relative.parts
    if parts[0] == "probes":
        suffix = relative.name.split(".")[1] if relative.name.count(".") > 1 else ""
        shard = "shard" if suffix.startswith("shard") else suffix
        return f"probe {parts[1]}" + (f" {shard}" if shard else "")
    if parts[0] in ("collect", "figures"):
        return parts[0]
    return parts[0].replace(".tsv", "")


def main() -> None:
    root = Path(sys.argv[1]) / "benchmarks"
    rows = defaultdict(lambda: {"jobs": 0, "cpu": 0.0, "wall": 0.0, "rss": 0.0, "cpu_max": 0.0})
    for path in sorted(root.rglob("*.tsv")):
        record = list(csv.DictReader(path.open(), delimiter="\t"))[-1]
        entry = rows[kind(path.relative_to(root))]
        entry["jobs"] += 1
        entry["cpu"] += float(record["cpu_time"])
        entry["wall"] += float(record["s"])
        entry["rss"] = max(entry["rss"], float(record["max_rss"]))
        entry["cpu_max"] = max(entry["cpu_max"], float(record["cpu_time"]))
    print("| job | jobs | CPU-s total | CPU-s max | wall-s total | peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, e in sorted(rows.items(), key=lambda kv: -kv[1]["cpu"]):
        print(f"| {name} | {e['jobs']} | {e['cpu']:.0f} | {e['cpu_max']:.0f} | {e['wall']:.0f} | {e['rss']:.0f} |")
    total_cpu = sum(e["cpu"] for e in rows.values())
    print(f"| **total** | {sum(e['jobs'] for e in rows.values())} | {total_cpu:.0f} ({total_cpu / 3600:.2f} CPU-h) "
          f"| | {sum(e['wall'] for e in rows.values()):.0f} | |")


if __name__ == "__main__":
    main()
