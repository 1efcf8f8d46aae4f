"""Zero-shot classification (Radford et al., 2021, §3.1.2–3.1.4): the text encoder turns each class name, set into
prompt templates, into the weights of a linear classifier over normalised image features; several templates are
ensembled by averaging their normalised embeddings (§3.1.4, "prompt engineering and ensembling")."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..data.pack import PackedSplit
from ..data.suites import Suite, prompt
from .features import encode_images, encode_texts, normalize
from .metrics import mean_per_class_recall, per_group_accuracy, predictions, topk_accuracy

__all__ = ["CLASSNAME_ONLY", "class_labels", "template_features", "zeroshot_classifier", "zeroshot_eval"]

#: The "class name only" baseline of paper Figure 4: the bare class name as the prompt.
CLASSNAME_ONLY = ("{}",)


def _check_templates(templates: Sequence[str]) -> tuple[str, ...]:
    templates = (templates,) if isinstance(templates, str) else tuple(templates)
    if not templates:
        raise ValueError("at least one template is needed")
    for template in templates:
        if not isinstance(template, str) or "{}" not in template:
            raise ValueError(f"template {template!r} must be a str with a '{{}}' placeholder for the class name")
    return templates


def template_features(
    model: torch.nn.Module, tokenizer: object, classnames: Sequence[str], templates: Sequence[str], **encode_kw
) -> torch.Tensor:
    """Normalised embeddings of every prompt, [C, T, d]: entry (c, t) embeds
    `prompt(templates[t], classnames[c])` (the template with the class name and the article it needs)."""
    templates = _check_templates(templates)
    classnames = list(classnames)
    if not classnames:
        raise ValueError("at least one class name is needed")
    texts = [prompt(template, name) for name in classnames for template in templates]
    features = encode_texts(model, tokenizer, texts, **encode_kw)
    return features.view(len(classnames), len(templates), -1)


def zeroshot_classifier(
    model: torch.nn.Module, tokenizer: object, classnames: Sequence[str], templates: Sequence[str], **encode_kw
) -> torch.Tensor:
    """Zero-shot weights [d, C] (paper §3.1.4): per class, the mean of its prompts' normalised embeddings,
    renormalised; with one template it is that template's embedding. `encode_kw` go to `encode_texts`."""
    return normalize(template_features(model, tokenizer, classnames, templates, **encode_kw).mean(dim=1)).t()


def class_labels(packed: PackedSplit, suite: Suite) -> np.ndarray:
    """Class index per row of `packed`: its `suite.label` field looked up in `suite.classes`.

    A row whose value is not one of the suite's classes is an error naming the value (and how many rows have it).
    """
    if suite.label not in packed.fields:
        raise ValueError(f"suite {suite.name!r}: label field {suite.label!r} is not one of {sorted(packed.fields)}")
    values = packed.fields[suite.label]
    if len(values) != len(packed):
        raise ValueError(f"suite {suite.name!r}: {len(values)} {suite.label!r} values for {len(packed)} images")
    index = {c: i for i, c in enumerate(suite.classes)}
    unknown = sorted({v for v in values if v not in index})
    if unknown:
        count = sum(v not in index for v in values)
        raise ValueError(
            f"suite {suite.name!r}: {count} rows have a {suite.label!r} value that is not a class of the suite, "
            f"e.g. {unknown[0]!r} ({len(unknown)} distinct: {unknown[:5]})"
        )
    return np.array([index[v] for v in values], dtype=np.int64)


def _scores(image_features: torch.Tensor, weights: torch.Tensor) -> np.ndarray:
    return (image_features.double() @ weights.double()).numpy()


def zeroshot_eval(
    model: torch.nn.Module,
    tokenizer: object,
    packed: PackedSplit,
    suite: Suite,
    templates: Sequence[str] | None = None,
    image_features: torch.Tensor | None = None,
    per_template: bool = False,
    correct: bool = False,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    bf16: bool = False,
) -> dict:
    """Zero-shot accuracy of `model` on `suite` over the images of `packed` (paper §3.1).

    `templates` default to the suite's (pass `CLASSNAME_ONLY` for the bare class name); `image_features`, if given,
    are the split's precomputed `encode_images` rows (one per image). Returns a dict with
    `suite`, `split`, `shift`, `n`, `n_classes` (C), `n_classes_present`, `n_templates`, `top1`, `top5` (None when
    C < 5), `mean_per_class_recall`, `per_style` ({style: {"top1", "n"}}) and, with `per_template=True`,
    `per_template` ({template: top1 with that template alone}) and, with `correct=True`, `correct` (a bool array:
    whether each image's top-1 is right, for paired tests). Accuracies are fractions in [0, 1].
    """
    labels = class_labels(packed, suite)
    templates = _check_templates(suite.templates if templates is None else templates)
    if len(suite.classnames) != len(suite.classes):
        raise ValueError(f"suite {suite.name!r}: {len(suite.classnames)} class names for {len(suite.classes)} classes")
    if image_features is None:
        image_features = encode_images(model, packed.images, batch_size=batch_size, device=device, bf16=bf16)
    elif len(image_features) != len(packed):
        raise ValueError(
            f"suite {suite.name!r}: image_features has {len(image_features)} rows but split {suite.split!r} has "
            f"{len(packed)} images"
        )
    image_features = normalize(torch.as_tensor(image_features))
    prompts = template_features(model, tokenizer, suite.classnames, templates, device=device, bf16=bf16)
    scores = _scores(image_features, normalize(prompts.mean(dim=1)).t())
    pred = predictions(scores)
    n_classes = len(suite.classes)
    styles = packed.fields.get("style", [""] * len(packed))
    result = {
        "suite": suite.name,
        "split": suite.split,
        "shift": suite.shift,
        "n": len(packed),
        "n_classes": n_classes,
        "n_classes_present": int(len(np.unique(labels))),
        "n_templates": len(templates),
        "top1": topk_accuracy(scores, labels, 1),
        "top5": topk_accuracy(scores, labels, 5) if n_classes >= 5 else None,
        "mean_per_class_recall": mean_per_class_recall(pred, labels),
        "per_style": per_group_accuracy(pred == labels, styles),
    }
    if correct:
        result["correct"] = pred == labels
    if per_template:
        result["per_template"] = {
            template: topk_accuracy(_scores(image_features, prompts[:, t].t()), labels, 1)
            for t, template in enumerate(templates)
        }
    return result
