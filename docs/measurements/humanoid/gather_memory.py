"""Peak memory of the baselines gather and true-value fit on the slice's 5M-pair shards.

    /usr/bin/time -v python docs/measurements/humanoid/gather_memory.py [EPOCHS]

Run from the study directory after paper_references.sh sampled the baselines shards (TRPO
seed 0 iteration 500).  Gathers the 16 shards (``baselines.gather_shards``), prints the
arrays' sizes, fits the true-value net for EPOCHS epochs (default: the probe's 40; the
peak does not grow with epochs) and prints the fit statistics; ``/usr/bin/time -v``'s
"Maximum resident set size" is the peak.
"""
import glob
import json
import sys

from pgprobe.checkpoint import load_checkpoint
from pgprobe.probes import baselines as B

SHARDS = "results/paper_references/baselines/Humanoid-v5/trpo/seed0/iter0500.shard*.nc"
settings = B.checked_settings(json.loads(
    '{"sample_counts":[1024,4096,16384],"estimates":8,"true_value_streams":2442,'
    '"true_value_stream_steps":2048,"true_value_shards":16}'))
checkpoint = load_checkpoint("results/runs/Humanoid-v5/trpo/seed0/checkpoints/iter0500.pt")
reference = B.gather_shards(sorted(glob.glob(SHARDS)), checkpoint, settings, 0)
print({key: (value.shape, str(value.dtype), f"{value.nbytes / 2**30:.2f} GiB") for key, value in reference.items()})
if len(sys.argv) > 1:
    settings = dict(settings, true_value_epochs=int(sys.argv[1]))
net, stats = B.fit_true_value(checkpoint, reference, settings, 0)
print(stats)
