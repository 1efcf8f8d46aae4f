"""Which words the text encoder was trained on. In the paper, zero-shot means that no picture of the test set and no
labelled example of the task was trained on, while the class names are ordinary words of the pre-training text
(§3.1). Whether that holds here is counted, not assumed: for every suite and class, how many training captions (and
pictures) contain the class name as a whole phrase, and how often each word of the prompt templates occurs."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from .pack import PackedSplit
from .suites import Suite

_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> tuple[str, ...]:
    """Lower-cased word tokens: "Keycap: #" -> ("keycap",); punctuation separates words and is dropped."""
    return tuple(_WORD.findall(text.lower()))


def phrase_counts(captions: Sequence[Sequence[str]], phrases: Iterable[str]) -> dict[str, tuple[int, int]]:
    """For each phrase: (captions containing it as consecutive whole words, pictures with such a caption).
    `captions[i]` are picture i's captions. A phrase with no word (e.g. "#") counts (0, 0)."""
    wanted = {p: words(p) for p in phrases}
    lengths = {len(w) for w in wanted.values() if w}
    by_caption: Counter = Counter()
    by_picture: Counter = Counter()
    for picture in captions:
        seen: set[tuple[str, ...]] = set()
        for caption in picture:
            tokens = words(caption)
            grams = {tokens[i:i + n] for n in lengths for i in range(len(tokens) - n + 1)}
            by_caption.update(grams)
            seen |= grams
        by_picture.update(seen)
    return {p: (by_caption[w], by_picture[w]) if w else (0, 0) for p, w in wanted.items()}


def name_occurrence(train: PackedSplit, suites: Sequence[Suite]) -> dict:
    """Per suite: its class names' occurrence in the training captions — `counts[k]` = [captions, pictures] for
    `classnames[k]` — how many classes are named at least once, how many of each name's words occur on their own
    (`words_in_training[k]` = [words seen, words]) and the template words' caption counts."""
    names = {n for s in suites for n in s.classnames}
    template_words = {w for s in suites for t in s.templates for w in words(t.replace("{}", " "))}
    name_words = {w for n in names for w in words(n)}
    counts = phrase_counts(train.captions, names | template_words | name_words)
    out: dict = {"train_pictures": len(train), "train_captions": sum(len(c) for c in train.captions), "suites": {}}
    for s in suites:
        per_class = [list(counts[n]) for n in s.classnames]
        out["suites"][s.name] = {
            "split": s.split, "n_classes": len(s.classes),
            "named_in_training": sum(1 for c, _ in per_class if c > 0), "counts": per_class,
            "words_in_training": [[sum(counts[w][0] > 0 for w in words(n)), len(words(n))] for n in s.classnames],
            "template_words": {w: counts[w][0] for t in s.templates for w in words(t.replace("{}", " "))},
        }
    return out


def occurrence_rows(record: dict) -> list[dict]:
    """One row per suite of a `name_occurrence` record: classes, how many (and what share) are named in the
    training captions, the share whose name has at least one word that occurs there, and the median number of
    training pictures whose captions name a class."""
    import statistics

    rows = []
    for name, s in record["suites"].items():
        pictures = [p for _, p in s["counts"]]
        seen_words = s.get("words_in_training")
        rows.append({"suite": name, "classes": s["n_classes"], "named in training": s["named_in_training"],
                     "share named": s["named_in_training"] / s["n_classes"],
                     "share with a word in training": None if seen_words is None else
                     sum(k > 0 for k, _ in seen_words) / s["n_classes"],
                     "median pictures per class": statistics.median(pictures) if pictures else 0})
    return rows
