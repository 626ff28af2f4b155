"""Steps probe: the algorithms' actual update steps θ′ − θ0 vs sample count (Appendix A.4)."""
from __future__ import annotations

import json

import xarray as xr

from pgprobe.cli import main
from pgprobe.probes import steps as S

TINY = {"sample_counts": [256, 512], "estimates": 3, "reference_samples": 2048,
        "reference_stream_steps": 512, "chunk_size": 2}


def test_ppo_steps_dataset_and_determinism(hopper_ppo_checkpoint, tmp_path):
    out = tmp_path / "steps.nc"
    assert main(["probe", "steps", "--checkpoint", str(hopper_ppo_checkpoint), "--out", str(out),
                 "--settings", json.dumps(TINY), "--workers", "2"]) == 0
    ds = xr.open_dataset(out)
    assert ds.attrs["pgprobe_dataset"] == "steps"
    assert set(ds.dims) == {"env", "algo", "seed", "iteration", "sample_count", "estimate", "pair",
                            "other_estimate"}
    for name, var in {**ds.data_vars, **ds.coords}.items():
        assert "long_name" in var.attrs and "units" in var.attrs, name
    assert (ds["estimate_norm"].values > 0).all() and ds["reference_norm"].item() > 0
    again = S.run(str(hopper_ppo_checkpoint), S.resolve_settings(TINY), workers=1)
    xr.testing.assert_equal(ds.load(), again)


def test_trpo_steps(hopper_trpo_checkpoint):
    ds = S.run(str(hopper_trpo_checkpoint), S.resolve_settings(TINY), workers=1)
    assert ds["algo"].values.tolist() == ["trpo"]
    assert (ds["estimate_norm"].values > 0).all(), "the line search rejected a step"


def test_bad_setting(hopper_ppo_checkpoint, tmp_path, capsys):
    out = tmp_path / "s.nc"
    assert main(["probe", "steps", "--checkpoint", str(hopper_ppo_checkpoint), "--out", str(out),
                 "--settings", json.dumps({"reference_shards": 2})]) == 2
    assert "unknown probes.steps setting 'reference_shards'" in capsys.readouterr().err
    assert not out.exists()
