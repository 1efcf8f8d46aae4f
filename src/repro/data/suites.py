"""Evaluation suites: which split, which label, which class names and prompt templates (as CLIP's
data/prompts.md gives per dataset, paper §3.1.4). Suites are plain JSON written by the builder, so evaluation reads
them without this module's knowledge of the sources."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

#: Emoji prompts: CLIP-style templates for pictures that are drawings; the last ones name the held-out styles'
#: looks, as CLIP's ImageNet ensemble names sketches and renderings.
EMOJI_TEMPLATES = (
    "an emoji of a {}.", "a {} emoji.", "an icon of a {}.", "a drawing of a {}.", "a cartoon {}.",
    "a picture of a {}.", "a flat illustration of a {}.", "a 3d rendering of a {}.",
    "a black and white outline drawing of a {}.", "a high contrast drawing of a {}.",
)
CATEGORY_TEMPLATES = (
    "an emoji of a {}.", "an emoji from the category {}.", "a drawing of a {}.", "a picture of a {}.",
)
#: Emoji categories (emoji-datasource's names) as zero-shot class names.
CATEGORY_CLASSNAMES = {
    "Smileys & Emotion": "smiley or emotion", "People & Body": "person or body part",
    "Animals & Nature": "animal or plant", "Food & Drink": "food or drink", "Travel & Places": "travel or place",
    "Activities": "activity", "Objects": "object", "Symbols": "symbol", "Flags": "flag",
}
SMOKE_TEMPLATES = ("a {}.", "a drawing of a {}.", "a {} shape.", "a picture of a {}.")


@dataclass(frozen=True)
class Suite:
    """One evaluation: images of `split`, labelled by the row field `label`, classes `classes` (label values) named
    `classnames` in prompts built from `templates`. `shift` says which distribution it measures."""

    name: str
    split: str
    label: str
    classes: tuple[str, ...]
    classnames: tuple[str, ...]
    templates: tuple[str, ...]
    shift: str
    description: str

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> Suite:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def classname(label: str, field: str) -> str:
    """The text a prompt uses for a label value."""
    if field == "category":
        return CATEGORY_CLASSNAMES.get(label, label.lower())
    if field == "subcategory":
        return label.replace("-", " ")
    return label


def label_suites(
    split: str, values: Mapping[str, Sequence[str]], shift: str, templates: Sequence[str], prefix: str,
    fields: Sequence[str] = ("category", "subcategory", "name"),
) -> list[Suite]:
    """One suite per label field over a split; `values[field]` are the label values present in that split."""
    what = {"category": "category", "subcategory": "subcategory", "name": "concept identity"}
    suites = []
    for field in fields:
        classes = tuple(sorted(set(values[field]) - {""}))
        if len(classes) < 2:
            continue
        tmpl = CATEGORY_TEMPLATES if field == "category" else tuple(templates)
        kind = "concept" if field == "name" else field
        suites.append(Suite(
            name=f"{prefix}-{kind}/{split}", split=split, label=field,
            classes=classes, classnames=tuple(classname(c, field) for c in classes), templates=tmpl, shift=shift,
            description=f"{what[field]} of the pictures in split {split!r} ({len(classes)} classes)",
        ))
    return suites
