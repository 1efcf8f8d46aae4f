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


def test_load_rerun_reads_a_named_folder_and_the_processors(tmp_path: Path) -> None:
    import json

    first = _record(0, top1=0.5, deep={"top1": 0.25, "loss": 2.0})
    second = _record(0, "b" * 40, top1=0.5, deep={"top1": 0.5, "loss": 3.0}) | {"hardware": {"cpu": "Intel Xeon"}}
    (tmp_path / "other").mkdir()
    (tmp_path / "seed0.json").write_text(json.dumps(first))
    (tmp_path / "other" / "seed0.json").write_text(json.dumps(second))
    assert view.load_rerun(tmp_path) is None
    check = view.load_rerun(tmp_path, reruns="other")
    assert check["hardware"] == ("AMD EPYC", "Intel Xeon") and (check["shared"], check["identical"]) == (3, 1)
    assert view.largest_move(check) == (0.25, "deep/top1") and view.largest_move(check, "x") is None


def test_provenance_versions_and_dirty_share() -> None:
    runs = {("clip_small", "cpu"): [_record(0), _record(1, "c" * 40 + "+dirty")]}
    table = view.provenance_table(runs)
    assert table.loc[0, "seeds"] == "0, 1" and table.loc[0, "minutes per seed"] == 2.0
    assert table.loc[0, "revision"] == "aaaaaaaaaa, cccccccccc+dirty"
    assert table.loc[0, "command"] == "repro run clip_small --profile cpu"
    assert view.dirty_share(runs) == (1, 2)
    versions = view.versions_table(runs).set_index("package")
    assert versions.loc["torch", "versions used"] == "2.13.0+cpu"


def test_provenance_table_adds_a_row_per_added_run_from_its_own_provenance() -> None:
    added = {"git_revision": "d" * 40, "created": "2026-12-03T19:00:00Z", "wall_time_s": 5400.0,
             "hardware": {"cpu": "Intel Xeon", "cores": 2}, "versions": {"torch": "2.13.0+cpu", "python": "3.11.7"}}
    records = [_record(0, objectives={"clip": {"final": {}}, "caption-lm-x4": {"final": {}, "provenance": added}}),
               _record(1, objectives={"clip": {"final": {}}})]
    table = view.provenance_table({("objectives", "cpu"): records})
    assert list(table["experiment"]) == ["objectives", "objectives: caption-lm-x4 (added)"]
    row = table.iloc[1]
    assert (row["seeds"], row["hardware"], row["minutes per seed"]) == ("0", "Intel Xeon, 2 cores", 90.0)
    assert (row["revision"], row["date"]) == ("dddddddddd", "2026-12-03")
    assert row["command"] == "repro run objectives --profile cpu --extend"
    assert table.iloc[0]["revision"] == "aaaaaaaaaa"


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


def test_rerun_table_compares_with_another_seed(tmp_path: Path) -> None:
    import json

    files = {"seed0.json": _record(0, a={"top1": 0.5, "n": 3}), "seed1.json": _record(1, a={"top1": 0.2, "n": 3}),
             "amd/seed0.json": _record(0, a={"top1": 0.4, "n": 3})}
    (tmp_path / "amd").mkdir()
    for name, record in files.items():
        (tmp_path / name).write_text(json.dumps(record))
    table = view.rerun_table(tmp_path, "amd", (0, 1), headline="a/top1")
    assert len(table) == 1 and table.loc[0, "numbers identical"] == "1 of 2"
    assert table.loc[0, "largest top1 change"] == 10.0 and table.loc[0, "mean top1 change"] == 10.0
    assert table.loc[0, "mean top1 change to another seed"] == 30.0
    assert (table.loc[0, "a/top1, original"], table.loc[0, "a/top1, re-run"]) == (50.0, 40.0)
    assert (table.loc[0, "original on"], table.loc[0, "re-run on"]) == ("AMD EPYC", "AMD EPYC")


def test_rerun_table_names_each_runs_precision(tmp_path: Path) -> None:
    import json

    files = {"seed0.json": _record(0, a={"top1": 0.5}, train={"precision": "fp32"}),
             "bf16/seed0.json": _record(0, a={"top1": 0.4}, train={"precision": "bf16"})}
    (tmp_path / "bf16").mkdir()
    for name, record in files.items():
        (tmp_path / name).write_text(json.dumps(record))
    table = view.rerun_table(tmp_path, "bf16", (0,), headline="a/top1")
    assert (table.loc[0, "original on"], table.loc[0, "re-run on"]) == ("AMD EPYC, fp32", "AMD EPYC, bf16")


def test_processor_names_family_and_matrix_flags_where_recorded() -> None:
    assert view.processor({"cpu": "AMD EPYC"}) == "AMD EPYC"
    assert view.processor({"cpu": "AMD EPYC", "cpu_family_model": "25/1", "cpu_matrix_flags": ["avx2"]}) == (
        "AMD EPYC (family/model 25/1; avx2)")
    assert view.processor({"cpu": "Intel Xeon", "cpu_matrix_flags": ["avx2", "avx512f", "amx_bf16"]}) == (
        "Intel Xeon (avx2, avx512f, amx_bf16)")
    assert view.processor({"cpu": "Old", "cpu_matrix_flags": []}) == "Old (no AVX2)"


def test_rebuild_check_lists_every_count_that_differs() -> None:
    packed = [{"split": "train", "n": 10}, {"split": "val", "n": 4}]
    a = {"stamp": "s", "packed": packed, "counts": {"train": {"icon": 8, "noto": 2}, "val": {"noto": 4}},
         "dropped": {"near duplicate": 5}}
    b = {"stamp": "s", "packed": [{"split": "train", "n": 11}, {"split": "val", "n": 4}],
         "counts": {"train": {"icon": 9, "noto": 2}, "val": {"noto": 4}}, "dropped": {"near duplicate": 4}}
    check = view.rebuild_check(a, b)
    assert check["same_stamp"] and check["same_size"] == ["val"] and check["differ"] == ["train"]
    assert check["table"].to_dict("records") == [
        {"count": "pictures: train/icon", "committed build": 8.0, "rebuild": 9.0, "change": 1.0},
        {"count": "dropped: near duplicate", "committed build": 5.0, "rebuild": 4.0, "change": -1.0}]
    assert view.rebuild_check(a, a)["table"].empty


def test_rebuild_summaries_put_the_committed_build_first(tmp_path: Path) -> None:
    import json

    (tmp_path / "rebuilds").mkdir()
    for name, stamp in (("manifest.json", "c"), ("rebuilds/2026-12-07b.json", "b"), ("rebuilds/2026-12-07a.json", "a")):
        (tmp_path / name).write_text(json.dumps({"stamp": stamp}))
    assert [m["stamp"] for m in view.rebuild_summaries(tmp_path)] == ["c", "a", "b"]
    assert view.rebuild_summaries(tmp_path / "missing") == []
