"""Zero-shot classification for any training objective (paper §2.3, Figure 2): each objective scores (image, prompt)
pairs its own way — cosine similarity for the contrastive ones, the predicted bag of words for bag-of-words
prediction, the caption likelihood for the Transformer language model — through `Objective.zero_shot_logits`, so
the four objectives of Figure 2 are compared on exactly the same images, classes and prompts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..data.pack import PackedSplit
from ..data.suites import Suite, prompt
from ..data.tensors import model_input
from .metrics import mean_per_class_recall, predictions, topk_accuracy
from .zeroshot import _check_templates, class_labels

__all__ = ["objective_zeroshot"]


@torch.no_grad()
def objective_zeroshot(
    objective: torch.nn.Module,
    tokenizer: object,
    packed: PackedSplit,
    suite: Suite,
    context_length: int,
    templates: Sequence[str] | None = None,
    rows: np.ndarray | None = None,
    batch_size: int = 128,
) -> dict:
    """Top-1 and mean per-class recall of `objective.zero_shot_logits` on `suite` over the images of `packed`
    (all, or the indices `rows`). Prompts are `templates` (default: the suite's) filled with each class name and
    tokenized to `context_length`; the objective averages its scores over a class's prompts its own way. The
    objective is evaluated in eval mode and left in the mode it was in."""
    labels = class_labels(packed, suite)
    templates = _check_templates(suite.templates if templates is None else templates)
    images = packed.images if rows is None else packed.images[rows]
    labels = labels if rows is None else labels[rows]
    if len(images) == 0:
        raise ValueError(f"suite {suite.name!r}: no images to evaluate")
    device = next(objective.parameters()).device
    prompts = [prompt(template, name) for name in suite.classnames for template in templates]
    class_texts = tokenizer(prompts, context_length=context_length, truncate=True).to(device)
    class_index = torch.arange(len(suite.classes), device=device).repeat_interleave(len(templates))
    was_training = objective.training
    objective.eval()
    try:
        scores = []
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(device)
            x = model_input(batch, objective.image_resolution)
            scores.append(objective.zero_shot_logits(x, class_texts, class_index).float().cpu())
    finally:
        objective.train(was_training)
    scores = torch.cat(scores).numpy()
    return {
        "suite": suite.name, "n": len(images), "n_classes": len(suite.classes), "n_templates": len(templates),
        "top1": topk_accuracy(scores, labels, 1),
        "mean_per_class_recall": mean_per_class_recall(predictions(scores), labels),
    }
