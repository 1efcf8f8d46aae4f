"""Figure 2 (`objectives`) and the temperature ablation (`temperature`) end to end at the smoke profile, and the
pieces they rest on: evaluation during training (`train(callback=)`), zero-shot scoring of any objective, the
sample-efficiency ratio, the supervised baseline's label classes and depth, and the shift task."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from repro.evaluate import zeroshot_eval
from repro.evaluate.objective_zeroshot import objective_zeroshot
from repro.evaluate.runner import SplitCache, load_suites
from repro.evaluate.shift import shift_task, training_rows
from repro.experiments import get, objectives, objectives_summary, temperature, temperature_summary
from repro.experiments.common import corpus_for, shared_tokenizer
from repro.experiments.results import load_results, result_path, write_record
from repro.objectives import make_objective
from repro.tokenizer import Tokenizer
from repro.train import TrainConfig, TrainData, train


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke corpus, and one smoke run of each experiment into temporary data/results/run dirs."""
    root = tmp_path_factory.mktemp("objectives")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REPRO_DATA", str(root / "data"))
        corpus = corpus_for("smoke")
        paths = {name: get(name).run("smoke", 0, root / "runs", results_root=root / "results")
                 for name in ("objectives", "temperature")}
        yield {"root": root, "corpus": corpus, "paths": paths}


def _config(corpus, out, **kw) -> TrainConfig:
    base = objectives.PROFILES["smoke"]["train"] | {"steps": 6, "warmup_steps": 2, "progress": False}
    return TrainConfig(corpus_dir=str(corpus), out_dir=str(out), **(base | kw))


def test_objectives_result_has_a_curve_per_objective(smoke) -> None:
    (record,) = load_results("objectives", "smoke", smoke["root"] / "results")
    spec = objectives.PROFILES["smoke"]
    assert set(record["metrics"]["objectives"]) == set(objectives.OBJECTIVES) | {"caption-lm-x2"}
    for kind, result in record["metrics"]["objectives"].items():
        seen = [r["images_seen"] for r in result["snapshots"]]
        if kind == "caption-lm-x2":  # twice the budget on the same log2 grid, one snapshot more
            assert seen == [96, 192, 384, 768] and result["budget_factor"] == 2
            continue
        assert seen == [32 * s for s in objectives.snapshot_steps(12, spec["snapshots"])] == [96, 192, 384]
        for row in result["snapshots"]:
            assert all(0 <= row[s] <= 1 for s in spec["suites"])
        assert record["curves"][kind]["loss"]
    table = record["metrics"]["efficiency"][spec["suites"][0]]
    assert len(table) == 5 * 4
    assert record["config"]["snapshot_steps"] == [3, 6, 12] and record["config"]["spacing"] == "log2"
    assert record["config"]["longer"] == {"caption-lm": 2}
    slow = table["bow-predict>caption-lm-x2"]  # measured against the longer budget: 768 images
    assert slow.get("ratio") is None or slow["ratio"] == 768 / slow["images"]
    facts = record["metrics"]["suites"][spec["suites"][0]]
    assert facts["n"] >= 1 and 0 < facts["chance"] < 1
    summary = objectives_summary.efficiency_summary([record], spec["suites"][0])
    assert len(summary) == len(objectives.PAIRS) and set(summary["status"]) <= {
        "measured", "partly measured", "lower bound", "not reached", "untestable"}


def test_extend_adds_a_longer_budget_and_keeps_what_was_measured(smoke, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("REPRO_DATA", str(smoke["root"] / "data"))
    (full,) = load_results("objectives", "smoke", smoke["root"] / "results")
    older = json.loads(json.dumps(full))  # as written before the profile had a longer budget
    del older["metrics"]["objectives"]["caption-lm-x2"], older["curves"]["caption-lm-x2"]
    older["config"]["longer"] = {}
    path = write_record(result_path("objectives", "smoke", 0, tmp_path), older)
    assert objectives.extend("smoke", 0, smoke["root"] / "runs", results_root=tmp_path) == path
    record = json.loads(path.read_text())
    added = record["metrics"]["objectives"].pop("caption-lm-x2")
    assert set(added.pop("provenance")) == {"git_revision", "hardware", "versions", "wall_time_s", "created"}
    assert added == full["metrics"]["objectives"]["caption-lm-x2"]
    assert record["metrics"]["efficiency"] == full["metrics"]["efficiency"]
    assert record["git_revision"] == full["git_revision"] and record["created"] == full["created"]
    assert record["config"] == full["config"] and record["curves"] == full["curves"]


def test_extend_refuses_a_result_of_other_settings(smoke, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("REPRO_DATA", str(smoke["root"] / "data"))
    with pytest.raises(FileNotFoundError, match="seed0.json: no result to extend"):
        objectives.extend("smoke", 0, smoke["root"] / "runs", results_root=tmp_path)
    (record,) = load_results("objectives", "smoke", smoke["root"] / "results")
    record["config"]["train"]["lr"] = 0.5
    write_record(result_path("objectives", "smoke", 0, tmp_path), record)
    with pytest.raises(ValueError, match=r"config\.train\.lr is 0\.5, the profile's is"):
        objectives.extend("smoke", 0, smoke["root"] / "runs", results_root=tmp_path)


def test_sample_efficiency_interpolates_in_log_images() -> None:
    seen = (100, 200, 400, 800)
    got = objectives.sample_efficiency(seen, (0.1, 0.2, 0.3, 0.4), 0.3)
    assert got == {"images": pytest.approx(400.0), "ratio": pytest.approx(2.0)}
    half = objectives.sample_efficiency(seen, (0.1, 0.2, 0.3, 0.4), 0.25)  # half-way between 200 and 400 in log
    assert half["images"] == pytest.approx(math.sqrt(200 * 400))
    for above in ((0.5, 0.6, 0.7, 0.8), (0.3, 0.3, 0.3, 0.3)):  # reached at the first snapshot: a lower bound
        assert objectives.sample_efficiency(seen, above, 0.3) == {
            "images": "<= 100", "ratio": None, "ratio_at_least": 8.0}
    assert objectives.sample_efficiency(seen, (0.1, 0.1, 0.1, 0.1), 0.3) == {
        "images": "> 800", "ratio": None, "ratio_below": 1.0}


def test_temperature_result_covers_every_setting(smoke) -> None:
    (record,) = load_results("temperature", "smoke", smoke["root"] / "results")
    settings = record["metrics"]["settings"]
    assert set(settings) == set(temperature.SETTINGS)
    for name, result in settings.items():
        if result["diverged"]:
            continue
        assert all(0 <= v <= 1 for v in result["zeroshot"].values())
        assert {"i2t_r1", "t2i_r1"} <= set(result["retrieval"])
        temps = record["curves"][name]["temperature"]
        if name.startswith("fixed"):
            expected = float(name.split()[1])
            assert np.allclose(temps, expected, rtol=1e-5) and result["final_temperature"] == pytest.approx(expected)
        else:
            assert result["final_logit_scale"] <= 100 + 1e-4 or name == "learnable, unclamped"
            assert "reached_clip_step" in result and result["max_logit_scale"] >= result["final_logit_scale"]
    assert record["config"]["select"] == "smoke-category/val" and record["config"]["logit_scale_reach"] > 0
    table = temperature_summary.summarize([record])
    assert len(table) == len(settings) * len(record["config"]["suites"])
    assert len(temperature_summary.learnable_vs_best_fixed([record], record["config"]["score"])) == 1


def test_roughness() -> None:
    assert temperature.roughness([5.0, 4.0, 3.0, 3.0, 3.0, 3.0]) == 0.0
    assert temperature.roughness([5, 4, 3, 4, 3, 4]) == pytest.approx(1.0)


def test_train_callback_sees_every_step_and_does_not_change_training(smoke, tmp_path) -> None:
    seen: list[int] = []
    modes: list[bool] = []

    def callback(step, objective) -> None:
        seen.append(step)
        modes.append(objective.training)
        objective.eval()  # the trainer puts it back in training mode

    with_cb = train(_config(smoke["corpus"], tmp_path / "a"), callback=callback)
    plain = train(_config(smoke["corpus"], tmp_path / "b"))
    assert seen == list(range(1, 7)) and all(modes)
    assert with_cb["final"]["loss"] == plain["final"]["loss"]


def test_an_interrupted_snapshot_run_resumes_with_the_snapshots_it_measured(smoke, tmp_path) -> None:
    calls: list[int] = []

    def evaluate(objective, fail_at: int | None = None) -> dict:
        step = len(calls)
        calls.append(step)
        if fail_at is not None and len(calls) == fail_at:
            raise KeyboardInterrupt  # the session ends during the second snapshot at step 4
        return {"score": float(step)}

    config = _config(smoke["corpus"], tmp_path / "run", checkpoint_every=3)
    with pytest.raises(KeyboardInterrupt):
        objectives.train_at(config, [2, 4, 6], lambda o: evaluate(o, fail_at=2))
    summary, rows = objectives.train_at(config, [2, 4, 6], evaluate)  # resumes from step 3 with step 2's snapshot
    assert [r["step"] for r in rows] == [2, 4, 6] and rows[0]["score"] == 0.0 and len(calls) == 4
    plain = train(_config(smoke["corpus"], tmp_path / "plain"))
    assert summary["final"]["loss"] == pytest.approx(plain["final"]["loss"], rel=1e-5)  # the same run
    config = _config(smoke["corpus"], tmp_path / "gap", checkpoint_every=2)
    calls.clear()
    with pytest.raises(KeyboardInterrupt):  # the checkpoint of step 4 is newer than its missing snapshot
        objectives.train_at(config, [2, 4, 6], lambda o: evaluate(o, fail_at=2))
    _, rows = objectives.train_at(config, [2, 4, 6], evaluate)
    assert [r["step"] for r in rows] == [2, 4, 6] and len(calls) == 5  # started afresh: 2, 4 (failed), 2, 4, 6


def test_objective_zeroshot_equals_zeroshot_eval_for_clip(smoke, tmp_path) -> None:
    summary = train(_config(smoke["corpus"], tmp_path / "c"))
    objective, tokenizer = summary["objective"], summary["tokenizer"]
    suite = next(s for s in load_suites(smoke["corpus"]) if s.name == "smoke-concept/val")
    packed = SplitCache(None, smoke["corpus"], 32).split(suite.split)
    mine = objective_zeroshot(objective, tokenizer, packed, suite, objective.model.context_length)
    reference = zeroshot_eval(objective.model, tokenizer, packed, suite)
    assert mine["top1"] == pytest.approx(reference["top1"])
    assert mine["n"] == len(packed) and objective.training  # left in the mode it was in
    rows = np.arange(5)
    assert objective_zeroshot(objective, tokenizer, packed, suite, 16, rows=rows)["n"] == 5


@pytest.mark.parametrize("kind", ["bow-predict", "caption-lm", "bow-contrastive"])
def test_objective_zeroshot_runs_for_every_objective(smoke, kind) -> None:
    config = _config(smoke["corpus"], "unused")
    objective = make_objective(kind, config.clip_config())
    tokenizer = Tokenizer.load(shared_tokenizer(smoke["corpus"], 1024, smoke["root"] / "runs"))
    suite = next(s for s in load_suites(smoke["corpus"]) if s.name == "smoke-category/val")
    packed = SplitCache(None, smoke["corpus"], 32).split(suite.split)
    result = objective_zeroshot(objective, tokenizer, packed, suite, 16, templates=("a {}.",))
    assert 0 <= result["top1"] <= 1 and result["n_templates"] == 1


def test_shift_task_pools_classes_and_training_rows(smoke) -> None:
    task = shift_task(smoke["corpus"], "smoke-category/")
    assert task.in_distribution == "val" and set(task.splits) == {"val", "named", "zeroshot", "test-outline"}
    assert list(task.classes) == sorted(task.classes) and task.suite("val").classes == task.classes
    packed, rows, labels = training_rows(task, smoke["corpus"], 32)
    assert len(rows) == len(labels) and labels.max() < len(task.classes)
    assert [task.classes[k] for k in labels[:5]] == [packed.fields[task.label][i] for i in rows[:5]]
    with pytest.raises(ValueError, match="no suite starts with 'nope/'"):
        shift_task(smoke["corpus"], "nope/")
    with pytest.raises(ValueError, match="not part of task"):
        task.suite("train")


def test_supervised_label_classes_and_depth(smoke) -> None:
    task = shift_task(smoke["corpus"], "smoke-category/")
    classes = list(task.classes[:3])
    config = _config(smoke["corpus"], "unused", objective="supervised", label="category", label_classes=classes,
                     baseline_depth=18, baseline_width=4)
    tokenizer = Tokenizer.load(shared_tokenizer(smoke["corpus"], 1024, smoke["root"] / "runs"))
    data = TrainData(config, tokenizer, 16, torch.device("cpu"))
    assert data.classes == classes and set(data.labels.tolist()) <= {0, 1, 2}
    assert all(data.fields["category"][i] == classes[int(k)] for i, k in enumerate(data.labels))
    objective = make_objective("supervised", config.clip_config(), num_classes=3, depth=18, width=4)
    assert len(objective.model.layer1) == 2  # ResNet-18: two basic blocks per stage
    with pytest.raises(ValueError, match="no ResNet of depth 20"):
        make_objective("supervised", config.clip_config(), num_classes=3, depth=20)
    with pytest.raises(ValueError, match="no label field 'colour'"):
        TrainData(_config(smoke["corpus"], "unused", objective="supervised", label="colour"), tokenizer, 16,
                  torch.device("cpu"))


def test_cached_json_reuses_a_finished_run_only_for_an_equal_key(tmp_path) -> None:
    from repro.experiments.common import cached_json

    calls: list[int] = []

    def compute() -> dict:
        calls.append(1)
        return {"accuracy": 0.25}

    path = tmp_path / "run" / "snapshots.json"
    assert cached_json(path, {"steps": (1, 2)}, compute) == {"accuracy": 0.25}
    assert cached_json(path, {"steps": [1, 2]}, compute) == {"accuracy": 0.25} and len(calls) == 1
    assert cached_json(path, {"steps": [1, 3]}, compute) == {"accuracy": 0.25} and len(calls) == 2
