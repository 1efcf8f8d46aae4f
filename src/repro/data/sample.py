"""A small sample of the corpus's evaluation pictures that ships with the package: a few hundred 32 px images of the
in-distribution split (`val`), of the zero-shot concepts (`named`), of the unseen words (`zeroshot`), of the three
held-out art styles and of the three held-out icon sets, each with
its source, licence and attribution, and the evaluation suites that label them.

The book's exercises and galleries read it, and a test evaluates the shipped model on it, so nothing that shows the
model at work needs the corpus to be built. It is one packed split (`repro.data.pack` format, no pickle) whose
fields add `split`, `licence` and `attribution` to the corpus's, and whose `meta` holds the suites and the corpus
identity it was drawn from."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from .pack import PackedSplit, load_packed, save_packed
from .suites import Suite

#: Images drawn per split (uniformly at random, seeded): the in-distribution split, the zero-shot concepts (named
#: in training text), the unseen words, the held-out emoji styles and the held-out icon sets.
SAMPLE_SPLITS = {"val": 150, "named": 150, "zeroshot": 60, "test-openmoji-black": 50, "test-fluent-3d": 50,
                 "test-fluent-high-contrast": 50, "test-icons-dinkie-icons": 30, "test-icons-game-icons": 30,
                 "test-icons-icon-park": 30}
SAMPLE_FILE = "sample-32px.npz"


def sample_path() -> Path:
    """The sample that ships in the package (`repro/assets/sample-32px.npz`)."""
    return Path(str(resources.files("repro") / "assets" / SAMPLE_FILE))


def build_sample(corpus_dir: str | os.PathLike, path: str | os.PathLike, splits: dict[str, int] = SAMPLE_SPLITS,
                 size: int = 32, seed: int = 0) -> dict:
    """Draw `splits[name]` images of each split of a built corpus into one packed file at `path` (atomic);
    returns its meta. Each picture's licence and attribution come from the stored dataset's row (an icon's are its
    set's)."""
    from datasets import load_from_disk

    corpus_dir = Path(corpus_dir)
    manifest = json.loads((corpus_dir / "manifest.json").read_text(encoding="utf-8"))
    stored = load_from_disk(str(corpus_dir / "datasets"))
    all_suites = json.loads((corpus_dir / "suites.json").read_text(encoding="utf-8"))["suites"]
    rng = np.random.default_rng(seed)
    images, captions, fields = [], [], {}
    for split, n in splits.items():
        packed = load_packed(corpus_dir / "packed" / f"{split}_{size}.npz")
        if n > len(packed):
            raise ValueError(f"split {split!r} has {len(packed)} images, fewer than the {n} asked for")
        rows = np.sort(rng.choice(len(packed), size=n, replace=False))
        images.append(packed.images[rows])
        captions += [packed.captions[i] for i in rows]
        rights = stored[split].select_columns(["concept_id", "licence", "attribution"]).select(rows.tolist())
        if rights["concept_id"] != [packed.fields["concept_id"][i] for i in rows]:
            raise ValueError(f"{corpus_dir}: the stored and packed rows of split {split!r} differ; rebuild it")
        extra = {"split": [split] * n, "licence": rights["licence"], "attribution": rights["attribution"]}
        for key, values in ({k: [v[i] for i in rows] for k, v in packed.fields.items()} | extra).items():
            fields.setdefault(key, []).extend(values)
    meta = {"split": "sample", "size": size, "n": len(captions), "seed": seed, "splits": dict(splits),
            "corpus": {"name": manifest["corpus"], "stamp": manifest["stamp"]},
            "suites": [s for s in all_suites if s["split"] in splits]}
    save_packed(path, PackedSplit(np.concatenate(images), captions, fields, meta))
    return meta


def load_sample(path: str | os.PathLike | None = None) -> PackedSplit:
    """The sample as one `PackedSplit` (default: the one shipped in the package); `fields["split"]` says which
    corpus split each image was drawn from and `meta["suites"]` holds the suites of those splits."""
    return load_packed(sample_path() if path is None else path)


def sample_split(sample: PackedSplit, split: str) -> PackedSplit:
    """The images of `sample` drawn from corpus split `split`, as a `PackedSplit` of their own."""
    rows = [i for i, s in enumerate(sample.fields["split"]) if s == split]
    if not rows:
        raise ValueError(f"the sample has no images of split {split!r}; it has {sorted(set(sample.fields['split']))}")
    return PackedSplit(sample.images[rows], [sample.captions[i] for i in rows],
                       {k: [v[i] for i in rows] for k, v in sample.fields.items()},
                       sample.meta | {"split": split, "n": len(rows)})


def sample_suites(sample: PackedSplit) -> list[Suite]:
    """The evaluation suites recorded with the sample (those of its splits)."""
    return [Suite.from_dict(s) for s in sample.meta["suites"]]


def credits(packed: PackedSplit, rows: Sequence[int] | None = None) -> str:
    """One sentence of attribution for the pictures `rows` of `packed` (default: all): each source's attribution
    once, and, where OpenMoji pictures are among them, that the figure is shared under CC BY-SA 4.0."""
    rows = range(len(packed)) if rows is None else rows
    seen = dict.fromkeys(packed.fields["attribution"][i] for i in rows)
    text = "Pictures: " + "; ".join(seen) + "."
    if any(packed.fields["licence"][i] == "CC-BY-SA-4.0" for i in rows):
        text += " This figure contains OpenMoji pictures and is shared alike, under CC BY-SA 4.0."
    return text
