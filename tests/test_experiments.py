"""The command line end to end on the smoke corpus (`repro train`, `repro eval`, `repro run`), and result files with
provenance aggregated over seeds in one place."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from repro.experiments import get
from repro.experiments.results import load_results, mean_ci, metric, write_result
from repro.provenance import cpu_info

TINY = {"embed_dim": 64, "vision_width": 64, "vision_layers": 1, "vision_patch_size": 8, "transformer_width": 64,
        "transformer_layers": 1, "context_length": 16, "vocab_size": 600}


def repro(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "repro.cli", *args], capture_output=True, text=True, env=env,
                          check=False)


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("cli")
    return os.environ | {"REPRO_DATA": str(root / "data"), "REPRO_RESULTS": str(root / "results")}


def test_cli_builds_trains_and_evaluates_on_smoke(env, tmp_path) -> None:
    built = repro("data", "build", "--corpus", "smoke", "--workers", "1", env=env)
    assert built.returncode == 0, built.stderr
    corpus = os.path.join(env["REPRO_DATA"], "build", "smoke")
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"corpus_dir": corpus, "out_dir": str(tmp_path / "run"), "model": "ViT-T/4@32px",
                                  "model_overrides": TINY, "batch_size": 16, "steps": 6, "warmup_steps": 2}))
    trained = repro("train", str(config), "--set", "progress=false", "--set", "log_every=2", env=env)
    assert trained.returncode == 0, trained.stderr
    assert "trained 6 steps" in trained.stdout
    out = tmp_path / "eval.json"
    evaluated = repro("eval", str(tmp_path / "run" / "model.safetensors"), "--corpus-dir", corpus, "--out", str(out),
                      env=env)
    assert evaluated.returncode == 0, evaluated.stderr
    results = json.loads(out.read_text())
    assert {"smoke-concept/zeroshot", "smoke-category/test-outline", "retrieval/val"} <= set(results)
    assert 0.0 <= results["smoke-concept/zeroshot"]["top1"] <= 1.0
    bad = repro("train", "--set", "nonsense=1", env=env)
    assert bad.returncode != 0 and "unknown training config keys: ['nonsense']" in bad.stderr


def test_run_writes_a_result_with_provenance(env) -> None:
    ran = repro("run", "clip_small", "--profile", "smoke", "--workdir", os.path.join(env["REPRO_RESULTS"], "..", "w"),
                env=env)
    assert ran.returncode == 0, ran.stderr
    [record] = load_results("clip_small", "smoke", root=env["REPRO_RESULTS"])
    assert {"experiment", "profile", "seed", "config", "metrics", "curves", "git_revision", "hardware",
            "wall_time_s", "versions", "created"} <= set(record)
    assert record["curves"]["logit_scale"] and record["config"]["corpus"] == "smoke"
    trained_on = record["metrics"]["train"]["corpus"]  # the build, not just its name: a rebuild can differ
    assert trained_on["name"] == "smoke" and len(trained_on["train_sha256"]) == 64 and trained_on["n_train"] > 0
    assert 0 <= metric(record, "smoke-concept/val|top1") <= 1
    again = repro("run", "clip_small", "--profile", "smoke", env=env)
    assert "exists (--force to re-run)" in again.stdout
    extend = repro("run", "clip_small", "--profile", "smoke", "--extend", env=env)
    assert extend.returncode != 0 and "experiment clip_small cannot be extended (only: objectives)" in extend.stderr


def test_cpu_info_tells_processors_of_one_name_apart() -> None:
    """Two "AMD EPYC"s, one with bf16 instructions: the record names family/model and the matrix flags of the first
    processor only."""
    zen3 = "processor\t: 0\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 sse\n\n" \
        "processor\t: 1\nmodel name\t: Other\nflags\t\t: avx512f\n"
    zen4 = "cpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\nflags\t\t: avx2 avx512f avx512_bf16\n"
    assert cpu_info(zen3) == {"cpu": "AMD EPYC", "cpu_family_model": "25/1", "cpu_matrix_flags": ["avx2"]}
    assert cpu_info(zen4) == {"cpu": "AMD EPYC", "cpu_family_model": "25/17",
                              "cpu_matrix_flags": ["avx2", "avx512f", "avx512_bf16"]}
    assert cpu_info("") == {}


def test_mean_and_confidence_interval() -> None:
    r = mean_ci([1.0, 2.0, 3.0])
    assert r["mean"] == 2.0 and r["std"] == 1.0 and r["ci95"] == pytest.approx(4.303 / math.sqrt(3))
    assert math.isnan(mean_ci([5.0])["ci95"]) and mean_ci([])["n"] == 0


def test_result_files_are_written_and_read(tmp_path) -> None:
    for seed in (1, 0):
        write_result("demo", "smoke", seed, {"a": 1}, {"acc": {"top1": 0.5 + seed}}, 1.0, root=tmp_path)
    records = load_results("demo", "smoke", root=tmp_path)
    assert [r["seed"] for r in records] == [0, 1] and metric(records[1], "acc|top1") == 1.5


def test_unknown_experiment() -> None:
    with pytest.raises(ValueError, match="unknown experiment 'nope'"):
        get("nope")


@pytest.mark.parametrize("name", ["prompts", "search", "fewshot", "limitations", "longtext", "adaptation"])
def test_evaluation_experiments_use_the_headline_models_corpus(name):
    """An experiment that evaluates the trained `clip_small` must score it on the corpus it was trained on (another
    corpus's evaluation splits can hold its training pictures)."""
    from repro.experiments import clip_small

    module = get(name)
    for profile, spec in module.PROFILES.items():
        assert spec["corpus"] == clip_small.PROFILES[profile]["corpus"], (name, profile)
