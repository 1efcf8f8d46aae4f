"""Robustness to distribution shift (Radford et al., 2021, §3.3, Figures 13–14, and the supervised half of Figure 5)
in miniature.

The task (`repro.evaluate.shift.shift_task`) is one C-way classification — the emoji subcategories of the full
corpus (98 classes) — posed on several splits: `val` (held-out images of the training styles: our "ImageNet"),
`zeroshot` (concepts never seen in training, in the training styles) and three art styles held out of training
(our "natural distribution shifts"). On it we compare

* supervised torchvision-layout ResNets trained with cross-entropy on the task's labelled training images (the
  paper's ImageNet ResNet-101): the headline ResNet-101 per seed, and a ResNet-18 and a ResNet-50 trained once (seed
  `reference_seed`, shared by every seed's result) so that the supervised models span a range of in-distribution
  accuracies; each model is evaluated at several snapshots of its schedule (`snapshots`, fractions of the steps);
* zero-shot CLIP (the seed's `clip_small` model with the task's prompt ensemble);
* a logistic-regression head fitted on CLIP's image features of the same labelled training images (Figure 14:
  "adapting to ImageNet");

and compute effective robustness (`repro.evaluate.robustness`, Taori et al., 2020): accuracy under a shift above
the logit-linear trend of all supervised snapshots (ResNet-18/50 and the seed's ResNet-101). Figure 5's supervised
half is a linear probe on the ResNet-101's penultimate features against zero-shot CLIP, with `fewshot`'s full-probe
protocol (the same pool of training images, per-class caps, C search and test pooling by shift).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..data.tensors import model_input
from ..evaluate.features import encode_images, model_device, normalize
from ..evaluate.robustness import effective_robustness, relative_robustness_gap_reduction
from ..evaluate.shift import ShiftTask, shift_task, training_rows
from ..evaluate.zeroshot import zeroshot_eval
from ..train import TrainConfig, read_log
from . import clip_small, fewshot
from .common import cached_json, limited_threads, train_run, trained_clip_with_corpus
from .results import write_result

NAME = "robustness"

#: The held-out-style average's key (paper Figure 13 left averages each model over its 7 shifted datasets).
HELD_OUT_MEAN = "held-out styles (mean)"

_SMOKE_TRAIN = dict(batch_size=16, steps=4, warmup_steps=2, lr=2e-3, weight_decay=0.05)
_CPU_TRAIN = dict(batch_size=64, warmup_steps=30, lr=2e-3, weight_decay=0.05)
_GPU_TRAIN = dict(batch_size=256, warmup_steps=100, lr=2e-3, weight_decay=0.05)

#: Sizes per profile (same code). `models`: name -> depth, width, training length; `reference` models are trained
#: once with `reference_seed` and shared by every seed (they only place points on the trend). `snapshots`: fractions
#: of each schedule at which the classifier is evaluated on every split. The cpu profile (ResNet-101 at width 8 —
#: torchvision's is 64 — for 3 epochs at 32 px) took 39 minutes for all 3 seeds on one thread of a 2-core machine
#: shared with other runs (seed 0 about twice as long as the others: it also trains the reference models); the gpu
#: profile (torchvision widths, 30 epochs) has not been run.
PROFILES = {
    "smoke": {"seeds": 1, "prefix": "smoke-category/", "data_size": 32, "snapshots": (0.5, 1.0), "reference_seed": 0,
              "headline": "resnet101",
              "models": {"resnet101": dict(depth=101, width=4, **_SMOKE_TRAIN),
                         "resnet18": dict(depth=18, width=8, reference=True, **(_SMOKE_TRAIN | {"steps": 16})),
                         "resnet50": dict(depth=50, width=4, reference=True, **_SMOKE_TRAIN)},
              "max_iter": 50},
    "cpu": {"seeds": 3, "prefix": "emoji-subcategory/", "data_size": 32, "snapshots": (0.125, 0.25, 0.5, 0.75, 1.0),
            "reference_seed": 0, "headline": "resnet101",
            "models": {"resnet101": dict(depth=101, width=8, epochs=3, **_CPU_TRAIN),
                       "resnet18": dict(depth=18, width=16, epochs=3, reference=True, **_CPU_TRAIN),
                       "resnet50": dict(depth=50, width=8, epochs=3, reference=True, **_CPU_TRAIN)},
            "max_iter": 100},
    "gpu": {"seeds": 3, "prefix": "emoji-subcategory/", "data_size": 32, "snapshots": (0.125, 0.25, 0.5, 0.75, 1.0),
            "reference_seed": 0, "headline": "resnet101",
            "models": {"resnet101": dict(depth=101, width=64, epochs=30, **_GPU_TRAIN),
                       "resnet18": dict(depth=18, width=64, epochs=30, reference=True, **_GPU_TRAIN),
                       "resnet50": dict(depth=50, width=64, epochs=30, reference=True, **_GPU_TRAIN)},
            "max_iter": 1000},
}
assert {p: s["seeds"] for p, s in PROFILES.items()} == {p: s["seeds"] for p, s in clip_small.PROFILES.items()}


def classifier_accuracy(objective: torch.nn.Module, inputs: torch.Tensor, labels: np.ndarray,
                        batch_size: int = 256) -> float:
    """Top-1 accuracy of a supervised classifier (argmax of `objective.predict` over the task's C classes) on
    preprocessed images `inputs` [N, 3, H, W] (`model_input`), in eval mode without gradients; the training flag is
    restored."""
    was_training = objective.training
    objective.eval()
    device = model_device(objective)
    correct = 0
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            pred = objective.predict(inputs[start:start + batch_size].to(device)).argmax(dim=-1).cpu().numpy()
            correct += int((pred == labels[start:start + batch_size]).sum())
    objective.train(was_training)
    return correct / len(labels) if len(labels) else float("nan")


def classifier_features(objective: torch.nn.Module, inputs: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Penultimate (pooled) features of the supervised ResNet (`forward_features`) for the linear probe of
    Figure 5, float32 on the CPU."""
    objective.eval()
    device = model_device(objective)
    with torch.no_grad():
        out = [objective.model.forward_features(inputs[s:s + batch_size].to(device)).float().cpu()
               for s in range(0, len(inputs), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, 0)


def snapshot_steps(total: int, fractions: tuple[float, ...]) -> list[int]:
    """The optimizer steps (1-based, distinct, increasing) at which to evaluate: round(f · total), at least 1."""
    return sorted({min(total, max(1, round(f * total))) for f in fractions})


def _train_and_snapshot(name: str, model_spec: dict, seed: int, task: ShiftTask, corpus: Path, out_dir: Path,
                        tokenizer_path: Path, data_size: int, fractions: tuple[float, ...],
                        evals: dict[str, tuple[torch.Tensor, np.ndarray]]) -> tuple[dict, dict, torch.nn.Module]:
    """Train one supervised ResNet on the task's labelled training images and evaluate it on every split at the
    snapshot steps. Returns (its metrics, its training curves, the trained objective)."""
    train_kw = {k: v for k, v in model_spec.items() if k not in ("depth", "width", "reference")}
    config = TrainConfig(
        corpus_dir=str(corpus), out_dir=str(out_dir), objective="supervised", label=task.label,
        label_classes=list(task.classes), baseline_depth=model_spec["depth"], baseline_width=model_spec["width"],
        data_size=data_size, tokenizer=str(tokenizer_path), betas=(0.9, 0.999), eps=1e-8, seed=seed,
        progress=False, checkpoint_every=10**9, log_every=5, **train_kw,
    )
    n_train = len(training_rows(task, corpus, data_size)[1])
    steps_per_epoch = n_train // config.batch_size
    total = config.steps or max(1, int(config.epochs * steps_per_epoch))
    at = set(snapshot_steps(total, fractions))
    snapshots: list[dict] = []

    def callback(step: int, objective: torch.nn.Module) -> None:
        if step in at:
            t = time.time()
            acc = {split: classifier_accuracy(objective, x, y) for split, (x, y) in evals.items()}
            snapshots.append({"step": step, "images_seen": step * config.batch_size,
                              "epochs": round(step / steps_per_epoch, 4), "accuracy": acc,
                              "eval_time_s": round(time.time() - t, 1)})

    summary = train_run(config, callback=callback)
    rows = read_log(summary["log"])
    curves = {"step": [r["step"] for r in rows], "images_seen": [r["step"] * config.batch_size for r in rows],
              "loss": [r["loss"] for r in rows], "accuracy": [r.get("accuracy") for r in rows]}
    metrics = {
        "depth": model_spec["depth"], "width": model_spec["width"], "seed": seed, "n_train": n_train,
        "batch_size": config.batch_size, "total_steps": total, "epochs": round(total / steps_per_epoch, 4),
        "parameters": sum(p.numel() for p in summary["objective"].parameters()),
        "train_img_s": summary["img_s"], "train_wall_time_s": summary["wall_time_s"],
        "n": {split: len(y) for split, (_, y) in evals.items()},
        "snapshots": snapshots, "final": snapshots[-1]["accuracy"],
    }
    return metrics, curves, summary["objective"]


def _reference(name: str, model_spec: dict, spec: dict, profile: str, task: ShiftTask, corpus: Path, workdir: Path,
               tokenizer_path: Path, evals: dict) -> tuple[dict, dict]:
    """A reference model's metrics and curves, trained once per profile (seed `reference_seed`) and cached in the
    workdir, so every seed's trend uses the same ResNet-18/50 points."""
    seed = spec["reference_seed"]
    folder = workdir / NAME / profile / "reference" / name
    key = {"model": model_spec, "seed": seed, "prefix": spec["prefix"], "snapshots": list(spec["snapshots"]),
           "n": {split: len(y) for split, (_, y) in evals.items()}}

    def trained() -> dict:
        metrics, curves, _ = _train_and_snapshot(name, model_spec, seed, task, corpus, folder, tokenizer_path,
                                                 spec["data_size"], spec["snapshots"], evals)
        return {"metrics": metrics, "curves": curves}

    stored = cached_json(folder / "snapshots.json", key, trained)
    return stored["metrics"], stored["curves"]


def robustness_metrics(trend: list[dict[str, float]], models: dict[str, dict[str, float]], in_split: str,
                       shifted: list[str], held_out: list[str]) -> dict:
    """Effective robustness (Taori et al., 2020; paper §3.3) of each of `models` ({name: {split: accuracy}})
    against the logit-linear trend of the supervised points `trend` ([{split: accuracy}]), per shifted split and
    for the mean accuracy over the held-out styles (`HELD_OUT_MEAN`, the trend fitted to the points' means), with
    the share of the trend's robustness gap each model closes (`relative_robustness_gap_reduction`)."""

    def column(points: list[dict[str, float]], split: str) -> np.ndarray:
        if split == HELD_OUT_MEAN:
            return np.array([np.mean([p[s] for s in held_out]) for p in points])
        return np.array([p[split] for p in points])

    targets = list(shifted) + ([HELD_OUT_MEAN] if held_out else [])
    out: dict = {"trend": {}, "models": {name: {} for name in models}}
    names = list(models)
    points = [models[n] for n in names]
    for split in targets:
        fit = effective_robustness(column(points, in_split), column(points, split), column(trend, in_split),
                                   column(trend, split))
        out["trend"][split] = {"slope": fit["slope"], "intercept": fit["intercept"], "n_ref": fit["n_ref"]}
        gap = relative_robustness_gap_reduction(column(points, in_split), column(points, split), fit["predicted"])
        for i, name in enumerate(names):
            out["models"][name][split] = {
                "in_distribution": float(column(points, in_split)[i]), "shifted": float(column(points, split)[i]),
                "predicted": float(fit["predicted"][i]), "effective_robustness": float(fit["effective_robustness"][i]),
                "gap_reduction": float(gap["reduction"][i]),
            }
    return out


def _figure5(clip, tokenizer, task: ShiftTask, cache, train_packed, resnet_features, resnet_test_features: dict,
             profile: str, seed: int, max_iter: int) -> dict:
    """Figure 5's supervised half with `fewshot`'s full-probe protocol: the pool is the task's training images
    capped at `per_class` per class (classes with fewer than `min_per_class` dropped), tests are pooled by shift;
    zero-shot CLIP, a probe on the ResNet-101's penultimate features and one on CLIP's features, on the same rows."""
    pspec = fewshot.PROFILES[profile]
    rng = np.random.default_rng(pspec["pool_seed"])
    y_all = np.asarray(train_packed.fields[task.label])
    pool_rows = fewshot.cap_per_class(np.flatnonzero(np.isin(y_all, list(task.classes))), y_all,
                                       pspec["per_class"], rng)
    pool_y = y_all[pool_rows]
    counts = {c: int(np.sum(pool_y == c)) for c in task.classes}
    classes = sorted(c for c, n in counts.items() if n >= pspec["min_per_class"])
    keep = np.isin(pool_y, classes)
    pool_rows, pool_y = pool_rows[keep], pool_y[keep]
    names = dict(zip(task.classes, task.classnames, strict=True))
    pool = {"resnet101": normalize(resnet_features(train_packed.images[pool_rows])).numpy(),
            "clip": normalize(encode_images(clip, train_packed.images[pool_rows])).numpy()}
    tests: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {"resnet101": {}, "clip": {}}
    zero: dict[str, float] = {}
    for shift in dict.fromkeys(task.shifts.values()):
        splits = [s for s in task.splits if task.shifts[s] == shift]
        ys, rows = [], []
        for s in splits:
            y = np.asarray(cache.split(s).fields[task.label])
            rows.append(np.flatnonzero(np.isin(y, classes)))
            ys.append(y[rows[-1]])
        y = np.concatenate(ys)
        clip_x = torch.cat([cache.features(s)[r] for s, r in zip(splits, rows, strict=True)])
        zero[shift] = fewshot.zero_shot_on_features(clip, tokenizer, clip_x, y, classes, [names[c] for c in classes],
                                         task.templates)
        tests["clip"][shift] = (normalize(clip_x).numpy(), y)
        tests["resnet101"][shift] = (
            normalize(torch.cat([resnet_test_features[s][r] for s, r in zip(splits, rows, strict=True)])).numpy(), y)
    probes = {}
    with limited_threads(1):
        for name in ("resnet101", "clip"):
            probes[name] = fewshot.probe_task(pool[name], pool_y, tests[name], shots=(), seed=seed, max_iter=max_iter)
    return {
        "protocol": f"fewshot's full probe ({profile} profile): per_class {pspec['per_class']}, min_per_class "
                    f"{pspec['min_per_class']}, C on a 20% stratified validation part, L2-normalised features",
        "n_classes": len(classes), "classes_dropped": sorted(set(task.classes) - set(classes)), "n_pool": len(pool_y),
        "probe": {name: probes[name].pop("_probe") for name in probes},
        "feature_dim": {name: int(pool[name].shape[1]) for name in pool},
        "tests": {shift: {"splits": [s for s in task.splits if task.shifts[s] == shift],
                          "n": len(tests["clip"][shift][1]), "zero_shot": zero[shift],
                          "resnet101_probe": probes["resnet101"][shift]["linear_probe"],
                          "clip_probe": probes["clip"][shift]["linear_probe"]} for shift in zero},
    }


def run(profile: str, seed: int, workdir: Path, results_root: Path | None = None) -> Path:
    """Supervised ResNets (with snapshots), zero-shot CLIP, a logistic-regression head on CLIP features, effective
    robustness, and Figure 5's probe, for one seed; returns the result file's path."""
    spec = PROFILES[profile]
    start = time.time()
    workdir = Path(workdir)
    clip, tokenizer, clip_config, corpus, cache = trained_clip_with_corpus(profile, seed, workdir, results_root)
    task = shift_task(corpus, spec["prefix"])
    if spec["data_size"] != cache.size:
        raise ValueError(f"profile {profile!r}: data_size {spec['data_size']} differs from clip_small's {cache.size}")
    in_split = task.in_distribution
    shifted = [s for s in task.splits if s != in_split]
    held_out = [s for s in task.splits if task.shifts[s] == "held-out style"]
    labels = {s: task.labels(cache.split(s), s) for s in task.splits}
    res = clip_config.clip_config().image_resolution
    evals = {s: (model_input(torch.from_numpy(np.ascontiguousarray(cache.split(s).images)), res), labels[s])
             for s in task.splits}
    tokenizer_path = workdir / NAME / profile / f"seed{seed}" / "tokenizer.json"
    tokenizer_path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(tokenizer_path)

    metrics: dict = {"task": {"prefix": task.prefix, "label": task.label, "n_classes": len(task.classes),
                              "in_distribution": in_split, "held_out": held_out,
                              "splits": {s: {"shift": task.shifts[s], "n": len(labels[s])} for s in task.splits}}}
    supervised: dict[str, dict] = {}
    curves: dict[str, dict] = {}
    headline_objective = None
    for name, model_spec in spec["models"].items():
        if model_spec.get("reference"):
            supervised[name], curves[name] = _reference(name, model_spec, spec, profile, task, corpus, workdir,
                                                        tokenizer_path, evals)
            supervised[name]["shared"] = True
        else:
            supervised[name], curves[name], objective = _train_and_snapshot(
                name, model_spec, seed, task, corpus, workdir / NAME / profile / f"seed{seed}" / name, tokenizer_path,
                spec["data_size"], spec["snapshots"], evals)
            supervised[name]["shared"] = False
            if name == spec["headline"]:
                headline_objective = objective
    metrics["supervised"] = supervised
    metrics["task"]["n_train"] = supervised[spec["headline"]]["n_train"]

    with torch.no_grad():
        metrics["zero_shot"] = {}
        for s in task.splits:
            r = zeroshot_eval(clip, tokenizer, cache.split(s), task.suite(s), image_features=cache.features(s))
            metrics["zero_shot"][s] = {k: r[k] for k in ("top1", "top5", "mean_per_class_recall", "n")}

        # Figure 14: a logistic-regression head on CLIP features of the labelled training images.
        train_packed, rows, train_y = training_rows(task, corpus, spec["data_size"])
        train_x = normalize(encode_images(clip, train_packed.images[rows])).numpy()
        tests = {s: (normalize(cache.features(s)).numpy(), labels[s]) for s in task.splits}
        with limited_threads(1):
            head = fewshot.probe_task(train_x, train_y, tests, shots=(), seed=seed, max_iter=spec["max_iter"])
        metrics["lr_head"] = {"n_train": len(train_y), **head.pop("_probe"),
                              "accuracy": {s: head[s]["linear_probe"] for s in task.splits}}

        # Figure 5: a linear probe on the ResNet-101's penultimate features vs zero-shot CLIP.
        def resnet_features(images: np.ndarray) -> torch.Tensor:
            return classifier_features(headline_objective, model_input(torch.from_numpy(np.ascontiguousarray(images)),
                                                                       res))

        test_features = {s: classifier_features(headline_objective, evals[s][0]) for s in task.splits}
        metrics["figure5"] = _figure5(clip, tokenizer, task, cache, train_packed, resnet_features, test_features,
                                      profile, seed, spec["max_iter"])

    trend = [snap["accuracy"] for m in supervised.values() for snap in m["snapshots"]]
    compared = {"zero_shot": {s: metrics["zero_shot"][s]["top1"] for s in task.splits},
                spec["headline"]: supervised[spec["headline"]]["final"],
                "lr_head": metrics["lr_head"]["accuracy"]}
    metrics["effective_robustness"] = robustness_metrics(trend, compared, in_split, shifted, held_out)
    metrics["effective_robustness"]["trend_points"] = len(trend)

    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in spec.items()} | {
        "clip_small": asdict(clip_config),
        "trend": "least-squares line through logit(shifted) vs logit(in-distribution) accuracy of every supervised "
                 "snapshot (repro.evaluate.robustness.effective_robustness)",
        "lr_head": "L2 multinomial logistic regression on L2-normalised clip_small image features of the task's "
                   "labelled training images; C by the paper's search on a 20% stratified validation part",
        "supervised": "torchvision-layout ResNet (small-input stem), cross-entropy, AdamW (betas 0.9/0.999, eps "
                      "1e-8), warmup + cosine, random square crops",
    }
    return write_result(NAME, profile, seed, settings, metrics, time.time() - start, curves, results_root)
