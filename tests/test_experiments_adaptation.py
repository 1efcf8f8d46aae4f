"""The `adaptation` experiment (zero-shot vs linear probe vs LoRA vs full fine-tuning) end to end at the smoke
profile: the result schema, accuracies that are fractions, trainable parameters ordered zero-shot < probe < LoRA <
full, zero-shot numbers equal to a direct `zeroshot_eval`, and the robustness summary computed from them; and its
few-shot axis (probe, CoOp, CLIP-Adapter at each k): finite accuracies on every split, trainable parameters as the
modules count them, and selection data that are labelled training rows, disjoint from the k-shot samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import smoke_experiment

from repro.evaluate.runner import SplitCache
from repro.evaluate.shift import shift_task, training_rows
from repro.evaluate.zeroshot import zeroshot_eval
from repro.experiments import adaptation, clip_small, get
from repro.experiments.adaptation_fewshot import FEW_SHOT_METHODS
from repro.experiments.common import trained_clip
from repro.feature_adapter import CLIPAdapter
from repro.models.naming import effective_config
from repro.prompt_tuning import PromptLearner


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One smoke run of `adaptation` (training the smoke clip_small first) into temporary data/results/run dirs."""
    with smoke_experiment(tmp_path_factory, "adaptation") as run:
        yield run


def test_registered_with_the_profiles_of_clip_small() -> None:
    assert get("adaptation") is adaptation
    seeds = {p: s["seeds"] for p, s in clip_small.PROFILES.items()}  # it evaluates every headline seed
    assert {p: s["seeds"] for p, s in adaptation.PROFILES.items()} == seeds
    for profile, spec in adaptation.PROFILES.items():
        assert min(spec["lora"]["lr_grid"]) > min(spec["full_ft"]["lr_grid"])
        assert spec["corpus"] == clip_small.PROFILES[profile]["corpus"]  # the headline model's corpus
    for profile in ("cpu", "gpu"):
        assert adaptation.PROFILES[profile]["prefix"] == "emoji-subcategory/"
        assert tuple(adaptation.PROFILES[profile]["shots"]) == (1, 2, 4, 8, 16)


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


def test_few_shot_axis(smoke_run) -> None:
    """Every few-shot method at every k: finite accuracies on every split, the summary of `summarize`, trainable
    parameters as the modules count them, selection records, and wall times."""
    record = smoke_run["record"]
    metrics, spec = record["metrics"], adaptation.PROFILES["smoke"]
    task, few = metrics["task"], metrics["few_shot"]
    assert few["shots"] == list(spec["shots"]) and few["views"] == spec["views"]
    assert list(few["methods"]) == list(FEW_SHOT_METHODS)
    embed = effective_config(record["config"]["clip_small"]).embed_dim
    model, tokenizer, _ = trained_clip("smoke", 0, smoke_run["root"] / "runs")
    learner = PromptLearner(model, tokenizer, ["a", "b"], spec["coop"]["n_ctx"])
    adapter = CLIPAdapter(embed, spec["clip_adapter"]["reduction"])
    expected = {"coop": sum(p.numel() for p in learner.parameters()),
                "clip_adapter": sum(p.numel() for p in adapter.parameters())}
    assert expected == {"coop": spec["coop"]["n_ctx"] * model.transformer.width,
                        "clip_adapter": 2 * embed * embed // spec["clip_adapter"]["reduction"]}
    for method, by_k in few["methods"].items():
        assert list(by_k) == [str(k) for k in spec["shots"]], method
        for k, entry in by_k.items():
            assert set(entry["top1"]) == set(task["splits"]), (method, k)
            assert all(math.isfinite(a) and 0.0 <= a <= 1.0 for a in entry["top1"].values()), (method, k)
            assert entry["in_distribution"] == entry["top1"][task["in_distribution"]]
            assert entry["drop"] == pytest.approx(entry["in_distribution"] - entry["held_out_styles"])
            assert entry["n_train"] == len(few["shot_rows"][k]) and entry["wall_time_s"] > 0
            assert 0.0 <= entry["val_top1"] <= 1.0
            if method == "linear_probe":
                assert entry["trainable_params"] == embed * task["n_classes"] + task["n_classes"]
            else:
                assert entry["trainable_params"] == expected[method]
                assert math.isfinite(entry["train"]["final_loss"])
                assert entry["train"]["steps"] == spec[method]["steps"]
    coop = few["methods"]["coop"]["1"]
    assert coop["lr"] in spec["coop"]["lr_grid"] and len(coop["selection"]) == len(spec["coop"]["lr_grid"])
    chosen = few["methods"]["clip_adapter"]["1"]
    assert chosen["alpha"] in spec["clip_adapter"]["alpha_grid"]
    assert len(chosen["selection"]) == len(spec["clip_adapter"]["alpha_grid"]) * len(spec["clip_adapter"]["lr_grid"])


def test_few_shot_selection_uses_training_rows_only(smoke_run) -> None:
    """The selection set and the k-shot samples are rows of the labelled training split (never an evaluation
    split), disjoint, stratified: at most k images per class, the smaller samples inside the larger."""
    metrics, spec = smoke_run["record"]["metrics"], adaptation.PROFILES["smoke"]
    few = metrics["few_shot"]
    task = shift_task(smoke_run["corpus"], spec["prefix"])
    config = trained_clip("smoke", 0, smoke_run["root"] / "runs")[2]
    _, rows, y = training_rows(task, smoke_run["corpus"], config.data_size)
    label = dict(zip(rows.tolist(), y.tolist(), strict=True))
    assert few["split"] == "train" and "train" not in task.splits
    selection = set(few["selection_rows"])
    assert selection and selection <= set(label)
    previous: set[int] = set()
    for k in spec["shots"]:
        shot = few["shot_rows"][str(k)]
        assert set(shot) <= set(label) and not set(shot) & selection
        assert max(np.bincount([label[r] for r in shot])) <= k
        assert previous <= set(shot)
        previous = set(shot)
