"""The `prompts` experiment (paper §3.1.4, Figure 4) end to end at the smoke profile: the class-name, single-template
and ensemble modes for every suite, and the ensemble of one template behaving exactly as that template alone."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import smoke_experiment

from repro.evaluate.runner import SplitCache, load_suites
from repro.experiments import clip_small, get, prompts
from repro.experiments.common import trained_clip
from repro.experiments.results import load_results


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One smoke run of `prompts` (training the smoke clip_small first) into temporary data/results/run dirs."""
    with smoke_experiment(tmp_path_factory, "prompts") as run:
        yield run


def test_profiles_match_clip_small() -> None:
    assert get("prompts") is prompts
    seeds = {p: s["seeds"] for p, s in clip_small.PROFILES.items()}  # it evaluates every headline seed
    assert {p: s["seeds"] for p, s in prompts.PROFILES.items()} == seeds


def test_smoke_run_has_every_mode_for_every_suite(smoke_run) -> None:
    [record] = load_results("prompts", "smoke", root=smoke_run["root"] / "results")
    assert record["experiment"] == "prompts" and record["config"]["corpus"] == "smoke"
    suites = load_suites(smoke_run["corpus"])
    assert set(record["metrics"]) == {s.name for s in suites} | {"selection"}
    selection = record["metrics"]["selection"]
    assert selection, "the smoke corpus has validation suites to choose templates on"
    for fam, chosen in selection.items():  # chosen on the family's val suite, nowhere else
        assert chosen["suite"] == f"{fam}/val" and chosen["templates"]
        path = chosen["val_top1"]
        assert path == sorted(path) and len(set(path)) == len(path)  # each added template raised val top-1
    for suite in suites:
        entry = record["metrics"][suite.name]
        modes = [m for m in prompts.MODES if m != "chosen" or prompts.family(suite.name) in selection]
        assert set(modes) <= set(entry)
        if "chosen" in entry:
            assert entry["chosen"]["n"] == len(prompts.unbits(entry["chosen"]["correct"]))
        assert entry["templates"] == list(suite.templates) and entry["n_templates"] == len(suite.templates)
        assert entry["single_template"] == suite.templates[0]
        for mode in modes:
            result = entry[mode]
            assert prompts.unbits(result["correct"]).mean() == pytest.approx(result["top1"])
            assert set(prompts.KEPT) <= set(result)
            assert result["shift"] == suite.shift and result["n_classes"] == len(suite.classes) and result["n"] > 0
            for key in ("top1", "top5", "mean_per_class_recall"):
                assert result[key] is None or 0.0 <= result[key] <= 1.0
        per_template = entry["ensemble"]["per_template"]
        assert list(per_template) == list(suite.templates)
        assert all(0.0 <= v <= 1.0 for v in per_template.values())
        # the first template's own accuracy inside the ensemble run is the single-template mode's accuracy
        assert per_template[suite.templates[0]] == entry["single"]["top1"]
    # the clip_small model was trained once (its result is there) and is reused, not retrained
    assert load_results("clip_small", "smoke", root=smoke_run["root"] / "results")


def test_ensemble_of_one_template_is_that_template(smoke_run, monkeypatch) -> None:
    monkeypatch.setenv("REPRO_DATA", str(smoke_run["root"] / "data"))
    model, tokenizer, config = trained_clip("smoke", 0, smoke_run["root"] / "runs")
    cache = SplitCache(model, smoke_run["corpus"], config.data_size)
    suite = next(s for s in load_suites(smoke_run["corpus"]) if len(s.templates) > 1)
    one = replace(suite, templates=suite.templates[:1])
    out = prompts.evaluate_modes(model, tokenizer, cache.split(one.split), one, cache.features(one.split))
    ensemble = dict(out["ensemble"])
    assert ensemble.pop("per_template") == {one.templates[0]: out["single"]["top1"]}
    assert ensemble == out["single"]
    assert out["n_templates"] == 1 and out["templates"] == [suite.templates[0]]


def test_summaries_and_paired_tests(smoke_run) -> None:
    records = load_results("prompts", "smoke", root=smoke_run["root"] / "results")
    frame = prompts.summarize(records)
    assert set(frame["mode"]) >= {"classname", "single", "ensemble"}
    assert frame["selected_on"].equals(frame["suite"].str.endswith("/val"))
    suites = [s for s, m in prompts.suite_metrics(records[0]).items() if "chosen" in m]
    [g] = prompts.gain(records, "chosen", suites)
    m = prompts.suite_metrics(records[0])
    assert g == pytest.approx(sum(m[s]["chosen"]["top1"] - m[s]["classname"]["top1"] for s in suites) / len(suites))
    tests = prompts.paired_tests(records, "ensemble", suites)
    assert len(tests) == len(suites)
    assert (tests["low"] <= tests["diff"]).all() and (tests["diff"] <= tests["high"]).all()
    with pytest.raises(ValueError, match="no 'chosen' results"):
        prompts.gain(records, "chosen", ["no-such-suite"])


def test_unbits_rejects_other_characters() -> None:
    assert prompts.unbits("0110").tolist() == [False, True, True, False]
    with pytest.raises(ValueError, match="only '0' and '1'"):
        prompts.unbits("01x")
