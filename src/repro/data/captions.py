"""Natural-language captions from the real text that comes with each picture (paper §2.2: the text paired with an
image is whatever natural language describes it; ours is emoji labels and tags, icon names, clip-art titles).

Each picture gets a few fixed caption forms; training samples one per step, so the model sees varied phrasing
without any text being invented. Some forms name the art style ("a flat emoji of a bicycle") — only for styles seen
in training; held-out styles are never named.
"""

from __future__ import annotations

import hashlib
import re

from .schema import STYLE_PHRASES, RawItem

MAX_TAGS = 4
_NO_ARTICLE_FIRST = {"a", "an", "the", "two", "three", "some", "people", "men", "women", "family", "couple", "no"}


def readable(text: str) -> str:
    """Lower-case, underscores/dashes/colons to spaces where they separate words, whitespace collapsed."""
    text = text.replace("_", " ").strip().lower()
    text = re.sub(r"^flag:\s*", "flag of ", text)
    text = re.sub(r"^keycap:\s*", "keycap ", text)
    text = re.sub(r"(?<=\w)-(?=\w)", " ", text) if " " not in text else text
    return re.sub(r"\s+", " ", text).strip(" :,.")


def with_article(phrase: str) -> str:
    """"bicycle" -> "a bicycle", "owl" -> "an owl"; plurals, numbers and determiners get none."""
    words = phrase.split()
    if not words:
        return phrase
    first = words[0]
    head = re.split(r" (?:of|with|showing|in|on|for|and|at|from|without) ", phrase)[0].split()[-1]
    plural = head.endswith("s") and not head.endswith(("ss", "us", "is"))
    if first.lower() in _NO_ARTICLE_FIRST or first[0].isdigit() or plural:
        return phrase
    return ("an " if first[0].lower() in "aeiou" else "a ") + phrase


def join_words(words: list[str]) -> str:
    """"a", "b", "c" -> "a, b and c"."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _pick(options: tuple[str, ...], key: str) -> str:
    """A deterministic choice among `options`, keyed by a string (no global random state)."""
    return options[int(hashlib.sha1(key.encode()).hexdigest(), 16) % len(options)]


def make_captions(item: RawItem) -> list[str]:
    """The caption forms of one picture: its name alone, with an article, in a style phrase, with its tags."""
    name = readable(item.name)
    if not name:
        return []
    tags = [t for t in (readable(t) for t in item.tags) if t and t != name and t not in name][:MAX_TAGS]
    style_key = "icon" if item.style == "icon" else item.style
    phrases = STYLE_PHRASES.get(style_key, ())
    forms = [name, with_article(name)]
    if phrases:
        phrase = _pick(phrases, item.concept_id + item.style)
        forms.append(f"{with_article(phrase)} of {with_article(name)}")
        clipart = item.style == "clipart"
        forms.append(f"clip art of {with_article(name)}" if clipart else f"{with_article(name)} {phrase}")
    if tags:
        forms.append(f"{with_article(name)}: {', '.join(tags)}")
        forms.append(f"{with_article(phrases[0] if phrases else 'picture')} tagged {join_words(tags[:3])}")
    seen: set[str] = set()
    return [f for f in forms if not (f in seen or seen.add(f))]
