"""How close are the gradients probe's "true" gradients to the true gradient?  From shards.

    python docs/measurements/humanoid/reference_quality.py STUDY_DIR

A reference ĝ_N averages N state-action pairs: ĝ_N = g + ε_N with E ε_N = 0 and
E|ε_N|² = σ²/N (streams independent).  For two disjoint halves of N/2 pairs each, in high
dimension (ε's cross terms vanish),

    c_half = cos(ĝ_A, ĝ_B) ≈ |g|² / (|g|² + 2σ²/N)   ⇒   ρ := σ²/|g|² ≈ (N/2)(1/c_half − 1),

and the reference's cosine with the true gradient g (what Figure 2's y-axis assumes is 1) is

    cos(ĝ_N, g) ≈ 1 / sqrt(1 + ρ/N)                                               (*)

(0 when c_half ≤ 0: the halves share no measurable direction).  1/c_half − 1 is a ratio
estimate, biased upward when c_half is small; the implied cosine is a point estimate.

An estimate's cosine with the reference is ≈ its cosine with g times cos(ĝ_N, g) (independent
errors, high dimension), so the table also divides Figure 2's mean cosine at 2048 pairs by the
implied number: the estimates' cosine with the true gradient.

For every gathered reference of STUDY_DIR — the workflow's (results/probes/gradients/
.../iterNNNN.shard*.nc) and the paper-size one of paper_references.sh
(results/paper_references/gradients/...) — this prints c_half (shards split into two
contiguous halves) and the implied cos(ĝ_N, g).  Where both exist for one checkpoint it
also checks (*) out of sample: the workflow's 2M-pair reference uses streams 0…1023 of the
same seed keys as the 10M-pair one (identical samples), so it is compared with the 10M
reference's shards that share no stream with it; (*) predicts that cosine as
1/sqrt((1 + ρ/N₁)(1 + ρ/N₂)).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import xarray as xr

from pgprobe.estimators import GradientSums


def load_shards(paths: list[Path]) -> list[tuple[GradientSums, int]]:
    """(sums, trajectory_count) per shard, in shard order."""
    out = []
    for path in sorted(paths, key=lambda p: int(p.name.split(".shard")[1].split(".")[0])):
        with xr.open_dataset(path) as ds:
            out.append((GradientSums(ds["sum_grad_adv"].values.astype(np.float64),
                                     ds["sum_grad"].values.astype(np.float64), float(ds["sum_adv"]),
                                     float(ds["sum_adv_sq"]), int(ds["count"])), int(ds.attrs["shard_count"])))
    return out


def total(shards) -> GradientSums:
    result = shards[0]
    for part in shards[1:]:
        result = result + part
    return result


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def split_half(shards: list[GradientSums]) -> tuple[float, float, float]:
    """(N, c_half, implied cos(ĝ_N, g)) for the reference summed from ``shards``."""
    half = len(shards) // 2
    first, second = total(shards[:half]), total(shards[half:])
    count = first.count + second.count
    c_half = cosine(first.gradient(), second.gradient())
    if c_half <= 0:                   # halves uncorrelated: no signal measurable at N/2
        return count, c_half, 0.0
    noise_ratio = (count / 2) * (1 / c_half - 1)
    return count, c_half, 1 / np.sqrt(1 + noise_ratio / count)


def figure2_cosine(gathered: Path) -> float:
    """Mean cosine of the 2048-pair estimates with this reference (the gathered dataset's
    ``mean_reference_cosine`` at the sample count nearest 2048), NaN if not gathered yet."""
    if not gathered.exists():
        return float("nan")
    with xr.open_dataset(gathered) as ds:
        counts = ds["sample_count"].values
        return float(ds["mean_reference_cosine"].sel(sample_count=counts[np.argmin(abs(counts - 2048))]).squeeze())


def references(study: Path) -> dict[tuple[str, str], list[Path]]:
    """{(label, checkpoint key): shard paths}."""
    found: dict[tuple[str, str], list[Path]] = {}
    for label, root in (("workflow", study / "results" / "probes" / "gradients"),
                        ("paper-size", study / "results" / "paper_references" / "gradients")):
        for path in root.rglob("iter*.shard*.nc"):
            key = str(path.relative_to(root).parent / path.name.split(".")[0])
            found.setdefault((label, key), []).append(path)
    return found


def main() -> None:
    study = Path(sys.argv[1])
    found = references(study)
    if not found:
        raise SystemExit(f"{study}: no gradient reference shards")
    print("| reference | checkpoint | shards | pairs N | cos of halves | implied cos(ĝ_N, g) | "
          "Fig. 2 cosine @2048 | ÷ implied |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    ratios = {}
    for (label, key), paths in sorted(found.items()):
        loaded = load_shards(paths)
        if len(loaded) != loaded[0][1]:
            print(f"| {label} | {key} | {len(loaded)} of {loaded[0][1]} | – | – | – |")
            continue
        shards = [sums for sums, _ in loaded]
        count, c_half, implied = split_half(shards)
        ratios[(label, key)] = (shards, count, (count / 2) * (1 / c_half - 1) if c_half > 0 else np.inf)
        at_2048 = figure2_cosine(paths[0].with_name(paths[0].name.split(".")[0] + ".nc"))
        print(f"| {label} | {key} | {len(shards)} | {count:.3g} | {c_half:.3f} | {implied:.3f} | "
              f"{at_2048:.3f} | {at_2048 / implied if implied > 0 else float('nan'):.3f} |")
    for (label, key), (big_shards, big_count, big_ratio) in ratios.items():
        if label != "paper-size" or ("workflow", key) not in ratios:
            continue
        small_shards, small_count, small_ratio = ratios[("workflow", key)]
        small = total(small_shards)
        per_shard = big_count / len(big_shards)
        first_disjoint = int(np.ceil(small_count / per_shard))
        disjoint = total(big_shards[first_disjoint:])
        measured = cosine(small.gradient(), disjoint.gradient())
        predicted = 1 / np.sqrt((1 + big_ratio / small_count) * (1 + big_ratio / disjoint.count))
        print(f"\n{key}: cos(workflow {small_count:.3g}-pair reference, the paper-size reference's "
              f"shards {first_disjoint}–{len(big_shards) - 1} = {disjoint.count:.3g} disjoint pairs) = "
              f"{measured:.3f}; (*) with ρ from the paper-size halves predicts {predicted:.3f}; "
              f"cos(workflow reference, whole paper-size reference, overlapping) = "
              f"{cosine(small.gradient(), total(big_shards).gradient()):.3f}")
        implied = {label: split_half(shards)[2] for label, shards in
                   (("workflow", small_shards), ("paper-size", big_shards))}
        figure2_curves(study, key, implied)


def figure2_curves(study: Path, key: str, implied: dict[str, float]) -> None:
    """Figure 2's curve (mean cosine of the estimates with the reference, per sample count)
    against the workflow's and the paper-size reference, and each divided by the reference's
    implied cosine with the truth (``implied``, from its shards' halves)."""
    paths = {"workflow": study / "results/probes/gradients" / f"{key}.nc",
             "paper-size": study / "results/paper_references/gradients" / f"{key}.nc"}
    if not all(path.exists() for path in paths.values()):
        return
    curves = {}
    for label, path in paths.items():
        with xr.open_dataset(path) as ds:
            curves[label] = (ds["sample_count"].values, ds["mean_reference_cosine"].squeeze().values,
                             int(ds["reference_sample_count"].squeeze()))
    print(f"\nFigure 2 at {key}: mean cosine of 10 estimates with the reference "
          f"(÷ the reference's implied cosine with the true gradient)")
    print("| sample count | " + " | ".join(f"{label} reference ({curves[label][2]:.3g} pairs)" for label in curves) + " |")
    print("|---:|" + "---:|" * len(curves))
    for index, count in enumerate(curves["workflow"][0]):
        cells = [f"{curves[label][1][index]:.4f} ({curves[label][1][index] / implied[label]:.4f})" for label in curves]
        print(f"| {count} | " + " | ".join(cells) + " |")
    print("| implied cos(ĝ_N, g) | " + " | ".join(f"{implied[label]:.3f}" for label in curves) + " |")


if __name__ == "__main__":
    main()
