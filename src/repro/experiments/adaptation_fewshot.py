"""The few-shot axis of the `adaptation` experiment: the linear probe, CoOp and CLIP-Adapter trained on k labelled
training images per class, k = 1, 2, 4, 8, 16 (the paper's Figure 6 axis), every one on frozen image features.

Data (per seed, `shot_data`). A stratified `holdout` fraction of the labelled training rows is set aside as the
*selection* set — every hyper-parameter of every few-shot method (the probe's C, CoOp's learning rate,
CLIP-Adapter's residual ratio α and learning rate) is chosen by top-1 on it, and no evaluation split is looked at.
The k-shot samples are drawn from the other rows with `repro.evaluate.probe.sample_shots` (per class the first k of
one seeded permutation, so the k-shot sample contains every smaller one); a class with fewer than k such rows
contributes all of them, as in the `fewshot` experiment, and the number of such classes is recorded. The
selection set is the same for all k and methods and is larger than k per class: a validation set, not a strict
k-shot protocol (CoOp itself fixes its hyper-parameters; the probe of `fewshot` validates inside the sample).

Methods (each trains only its own parameters; the CLIP model is frozen):

- **linear probe** (Radford et al., 2021, §3.2): L-BFGS logistic regression on the normalised features, C by the
  paper's search (`search_C`) scored on the selection set; D · C + C parameters.
- **CoOp** (Zhou et al., 2022): M context vectors (`repro.prompt_tuning.PromptLearner`), cross-entropy over
  logit_scale · cos(image, class text); M · width parameters.
- **CLIP-Adapter** (Gao et al., 2021): the residual bottleneck MLP on the image features
  (`repro.feature_adapter.CLIPAdapter`) with the frozen prompt-ensemble classifier; 2 · D · D/r parameters.

CoOp and CLIP-Adapter see the images only through their frozen features, so these are computed once
(`crop_views`): view 0 with the evaluation preprocessing, further views with pre-training's random square crop
(the augmentation both papers use, cached as Tip-Adapter does). Each step draws `batch_size` of the k-shot images
and one view of each; AdamW, linear warmup then cosine decay (`fit_on_features`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data.tensors import crop_params, square_crop, to_float
from ..data.tensors import normalize as normalize_pixels
from ..evaluate.features import model_device
from ..evaluate.features import normalize as unit
from ..evaluate.probe import evaluate_fit, fit_logistic, sample_shots, search_C, stratified_holdout
from ..evaluate.zeroshot import zeroshot_classifier
from ..feature_adapter import CLIPAdapter
from ..optim import descend, lr_lambda
from ..prompt_tuning import PromptLearner
from .common import limited_threads

__all__ = ["FEW_SHOT_METHODS", "crop_views", "fit_on_features", "few_shot_axis", "shot_data"]

FEW_SHOT_METHODS = ("linear_probe", "coop", "clip_adapter")

Tests = dict[str, tuple[torch.Tensor, np.ndarray]]


def shot_data(y: np.ndarray, shots: Sequence[int], holdout: float, seed: int
              ) -> tuple[np.ndarray, dict[int, np.ndarray], dict[int, int]]:
    """(selection rows, {k: k-shot rows}, {k: classes with fewer than k pool rows}) as indices into `y`: a stratified
    `holdout` of the rows for selection, the k-shot samples (`sample_shots`, draw 0 of `seed`) from the rest.
    A k below 1, or above the pool rows of every class, is a ValueError naming it."""
    pool, selection = stratified_holdout(y, holdout, np.random.default_rng([seed, 1]))
    counts = np.bincount(y[pool])
    rows, short = {}, {}
    for k in shots:
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"shots must be integers >= 1, got {k!r}")
        if k > counts.max():
            raise ValueError(f"k = {k} exceeds the training images of every class (at most {counts.max()} after the "
                             f"{holdout:g} selection holdout)")
        rows[int(k)] = pool[sample_shots(y[pool], int(k), seed, 0)]
        short[int(k)] = int(np.sum(counts[counts > 0] < k))
    return selection, rows, short


@torch.no_grad()
def crop_views(model, images: np.ndarray, views: int, min_crop_scale: float, seed: int,
               batch_size: int = 256) -> torch.Tensor:
    """Normalised image features [views, N, D] of uint8 images [N, H, W, 3], each view a random square crop of
    every image (`crop_params`, side ≥ `min_crop_scale` of the picture; pre-training's augmentation)."""
    device, res = model_device(model), int(model.config.image_resolution)
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    out = []
    for _ in range(views):
        parts = []
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size]))
            scale, shift = crop_params(len(batch), min_crop_scale, generator)
            x = normalize_pixels(square_crop(to_float(batch), res, scale, shift))
            parts.append(unit(model.encode_image(x.to(device, model.dtype))).cpu())
        out.append(torch.cat(parts))
    model.train(was_training)
    return torch.stack(out) if out else torch.zeros(0, len(images), int(model.config.embed_dim))


def fit_on_features(params: list[torch.nn.Parameter], logits_fn: Callable[[torch.Tensor], torch.Tensor],
                    views: torch.Tensor, labels: torch.Tensor, steps: int, batch_size: int, lr: float,
                    weight_decay: float, warmup_steps: int, seed: int) -> dict:
    """Train `params` to minimise the cross-entropy of `logits_fn(features)` [B, C] on cached image features
    `views` [V, N, D] with `labels` [N]: each step `batch_size` images drawn at random (without replacement), one
    random view each; AdamW, linear warmup then cosine decay. Returns `steps`, `final_loss` (mean of the last
    10 steps), `train_wall_time_s`."""
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(min(warmup_steps, steps), steps))
    generator = torch.Generator().manual_seed(seed)
    n_views, n = views.shape[:2]
    batch = min(batch_size, n)
    device = params[0].device
    losses = []
    start = time.time()
    for step in range(steps):
        rows = torch.randperm(n, generator=generator)[:batch]
        view = torch.randint(n_views, (batch,), generator=generator)
        loss = F.cross_entropy(logits_fn(views[view, rows].to(device)), labels[rows].to(device))
        descend(opt, sched, loss, f"step {step} (lr {lr:g})")
        losses.append(loss.item())
    return {"steps": steps, "final_loss": float(np.mean(losses[-10:])) if losses else float("nan"),
            "train_wall_time_s": time.time() - start}


def _top1(scores: torch.Tensor, y: np.ndarray) -> float:
    return float((scores.argmax(dim=1).numpy() == y).mean())


def _probe(x_k: np.ndarray, y_k: np.ndarray, x_sel: np.ndarray, y_sel: np.ndarray, tests: Tests,
           max_iter: int) -> dict:
    """k-shot logistic regression, C by `search_C` on the selection rows (accuracy, then log-loss)."""
    def score(C: float) -> tuple[float, float]:
        correct, loss = evaluate_fit(fit_logistic(x_k, y_k, C, max_iter), x_sel, y_sel)
        return correct / len(y_sel), loss / len(y_sel)

    with limited_threads(1):  # many small L-BFGS fits: threads slow them down on busy cores
        best_C, scores = search_C(score)
        fit = fit_logistic(x_k, y_k, best_C, max_iter)
        top1 = {s: float(np.mean(fit.predict(x.numpy().astype(np.float64)) == y)) for s, (x, y) in tests.items()}
    n_classes, dim = len(fit.classes_), x_k.shape[1]
    return {"top1": top1, "trainable_params": dim * n_classes + n_classes, "C": best_C,
            "val_top1": scores[best_C][0], "n_fits": len(scores) + 1}


def _coop(model, tokenizer, classnames: Sequence[str], views: torch.Tensor, labels: torch.Tensor,
          sel: tuple[torch.Tensor, np.ndarray], tests: Tests, settings: dict, seed: int) -> dict:
    """CoOp (Zhou et al., 2022) at each learning rate of the grid on the k-shot features; the rate whose context
    classifies the selection rows best is kept (its run is the result: the training data are the same)."""
    scale = model.logit_scale.detach().exp()
    runs = {}
    for lr in settings["lr_grid"]:
        learner = PromptLearner(model, tokenizer, classnames, settings["n_ctx"], seed=seed)
        run = fit_on_features([learner.ctx], lambda x, p=learner: scale * unit(x) @ unit(p()).t(), views, labels,
                              settings["steps"], settings["batch_size"], lr, settings["weight_decay"],
                              settings["warmup_steps"], seed)
        with torch.no_grad():
            text = unit(learner()).t().cpu()
        runs[f"{lr:g}"] = (_top1(sel[0] @ text, sel[1]), lr, learner, text, run)
    key = max(runs, key=lambda k: runs[k][0])
    val, lr, learner, text, run = runs[key]
    return {"top1": {s: _top1(x @ text, y) for s, (x, y) in tests.items()},
            "trainable_params": sum(p.numel() for p in learner.parameters() if p.requires_grad),
            "n_ctx": learner.n_ctx, "lr": lr, "val_top1": val, "selection": {k: v[0] for k, v in runs.items()},
            "train": run}


def _clip_adapter(model, weights: torch.Tensor, views: torch.Tensor, labels: torch.Tensor,
                  sel: tuple[torch.Tensor, np.ndarray], tests: Tests, settings: dict, seed: int) -> dict:
    """CLIP-Adapter (Gao et al., 2021) at each (α, learning rate) of the grids; the pair that classifies the
    selection rows best is kept."""
    scale = model.logit_scale.detach().exp()
    runs = {}
    for alpha in settings["alpha_grid"]:
        for lr in settings["lr_grid"]:
            adapter = CLIPAdapter(views.shape[-1], settings["reduction"], alpha, seed)
            run = fit_on_features(list(adapter.parameters()), lambda x, a=adapter: a.logits(x, weights, scale),
                                  views, labels, settings["steps"], settings["batch_size"], lr,
                                  settings["weight_decay"], settings["warmup_steps"], seed)
            adapter.eval()
            with torch.no_grad():
                val = _top1(adapter.logits(sel[0], weights, scale), sel[1])
            runs[f"alpha={alpha:g},lr={lr:g}"] = (val, alpha, lr, adapter, run)
    key = max(runs, key=lambda k: runs[k][0])
    val, alpha, lr, adapter, run = runs[key]
    with torch.no_grad():
        top1 = {s: _top1(adapter.logits(x, weights, scale), y) for s, (x, y) in tests.items()}
    return {"top1": top1, "trainable_params": sum(p.numel() for p in adapter.parameters() if p.requires_grad),
            "alpha": alpha, "reduction": adapter.reduction, "lr": lr, "val_top1": val,
            "selection": {k: v[0] for k, v in runs.items()}, "train": run}


def few_shot_axis(model, tokenizer, task, train_images: np.ndarray, train_y: np.ndarray, train_x: torch.Tensor,
                  tests: Tests, spec: dict, seed: int) -> dict:
    """Every method of `spec["few_shot_methods"]` at every k of `spec["shots"]` (module docstring). `train_x`:
    the training images' view-0 features; `tests`: {split: (normalised features, labels)}. Returns {"views",
    "features_wall_time_s", "selection_rows", "shot_rows": {k: rows}, "classes_short": {k: n}, "methods": {method:
    {k: entry}}}, rows as int arrays indexing the training images; each entry has "top1" (per split),
    "trainable_params", "n_train", "wall_time_s" and its method's selection record."""
    unknown = [m for m in spec["few_shot_methods"] if m not in FEW_SHOT_METHODS]
    if unknown:
        raise ValueError(f"unknown few-shot method {unknown[0]!r}; known: {list(FEW_SHOT_METHODS)}")
    selection, shot_rows, short = shot_data(train_y, spec["shots"], spec["holdout"], seed)
    sel = (train_x[selection], train_y[selection])
    t0 = time.time()
    used = np.unique(np.concatenate(list(shot_rows.values())))  # the k-shot samples' images (nested over k)
    at = np.full(len(train_y), -1)
    at[used] = np.arange(len(used))
    crops = crop_views(model, train_images[used], spec["views"] - 1, spec["min_crop_scale"], seed)
    features = torch.cat([train_x[used][None], crops])  # view 0: the evaluation preprocessing
    features_s = time.time() - t0
    labels = torch.from_numpy(train_y[used])
    weights = zeroshot_classifier(model, tokenizer, task.classnames, task.templates)
    methods: dict[str, dict] = {m: {} for m in spec["few_shot_methods"]}
    for k, rows in shot_rows.items():
        index = torch.from_numpy(at[rows])
        for method in spec["few_shot_methods"]:
            t0 = time.time()
            torch.manual_seed(seed)
            if method == "linear_probe":
                entry = _probe(train_x[rows].numpy().astype(np.float64), train_y[rows],
                               sel[0].numpy().astype(np.float64), sel[1], tests, spec["probe_max_iter"])
            elif method == "coop":
                entry = _coop(model, tokenizer, task.classnames, features[:, index], labels[index], sel, tests,
                              spec["coop"], seed)
            else:
                entry = _clip_adapter(model, weights, features[:, index], labels[index], sel, tests,
                                      spec["clip_adapter"], seed)
            methods[method][str(k)] = entry | {"n_train": len(rows), "wall_time_s": time.time() - t0}
    return {"views": len(features), "features_wall_time_s": features_s, "selection_rows": selection,
            "shot_rows": {str(k): r for k, r in shot_rows.items()},
            "classes_short": {str(k): n for k, n in short.items()}, "methods": methods}
