"""What CLIP's tokenizer (`repro.tokenizer`) does to text before it merges byte pairs (Radford et al., 2021, §2.4,
as OpenAI's ``clip/simple_tokenizer.py``): clean it, split it into pre-tokens, spell each in a byte-level alphabet of
printable characters, and the one operation BPE repeats — merging a pair of adjacent symbols."""

from __future__ import annotations

import html
from functools import lru_cache

import ftfy
import regex

START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"
SPECIAL_TOKENS = (START_TOKEN, END_TOKEN)
WORD_END = "</w>"

# CLIP's pre-tokenizer: special tokens, English contractions, letter runs, single digits, and runs of
# anything else that is not whitespace. Applied to cleaned (lower-cased) text.
_CONTRACTIONS = [f"'{c}" for c in ("s", "t", "re", "ve", "m", "ll", "d")]
_CLASSES = [r"[\p{L}]+", r"[\p{N}]", r"[^\s\p{L}\p{N}]+"]
_ALTERNATIVES = [*map(regex.escape, SPECIAL_TOKENS), *_CONTRACTIONS, *_CLASSES]
_PRE_TOKEN_RE = regex.compile("|".join(_ALTERNATIVES), regex.IGNORECASE)
_WHITESPACE_RE = regex.compile(r"\s+")


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible table byte -> printable character.

    Printable Latin-1 bytes (``!``..``~``, ``¡``..``¬``, ``®``..``ÿ``) stand for themselves; the remaining 68
    bytes (controls, space, NBSP, soft hyphen) get the characters U+0100, U+0101, ... in byte order, so no
    BPE symbol ever contains whitespace or a control character.
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    rest = [b for b in range(256) if b not in keep]
    return {**{b: chr(b) for b in keep}, **{b: chr(256 + i) for i, b in enumerate(rest)}}


_BYTE_TRANS = str.maketrans({chr(b): c for b, c in bytes_to_unicode().items()})


def byte_chars(word: str) -> str:
    """The byte-level spelling of ``word``: one table character per UTF-8 byte."""
    return word.encode("utf-8").decode("latin-1").translate(_BYTE_TRANS)


def clean_text(text: str) -> str:
    """CLIP's text cleaning: ftfy, HTML-unescape twice, strip, collapse whitespace to a space, lower-case."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return _WHITESPACE_RE.sub(" ", text).strip().lower()


def pre_tokenize(text: str) -> list[str]:
    """Split already-cleaned text into CLIP's pre-tokens (words); BPE never merges across them."""
    return _PRE_TOKEN_RE.findall(text)


def canonical_text(text: str) -> str:
    """The cleaned text with its pre-tokens joined by single spaces: exactly ``decode(encode(text))``.

    Special-token literals are left out, since :meth:`Tokenizer.decode` drops special ids.
    """
    return " ".join(tok for tok in pre_tokenize(clean_text(text)) if tok not in SPECIAL_TOKENS)


def merge_pair(symbols: list[str], first: str, second: str) -> list[str]:
    """Replace every non-overlapping occurrence (left to right) of ``first second`` by their concatenation."""
    out: list[str] = []
    i, n = 0, len(symbols)
    while i < n:
        if i + 1 < n and symbols[i] == first and symbols[i + 1] == second:
            out.append(first + second)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out
