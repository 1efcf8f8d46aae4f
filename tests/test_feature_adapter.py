"""CLIP-Adapter (`repro.feature_adapter`) and the few-shot data of the adaptation experiment
(`repro.experiments.adaptation_fewshot`): α = 0 is zero-shot CLIP exactly, the adapter trains 2 · D · D/r numbers,
k-shot samples are stratified, nested and disjoint from the selection rows, and bad k or methods are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from repro.evaluate.features import normalize
from repro.experiments import adaptation_fewshot
from repro.experiments.adaptation_fewshot import fit_on_features, shot_data
from repro.feature_adapter import CLIPAdapter


def _features_and_weights(n: int = 10, dim: int = 64, classes: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return normalize(torch.randn(n, dim, generator=g)), normalize(torch.randn(classes, dim, generator=g)).t()


def test_alpha_zero_is_zero_shot_exactly() -> None:
    f, w = _features_and_weights()
    scale = torch.tensor(14.3)
    adapter = CLIPAdapter(64, reduction=4, alpha=0.0)
    assert torch.equal(adapter(f), f)
    assert torch.equal(adapter.logits(f, w, scale), scale * normalize(f) @ w)
    assert not torch.equal(CLIPAdapter(64, alpha=0.2).logits(f, w, scale), scale * normalize(f) @ w)


def test_shapes_and_trainable_parameters() -> None:
    f, w = _features_and_weights(n=7, dim=64, classes=3)
    adapter = CLIPAdapter(64, reduction=4, alpha=0.5, seed=3)
    assert adapter(f).shape == (7, 64) and adapter.logits(f, w, 10.0).shape == (7, 3)
    assert sum(p.numel() for p in adapter.parameters() if p.requires_grad) == 2 * 64 * 64 // 4
    assert [layer.bias for layer in (adapter.fc[0], adapter.fc[2])] == [None, None]  # no biases, as the paper
    assert torch.equal(CLIPAdapter(64, alpha=0.5, seed=3).fc[0].weight, adapter.fc[0].weight)  # seeded
    with pytest.raises(ValueError, match="width 64 must be divisible by the reduction 5"):
        CLIPAdapter(64, reduction=5)
    with pytest.raises(ValueError, match="alpha must be in"):
        CLIPAdapter(64, alpha=1.5)
    with pytest.raises(ValueError, match=r"features must be \[N, 64\]"):
        adapter(torch.zeros(2, 32))


def test_training_lowers_the_loss_and_moves_only_the_adapter() -> None:
    f, w = _features_and_weights(n=40, classes=4)
    labels = torch.arange(40) % 4
    adapter = CLIPAdapter(64, alpha=0.5)
    before = torch.nn.functional.cross_entropy(adapter.logits(f, w, 20.0), labels).item()
    run = fit_on_features(list(adapter.parameters()), lambda x: adapter.logits(x, w, 20.0), f[None], labels,
                          steps=60, batch_size=16, lr=1e-2, weight_decay=0.0, warmup_steps=5, seed=0)
    after = torch.nn.functional.cross_entropy(adapter.logits(f, w, 20.0), labels).item()
    assert run["steps"] == 60 and after < before


def test_shot_data_is_stratified_nested_and_disjoint_from_selection() -> None:
    y = np.repeat(np.arange(4), [30, 20, 3, 10])
    selection, rows, short = shot_data(y, (1, 2, 4, 8), holdout=0.2, seed=0)
    assert np.array_equal(np.unique(y[selection]), np.arange(4))  # every class held out (≥ 1 row)
    for k, r in rows.items():
        assert not set(r) & set(selection)
        counts = np.bincount(y[r], minlength=4)
        assert counts.max() == k and (counts == np.minimum(k, np.bincount(np.delete(y, selection)))).all()
    assert set(rows[1]) <= set(rows[2]) <= set(rows[4]) <= set(rows[8])
    assert short == {1: 0, 2: 0, 4: 1, 8: 1}  # class 2 keeps 2 of its 3 rows after the holdout
    again = shot_data(y, (1, 2, 4, 8), holdout=0.2, seed=0)
    assert np.array_equal(again[0], selection) and all(np.array_equal(again[1][k], rows[k]) for k in rows)


def test_bad_k_and_methods_are_refused() -> None:
    y = np.repeat(np.arange(3), 5)
    with pytest.raises(ValueError, match="shots must be integers >= 1, got 0"):
        shot_data(y, (0,), 0.2, 0)
    with pytest.raises(ValueError, match="k = 16 exceeds the training images of every class"):
        shot_data(y, (1, 16), 0.2, 0)
    with pytest.raises(ValueError, match="unknown few-shot method 'tip_adapter'"):
        adaptation_fewshot.few_shot_axis(None, None, None, None, y, None, {}, {"few_shot_methods": ("tip_adapter",)}, 0)
