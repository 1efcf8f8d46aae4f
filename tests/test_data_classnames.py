"""Class names of words the training captions contain, and grammatical prompts (paper §3.1.4)."""

from __future__ import annotations

import pytest

from repro.data.classnames import (
    CATEGORY_CANDIDATES,
    FASHION_MNIST_CANDIDATES,
    SUBCATEGORY_CANDIDATES,
    all_candidates,
    candidates_of,
    choose_classnames,
    digit_names,
)
from repro.data.photos import FASHION_MNIST_LABELS
from repro.data.suites import EMOJI_TEMPLATES, ICON_TEMPLATES, prompt, shift_of


@pytest.mark.parametrize(("template", "name", "expected"), [
    ("an emoji of a {}.", "activity", "an emoji of an activity."),
    ("an emoji of a {}.", "bicycle", "an emoji of a bicycle."),
    ("an emoji of a {}.", "people holding hands", "an emoji of people holding hands."),
    ("an emoji of a {}.", "a button (blood type)", "an emoji of a button (blood type)."),
    ("a {} emoji.", "owl", "an owl emoji."),
    ("a {} icon.", "umbrella", "an umbrella icon."),
    ("a photo of the number: \"{}\".", "3", "a photo of the number: \"3\"."),
    ("a {}.", "3", "3."),
    ("{}", "apple", "apple"),
    ("an emoji from the category {}.", "animal", "an emoji from the category animal."),
])
def test_prompt_takes_the_article_the_name_needs(template: str, name: str, expected: str) -> None:
    assert prompt(template, name) == expected


def test_every_template_fills_without_a_stray_article() -> None:
    for template in EMOJI_TEMPLATES + ICON_TEMPLATES:
        for name in ("owl", "apple", "umbrella", "ice cream"):
            assert " a a" not in prompt(template, name) and " a o" not in prompt(template, name)
            assert " a u" not in prompt(template, name) and " a i" not in prompt(template, name)


def test_choose_prefers_faithful_names_that_occur_and_keeps_them_distinct() -> None:
    candidates = {"Animals & Nature": ("animal", "plant"), "Activities": ("activity", "sport", "game"),
                  "Objects": ("object", "tool"), "Also objects": ("object", "thing")}
    pictures = {"animal": 500, "activity": 3, "sport": 90, "game": 400, "object": 25, "tool": 900}
    names = choose_classnames(candidates, pictures, min_pictures=20)
    # first candidate at the threshold wins, not the most frequent ("game"); a taken name is skipped
    assert names == {"Animals & Nature": "animal", "Activities": "sport", "Objects": "object",
                     "Also objects": "thing"}
    assert choose_classnames({"a": ("x", "y")}, {"x": 1, "y": 2}, min_pictures=20) == {"a": "y"}
    assert choose_classnames({"a": ("x",), "b": ("x",)}, {}) == {"a": "x", "b": "x 2"}


def test_tables_cover_their_labels() -> None:
    assert set(FASHION_MNIST_CANDIDATES) == set(FASHION_MNIST_LABELS)
    assert len(SUBCATEGORY_CANDIDATES) == 99 and len(CATEGORY_CANDIDATES) == 9
    assert all(cands and all(c == c.lower().strip() for c in cands) for cands in SUBCATEGORY_CANDIDATES.values())
    assert candidates_of(["animal-mammal", "new-thing"], SUBCATEGORY_CANDIDATES, lambda x: x.replace("-", " ")) == {
        "animal-mammal": ("mammal", "animal"), "new-thing": ("new thing",)}
    assert {"mammal", "t-shirt", "number 7", "seven", "7"} <= all_candidates()


def test_digit_names_take_the_form_the_captions_use() -> None:
    assert digit_names({}) == tuple(str(d) for d in range(10))
    assert digit_names({f"number {d}": 5 for d in range(10)} | {"7": 10}) == tuple(f"number {d}" for d in range(10))


def test_shift_of_each_split() -> None:
    assert shift_of("named")[0] == "zero-shot concepts" and shift_of("zeroshot")[0] == "unseen words"
    assert shift_of("test-icons-game-icons")[0] == "held-out icon set"
    assert shift_of("test-fluent-3d")[0] == "held-out style" and shift_of("val")[0] == "in-distribution"
    with pytest.raises(ValueError, match="not an evaluation split"):
        shift_of("train")


def test_same_classes_compares_suites_by_name() -> None:
    from repro.data.suites import same_classes

    a = [{"name": "x", "classes": ["a", "b"]}, {"name": "y", "classes": ["a"]}, {"name": "z", "classes": []}]
    b = [{"name": "x", "classes": ["a", "b"]}, {"name": "y", "classes": ["b"]}]
    assert same_classes(a, b) == {"x": True, "y": False}
