"""Evaluation suites: which split, which label, which class names and prompt templates (as CLIP's
data/prompts.md gives per dataset, paper §3.1.4). Suites are plain JSON written by the builder, so evaluation reads
them without this module's knowledge of the sources."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from .captions import with_article

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
#: Templates for icons of held-out icon sets (the ImageNet-R analogue: the same concepts in an unseen style).
ICON_TEMPLATES = (
    "an icon of a {}.", "a {} icon.", "a drawing of a {}.", "a picture of a {}.", "a black and white icon of a {}.",
    "a {}.",
)
#: What each kind of evaluation split measures: its `shift`, and a note for its suites' descriptions.
SHIFTS = {
    "val": ("in-distribution", "; concepts held out of training in every style, for validation"),
    "named": ("zero-shot concepts", "; no picture of these concepts was trained on, while other pictures' captions "
              "name them: zero-shot as the paper defines it (§3.1)"),
    "zeroshot": ("unseen words", "; their names were removed from every training caption, so the text encoder "
                 "never saw the words: chance is the expected result"),
    "test-icons-": ("held-out icon set", "; icons of a set family never trained on, named like an emoji concept"),
    "test-": ("held-out style", "; an emoji art style never trained on"),
}


def shift_of(split: str) -> tuple[str, str]:
    """(shift, description note) of an evaluation split (SHIFTS; a "test-" prefix matches its longest key)."""
    key = split if split in SHIFTS else max((k for k in SHIFTS if k.endswith("-") and split.startswith(k)),
                                           key=len, default=None)
    if key is None:
        raise ValueError(f"split {split!r} is not an evaluation split (one of {', '.join(SHIFTS)}…)")
    return SHIFTS[key]


SMOKE_TEMPLATES = ("a {}.", "a drawing of a {}.", "a {} shape.", "a picture of a {}.")


@dataclass(frozen=True)
class Suite:
    """One evaluation: images of `split`, labelled by the row field `label`, classes `classes` (label values) named
    `classnames` in prompts built from `templates` (by `prompt`: "a {}" takes the article the name needs).
    `shift` says which distribution it measures."""

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


_ARTICLE_SLOT = re.compile(r"(?<!\w)a \{\}([^.,:;!?]*)")


def prompt(template: str, classname: str) -> str:
    """`template` with `classname` in its "{}". Where the template reads "a {}", the article is the one the phrase
    needs, or none (`captions.with_article`): "an emoji of a {}." gives "an emoji of an owl.", "an emoji of
    people holding hands." and "a {} emoji." gives "an owl emoji."."""
    m = _ARTICLE_SLOT.search(template)
    if m is None:
        return template.format(classname)
    return template[:m.start()] + with_article(classname + m.group(1)) + template[m.end():]


def classname(label: str, field: str, names: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """The text a prompt uses for a label value: `names[field][label]` where given (the builder's choice,
    `repro.data.classnames`), else the label made readable."""
    if names and label in names.get(field, {}):
        return names[field][label]
    if field in ("category", "subcategory"):
        return label.replace("-", " ").lower()
    return label


def label_suites(
    split: str, values: Mapping[str, Sequence[str]], shift: str, templates: Sequence[str], prefix: str,
    fields: Sequence[str] = ("category", "subcategory", "name"), names: Mapping[str, Mapping[str, str]] | None = None,
    note: str = "",
) -> list[Suite]:
    """One suite per label field over a split; `values[field]` are the label values present in that split and
    `names` the class names chosen per field (see `classname`); `note` ends each description."""
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
            classes=classes, classnames=tuple(classname(c, field, names) for c in classes), templates=tmpl, shift=shift,
            description=f"{what[field]} of the pictures in split {split!r} ({len(classes)} classes){note}",
        ))
    return suites


def same_classes(a: Sequence[Mapping], b: Sequence[Mapping]) -> dict[str, bool]:
    """For each suite name in both lists of suite dicts (two corpora's suites.json), whether the two have the same
    classes: a comparison of two corpora is like for like only where they do."""
    classes = {s["name"]: tuple(s["classes"]) for s in b}
    return {s["name"]: tuple(s["classes"]) == classes[s["name"]] for s in a if s["name"] in classes}
