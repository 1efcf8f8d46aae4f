"""The one schema every image–text source is converted to (paper §2.2: a dataset of (image, text) pairs).

An ingester yields `RawItem`s — one picture with the real text that describes it and where it came from; the
builder renders, captions, splits and stores them as rows of `FEATURES`. Styles are named here once, so that
splits, suites and the book agree on which art styles are seen in training and which are held out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The eight openly licensed emoji art styles (Apple and Facebook images are never used: not licensed).
EMOJI_STYLES = (
    "noto", "twemoji", "openmoji-color", "openmoji-black", "fluent-flat", "fluent-color", "fluent-high-contrast",
    "fluent-3d",
)
#: Styles never seen in training: the analogue of ImageNet-Sketch / ImageNet-R for our ImageNet-like emoji.
HELD_OUT_STYLES = ("openmoji-black", "fluent-high-contrast", "fluent-3d")
TRAIN_EMOJI_STYLES = tuple(s for s in EMOJI_STYLES if s not in HELD_OUT_STYLES)
#: Iconify set families never seen in training: the same concepts drawn in icon styles the model never saw, as
#: ImageNet-R and ImageNet-Sketch redraw ImageNet's classes. Rule: of the allowed sets, ranked by how many of their
#: icons are named like an emoji concept (@iconify/json 2.2.535: dinkie-icons 308, game-icons 283, mdi 190,
#: icon-park 185, ...), the first three whose look no training set shares; mdi is passed over because
#: Material Symbols draw the same Material icons. A family is a set and the sets whose prefix extends it with
#: "-..." (icon-park-outline, -solid, -twotone draw icon-park's pictures in other variants): all are held out.
HELD_OUT_ICON_SETS = {
    "dinkie-icons": "pixel-font bitmaps",
    "game-icons": "detailed silhouettes drawn for games",
    "icon-park": "two-tone multicolour line icons (with its outline, solid and two-tone variants)",
}


def held_out_icon_family(prefix: str) -> str | None:
    """The held-out icon-set family (HELD_OUT_ICON_SETS) that Iconify set `prefix` belongs to, or None."""
    for family in HELD_OUT_ICON_SETS:
        if prefix == family or prefix.startswith(family + "-"):
            return family
    return None

#: How a caption may name a training style ("a flat emoji of a bicycle"); held-out styles are never named.
STYLE_PHRASES = {
    "noto": ("emoji", "Noto emoji"),
    "twemoji": ("emoji", "Twemoji"),
    "openmoji-color": ("emoji", "OpenMoji emoji", "colourful outlined emoji"),
    "fluent-flat": ("emoji", "flat emoji"),
    "fluent-color": ("emoji", "Fluent emoji", "gradient emoji"),
    "icon": ("icon",),
    "clipart": ("clip art", "drawing", "clip art drawing"),
}


@dataclass
class RawItem:
    """One source picture and its real text, before rendering and captioning.

    `concept_id` is shared by every style of the same thing (emoji: "emoji:1f436", FE0F removed); `name` is its
    label ("dog face"); `tags` are further words (emoji tags, icon-set name parts, clip-art keywords). `kind` is
    "svg", "png" or "webp" and `data` the file's bytes. Licence and attribution default to the source's.
    """

    concept_id: str
    name: str
    style: str
    source: str
    kind: str
    data: bytes
    tags: list[str] = field(default_factory=list)
    category: str = ""
    subcategory: str = ""
    licence: str = ""
    attribution: str = ""


def features():
    """The Hugging Face `datasets` schema of the stored corpus (imported lazily: `datasets` is a build-time tool)."""
    from datasets import Features, Image, Sequence, Value

    return Features(
        {
            "image": Image(),  # RGB, composited on white, fixed size
            "captions": Sequence(Value("string")),  # several natural-language forms; one is sampled per step
            "concept_id": Value("string"),
            "name": Value("string"),
            "style": Value("string"),
            "source": Value("string"),
            "licence": Value("string"),
            "attribution": Value("string"),
            "category": Value("string"),
            "subcategory": Value("string"),
            "sha256": Value("string"),  # of the rendered RGB pixels: leak and duplicate checks
            "dhash": Value("string"),  # 64-bit difference hash (hex) of the rendered image: near duplicates
        }
    )
