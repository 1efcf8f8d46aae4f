"""The GPU lease's one command (`repro.gpu`, `make gpu`) end to end on a CPU at the smoke profile: the plan's
units run in order, at most 8 files come back, and a second run keeps what the first finished."""

from __future__ import annotations

import json

from repro import gpu
from repro.experiments import scaling


def test_gpu_run_end_to_end_and_resumable(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("REPRO_DATA", str(tmp_path / "data"))
    args = ["--profile", "smoke", "--workdir", str(tmp_path / "runs"), "--results", str(tmp_path / "results")]
    assert gpu.main([*args, "--out", str(tmp_path / "out1")]) == 0
    out = sorted(p.name for p in (tmp_path / "out1").iterdir())
    assert len(out) <= gpu.MAX_FILES
    assert out == ["clip_small-smoke-seed0.json", "gpu.log", "scaling-smoke-seed0.json", "summary.json"]
    summary = json.loads((tmp_path / "out1" / "summary.json").read_text())
    assert [u["status"] for u in summary["units"]] == ["ran", "ran"]
    study = json.loads((tmp_path / "out1" / "scaling-smoke-seed0.json").read_text())
    assert [p["size"] for p in study["metrics"]["points"]] == scaling.largest("smoke")
    assert gpu.main([*args, "--out", str(tmp_path / "out2")]) == 0
    again = json.loads((tmp_path / "out2" / "summary.json").read_text())
    assert [u["status"] for u in again["units"]] == ["kept (already there)"] * 2


def test_a_unit_is_not_started_without_the_time_it_needs(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("REPRO_DATA", str(tmp_path / "data"))
    assert gpu.main(["--profile", "smoke", "--workdir", str(tmp_path / "runs"), "--results", str(tmp_path / "r"),
                     "--out", str(tmp_path / "out"), "--deadline-s", "0.001"]) == 0
    units = json.loads((tmp_path / "out" / "summary.json").read_text())["units"]
    assert units[0]["status"] == "ran" and units[1]["status"].startswith("not run:")
