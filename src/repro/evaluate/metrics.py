"""Classification metrics shared by the zero-shot and linear-probe protocols (Radford et al., 2021, §3.1–3.2 and
Table 9: top-1 / top-5 accuracy, and mean per-class recall for imbalanced evaluation sets)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["mean_per_class_recall", "per_group_accuracy", "predictions", "topk_accuracy"]


def _as_numpy(x: np.ndarray | torch.Tensor | Sequence) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def topk_accuracy(scores: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, k: int = 1) -> float:
    """Fraction of rows whose label is among the k highest scores (scores [N, C], integer labels [N]).

    Ties are broken by class index, as a stable sort or `argmax` does: the label's rank is the number of classes
    scoring strictly higher plus those scoring the same with a smaller index, so top-1 agrees with `predictions`.
    """
    scores, labels = _as_numpy(scores).astype(np.float64), _as_numpy(labels).astype(np.int64)
    if scores.ndim != 2 or len(scores) != len(labels):
        raise ValueError(f"scores must be [N, C] with N = len(labels) = {len(labels)}, got {scores.shape}")
    if len(labels) == 0:
        return float("nan")
    own = scores[np.arange(len(labels)), labels][:, None]
    before = np.arange(scores.shape[1])[None, :] < labels[:, None]
    rank = (scores > own).sum(axis=1) + ((scores == own) & before).sum(axis=1)
    return float(np.mean(rank < k))


def predictions(scores: np.ndarray | torch.Tensor) -> np.ndarray:
    """Top-1 predicted class per row (the first on ties)."""
    return _as_numpy(scores).argmax(axis=1)


def mean_per_class_recall(pred: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> float:
    """Mean over the classes present in `labels` of the fraction of that class's rows predicted correctly.

    Classes absent from `labels` have no recall and are left out of the mean (paper Table 9 uses this metric for
    imbalanced datasets such as Caltech-101 and Pets).
    """
    pred, labels = _as_numpy(pred), _as_numpy(labels)
    if len(pred) != len(labels):
        raise ValueError(f"predictions ({len(pred)}) and labels ({len(labels)}) differ in length")
    if len(labels) == 0:
        return float("nan")
    recalls = [np.mean(pred[labels == c] == c) for c in np.unique(labels)]
    return float(np.mean(recalls))


def per_group_accuracy(correct: np.ndarray, groups: Sequence[str]) -> dict[str, dict[str, float | int]]:
    """{group: {"top1": accuracy, "n": rows}} for boolean per-row correctness, groups in sorted order."""
    correct, groups = np.asarray(correct, dtype=bool), np.asarray(list(groups), dtype=object)
    if len(correct) != len(groups):
        raise ValueError(f"correctness ({len(correct)}) and groups ({len(groups)}) differ in length")
    return {
        str(g): {"top1": float(correct[groups == g].mean()), "n": int((groups == g).sum())}
        for g in sorted(set(groups.tolist()))
    }
