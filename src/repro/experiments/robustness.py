"""Robustness to distribution shift (Radford et al., 2021, §3.3, Figures 13–14, and the supervised half of Figure 5)
in miniature, with Fang et al.'s (2022) ablation of where CLIP's robustness comes from.

The task (`repro.evaluate.shift.shift_task`) is one C-way classification — the emoji subcategories of the corpus
(98 classes) — posed on several splits: `val` (held-out images of the training styles: our "ImageNet"), unseen
concepts in those styles, three emoji art styles held out of training and three Iconify icon sets never trained on
(our "natural distribution shifts"; the icon pictures are labelled by concept, and those named exactly like an emoji
concept get that concept's subcategory: `repro.evaluate.shift.relabel_by_concept`). On it we compare

* supervised torchvision-layout ResNets trained with cross-entropy on the task's labelled training pictures (the
  paper's ImageNet models): the headline ResNet-101 per seed, and a ResNet-18 and a ResNet-50 trained once (seed
  `reference_seed`, shared by every seed's result) so that the supervised models span a range of in-distribution
  accuracies; each is evaluated at several snapshots of its schedule (`snapshots`, fractions of the steps);
* the *diverse* zero-shot CLIP: the seed's headline `clip_small`, trained on the whole corpus, with the task's
  prompt ensemble;
* the *narrow* zero-shot CLIP (Fang et al., 2022; `robustness_narrow`): the same recipe trained on exactly the
  supervised models' pictures, with their captions instead of their labels — does language supervision alone make
  a model robust, or does the data's diversity?
* a logistic-regression head fitted on the diverse CLIP's features of the labelled training pictures (Figure 14:
  "adapting to ImageNet");

and compute effective robustness (Taori et al., 2020) against the logit-linear trend of all supervised snapshots,
with the trend's 95% prediction interval and the ratio held-out / in-distribution accuracy
(`robustness_summary.robustness_metrics`). Figure 5's supervised half is a linear probe on the ResNet-101's
penultimate features against zero-shot CLIP, with `fewshot`'s full-probe protocol (the same pool of training images,
per-class caps, C search and test pooling by shift).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.pack import PackedSplit
from ..data.suites import Suite
from ..data.tensors import model_input
from ..evaluate.features import encode_images, model_device, normalize
from ..evaluate.shift import ShiftTask, shift_task, task_on_concept_suites, training_rows
from ..evaluate.zeroshot import class_labels, zeroshot_eval
from ..train import TrainConfig, read_log
from . import clip_small, fewshot
from .common import cached_json, limited_threads, train_run, trained_clip_with_corpus
from .results import write_result
from .robustness_narrow import narrow_train_settings, train_narrow_clip, write_narrow_corpus
from .robustness_summary import HELD_OUT_MEAN, ICON_MEAN, compared_models, robustness_metrics

__all__ = ["HELD_OUT_MEAN", "ICON_MEAN", "ICON_SHIFT", "PROFILES", "classifier_accuracy", "robustness_metrics",
           "run", "snapshot_steps"]

NAME = "robustness"
#: The shift recorded for the relabelled held-out icon sets (as the corpus's `icons-concept/test-icons-*` suites).
ICON_SHIFT = "held-out icon set"

_SMOKE_TRAIN = dict(batch_size=16, steps=4, warmup_steps=2, lr=2e-3, weight_decay=0.05)
_CPU_TRAIN = dict(batch_size=64, warmup_steps=30, lr=2e-3, weight_decay=0.05)
_GPU_TRAIN = dict(batch_size=256, warmup_steps=100, lr=2e-3, weight_decay=0.05)

#: Sizes per profile (same code). `corpus`: clip_small's (the CLIP evaluated here was trained on it). `models`: name
#: -> depth, width, training length; `reference` models are trained once with `reference_seed` and shared by every
#: seed (they only place points on the trend). `snapshots`: fractions of each schedule at which each classifier is
#: evaluated on every split. `icon_suites`: the name prefix of the concept-labelled suites relabelled into the task
#: (smoke has no icon sets: its concept-labelled held-out style stands in, so the path runs) by the names of the
#: concepts whose ids start with `concept_ids` (emoji, not clip art filed in a folder named like a class).
#: `narrow_fraction`: the narrow CLIP trains the headline recipe for this fraction of its steps (and warmup).
#:
#: cpu sizing, per seed on 2 cores ("large": 4,955 labelled training pictures, 4,856 of them emoji; 8,172 test
#: pictures in the task's splits plus 1,223 relabelled icons). Narrow CLIP: 0.2 × 5,360 = 1,072 steps of 256 (≈ 55
#: epochs of its pictures) at the headline's 0.14–0.20 s/step (committed clip_small cpu results: 1,260–1,800 img/s,
#: 2 threads) ≈ 2.5–3.6 min. Supervised models, from the previous cpu run (one torch thread; seeds 1–2, 297 steps of
#: 64): ResNet-101 0.82–0.98 s/step and 3.0–3.8 ms per evaluated picture, ResNet-50 0.66 s/step and ≈ 2.7 ms,
#: ResNet-18 0.36 s/step and ≈ 1.5 ms. Here 3 epochs are 231 steps and 4 snapshots evaluate ≈ 9,400 pictures each:
#: ResNet-101 ≈ 190–230 s + 115–145 s; zero-shot of both CLIPs, the head and Figure 5 ≈ 2–2.5 min (the previous run's
#: 100–145 s plus the narrow CLIP's encoding). Seeds 1–2 ≈ 9.5–12.5 minutes; seed 0 also trains the two shared
#: reference models (ResNet-50 ≈ 150 + 100 s, ResNet-18 ≈ 85 + 55 s: ≈ 6.5 min), ≈ 16–19 minutes. Seeds 0–2 took
#: 6–9 minutes each on an AMD EPYC (seed 0's 9 with the reference models), plus 15–18 minutes each for the diverse
#: CLIP, retrained there in bf16. More seeds need their diverse CLIPs in the same precision: on an AMD EPYC without
#: bf16 instructions `precision="auto"` measured bf16 23x slower than fp32 (3.5 against 0.15 s/step) and chose fp32.
#: The gpu profile has not been run.
PROFILES = {
    "smoke": {"seeds": 1, "corpus": clip_small.PROFILES["smoke"]["corpus"], "prefix": "smoke-category/",
              "icon_suites": "smoke-concept/test-outline", "concept_ids": ("smoke:",), "data_size": 32,
              "snapshots": (0.5, 1.0), "reference_seed": 0, "headline": "resnet101", "narrow_fraction": 0.25,
              "models": {"resnet101": dict(depth=101, width=4, **_SMOKE_TRAIN),
                         "resnet18": dict(depth=18, width=8, reference=True, **(_SMOKE_TRAIN | {"steps": 16})),
                         "resnet50": dict(depth=50, width=4, reference=True, **_SMOKE_TRAIN)},
              "max_iter": 50},
    "cpu": {"seeds": 3, "corpus": clip_small.PROFILES["cpu"]["corpus"], "prefix": "emoji-subcategory/",
            "icon_suites": "icons-concept/test-icons-", "concept_ids": ("emoji:",), "data_size": 32,
            "snapshots": (0.125, 0.25, 0.5, 1.0), "reference_seed": 0, "headline": "resnet101", "narrow_fraction": 0.2,
            "models": {"resnet101": dict(depth=101, width=8, epochs=3, **_CPU_TRAIN),
                       "resnet18": dict(depth=18, width=16, epochs=3, reference=True, **_CPU_TRAIN),
                       "resnet50": dict(depth=50, width=8, epochs=3, reference=True, **_CPU_TRAIN)},
            "max_iter": 100},
    "gpu": {"seeds": 3, "corpus": clip_small.PROFILES["gpu"]["corpus"], "prefix": "emoji-subcategory/",
            "icon_suites": "icons-concept/test-icons-", "concept_ids": ("emoji:",), "data_size": 32,
            "snapshots": (0.125, 0.25, 0.5, 0.75, 1.0), "reference_seed": 0, "headline": "resnet101",
            "narrow_fraction": 0.25,
            "models": {"resnet101": dict(depth=101, width=64, epochs=30, **_GPU_TRAIN),
                       "resnet18": dict(depth=18, width=64, epochs=30, reference=True, **_GPU_TRAIN),
                       "resnet50": dict(depth=50, width=64, epochs=30, reference=True, **_GPU_TRAIN)},
            "max_iter": 1000},
}
#: it evaluates the first `seeds` of `clip_small`'s models (its own supervised models and narrow CLIP cost minutes)
assert all(s["seeds"] <= clip_small.PROFILES[p]["seeds"] for p, s in PROFILES.items())
assert all(s["corpus"] == clip_small.PROFILES[p]["corpus"] for p, s in PROFILES.items())


@dataclass
class EvalSplit:
    """One test split of the task: its pictures (`packed`, relabelled for icon sets), the zero-shot suite posing
    the task on them, class indices, the supervised models' inputs and the diverse CLIP's features."""

    packed: PackedSplit
    suite: Suite
    labels: np.ndarray
    inputs: torch.Tensor
    clip_features: torch.Tensor

    @property
    def shift(self) -> str:
        return self.suite.shift


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


def _figure5(clip, tokenizer, task: ShiftTask, splits: dict[str, EvalSplit], train_packed, resnet_features,
             resnet_test_features: dict, profile: str, seed: int, max_iter: int) -> dict:
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
    by_shift: dict[str, list[str]] = {}
    for s, data in splits.items():
        by_shift.setdefault(data.shift, []).append(s)
    for shift, members in by_shift.items():
        ys, rows = [], []
        for s in members:
            y = np.asarray(task.classes)[splits[s].labels]
            rows.append(np.flatnonzero(np.isin(y, classes)))
            ys.append(y[rows[-1]])
        y = np.concatenate(ys)
        clip_x = torch.cat([splits[s].clip_features[r] for s, r in zip(members, rows, strict=True)])
        zero[shift] = fewshot.zero_shot_on_features(clip, tokenizer, clip_x, y, classes, [names[c] for c in classes],
                                                    task.templates)
        tests["clip"][shift] = (normalize(clip_x).numpy(), y)
        tests["resnet101"][shift] = (
            normalize(torch.cat([resnet_test_features[s][r] for s, r in zip(members, rows, strict=True)])).numpy(), y)
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
        "tests": {shift: {"splits": by_shift[shift], "n": len(tests["clip"][shift][1]), "zero_shot": zero[shift],
                          "resnet101_probe": probes["resnet101"][shift]["linear_probe"],
                          "clip_probe": probes["clip"][shift]["linear_probe"]} for shift in zero},
    }


def _zero_shot(model, tokenizer, splits: dict[str, EvalSplit], features: dict[str, torch.Tensor]) -> dict:
    return {s: {k: r[k] for k in ("top1", "top5", "mean_per_class_recall", "n")}
            for s, d in splits.items()
            for r in [zeroshot_eval(model, tokenizer, d.packed, d.suite, image_features=features[s])]}


def run(profile: str, seed: int, workdir: Path, results_root: Path | None = None) -> Path:
    """Supervised ResNets (with snapshots), the diverse and the narrow zero-shot CLIP, a logistic-regression head on
    the diverse CLIP's features, effective robustness with the trend's band, and Figure 5's probe, for one seed;
    returns the result file's path."""
    spec = PROFILES[profile]
    start = time.time()
    workdir = Path(workdir)
    clip, tokenizer, clip_config, corpus, cache = trained_clip_with_corpus(profile, seed, workdir, results_root)
    if corpus.name != spec["corpus"]:
        raise ValueError(f"profile {profile!r}: clip_small was trained on {corpus.name!r}, not {spec['corpus']!r}")
    task = shift_task(corpus, spec["prefix"])
    if spec["data_size"] != cache.size:
        raise ValueError(f"profile {profile!r}: data_size {spec['data_size']} differs from clip_small's {cache.size}")
    in_split = task.in_distribution
    shifted = [s for s in task.splits if s != in_split]
    held_out = [s for s in task.splits if task.shifts[s] == "held-out style"]
    train_packed, train_rows, train_y = training_rows(task, corpus, spec["data_size"])
    icons, icon_info = task_on_concept_suites(task, corpus, cache.split, train_packed, train_rows,
                                              spec["icon_suites"], tuple(spec["concept_ids"]), ICON_SHIFT)
    res = clip_config.clip_config().image_resolution

    def inputs(images: np.ndarray) -> torch.Tensor:
        return model_input(torch.from_numpy(np.ascontiguousarray(images)), res)

    splits: dict[str, EvalSplit] = {}
    for s in task.splits:
        packed = cache.split(s)
        splits[s] = EvalSplit(packed, task.suite(s), task.labels(packed, s), inputs(packed.images), cache.features(s))
    for key, (packed, kept, suite, split) in icons.items():
        splits[key] = EvalSplit(packed, suite, class_labels(packed, suite), inputs(packed.images),
                                cache.features(split)[kept])
    evals = {s: (d.inputs, d.labels) for s, d in splits.items()}
    run_dir = workdir / NAME / profile / f"seed{seed}"
    tokenizer_path = run_dir / "tokenizer.json"
    tokenizer_path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(tokenizer_path)

    icon_keys = list(icons)
    metrics: dict = {"task": {"prefix": task.prefix, "label": task.label, "n_classes": len(task.classes),
                              "in_distribution": in_split, "held_out": held_out,
                              "splits": {s: {"shift": task.shifts[s], "n": len(splits[s].labels)}
                                         for s in task.splits},
                              "icon_sets": {k: v for k, v in icon_info.items() if k != "_info"},
                              "icon_relabel": icon_info["_info"]}}
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
                name, model_spec, seed, task, corpus, run_dir / name, tokenizer_path, spec["data_size"],
                spec["snapshots"], evals)
            supervised[name]["shared"] = False
            if name == spec["headline"]:
                headline_objective = objective
    metrics["supervised"] = supervised
    metrics["task"]["n_train"] = supervised[spec["headline"]]["n_train"]

    # Fang et al. (2022): the headline recipe on exactly the supervised models' pictures, with their captions.
    narrow_dir = workdir / NAME / profile / "narrow_corpus" / f"{corpus.name}-narrow"
    narrow_data = write_narrow_corpus(train_packed, train_rows, corpus, narrow_dir, spec["data_size"], task.prefix,
                                      task.label)
    narrow, narrow_tok, narrow_train = train_narrow_clip(profile, seed, narrow_dir, run_dir / "narrow_clip",
                                                         tokenizer_path, spec["narrow_fraction"])

    with torch.no_grad():
        metrics["zero_shot"] = _zero_shot(clip, tokenizer, splits, {s: d.clip_features for s, d in splits.items()})
        narrow_features = {s: encode_images(narrow, d.packed.images) for s, d in splits.items()}
        metrics["narrow_clip"] = {"data": {k: v for k, v in narrow_data.items() if k != "dir"}, "train": narrow_train,
                                  "zero_shot": _zero_shot(narrow, narrow_tok, splits, narrow_features)}

        # Figure 14: a logistic-regression head on CLIP features of the labelled training images.
        train_x = normalize(encode_images(clip, train_packed.images[train_rows])).numpy()
        tests = {s: (normalize(d.clip_features).numpy(), d.labels) for s, d in splits.items()}
        with limited_threads(1):
            head = fewshot.probe_task(train_x, train_y, tests, shots=(), seed=seed, max_iter=spec["max_iter"])
        metrics["lr_head"] = {"n_train": len(train_y), **head.pop("_probe"),
                              "accuracy": {s: head[s]["linear_probe"] for s in splits}}

        # Figure 5: a linear probe on the ResNet-101's penultimate features vs zero-shot CLIP.
        def resnet_features(images: np.ndarray) -> torch.Tensor:
            return classifier_features(headline_objective, inputs(images))

        test_features = {s: classifier_features(headline_objective, d.inputs) for s, d in splits.items()}
        metrics["figure5"] = _figure5(clip, tokenizer, task, splits, train_packed, resnet_features, test_features,
                                      profile, seed, spec["max_iter"])

    trend = [snap["accuracy"] for m in supervised.values() for snap in m["snapshots"]]
    metrics["effective_robustness"] = robustness_metrics(trend, compared_models(metrics), in_split, shifted, held_out,
                                                         icon_keys)
    metrics["effective_robustness"]["trend_points"] = len(trend)

    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in spec.items()} | {
        "clip_small": asdict(clip_config),
        "narrow_clip": narrow_train_settings(profile, spec["narrow_fraction"]) | {"tokenizer": "the diverse CLIP's"},
        "trend": "least-squares line through logit(shifted) vs logit(in-distribution) accuracy of every supervised "
                 "snapshot, with its 95% prediction interval (repro.evaluate.robustness.trend_band)",
        "lr_head": "L2 multinomial logistic regression on L2-normalised clip_small image features of the task's "
                   "labelled training images; C by the paper's search on a 20% stratified validation part",
        "supervised": "torchvision-layout ResNet (small-input stem), cross-entropy, AdamW (betas 0.9/0.999, eps "
                      "1e-8), warmup + cosine, random square crops",
    }
    return write_result(NAME, profile, seed, settings, metrics, time.time() - start, curves, results_root)
