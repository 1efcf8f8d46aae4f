"""Linear probes on frozen image features (Radford et al., 2021, §3.2 and appendix A.3): an L2-regularised
multinomial logistic regression fitted with L-BFGS, whose regularisation strength is chosen on a validation split
by the paper's parametric search — start at 10^-6, 10^-4, …, 10^6 and repeatedly halve the interval around the
best value until it reaches 8 steps per decade — and which is then refitted on training + validation data.

The paper sweeps λ; scikit-learn's `C` is its inverse (C = 1/λ), and the symmetric range covers the same values.
Model selection maximises validation accuracy; ties (common with tiny validation sets) go to the lower validation
log-loss, then to the stronger regularisation (smaller C), so the choice is deterministic.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from .metrics import mean_per_class_recall

if TYPE_CHECKING:
    from sklearn.linear_model import LogisticRegression

__all__ = ["few_shot", "fit_logistic", "linear_probe", "sample_shots", "search_C", "stratified_holdout"]

#: C for 1-shot probes, where no class has a second example to validate on (see `few_shot`).
ONE_SHOT_C = 1.0


def _xy(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor | Sequence, name: str) -> tuple[np.ndarray, ...]:
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if x.ndim != 2:
        raise ValueError(f"{name}_x must be a 2-d feature array [N, d], got shape {x.shape}")
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"{name}_y must be 1-d with one label per row of {name}_x ({len(x)}), got shape {y.shape}")
    return x.astype(np.float64), y


def fit_logistic(x: np.ndarray, y: np.ndarray, C: float, max_iter: int = 1000) -> LogisticRegression:
    """Multinomial logistic regression, L2 penalty, L-BFGS (appendix A.3); convergence warnings are silenced,
    since the largest C values of the sweep are barely regularised and may stop at `max_iter`. scikit-learn is
    imported here, so the rest of `repro.evaluate` works without it."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y)) < 2:
        raise ValueError(f"a probe needs at least 2 classes in its training data, got {np.unique(y).tolist()}")
    model = LogisticRegression(C=C, solver="lbfgs", max_iter=max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, y)


def evaluate_fit(model: LogisticRegression, x: np.ndarray, y: np.ndarray) -> tuple[int, float]:
    """(correct predictions, summed log-loss) on (x, y); a class unseen in training has probability ~0."""
    proba = model.predict_proba(x)
    column = {c: i for i, c in enumerate(model.classes_)}
    p = np.array([proba[i, column[c]] if c in column else 0.0 for i, c in enumerate(y)])
    correct = int((model.classes_[proba.argmax(axis=1)] == y).sum())
    return correct, float(-np.log(np.clip(p, 1e-15, 1.0)).sum())


def search_C(
    score: Callable[[float], tuple[float, float]], low: int = -6, high: int = 6, steps_per_decade: int = 8
) -> tuple[float, dict[float, tuple[float, float]]]:
    """The paper's parametric search for C (appendix A.3): `score(C)` -> (accuracy, log-loss) at 10^-6, 10^-4, …,
    10^6, then twice more around the best point at half the spacing, until the spacing is 1/`steps_per_decade`
    decades. Returns (best C, {C: score}); the best maximises accuracy, then minimises log-loss, then C."""
    scores: dict[float, tuple[float, float]] = {}

    def at(exponent: float) -> None:
        if low <= exponent <= high and exponent not in scores:
            scores[exponent] = score(10.0**exponent)

    def best() -> float:
        return min(scores, key=lambda e: (-scores[e][0], scores[e][1], e))

    step = 2.0
    for exponent in np.arange(low, high + 1e-9, step):
        at(float(exponent))
    while step > 1.0 / steps_per_decade + 1e-9:
        step /= 2
        peak = best()
        at(peak - step)
        at(peak + step)
    return 10.0 ** best(), {10.0**e: s for e, s in sorted(scores.items())}


def stratified_holdout(y: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) row indices: per class, a random `fraction` of its rows (at least 1, at most all but 1)
    is held out; a class with a single row stays in training."""
    train, val = [], []
    for c in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == c))
        n_val = 0 if len(rows) < 2 else int(np.clip(round(fraction * len(rows)), 1, len(rows) - 1))
        val.extend(rows[:n_val])
        train.extend(rows[n_val:])
    return np.sort(np.array(train, dtype=np.int64)), np.sort(np.array(val, dtype=np.int64))


def _accuracy_and_recall(model: LogisticRegression, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    pred = model.predict(x)
    return float(np.mean(pred == y)), mean_per_class_recall(pred, y)


def linear_probe(
    train_x: np.ndarray | torch.Tensor,
    train_y: np.ndarray | torch.Tensor | Sequence,
    test_x: np.ndarray | torch.Tensor,
    test_y: np.ndarray | torch.Tensor | Sequence,
    seed: int = 0,
    val_fraction: float = 0.2,
    max_iter: int = 1000,
) -> dict:
    """Linear-probe accuracy (paper §3.2, appendix A.3) on frozen features (e.g. `encode_images` output).

    A stratified `val_fraction` of the training rows (drawn with `seed`) is held out to choose C by `search_C`;
    the probe is then refitted on all training rows with that C and scored on the test rows. Labels may be ints or
    strings. Returns `top1`, `mean_per_class_recall`, `C`, `val_top1` (the chosen C's validation accuracy),
    `n_train`, `n_val`, `n_test`, `n_classes` (in the training data), `n_fits`.
    """
    train_x, train_y = _xy(train_x, train_y, "train")
    test_x, test_y = _xy(test_x, test_y, "test")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train_x has {train_x.shape[1]} features per row but test_x has {test_x.shape[1]}")
    fit_rows, val_rows = stratified_holdout(train_y, val_fraction, np.random.default_rng(seed))
    if len(val_rows) == 0:
        raise ValueError("no validation rows: every class has a single training example")

    val_x, val_y = train_x[val_rows], train_y[val_rows]

    def score(C: float) -> tuple[float, float]:
        correct, loss = evaluate_fit(fit_logistic(train_x[fit_rows], train_y[fit_rows], C, max_iter), val_x, val_y)
        return correct / len(val_rows), loss / len(val_rows)

    best_C, scores = search_C(score)
    model = fit_logistic(train_x, train_y, best_C, max_iter)
    top1, recall = _accuracy_and_recall(model, test_x, test_y)
    return {
        "top1": top1, "mean_per_class_recall": recall, "C": best_C, "val_top1": scores[best_C][0],
        "n_train": len(train_y), "n_val": len(val_rows), "n_test": len(test_y),
        "n_classes": int(len(np.unique(train_y))), "n_fits": len(scores) + 1,
    }


def sample_shots(y: np.ndarray, k: int, seed: int, draw: int) -> np.ndarray:
    """Row indices of a k-shot sample: per class (in sorted order), the first k rows of a random permutation
    drawn from (seed, draw) — so within a draw the k-shot sample contains every smaller-k sample. A class with
    fewer than k rows contributes all of them."""
    if k < 1:
        raise ValueError(f"shots must be >= 1, got {k}")
    rng = np.random.default_rng([seed, draw])
    rows = [rng.permutation(np.flatnonzero(y == c))[:k] for c in np.unique(y)]
    return np.sort(np.concatenate(rows))


def cv_score(x: np.ndarray, y: np.ndarray, folds: list[np.ndarray], max_iter: int) -> Callable[[float], tuple]:
    """score(C) for `search_C`: accuracy and mean log-loss over the held-out rows of all folds."""

    def score(C: float) -> tuple[float, float]:
        correct, loss, n = 0, 0.0, 0
        for held in folds:
            keep = np.setdiff1d(np.arange(len(y)), held)
            c, l_ = evaluate_fit(fit_logistic(x[keep], y[keep], C, max_iter), x[held], y[held])
            correct, loss, n = correct + c, loss + l_, n + len(held)
        return correct / n, loss / n

    return score


def shot_folds(y: np.ndarray, n_folds: int) -> list[np.ndarray]:
    """Fold j holds out the j-th row (in row order) of each class with at least 2 rows and more than j; a class
    always keeps a training row, and folds that would leave fewer than 2 classes to train on are dropped."""
    by_class = [np.flatnonzero(y == c) for c in np.unique(y)]
    folds = []
    for j in range(n_folds):
        held = [rows[j] for rows in by_class if len(rows) >= 2 and len(rows) > j]
        if held and len(np.unique(np.delete(y, held))) >= 2:
            folds.append(np.array(held))
    return folds


def few_shot(
    train_x: np.ndarray | torch.Tensor,
    train_y: np.ndarray | torch.Tensor | Sequence,
    test_x: np.ndarray | torch.Tensor,
    test_y: np.ndarray | torch.Tensor | Sequence,
    shots: Sequence[int] = (1, 2, 4, 8, 16),
    draws: int = 5,
    seed: int = 0,
    max_folds: int = 4,
    max_iter: int = 1000,
) -> list[dict]:
    """k-shot linear probes (paper §3.1.5, Figure 6–7): for each k and draw, a probe fitted on k examples per
    class (`sample_shots`; classes with fewer than k training rows use all they have) and scored on the test rows.

    C is chosen with the same parametric search, but validated *inside the k-shot sample* (no other labels are
    used): with k ≥ 2, min(k, `max_folds`) folds each hold out one example per class (leave-one-out per class),
    and the probe is then refitted on the whole sample. With k = 1 no class has a second example to validate on,
    so C is fixed to `ONE_SHOT_C` (= 1; on unit-norm features this is strongly regularised, close to a
    nearest-class-mean classifier). Deterministic for a seed. Returns one dict per (k, draw): `k`, `draw`, `top1`,
    `mean_per_class_recall`, `C`, `C_selection` ("cv" or "fixed"), `n_train`.
    """
    train_x, train_y = _xy(train_x, train_y, "train")
    test_x, test_y = _xy(test_x, test_y, "test")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train_x has {train_x.shape[1]} features per row but test_x has {test_x.shape[1]}")
    results = []
    for k in shots:
        for draw in range(draws):
            rows = sample_shots(train_y, k, seed, draw)
            x, y = train_x[rows], train_y[rows]
            folds = shot_folds(y, min(k, max_folds)) if k >= 2 else []
            if folds:
                C, selection = search_C(cv_score(x, y, folds, max_iter))[0], "cv"
            else:
                C, selection = ONE_SHOT_C, "fixed"
            top1, recall = _accuracy_and_recall(fit_logistic(x, y, C, max_iter), test_x, test_y)
            results.append({
                "k": int(k), "draw": draw, "top1": top1, "mean_per_class_recall": recall, "C": C,
                "C_selection": selection, "n_train": len(rows),
            })
    return results
