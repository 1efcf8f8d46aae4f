"""repro.views.reproducibility: the appendix's tables, on the committed result files and on synthetic records."""

from __future__ import annotations

from pathlib import Path

import pytest

from repro.views import reproducibility as view

ROOT = Path(__file__).resolve().parents[1] / "results"


def _record(seed: int, revision: str = "a" * 40, **metrics) -> dict:
    return {"seed": seed, "profile": "cpu", "git_revision": revision, "created": "2026-11-23T01:00:00Z",
            "wall_time_s": 120.0, "hardware": {"cpu": "AMD EPYC", "cores": 2},
            "versions": {"torch": "2.13.0+cpu", "python": "3.11.7"},
            "config": {"model": "ViT-XS/8@32px", "model_overrides": {}, "seed": seed, "out_dir": "x",
                       "train": {"steps": 10}},
            "metrics": metrics}


def test_numbers_flattens_and_skips_booleans() -> None:
    assert view.numbers({"a": 1, "b": {"c": 2.5, "d": True, "e": "x"}}) == {"a": 1.0, "b/c": 2.5}


def test_rerun_check_counts_identical_numbers_without_timings() -> None:
    first = _record(0, top1=0.5, img_s=100.0, deep={"x": 1.0, "y": 2.0})
    second = _record(0, "b" * 40 + "+dirty", top1=0.5, img_s=90.0, deep={"x": 1.0, "y": 2.5})
    check = view.rerun_check(first, second)
    assert (check["shared"], check["identical"]) == (3, 2)
    assert check["moved"] == [(0.5, "deep/y")] and check["rerun"] == "bbbbbbbbbb+dirty" and not check["rerun_clean"]


def test_the_committed_rerun_is_found() -> None:
    folder = ROOT / "clip_small" / "cpu" / "corpus-full"
    check = view.load_rerun(folder)
    if check is None:
        pytest.skip("no committed re-run")
    assert 0 < check["identical"] <= check["shared"]
    assert view.load_rerun(folder, seed=99) is None


def test_provenance_versions_and_dirty_share() -> None:
    runs = {("clip_small", "cpu"): [_record(0), _record(1, "c" * 40 + "+dirty")]}
    table = view.provenance_table(runs)
    assert table.loc[0, "seeds"] == "0, 1" and table.loc[0, "minutes per seed"] == 2.0
    assert table.loc[0, "revision"] == "aaaaaaaaaa, cccccccccc+dirty"
    assert table.loc[0, "command"] == "repro run clip_small --profile cpu"
    assert view.dirty_share(runs) == (1, 2)
    versions = view.versions_table(runs).set_index("package")
    assert versions.loc["torch", "versions used"] == "2.13.0+cpu"


def test_config_table_flags_what_varies_and_names_the_model() -> None:
    records = [_record(0), _record(1)]
    table = view.config_table(records, "clip_small", "cpu", ROOT).set_index("key")
    assert table.index[0] == "(the CLIP built)" and "ViT-XS/8@32px" in table.iloc[0]["value"]
    assert table.loc["seed", "varies across seeds"] == "yes" and table.loc["train.steps", "value"] == "10"
    assert "out_dir" not in table.index
    assert "(the CLIP built)" not in view.config_table(records).set_index("key").index


def test_deviations_read_the_headline_config() -> None:
    table = view.deviations_table({("clip_small", "cpu"): [_record(0)]})
    assert list(table.columns) == ["", "paper", "ours (`clip_small`, cpu)", "why"]
    assert table.set_index("").loc["model", "ours (`clip_small`, cpu)"].startswith("ViT-XS/8@32px")
    assert (view.deviations_table({}).iloc[:, 2] == "—").sum() >= 5


def test_committed_runs_and_corpus_builds() -> None:
    runs = view.committed_runs(ROOT)
    assert all(records for records in runs.values())
    builds = view.corpus_builds(ROOT)
    assert list(builds.columns) == ["corpus", "built on", "build stamp", "data seed", "minutes", "summary"]
    assert len(builds) == len(list(ROOT.glob("data/*/manifest.json")))
