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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.pack import PackedSplit, load_packed
from ..data.suites import Suite
from .runner import load_suites
from .zeroshot import class_labels

__all__ = ["ShiftTask", "shift_task", "training_rows"]

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
    indices — the training set of a supervised model (or a probe) for the task."""
    packed = load_packed(Path(corpus_dir) / "packed" / f"{split}_{size}.npz")
    if task.label not in packed.fields:
        raise ValueError(f"split {split!r} has no label field {task.label!r}; fields: {sorted(packed.fields)}")
    index = {c: k for k, c in enumerate(task.classes)}
    values = packed.fields[task.label]
    rows = np.array([i for i, v in enumerate(values) if v in index], dtype=np.int64)
    if len(rows) == 0:
        raise ValueError(f"split {split!r} has no row labelled with one of the task's {len(task.classes)} classes")
    return packed, rows, np.array([index[values[i]] for i in rows], dtype=np.int64)
