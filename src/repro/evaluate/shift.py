"""One classification task seen under several distributions (Radford et al., 2021, §3.3, Figures 13–14).

The paper compares models on ImageNet's classes across natural distribution shifts (ImageNetV2, Sketch, ObjectNet,
…), restricting predictions to the classes a shifted dataset has. Our analogue: the classes of one label (emoji
subcategory in the full corpus) pooled over every suite that uses it, so each split — the training styles'
held-out images (`in-distribution`), unseen concepts in those styles, and each held-out art style — is the *same*
C-way task under another distribution. A supervised classifier trained on these labels (`training_rows`) and
zero-shot CLIP (`ShiftTask.suite`) then answer exactly the same question on exactly the same images.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.pack import PackedSplit, load_packed
from ..data.suites import Suite
from .runner import load_suites
from .zeroshot import class_labels

__all__ = ["ShiftTask", "concept_label_map", "normalise_name", "relabel_by_concept", "shift_task",
           "task_on_concept_suites", "training_rows"]

IN_DISTRIBUTION = "in-distribution"


@dataclass(frozen=True)
class ShiftTask:
    """C classes of label field `label`, their prompt names and templates, and the splits that pose the task, each
    with the distribution shift it measures (`shifts[split]`, from the suites)."""

    prefix: str
    label: str
    classes: tuple[str, ...]
    classnames: tuple[str, ...]
    templates: tuple[str, ...]
    shifts: dict[str, str]

    @property
    def splits(self) -> list[str]:
        return list(self.shifts)

    @property
    def in_distribution(self) -> str:
        """The split drawn from the training distribution (the x-axis of Figure 13's trend)."""
        return next(split for split, shift in self.shifts.items() if shift == IN_DISTRIBUTION)

    def suite(self, split: str) -> Suite:
        """A zero-shot suite over all C classes for `split` (for `zeroshot_eval`)."""
        if split not in self.shifts:
            raise ValueError(f"split {split!r} is not part of task {self.prefix!r}; its splits: {self.splits}")
        return Suite(f"{self.prefix}{split}", split, self.label, self.classes, self.classnames, self.templates,
                     self.shifts[split], f"{self.label} of the pictures in split {split!r} ({len(self.classes)} "
                     f"classes pooled over the {self.prefix}* suites)")

    def labels(self, packed: PackedSplit, split: str) -> np.ndarray:
        """Class index (into `classes`) of every row of `packed`, the images of `split`."""
        return class_labels(packed, self.suite(split))


def shift_task(corpus_dir: str | os.PathLike, prefix: str) -> ShiftTask:
    """The task of every suite of `corpus_dir/suites.json` whose name starts with `prefix` (e.g.
    "emoji-subcategory/"): the union of their classes (sorted) with the suites' class names and the first suite's
    templates. They must share one label field and name each class the same way."""
    suites = [s for s in load_suites(corpus_dir) if s.name.startswith(prefix)]
    if not suites:
        names = sorted({s.name.split("/")[0] + "/" for s in load_suites(corpus_dir)})
        raise ValueError(f"{Path(corpus_dir) / 'suites.json'}: no suite starts with {prefix!r}; prefixes: {names}")
    labels = {s.label for s in suites}
    if len(labels) != 1:
        raise ValueError(f"suites {prefix!r}* use several label fields {sorted(labels)}; one task needs one")
    names: dict[str, str] = {}
    for s in suites:
        for cls, name in zip(s.classes, s.classnames, strict=True):
            if names.setdefault(cls, name) != name:
                raise ValueError(f"suite {s.name!r} names class {cls!r} {name!r}, another suite {names[cls]!r}")
    shifts = {s.split: s.shift for s in suites}
    if IN_DISTRIBUTION not in shifts.values():
        found = sorted(set(shifts.values()))
        raise ValueError(f"suites {prefix!r}* have no {IN_DISTRIBUTION!r} split; shifts: {found}")
    classes = tuple(sorted(names))
    return ShiftTask(prefix, labels.pop(), classes, tuple(names[c] for c in classes), suites[0].templates, shifts)


def training_rows(task: ShiftTask, corpus_dir: str | os.PathLike, size: int, split: str = "train"
                  ) -> tuple[PackedSplit, np.ndarray, np.ndarray]:
    """The packed training split, the indices of its rows labelled with one of the task's classes, and their class
    indices — the training set of a supervised model (or a probe) for the task. An emoji task (`prefix` "emoji-…")
    keeps emoji pictures only (`concept_id` "emoji:…"): clip art filed in a folder that happens to share a class's
    name ("music") is not one of the task's pictures."""
    packed = load_packed(Path(corpus_dir) / "packed" / f"{split}_{size}.npz")
    if task.label not in packed.fields:
        raise ValueError(f"split {split!r} has no label field {task.label!r}; fields: {sorted(packed.fields)}")
    index = {c: k for k, c in enumerate(task.classes)}
    values = packed.fields[task.label]
    ids = packed.fields.get("concept_id") if task.prefix.startswith("emoji-") else None
    rows = np.array([i for i, v in enumerate(values) if v in index and (ids is None or ids[i].startswith("emoji:"))],
                    dtype=np.int64)
    if len(rows) == 0:
        raise ValueError(f"split {split!r} has no row labelled with one of the task's {len(task.classes)} classes")
    return packed, rows, np.array([index[values[i]] for i in rows], dtype=np.int64)


def normalise_name(name: str) -> str:
    """A concept name compared case-insensitively with its whitespace normalised ("Alarm  Clock" -> "alarm clock")."""
    return " ".join(str(name).split()).casefold()


def concept_label_map(splits: Iterable[PackedSplit], label: str, classes: Iterable[str], name_field: str = "name",
                      id_prefixes: tuple[str, ...] | None = None) -> dict[str, str]:
    """normalised concept name (`normalise_name` of `name_field`) -> its `label` value, from every row of `splits`
    whose `label` is one of `classes` (e.g. the emoji rows of a task, whose concept names carry a subcategory) and,
    with `id_prefixes`, whose `concept_id` starts with one of them (e.g. ("emoji:",): emoji concepts only, not clip
    art filed in a folder named like a class). A name seen with two different labels is ambiguous and left out."""
    wanted = set(classes)
    seen: dict[str, set[str]] = {}
    for packed in splits:
        needed = (label, name_field) + (("concept_id",) if id_prefixes is not None else ())
        for f in needed:
            if f not in packed.fields:
                raise ValueError(f"a packed split ({packed.meta.get('split', '?')}) has no field {f!r}; fields: "
                                 f"{sorted(packed.fields)}")
        ids = packed.fields["concept_id"] if id_prefixes is not None else [""] * len(packed.fields[label])
        for name, value, cid in zip(packed.fields[name_field], packed.fields[label], ids, strict=True):
            if id_prefixes is not None and not cid.startswith(id_prefixes):
                continue
            if value in wanted and normalise_name(name):
                seen.setdefault(normalise_name(name), set()).add(value)
    return {name: values.pop() for name, values in seen.items() if len(values) == 1}


def relabel_by_concept(packed: PackedSplit, labels: Mapping[str, str], label: str,
                       name_field: str = "name") -> tuple[PackedSplit, np.ndarray]:
    """The rows of `packed` whose concept name matches a key of `labels` (a `concept_label_map`: exact match after
    `normalise_name`), as a new PackedSplit whose field `label` holds the matched value, and their row indices.

    This poses a task on pictures labelled by concept only — e.g. held-out icon sets (`icons-concept/test-icons-*`,
    labelled by name) relabelled with the subcategory of the emoji concept of the same name, so the 98-way
    subcategory task can be asked of icons (paper §3.3: the same classes under a natural distribution shift)."""
    if name_field not in packed.fields:
        raise ValueError(f"the packed split has no field {name_field!r}; fields: {sorted(packed.fields)}")
    names = [normalise_name(n) for n in packed.fields[name_field]]
    rows = np.array([i for i, n in enumerate(names) if n in labels], dtype=np.int64)
    fields = {f: [v[i] for i in rows] for f, v in packed.fields.items()}
    fields[label] = [labels[names[i]] for i in rows]
    meta = dict(packed.meta, n=len(rows), relabelled={"label": label, "by": name_field, "of": len(packed)})
    images = packed.images[rows] if len(rows) else packed.images[:0]
    return PackedSplit(images, [packed.captions[i] for i in rows], fields, meta), rows


def task_on_concept_suites(task: ShiftTask, corpus_dir: str | os.PathLike, load: Callable[[str], PackedSplit],
                           train: PackedSplit, rows: np.ndarray, suites_prefix: str, id_prefixes: tuple[str, ...],
                           shift: str) -> tuple[dict[str, tuple[PackedSplit, np.ndarray, Suite, str]], dict]:
    """The concept-labelled suites of `corpus_dir` whose name starts with `suites_prefix` (e.g. the held-out icon
    sets, "icons-concept/test-icons-") posed as `task`: each split's pictures (`load(split)`) named exactly like one
    of the task's concepts — rows of concept ids `id_prefixes` among the task's training rows `rows` of `train` and
    every split of the task (`concept_label_map`) — relabelled with that concept's class (`relabel_by_concept`),
    with a suite of the task's classes and templates recording `shift`. Returns {key: (relabelled pictures, their
    rows in the split, the suite, the split)} for the splits with a match (key: the split, or "<split>-relabelled"
    where the task already has that split) and the counts per split plus, under "_info", over all of them."""
    found = [s for s in load_suites(corpus_dir) if s.name.startswith(suites_prefix)]
    pictures = PackedSplit(train.images[:0], [], {f: [train.fields[f][i] for i in rows]
                                                  for f in ("name", "concept_id", task.label)}, {})
    labels = concept_label_map([pictures, *(load(s) for s in task.splits)], task.label, task.classes,
                               id_prefixes=id_prefixes)
    out: dict[str, tuple[PackedSplit, np.ndarray, Suite, str]] = {}
    sets: dict[str, dict] = {}
    classes: set[str] = set()
    for suite in found:
        source = load(suite.split)
        packed, kept = relabel_by_concept(source, labels, task.label)
        key = suite.split if suite.split not in task.shifts else f"{suite.split}-relabelled"
        values = set(packed.fields[task.label])
        sets[key] = {"suite": suite.name, "split": suite.split, "of": len(source), "n": len(kept),
                     "n_classes": len(values), "n_concepts": len({normalise_name(n) for n in packed.fields["name"]})}
        if len(kept):
            classes |= values
            out[key] = (packed, kept, Suite(f"{task.prefix}{key}", key, task.label, task.classes, task.classnames,
                                            task.templates, shift, f"{task.label} of the pictures of {suite.name} "
                                            f"named like a concept of the task ({len(task.classes)} classes)"),
                        suite.split)
    info = {"suites": suites_prefix, "n": sum(v["n"] for v in sets.values()), "n_classes": len(classes),
            "concept_names": len(labels),
            "rule": "pictures whose concept name equals (case-insensitive, whitespace-normalised) the name of a "
                    f"concept ({', '.join(id_prefixes)}) of the task with one {task.label}; relabelled with it"}
    return out, sets | {"_info": info}
