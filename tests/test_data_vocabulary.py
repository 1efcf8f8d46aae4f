"""How often class names and prompt words occur in the training captions (repro.data.vocabulary)."""

from __future__ import annotations

import numpy as np

from repro.data.pack import PackedSplit
from repro.data.suites import Suite
from repro.data.vocabulary import name_occurrence, occurrence_rows, phrase_counts, words


def test_words_lowercase_and_drop_punctuation():
    assert words("Keycap: #") == ("keycap",)
    assert words("A Cat's face") == ("a", "cat", "s", "face")
    assert words("#") == ()


def test_phrase_counts_match_whole_words_and_count_pictures_once():
    captions = [["a cat", "a cat face", "cat"], ["a catalog"], ["face of a cat", "a dog"]]
    counts = phrase_counts(captions, ["cat", "cat face", "dog", "Cat", "catalog", "#", "bird"])
    assert counts["cat"] == (4, 2)          # "catalog" is not "cat"; picture 0 counts once
    assert counts["Cat"] == counts["cat"]
    assert counts["cat face"] == (1, 1)     # a phrase: consecutive words, in order ("face of a cat" is not one)
    assert counts["dog"] == (1, 1) and counts["catalog"] == (1, 1)
    assert counts["#"] == (0, 0) and counts["bird"] == (0, 0)


def test_name_occurrence_per_suite():
    train = PackedSplit(np.zeros((3, 2, 2, 3), np.uint8), [["a red circle"], ["a blue square", "square"], ["a star"]],
                        {}, {})
    suite = Suite("shapes/val", "val", "name", ("c", "s", "t"), ("circle", "square", "triangle"),
                  ("a drawing of a {}.",), "in-distribution", "")
    record = name_occurrence(train, [suite])
    s = record["suites"]["shapes/val"]
    assert s["counts"] == [[1, 1], [2, 1], [0, 0]] and s["named_in_training"] == 2 and s["n_classes"] == 3
    assert s["template_words"] == {"a": 3, "drawing": 0, "of": 0}
    assert record["train_pictures"] == 3 and record["train_captions"] == 4
    [row] = occurrence_rows(record)
    assert row["share named"] == 2 / 3 and row["median pictures per class"] == 1


def test_name_occurrence_counts_words_of_unseen_names():
    """A name that never occurs whole may still have words that do ("angry face with horns": "face")."""
    train = PackedSplit(np.zeros((2, 2, 2, 3), np.uint8), [["a smiling face"], ["horns"]], {}, {})
    suite = Suite("e/zeroshot", "zeroshot", "name", ("x", "y"), ("angry face with horns", "accordion"),
                  ("{}",), "unseen words", "")
    s = name_occurrence(train, [suite])["suites"]["e/zeroshot"]
    assert s["named_in_training"] == 0 and s["words_in_training"] == [[2, 4], [0, 1]]
    [row] = occurrence_rows({"suites": {"e/zeroshot": s}})
    assert row["share with a word in training"] == 0.5
