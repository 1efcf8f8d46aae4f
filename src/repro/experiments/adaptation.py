"""Adapting CLIP to a labelled task: zero-shot vs a linear probe vs LoRA vs full fine-tuning, accuracy against
trainable parameters, and what each does to robustness on held-out art styles.

The paper adapts CLIP only with linear probes (Radford et al., 2021, §3.2) and, in §3.3 / Figure 14, shows that
fitting a logistic-regression classifier to ImageNet raises ImageNet accuracy but lowers *effective robustness*
(accuracy under distribution shift beyond what in-distribution accuracy predicts). Fine-tuning the encoders and
LoRA (Hu et al., 2021) are not in the paper; they are the two common ways to adapt CLIP further, and this
experiment asks the same robustness question of them.

The task (`repro.evaluate.shift.shift_task`): one C-way classification (the emoji subcategories of the headline
model's corpus) posed on every split — `val` (in-distribution), the unseen-concept splits and the held-out art
styles — with its labelled training images (`training_rows`: the corpus's `train` split, the pictures
CLIP was pre-trained on, now with their labels). Each seed k starts from `clip_small` seed k:

- **zero-shot**: the prompt-ensemble classifier (`zeroshot_eval` with `task.suite(split)`), 0 trainable parameters;
- **linear probe**: L-BFGS logistic regression on frozen normalised image features, C chosen on a held-out fifth of
  the training images (`repro.evaluate.probe`, via `fewshot.probe_task`); d · C + C parameters;
- **LoRA** and **full fine-tuning** of both encoders, trained "like CLIP is pre-trained" (`finetune`): the classifier
  is the text encoder's embedding of each class's prompt (one template per step, drawn at random), logits =
  logit_scale · cos(image, class text), cross-entropy on the labels, AdamW with warmup + cosine, the random square
  crop of pre-training as the only augmentation; evaluated exactly as zero-shot is, with the fine-tuned encoders
  writing the prompt-ensemble classifier.

The few-shot axis (`adaptation_fewshot`): the linear probe, CoOp prompt tuning (Zhou et al., 2022) and
CLIP-Adapter (Gao et al., 2021) at k = 1, 2, 4, 8, 16 labelled training images per class, their hyper-parameters
chosen on held-out training images; zero-shot is the k = 0 point. LoRA and full fine-tuning use all labelled images.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import lora as lora_lib
from ..data.suites import prompt
from ..data.tensors import crop_params, normalize, square_crop, to_float
from ..evaluate.features import encode_images
from ..evaluate.features import normalize as unit
from ..evaluate.probe import stratified_holdout
from ..evaluate.shift import ShiftTask, shift_task, training_rows
from ..evaluate.zeroshot import zeroshot_classifier, zeroshot_eval
from ..optim import descend, lr_lambda, param_groups
from . import clip_small
from .adaptation_fewshot import FEW_SHOT_METHODS, few_shot_axis
from .common import limited_threads, trained_clip_with_corpus
from .fewshot import SHOTS, probe_task
from .results import write_result

NAME = "adaptation"

METHODS = ("zeroshot", "linear_probe", "lora", "full_ft")

HELD_OUT_STYLE = "held-out style"

#: Sizes per profile (the code is the same). `corpus` is the headline model's (`clip_small`). `steps` ×
#: `batch_size` images per fine-tuning run. Learning rates are chosen per method and seed from `lr_grid` on held-out
#: *training* images, as the probe's C is: each rate trains `select_steps` steps on the other 80% of the labelled
#: images, and the rate with the best accuracy on the held-out 20% is used for the real run on all of them (no
#: evaluation split is looked at). The grids: full fine-tuning moves every pre-trained weight, so its rates lie at
#: and below pre-training's 1e-3; LoRA's factors start at B = 0 and only add a low-rank update, so its grid is 10×
#: higher. Both learn the temperature as in pre-training. LoRA adapts the Transformer blocks of `towers`; a ResNet
#: image encoder (the cpu and gpu headline models) has none, so there only the text tower is adapted (recorded as
#: `towers`). `probe_max_iter`: L-BFGS iterations per probe fit (the paper: 1,000).
#: Few-shot axis (`adaptation_fewshot`): `shots` per class, selection on a `holdout` of the training rows; `views`
#: cached feature views (1 plain + random crops). `coop`: M = `n_ctx` context vectors, AdamW with warmup + cosine
#: for a fixed `steps` of `batch_size` (CoOp: SGD 0.002, cosine, 200 epochs at 16 shots — our features are cached,
#: so steps are cheap and the rate is chosen from `lr_grid`); `clip_adapter`: r = `reduction`, α and the rate from
#: `alpha_grid` × `lr_grid`, same schedule.
#: Time (cpu, one seed, all methods; ceiling ~12 min): about 4 minutes on 2 quiet cores, ~9 on 1 thread of a busy one.
#: Basis: the smoke run (10–13 s: zero-shot 0.1, probe 2, LoRA 1, full FT 0.9, every few-shot fit < 0.2 s)
#: checks the code path only; the estimate is per-step timings of the headline's shapes (RN 16, 3 × 64 text,
#: random weights, 98 classes) on 1 thread of a busy machine, scaled by that machine's pre-training step (375 ms
#: at batch 256) against clip_small's 168 ms on 2 quiet cores: full FT 57 ms and text-only LoRA 32 ms per step
#: of 64 (1,000 steps each with selection: ~1 and ~0.6 min), the full probe ≤ 48 s (the earlier cpu run's), k-shot
#: probes ~3 s per seed, CoOp 6.5 ms per step (3 rates × 400 steps × 5 k: ~40 s), CLIP-Adapter < 1 ms per step.
PROFILES = {
    "smoke": {"corpus": "smoke", "seeds": 1, "prefix": "smoke-category/", "steps": 12, "batch_size": 32,
              "warmup_steps": 2, "min_crop_scale": 0.5, "log_every": 2, "probe_max_iter": 100,
              "select_steps": 4, "holdout": 0.2,
              "full_ft": {"lr_grid": (3e-4, 1e-3), "weight_decay": 0.1},
              "lora": {"lr_grid": (3e-3, 1e-2), "weight_decay": 0.0, "rank": 4, "alpha": 8, "towers": ("image", "text"),
                       "last_blocks": None},
              "shots": (1, 2), "views": 2, "few_shot_methods": FEW_SHOT_METHODS,
              "coop": {"n_ctx": 4, "lr_grid": (2e-3, 2e-2), "steps": 10, "batch_size": 16, "warmup_steps": 2,
                       "weight_decay": 0.0},
              "clip_adapter": {"reduction": 4, "alpha_grid": (0.2, 0.5), "lr_grid": (1e-3,), "steps": 10,
                               "batch_size": 16, "warmup_steps": 2, "weight_decay": 0.0}},
    "cpu": {"corpus": clip_small.PROFILES["cpu"]["corpus"], "seeds": 5, "prefix": "emoji-subcategory/", "steps": 400,
            "batch_size": 64, "warmup_steps": 40, "min_crop_scale": 0.5, "log_every": 10, "probe_max_iter": 100,
            "select_steps": 150, "holdout": 0.2,
            "full_ft": {"lr_grid": (1e-4, 3e-4, 1e-3, 3e-3), "weight_decay": 0.1},
            "lora": {"lr_grid": (1e-3, 3e-3, 1e-2, 3e-2), "weight_decay": 0.0, "rank": 4, "alpha": 8,
                     "towers": ("image", "text"), "last_blocks": None},
            "shots": SHOTS, "views": 4, "few_shot_methods": FEW_SHOT_METHODS,
            "coop": {"n_ctx": 4, "lr_grid": (1e-3, 3e-3, 1e-2), "steps": 400, "batch_size": 32, "warmup_steps": 20,
                     "weight_decay": 0.0},
            "clip_adapter": {"reduction": 4, "alpha_grid": (0.2, 0.5), "lr_grid": (1e-3, 1e-2), "steps": 400,
                             "batch_size": 32, "warmup_steps": 20, "weight_decay": 0.0}},
    "gpu": {"corpus": clip_small.PROFILES["gpu"]["corpus"], "seeds": 3, "prefix": "emoji-subcategory/", "steps": 3000,
            "batch_size": 256, "warmup_steps": 200, "min_crop_scale": 0.5, "log_every": 20, "probe_max_iter": 1000,
            "select_steps": 500, "holdout": 0.2,
            "full_ft": {"lr_grid": (3e-5, 1e-4, 3e-4), "weight_decay": 0.1},
            "lora": {"lr_grid": (3e-4, 1e-3, 3e-3), "weight_decay": 0.0, "rank": 8, "alpha": 16,
                     "towers": ("image", "text"), "last_blocks": None},
            "shots": SHOTS, "views": 8, "few_shot_methods": FEW_SHOT_METHODS,
            "coop": {"n_ctx": 16, "lr_grid": (1e-3, 3e-3, 1e-2), "steps": 1000, "batch_size": 32,
                     "warmup_steps": 50, "weight_decay": 0.0},
            "clip_adapter": {"reduction": 4, "alpha_grid": (0.2, 0.5), "lr_grid": (1e-3, 1e-2), "steps": 1000,
                             "batch_size": 32, "warmup_steps": 50, "weight_decay": 0.0}},
}
assert {p: s["seeds"] for p, s in PROFILES.items()} == {p: s["seeds"] for p, s in clip_small.PROFILES.items()}


def class_prompts(tokenizer, classnames: Sequence[str], templates: Sequence[str], context_length: int) -> torch.Tensor:
    """Token ids [T, C, L] of every template t filled with every class name c."""
    texts = [prompt(t, c) for t in templates for c in classnames]
    tokens = tokenizer(texts, context_length=context_length, truncate=True)
    return tokens.view(len(templates), len(classnames), -1)


def classification_loss(model, images: torch.Tensor, labels: torch.Tensor, prompts: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """CLIP's own head as a classifier (§3.1.2): logits = exp(logit_scale) · cos(image, class prompt) over the C
    prompts [C, L]; returns (cross-entropy, top-1 on the batch)."""
    image = unit(model.encode_image(images))
    text = unit(model.encode_text(prompts))
    logits = model.logit_scale.exp() * image @ text.t()
    loss = F.cross_entropy(logits, labels)
    return loss, (logits.argmax(dim=1) == labels).float().mean()


def finetune(model, tokenizer, images: torch.Tensor, labels: torch.Tensor, classnames: Sequence[str],
             templates: Sequence[str], steps: int, batch_size: int, lr: float, weight_decay: float,
             warmup_steps: int, min_crop_scale: float = 0.5, seed: int = 0, log_every: int = 10,
             desc: str = "fine-tune") -> dict:
    """Train the parameters of `model` that require gradients to classify `images` (uint8 [N, H, W, 3]) into
    `labels` (class indices into `classnames`), the way CLIP is pre-trained (§2.5): AdamW with decoupled weight
    decay on weights only (`repro.train.param_groups`), Adam β2/ε of the family, linear warmup then cosine decay,
    the random square crop as the only augmentation, the temperature clamped at 100 after each step. Each step
    embeds all C class prompts with one template drawn at random. Returns curves {"step", "loss", "accuracy"} (the
    mean over each `log_every` steps), `steps`, `img_s`, `final_loss`. The model is left in eval mode."""
    if len(images) < batch_size:
        raise ValueError(f"batch_size {batch_size} exceeds the {len(images)} training images")
    device = next(model.parameters()).device
    res = int(model.config.image_resolution)
    vit = model.config.is_vit
    prompts = class_prompts(tokenizer, classnames, templates, model.context_length).to(device)
    labels = torch.as_tensor(labels, device=device)
    opt = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.98) if vit else (0.9, 0.999),
                            eps=1e-6 if vit else 1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(min(warmup_steps, steps), steps))
    per_epoch = len(images) // batch_size
    curves: dict[str, list] = {"step": [], "loss": [], "accuracy": []}
    window: list[tuple[float, float]] = []
    model.train()
    start = time.time()
    for step in tqdm(range(steps), desc=desc, unit="step", mininterval=5):
        epoch, k = divmod(step, per_epoch)
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed * 1000003 + epoch))
        g = torch.Generator().manual_seed(seed * 1000003 + 7919 * (step + 1))
        batch = order[k * batch_size:(k + 1) * batch_size].to(device)
        template = int(torch.randint(len(templates), (1,), generator=g))
        scale, shift = crop_params(batch_size, min_crop_scale, g, device)
        x = normalize(square_crop(to_float(images[batch]), res, scale, shift))
        loss, accuracy = classification_loss(model, x, labels[batch], prompts[template])
        descend(opt, sched, loss, f"{desc}, step {step} (lr {sched.get_last_lr()[0]:.3g})")
        model.clamp_logit_scale()
        window.append((loss.item(), accuracy.item()))
        if (step + 1) % log_every == 0 or step + 1 == steps:
            curves["step"].append(step + 1)
            curves["loss"].append(float(np.mean([w[0] for w in window])))
            curves["accuracy"].append(float(np.mean([w[1] for w in window])))
            window = []
    wall = time.time() - start
    model.eval()
    return {"curves": curves, "steps": steps, "img_s": steps * batch_size / max(wall, 1e-9),
            "final_loss": curves["loss"][-1], "train_wall_time_s": wall}


def summarize(top1: dict[str, float], task: ShiftTask) -> dict:
    """In-distribution accuracy, the mean over the held-out styles, their difference ("drop", in-distribution −
    held-out: the gap that effective robustness is about) and the unseen-concept split's accuracy."""
    held = [s for s, shift in task.shifts.items() if shift == HELD_OUT_STYLE]
    concepts = [s for s, shift in task.shifts.items() if shift == "zero-shot concepts"]
    in_dist = top1[task.in_distribution]
    held_mean = float(np.mean([top1[s] for s in held])) if held else math.nan
    out = {"in_distribution": in_dist, "held_out_styles": held_mean, "drop": in_dist - held_mean,
           "retained": held_mean / in_dist if in_dist > 0 else math.nan}
    if concepts:
        out["zero_shot_concepts"] = float(np.mean([top1[s] for s in concepts]))
    return out


def _zero_shot_top1(model, tokenizer, cache, task: ShiftTask, reuse_features: bool) -> dict[str, float]:
    """Top-1 of the prompt-ensemble classifier of `model` on every split of the task."""
    out = {}
    for split in task.splits:
        features = cache.features(split) if reuse_features else None
        out[split] = zeroshot_eval(model, tokenizer, cache.split(split), task.suite(split),
                                   image_features=features)["top1"]
    return out


def _linear_probe(train_x: torch.Tensor, train_y: np.ndarray, tests: dict, seed: int, max_iter: int) -> dict:
    """The paper's linear probe (§3.2, appendix A.3) on frozen normalised image features, scored on every split."""
    pool_x = train_x.numpy()
    tests = {split: (x.numpy(), y) for split, (x, y) in tests.items()}
    with limited_threads(1):
        probes = probe_task(pool_x, train_y, tests, shots=(), draws=0, seed=seed, max_iter=max_iter)
    n_classes, dim = len(np.unique(train_y)), pool_x.shape[1]
    return {"top1": {split: probes[split]["linear_probe"] for split in tests},
            "trainable_params": dim * n_classes + n_classes, "C": probes["_probe"]["C"],
            "val_top1": probes["_probe"]["val_top1"], "n_fits": probes["_probe"]["n_fits"]}


def lora_towers(model, towers: Sequence[str]) -> tuple[str, ...]:
    """The towers of `towers` that have Transformer blocks for LoRA: the image tower only when it is a ViT."""
    return tuple(t for t in towers if t != "image" or model.config.is_vit)


def _prepare(method: str, base, spec: dict, seed: int) -> tuple[torch.nn.Module, dict]:
    """A copy of `base` whose trainable parameters are those `method` trains (LoRA factors + temperature, or all)."""
    model = copy.deepcopy(base)
    settings = spec[method]
    if method == "lora":
        towers = lora_towers(model, settings["towers"])
        names = lora_lib.add_lora(model, rank=settings["rank"], alpha=settings["alpha"], towers=towers,
                                  last_blocks=settings["last_blocks"], seed=seed)
        model.logit_scale.requires_grad_(True)  # the temperature is learned, as in pre-training and full FT
        return model, {"adapted_weights": len(names), "rank": settings["rank"], "alpha": settings["alpha"],
                       "towers": list(towers),
                       "lora_params": lora_lib.lora_parameter_count(model, settings["rank"], names)}
    model.requires_grad_(True)
    return model, {}


def select_lr(method: str, base, tokenizer, task: ShiftTask, images: torch.Tensor, labels: torch.Tensor,
              spec: dict, seed: int) -> tuple[float, dict[str, float]]:
    """The learning rate of `spec[method]["lr_grid"]` whose `select_steps`-step fine-tuning on a stratified 80% of
    the labelled training images classifies the held-out 20% best (prompt ensemble); returns it and every rate's
    held-out accuracy. Only training images are used, as for the probe's regularisation."""
    fit, held = stratified_holdout(labels.numpy(), spec["holdout"], np.random.default_rng(seed))
    scores = {}
    for lr in spec[method]["lr_grid"]:
        model, _ = _prepare(method, base, spec, seed)
        finetune(model, tokenizer, images[fit], labels[fit], task.classnames, task.templates, spec["select_steps"],
                 spec["batch_size"], lr, spec[method]["weight_decay"], spec["warmup_steps"], spec["min_crop_scale"],
                 seed, spec["log_every"], desc=f"{method} lr {lr:g}")
        weights = zeroshot_classifier(model, tokenizer, task.classnames, task.templates)
        pred = (encode_images(model, images[held].numpy()) @ weights).argmax(dim=1).numpy()
        scores[f"{lr:g}"] = float((pred == labels[held].numpy()).mean())
    best = max(spec[method]["lr_grid"], key=lambda lr: scores[f"{lr:g}"])
    return best, scores


def _adapt(method: str, base, tokenizer, cache, task: ShiftTask, images: torch.Tensor, labels: torch.Tensor,
           spec: dict, seed: int) -> tuple[dict, dict]:
    """Choose the learning rate (`select_lr`), fine-tune a copy of `base` with LoRA or fully on all labelled images,
    evaluate it on every split. Returns (metrics, curves)."""
    lr, lr_scores = select_lr(method, base, tokenizer, task, images, labels, spec, seed)
    model, extra = _prepare(method, base, spec, seed)
    settings = spec[method]
    trainable = lora_lib.count_trainable(model)
    run = finetune(model, tokenizer, images, labels, task.classnames, task.templates, spec["steps"],
                   spec["batch_size"], lr, settings["weight_decay"], spec["warmup_steps"],
                   spec["min_crop_scale"], seed, spec["log_every"], desc=method)
    if method == "lora":
        probe = cache.split(task.in_distribution).images[:256]
        adapted = encode_images(model, probe)
        lora_lib.merge_lora(model)
        extra["merge_max_abs_diff"] = float((encode_images(model, probe) - adapted).abs().max())
    top1 = _zero_shot_top1(model, tokenizer, cache, task, reuse_features=False)
    metrics = {"trainable_params": trainable, "top1": top1, **summarize(top1, task), **extra,
               "lr": lr, "lr_selection": lr_scores, "weight_decay": settings["weight_decay"],
               "logit_scale": float(model.logit_scale.detach().exp()),
               "train": {k: v for k, v in run.items() if k != "curves"}}
    return metrics, run["curves"]


def run(profile: str, seed: int, workdir: Path, results_root: Path | None = None) -> Path:
    """Zero-shot, linear probe, LoRA and full fine-tuning of one seed's `clip_small` on the profile's shift task,
    and the few-shot axis (probe, CoOp, CLIP-Adapter at each k of `shots`; `adaptation_fewshot.few_shot_axis`)."""
    spec = PROFILES[profile]
    start = time.time()
    model, tokenizer, config, corpus, cache = trained_clip_with_corpus(profile, seed, workdir, results_root)
    model.requires_grad_(False)
    task = shift_task(corpus, spec["prefix"])
    packed, rows, y = training_rows(task, corpus, config.data_size)
    train_images = packed.images[rows]
    torch.manual_seed(seed)

    methods: dict[str, dict] = {}
    curves: dict[str, dict] = {}
    t0 = time.time()
    top1 = _zero_shot_top1(model, tokenizer, cache, task, reuse_features=True)
    methods["zeroshot"] = {"trainable_params": 0, "top1": top1, **summarize(top1, task),
                           "logit_scale": float(model.logit_scale.detach().exp()), "wall_time_s": time.time() - t0}
    t0 = time.time()
    train_x = encode_images(model, train_images)
    tests = {split: (cache.features(split), task.labels(cache.split(split), split)) for split in task.splits}
    probe = _linear_probe(train_x, y, tests, seed, spec["probe_max_iter"])
    methods["linear_probe"] = probe | summarize(probe["top1"], task) | {"wall_time_s": time.time() - t0}
    few_shot = few_shot_axis(model, tokenizer, task, train_images, y, train_x, tests, spec, seed)  # minutes at most
    for by_k in few_shot["methods"].values():
        for entry in by_k.values():
            entry |= summarize(entry["top1"], task)
    # stored as rows of the packed training split (what the selection and the k-shot samples are drawn from)
    few_shot["split"] = "train"
    few_shot["selection_rows"] = rows[few_shot["selection_rows"]].tolist()
    few_shot["shot_rows"] = {k: rows[r].tolist() for k, r in few_shot["shot_rows"].items()}
    images, labels = torch.from_numpy(np.ascontiguousarray(train_images)), torch.from_numpy(y)
    for method in ("lora", "full_ft"):
        t0 = time.time()
        methods[method], curves[method] = _adapt(method, model, tokenizer, cache, task, images, labels, spec, seed)
        methods[method]["wall_time_s"] = time.time() - t0

    splits = {split: {"shift": shift, "n": len(cache.split(split))} for split, shift in task.shifts.items()}
    metrics = {
        "task": {"prefix": task.prefix, "label": task.label, "n_classes": len(task.classes), "n_train": len(rows),
                 "in_distribution": task.in_distribution, "splits": splits,
                 "train_per_class": {"min": int(np.bincount(y).min()), "max": int(np.bincount(y).max())}},
        "base_params": sum(p.numel() for p in model.parameters()),
        "methods": methods,
        "few_shot": {"shots": list(spec["shots"])} | few_shot,
    }
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in spec.items()}
    for method in ("lora", "full_ft", "coop", "clip_adapter"):
        settings[method] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in spec[method].items()}
    settings |= {
        "methods": list(METHODS),
        "objective": "cross-entropy over logit_scale · cos(image, text of the class prompt), one template per step "
                     "drawn at random; evaluation with the prompt ensemble (zeroshot_eval)",
        "probe": "L2 multinomial logistic regression, L-BFGS, C by the paper's search on a 20% stratified "
                 "validation part of the training images, refitted on all (repro.evaluate.probe)",
        "lora_targets": list(lora_lib.TARGETS),
        "few_shot": "k labelled training images per class (probe.sample_shots, draw 0 of the seed) from the "
                    "training rows outside a stratified `holdout` selection set; the probe's C, CoOp's lr and "
                    "CLIP-Adapter's alpha and lr chosen by top-1 on that set (repro.experiments.adaptation_fewshot)",
    }
    return write_result(NAME, profile, seed, {"clip_small": asdict(config)} | settings, metrics,
                        time.time() - start, curves, results_root)
