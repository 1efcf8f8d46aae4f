"""The `adaptation` experiment (zero-shot vs linear probe vs LoRA vs full fine-tuning) end to end at the smoke
profile: the result schema, accuracies that are fractions, trainable parameters ordered zero-shot < probe < LoRA <
full, zero-shot numbers equal to a direct `zeroshot_eval`, and the robustness summary computed from them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import smoke_experiment

from repro.evaluate.runner import SplitCache
from repro.evaluate.shift import shift_task
from repro.evaluate.zeroshot import zeroshot_eval
from repro.experiments import adaptation, get
from repro.experiments.common import trained_clip
from repro.models.naming import effective_config


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One smoke run of `adaptation` (training the smoke clip_small first) into temporary data/results/run dirs."""
    with smoke_experiment(tmp_path_factory, "adaptation") as run:
        yield run


def test_registered_with_the_profiles_of_clip_small() -> None:
    assert get("adaptation") is adaptation
    assert {p: s["seeds"] for p, s in adaptation.PROFILES.items()} == {"smoke": 1, "cpu": 3, "gpu": 3}
    for spec in adaptation.PROFILES.values():
        assert min(spec["lora"]["lr_grid"]) > min(spec["full_ft"]["lr_grid"])


def test_schema_and_accuracies(smoke_run) -> None:
    record = smoke_run["record"]
    assert record["experiment"] == "adaptation" and record["profile"] == "smoke" and record["seed"] == 0
    metrics = record["metrics"]
    task = metrics["task"]
    assert task["prefix"] == "smoke-category/" and task["n_classes"] >= 2 and task["n_train"] > 0
    assert task["in_distribution"] in task["splits"]
    assert list(metrics["methods"]) == list(adaptation.METHODS)
    for method, entry in metrics["methods"].items():
        assert set(entry["top1"]) == set(task["splits"]), method
        assert all(0.0 <= a <= 1.0 for a in entry["top1"].values()), method
        for key in ("in_distribution", "held_out_styles", "zero_shot_concepts"):
            assert 0.0 <= entry[key] <= 1.0, (method, key)
        assert entry["in_distribution"] == entry["top1"][task["in_distribution"]]
        held = [s for s, v in task["splits"].items() if v["shift"] == "held-out style"]
        assert entry["held_out_styles"] == pytest.approx(np.mean([entry["top1"][s] for s in held]))
        assert entry["drop"] == pytest.approx(entry["in_distribution"] - entry["held_out_styles"])
        assert entry["wall_time_s"] > 0
    for method in ("lora", "full_ft"):
        entry = metrics["methods"][method]
        assert entry["train"]["steps"] == adaptation.PROFILES["smoke"]["steps"]
        assert math.isfinite(entry["train"]["final_loss"])
        curve = record["curves"][method]
        assert len(curve["step"]) == len(curve["loss"]) == len(curve["accuracy"]) > 0
        assert curve["step"][-1] == adaptation.PROFILES["smoke"]["steps"]
    # the merged LoRA model computes what the adapted one did
    assert metrics["methods"]["lora"]["merge_max_abs_diff"] < 1e-5


def test_trainable_parameters_are_ordered(smoke_run) -> None:
    metrics = smoke_run["record"]["metrics"]
    counts = [metrics["methods"][m]["trainable_params"] for m in ("zeroshot", "linear_probe", "lora", "full_ft")]
    assert counts[0] == 0 and counts[0] < counts[1] < counts[2] < counts[3]
    assert counts[3] == metrics["base_params"]
    lora = metrics["methods"]["lora"]
    assert counts[2] == lora["lora_params"] + 1  # + the temperature
    n_classes = metrics["task"]["n_classes"]
    embed = effective_config(smoke_run["record"]["config"]["clip_small"]).embed_dim
    assert counts[1] == embed * n_classes + n_classes


def test_zero_shot_equals_a_direct_zeroshot_eval(smoke_run) -> None:
    record = smoke_run["record"]
    model, tokenizer, config = trained_clip("smoke", 0, smoke_run["root"] / "runs")
    corpus = smoke_run["corpus"]
    task = shift_task(corpus, adaptation.PROFILES["smoke"]["prefix"])
    cache = SplitCache(model, corpus, config.data_size)
    for split in task.splits:
        direct = zeroshot_eval(model, tokenizer, cache.split(split), task.suite(split))
        assert record["metrics"]["methods"]["zeroshot"]["top1"][split] == direct["top1"], split


def test_classification_loss_is_clips_head() -> None:
    """The fine-tuning loss is cross-entropy over exp(logit_scale) · cos(image, class prompt)."""
    from repro.models import CLIP, CLIPConfig

    torch.manual_seed(0)
    model = CLIP(CLIPConfig(embed_dim=64, image_resolution=16, vision_layers=1, vision_width=64, vision_patch_size=8,
                            context_length=8, vocab_size=50, transformer_width=64, transformer_layers=1)).eval()
    images = torch.randn(4, 3, 16, 16)
    prompts = torch.randint(1, 48, (3, 8))
    prompts[:, 4] = 49
    labels = torch.tensor([0, 2, 1, 2])
    loss, accuracy = adaptation.classification_loss(model, images, labels, prompts)
    logits_per_image, _ = model(images, prompts)
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(logits_per_image, labels).item(), rel=1e-5)
    assert accuracy.item() == pytest.approx((logits_per_image.argmax(1) == labels).float().mean().item())
