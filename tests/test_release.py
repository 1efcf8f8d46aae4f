"""The shipped model (`repro.load("clip-small")`), the shipped evaluation sample and the export that makes them."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import pytest
import torch
from conftest import REPO, smoke_experiment

import repro
from repro.data.sample import SAMPLE_SPLITS, build_sample, load_sample, sample_split, sample_suites
from repro.evaluate.runner import sample_accuracies
from repro.loading import PRETRAINED, pretrained_path
from repro.release import CARD_KEY, export_model


@pytest.fixture(scope="module")
def shipped():
    return repro.load("clip-small")


def test_available_models_lists_the_shipped_model_first():
    names = repro.available_models()
    assert names[0] == "clip-small" and "ViT-B/32" in names and "ViT-XS/8@32px" in names
    assert set(PRETRAINED) <= set(names)


def test_shipped_model_file_is_small_and_says_what_it_was_trained_on(shipped):
    model, preprocess = shipped
    size = pretrained_path("clip-small").stat().st_size
    assert size <= 10 * 2**20
    stated = re.search(r"It is one ([\d.]+) MB safetensors file", (REPO / "README.md").read_text())
    assert stated and float(stated.group(1)) == round(size / 1e6, 1), "the README states the shipped file's size"
    assert model.dtype == torch.float32 and not model.training and preprocess.n_px == model.config.image_resolution
    card = model.metadata[CARD_KEY]
    from repro.experiments.clip_small import PROFILES

    assert model.metadata["corpus"]["name"] == PROFILES["cpu"]["corpus"]
    manifest = json.loads((REPO / f"results/data/{model.metadata['corpus']['name']}/manifest.json").read_text())
    assert model.metadata["corpus"]["stamp"] == manifest["stamp"] == card["sample"]["corpus"]["stamp"]
    assert model.metadata["corpus"]["train_split"] == "train" and len(model.metadata["corpus"]["train_sha256"]) == 64
    result = json.loads((REPO / card["result_file"]).read_text())
    assert (result["experiment"], result["profile"], result["seed"]) == ("clip_small", "cpu", 0)
    assert result["git_revision"] == card["result_revision"] and not card["result_revision"].endswith("+dirty")
    assert {k: v for k, v in result["config"].items() if k != "corpus"} == card["train_config"]
    assert card["steps"] == result["metrics"]["train"]["steps"]


def test_shipped_model_tokenizer_fits_its_text_tower(shipped):
    model, _ = shipped
    ids = model.tokenizer(["an emoji of a cat.", "a red heart"])
    assert ids.shape == (2, model.config.context_length)
    assert model.encode_text(ids).shape == (2, model.config.embed_dim)
    vocab = model.config.vocab_size
    with pytest.raises(ValueError, match=rf"outside this model's vocabulary of {vocab} ids.*model\.tokenizer\(texts\)"):
        model.encode_text(repro.tokenize(["an emoji of a cat."]))


def test_shipped_model_scores_the_recorded_accuracies_on_the_shipped_sample(shipped):
    """Within one image per suite: CPUs of different makes round a few logits differently."""
    model, _ = shipped
    recorded = model.metadata[CARD_KEY]["sample"]["accuracies"]
    measured = sample_accuracies(model, model.tokenizer, load_sample())
    assert set(measured) == set(recorded)
    for suite, r in recorded.items():
        assert measured[suite]["n"] == r["n"]
        assert abs(measured[suite]["correct"] - r["correct"]) <= 1, suite


def test_shipped_sample_comes_from_the_shipped_models_corpus(shipped):
    """Its images are evaluation images of the build the model trained on (another build's evaluation split can
    hold this one's training pictures: each build draws its own zero-shot concepts)."""
    model, _ = shipped
    trained_on = model.metadata[CARD_KEY]["corpus"]
    assert load_sample().meta["corpus"] == {"name": trained_on["name"], "stamp": trained_on["stamp"]}


def test_shipped_sample_has_licences_and_no_training_images():
    sample = load_sample()
    assert len(sample) == sum(SAMPLE_SPLITS.values()) and sample.images.shape[1:] == (32, 32, 3)
    assert {s: sample.fields["split"].count(s) for s in SAMPLE_SPLITS} == SAMPLE_SPLITS
    assert all(sample.fields["licence"]) and all(sample.fields["attribution"])
    pairs = zip(sample.fields["source"], sample.fields["licence"], strict=True)
    openmoji = {lic for src, lic in pairs if src == "openmoji"}
    assert openmoji == {"CC-BY-SA-4.0"}
    icons = {(split, att) for split, src, att in zip(sample.fields["split"], sample.fields["source"],
                                                     sample.fields["attribution"], strict=True) if src == "iconify"}
    # each icon carries its own set's attribution (the held-out sets differ in author and licence)
    assert len({att for _, att in icons}) >= len({split for split, _ in icons}) >= 3
    assert {s.split for s in sample_suites(sample)} == set(SAMPLE_SPLITS)
    assert len(sample_split(sample, "val")) == SAMPLE_SPLITS["val"]
    with pytest.raises(ValueError, match="no images of split 'train'"):
        sample_split(sample, "train")


def test_export_round_trip_on_a_smoke_run(tmp_path_factory, tmp_path):
    """export_model writes float16 weights whose recorded sample accuracies a fresh load reproduces."""
    with smoke_experiment(tmp_path_factory, "clip_small") as run:
        corpus = run["corpus"]
        splits = {s: 5 for s in ("val", "named", "zeroshot")}
        build_sample(corpus, tmp_path / "sample.npz", splits)
        run_dir = run["root"] / "runs" / "clip_small" / "smoke" / "seed0"
        out = tmp_path / "model.safetensors"
        card = export_model(run_dir, out, run["path"], sample=tmp_path / "sample.npz")
    model, _ = repro.load(out)
    assert model.dtype == torch.float16 and model.metadata[CARD_KEY] == card
    assert card["trained_by"] == "repro run clip_small --profile smoke (seed 0)"
    measured = sample_accuracies(model.float(), model.tokenizer, load_sample(tmp_path / "sample.npz"))
    recorded = card["sample"]["accuracies"]
    assert {k: v["correct"] for k, v in measured.items()} == {k: v["correct"] for k, v in recorded.items()}
    assert all(0 <= v["top1"] <= 1 for v in measured.values())


def test_readme_snippet_runs_as_written():
    """The README's Python snippet, run from the repository root, prints one probability per label."""
    readme = (REPO / "README.md").read_text()
    [snippet] = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    out = subprocess.run([sys.executable, "-c", snippet], cwd=REPO, capture_output=True, text=True, check=True)
    probs = eval(out.stdout.strip().splitlines()[-1])  # a dict literal printed by the snippet
    assert isinstance(probs, dict) and len(probs) >= 2 and math.isclose(sum(probs.values()), 1, abs_tol=0.01)
