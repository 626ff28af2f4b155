"""Usage: python docs/measurements/rederive/full_run.py OUT_DIR

Re-derive Hopper PPO seed 0 of the claims study: all 500 rows of training_500_iterations.nc
bit for bit, and the checkpoints at 100/500 against the checkpoint_sha256 the claims study's
probe datasets recorded.  Since checkpoints record package versions (after 6f9fa71) a fresh
checkpoint's bytes differ from the study's, so the iteration-100 checkpoint is also compared
by content (every tensor and number) with the committed copy of the study's,
rederive/Hopper-v5_ppo_seed0_iter0100.pt."""
import json, time, sys
from pathlib import Path
import numpy as np, torch, xarray as xr
from pgprobe.train import Trainer, TRAIN_VARIABLES
from pgprobe.checkpoint import file_sha256, safe_torch_load


def same_content(a, b) -> bool:
    """Equal checkpoint payloads, ignoring the recorded versions."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = (set(a) | set(b)) - {"versions_json"}
        return all(k in a and k in b and same_content(a[k], b[k]) for k in keys)
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_content(x, y) for x, y in zip(a, b))
    return a == b
torch.set_num_threads(1)
ref = xr.open_dataset("docs/measurements/training_500_iterations.nc").sel(env="Hopper-v5", algo="ppo", seed=0)
src = json.loads(xr.open_dataset("docs/measurements/claims_study/datasets/gradients.nc").attrs["sources_json"])
want = {s["file"]: s["checkpoint_sha256"] for s in src}
cfg = {"training": {"iterations": 500, "checkpoint_iterations": [0, 100, 500]}}
t = Trainer("Hopper-v5", "ppo", 0, cfg); t0 = time.process_time(); out = Path(sys.argv[1])
for i in range(500):
    t.step()
    if t.iteration in (100, 500):
        t.write_checkpoint(out)
        got = file_sha256(out / "checkpoints" / f"iter{t.iteration:04d}.pt")
        print(t.iteration, "sha256 equal:", got == want[f"results/probes/gradients/Hopper-v5/ppo/seed0/iter{t.iteration:04d}.nc"], flush=True)
        if t.iteration == 100:
            fresh = safe_torch_load(out / "checkpoints" / "iter0100.pt", "fresh checkpoint")
            study = safe_torch_load(Path(__file__).parent / "Hopper-v5_ppo_seed0_iter0100.pt", "study checkpoint")
            print(100, "content equal to the study's:", same_content(fresh, study), flush=True)
    if t.iteration % 50 == 0: print(t.iteration, time.process_time() - t0, flush=True)
res = {}
for name, _, _ in TRAIN_VARIABLES:
    if name == "wall_time": continue
    new = np.array([r[name] for r in t.history]); old = ref[name].values
    res[name] = bool(np.array_equal(new, old, equal_nan=True))
print(json.dumps({"bitwise_equal": res, "final_new": float(np.mean([r["mean_return"] for r in t.history][-10:])),
                  "final_committed": float(ref["mean_return"].values[-10:].mean()), "cpu_s": time.process_time() - t0}))
