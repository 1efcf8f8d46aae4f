"""CLIP's byte-level BPE text tokenizer, written from scratch.

CLIP (Radford et al., 2021, §2.4) encodes text with "a lower-cased byte pair encoding (BPE) representation
of the text with a 49,152 vocab size", bracketed by ``[SOS]``/``[EOS]`` tokens; OpenAI's release uses rows of
77 ids including both, and reads the text feature at the ``[EOS]`` position, found as the largest id.
This module reproduces OpenAI's released tokenizer (``clip/simple_tokenizer.py``) id for id when loaded from
OpenAI's merges file, and can also learn merges of its own with the same algorithm (:meth:`Tokenizer.train`).

Pipeline: :func:`clean_text` -> :func:`pre_tokenize` -> UTF-8 bytes mapped to printable characters
(:func:`bytes_to_unicode`) with ``</w>`` marking the last symbol of a word -> merges applied by rank. The steps
before the merges live in :mod:`repro.pretokenize`.

Decoding: ``decode(encode(t)) == canonical_text(t)`` holds for *every* string ``t``, where
:func:`canonical_text` is the cleaned text re-spaced as its pre-tokens joined by single spaces (special-token
literals dropped). ``decode(encode(t)) == clean_text(t)`` cannot hold in general, because the ids do not
record whether two pre-tokens were separated by a space: ``"a,b"`` and ``"a , b"`` encode identically.
It does hold exactly when ``canonical_text(t) == clean_text(t)``, e.g. for space-separated words of letters.
"""

from __future__ import annotations

import gzip
import heapq
import json
import operator
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from functools import lru_cache
from importlib import resources
from itertools import pairwise
from pathlib import Path

import torch

from .files import atomic_write_text
from .pretokenize import (
    SPECIAL_TOKENS,
    START_TOKEN,
    WORD_END,
    byte_chars,
    bytes_to_unicode,
    canonical_text,
    clean_text,
    merge_pair,
    pre_tokenize,
)

__all__ = ["SPECIAL_TOKENS", "Tokenizer", "bytes_to_unicode", "canonical_text", "clean_text"]
__all__ += ["default_tokenizer", "pre_tokenize", "tokenize"]

OPENAI_BPE_NAME = "bpe_simple_vocab_16e6.txt.gz"
# OpenAI keeps merges 1 .. 49152-256-2 of the file (line 0 is a version header): 512 + 48894 + 2 = 49408 ids.
OPENAI_NUM_MERGES = 49152 - 256 - 2
FILE_FORMAT = "repro-clip-bpe"
FILE_VERSION = 1
_N_BASE = 512  # 256 byte symbols + their word-final variants
_CACHE_LIMIT = 100_000


def _shorten(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


class Tokenizer:
    """Byte-level BPE tokenizer with CLIP's conventions (Radford et al., 2021, §2.4; OpenAI's release).

    Ids: 0..255 byte symbols, 256..511 the same with ``</w>``, then one id per merge in rank order, then
    ``<|startoftext|>`` and ``<|endoftext|>`` last, so the end id is the largest id. Padding uses id 0.
    As in OpenAI's tokenizer, the literal strings ``<|startoftext|>``/``<|endoftext|>`` inside a text are
    encoded as the special ids.
    """

    def __init__(self, merges: Iterable[Sequence[str]], context_length: int = 77) -> None:
        """Build from merges in rank order, each a pair of symbols (e.g. ``("h", "e</w>")``).

        ``context_length`` is the row length :meth:`__call__` gives by default: 77 as ``clip.tokenize``; a
        tokenizer attached to a model by ``repro.load`` is set to that model's context."""
        self.context_length = _check_context_length(context_length)
        base = list(bytes_to_unicode().values())
        vocab = base + [c + WORD_END for c in base]
        known = set(vocab)
        checked: list[tuple[str, str]] = []
        for rank, pair in enumerate(merges):
            is_pair = isinstance(pair, (list, tuple)) and len(pair) == 2
            if not is_pair or not all(isinstance(s, str) for s in pair):
                raise ValueError(f"merge {rank} must be a pair of strings, got {pair!r}")
            first, second = pair
            if first not in known or second not in known or first.endswith(WORD_END):
                raise ValueError(f"merge {rank} {pair!r} uses a symbol that is not in the vocabulary yet")
            checked.append((first, second))
            known.add(first + second)
            vocab.append(first + second)
        vocab.extend(SPECIAL_TOKENS)
        self._merges = tuple(checked)
        self._ranks = {pair: rank for rank, pair in enumerate(checked)}
        self._vocab = vocab
        self._encoder = {token: i for i, token in enumerate(vocab)}  # a repeated string maps to its last id
        to_latin1 = str.maketrans({c: chr(b) for b, c in bytes_to_unicode().items()})
        self._id_bytes: list[bytes] = []
        for token in vocab[:-2]:
            word_end = token.endswith(WORD_END)
            chars = token[: -len(WORD_END)] if word_end else token
            self._id_bytes.append(chars.translate(to_latin1).encode("latin-1") + (b" " if word_end else b""))
        self._id_bytes.extend([b"", b""])
        self._cache: dict[str, tuple[int, ...]] = {}

    @property
    def vocab_size(self) -> int:
        """Number of ids: 512 byte symbols + one per merge + 2 special tokens (49408 for OpenAI's CLIP)."""
        return len(self._vocab)

    @property
    def start_id(self) -> int:
        """Id of ``<|startoftext|>`` (49406 for OpenAI's CLIP)."""
        return len(self._vocab) - 2

    @property
    def end_id(self) -> int:
        """Id of ``<|endoftext|>``, the largest id (49407 for OpenAI's CLIP)."""
        return len(self._vocab) - 1

    @property
    def pad_id(self) -> int:
        """Id used to pad rows of :meth:`__call__` (0, as in ``clip.tokenize``)."""
        return 0

    @property
    def merges(self) -> tuple[tuple[str, str], ...]:
        """The merges in rank order."""
        return self._merges

    def id_to_token(self, token_id: int) -> str:
        """The vocabulary string of ``token_id`` (byte characters, ``</w>`` marks a word end)."""
        return self._vocab[token_id]

    def _bpe(self, word: str) -> tuple[int, ...]:
        """Ids of one pre-token: apply the lowest-ranked merge present (everywhere) until none applies."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        if word in SPECIAL_TOKENS:
            ids: tuple[int, ...] = (self.start_id if word == START_TOKEN else self.end_id,)
        else:
            chars = byte_chars(word)
            symbols = [*chars[:-1], chars[-1] + WORD_END]
            ranks = self._ranks
            while len(symbols) > 1:
                best, best_rank = None, len(ranks)
                for pair in pairwise(symbols):
                    rank = ranks.get(pair)
                    if rank is not None and rank < best_rank:
                        best, best_rank = pair, rank
                if best is None:
                    break
                symbols = merge_pair(symbols, *best)
            ids = tuple(self._encoder[s] for s in symbols)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[word] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` after :func:`clean_text`, without start/end tokens (OpenAI's ``encode``)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        ids: list[int] = []
        for word in pre_tokenize(clean_text(text)):
            ids.extend(self._bpe(word))
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``: special ids dropped, each ``</w>`` becomes a space, bytes decoded as UTF-8
        (errors replaced), surrounding spaces stripped.

        Exact property, for every str ``t``: ``decode(encode(t)) == canonical_text(t)``, i.e. the cleaned text
        with one space between pre-tokens (so ``"it's a dog."`` comes back as ``"it 's a dog ."``). Exact
        recovery of ``clean_text(t)`` is impossible from ids alone (``"a,b"`` and ``"a , b"`` share their
        ids); it holds whenever ``canonical_text(t) == clean_text(t)``. To decode a padded row of
        :meth:`__call__`, pass only the ids before the end token (pad id 0 is the byte ``!``).
        """
        if hasattr(ids, "tolist"):  # torch tensors / numpy arrays
            ids = ids.tolist()
        table, n = self._id_bytes, len(self._id_bytes)
        parts = []
        for i in ids:
            if not 0 <= operator.index(i) < n:
                raise ValueError(f"invalid token id {i!r} for a vocabulary of {n}")
            parts.append(table[i])
        return b"".join(parts).decode("utf-8", errors="replace").strip(" ")

    def __call__(
        self, texts: str | Sequence[str], context_length: int | None = None, truncate: bool = False
    ) -> torch.Tensor:
        """Token rows ``[start] + encode(text) + [end]``, zero-padded: a LongTensor ``[B, context_length]``
        (default: this tokenizer's ``context_length``).

        Same output as ``clip.tokenize``. A text too long for the context raises ``ValueError`` unless
        ``truncate`` is set, which keeps the first ``context_length`` ids and puts the end id in the last
        slot.
        """
        context_length = self.context_length if context_length is None else context_length
        if isinstance(texts, str):
            items: list[str] = [texts]
        elif isinstance(texts, (list, tuple)):
            items = list(texts)
            for index, item in enumerate(items):
                if not isinstance(item, str):
                    raise TypeError(f"texts[{index}] must be str, got {type(item).__name__}")
        else:
            raise TypeError(f"texts must be a str or a list of str, got {type(texts).__name__}")
        _check_context_length(context_length)
        out = torch.full((len(items), context_length), self.pad_id, dtype=torch.long)
        for row, text in enumerate(items):
            ids = [self.start_id, *self.encode(text), self.end_id]
            if len(ids) > context_length:
                if not truncate:
                    raise ValueError(
                        f"text {row} {_shorten(text)} is {len(ids)} tokens long (with start/end tokens), "
                        f"more than context length {context_length}; shorten it or pass truncate=True"
                    )
                ids = ids[:context_length]
                ids[-1] = self.end_id
            out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    @classmethod
    def from_openai_bpe(cls, path: str | os.PathLike[str] | None = None) -> Tokenizer:
        """OpenAI's CLIP tokenizer from its gzipped merges file (default: the copy packaged in ``repro``)."""
        name = f"repro/assets/{OPENAI_BPE_NAME}" if path is None else os.fspath(path)
        source = resources.files("repro") / "assets" / OPENAI_BPE_NAME if path is None else Path(path)
        raw = source.read_bytes()
        try:
            lines = gzip.decompress(raw).decode("utf-8").split("\n")
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise ValueError(f"{name}: not a gzip-compressed UTF-8 merges file ({exc})") from exc
        body = lines[1 : OPENAI_NUM_MERGES + 1]
        if len(body) < OPENAI_NUM_MERGES:
            raise ValueError(f"{name}: has {len(body)} merges, expected {OPENAI_NUM_MERGES}")
        try:
            return cls(tuple(line.split()) for line in body)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from exc

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> Tokenizer:
        """Learn merges on a corpus with the BPE algorithm behind CLIP's vocabulary (Sennrich et al., 2015).

        Words are counted after cleaning and pre-tokenization; starting from the 512 byte symbols, the most
        frequent adjacent pair (ties: lexicographically smallest pair) is merged everywhere, until
        ``vocab_size = 512 + merges + 2`` is reached or no pair occurs ``min_frequency`` times. Pair counts
        are updated incrementally, touching only the words that contain the merged pair.
        """
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < _N_BASE + 2:
            raise ValueError(f"vocab_size must be an int >= {_N_BASE + 2}, got {vocab_size!r}")
        if min_frequency < 1:
            raise ValueError(f"min_frequency must be >= 1, got {min_frequency}")
        counts: Counter[str] = Counter()
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{index}] must be str, got {type(text).__name__}")
            counts.update(w for w in pre_tokenize(clean_text(text)) if w not in SPECIAL_TOKENS)
        words: list[list[str]] = []
        freqs: list[int] = []
        for word, freq in counts.items():
            chars = byte_chars(word)
            words.append([*chars[:-1], chars[-1] + WORD_END])
            freqs.append(freq)
        pair_counts: dict[tuple[str, str], int] = defaultdict(int)
        where: dict[tuple[str, str], set[int]] = defaultdict(set)
        for index, (symbols, freq) in enumerate(zip(words, freqs, strict=True)):
            for pair in pairwise(symbols):
                pair_counts[pair] += freq
                where[pair].add(index)
        heap = [(-count, pair) for pair, count in pair_counts.items()]
        heapq.heapify(heap)
        merges: list[tuple[str, str]] = []
        while heap and len(merges) < vocab_size - _N_BASE - 2:
            neg_count, pair = heapq.heappop(heap)
            if pair_counts.get(pair, 0) != -neg_count:
                continue  # stale entry; the current count has its own entry
            if -neg_count < min_frequency:
                break
            merges.append(pair)
            changed: set[tuple[str, str]] = set()
            for index in where.pop(pair, ()):
                old = words[index]
                new = merge_pair(old, *pair)
                if len(new) == len(old):
                    continue
                freq = freqs[index]
                old_pairs, new_pairs = list(pairwise(old)), list(pairwise(new))
                for p in old_pairs:
                    pair_counts[p] -= freq
                for p in new_pairs:
                    pair_counts[p] += freq
                for p in set(old_pairs).difference(new_pairs):
                    if p != pair:
                        where[p].discard(index)
                for p in new_pairs:
                    where[p].add(index)
                changed.update(old_pairs)
                changed.update(new_pairs)
                words[index] = new
            for p in changed:
                count = pair_counts[p]
                if count > 0:
                    heapq.heappush(heap, (-count, p))
                else:
                    del pair_counts[p]
                    where.pop(p, None)
        return cls(merges)

    def to_dict(self) -> dict:
        """The JSON-serialisable form: format name, version, vocabulary size and the ``[a, b]`` merges."""
        data = {"format": FILE_FORMAT, "version": FILE_VERSION, "vocab_size": self.vocab_size}
        return data | {"special_tokens": list(SPECIAL_TOKENS), "merges": [list(pair) for pair in self._merges]}

    @classmethod
    def from_dict(cls, data: object, source: str = "tokenizer data") -> Tokenizer:
        """Inverse of :meth:`to_dict`; malformed data raises ``ValueError`` naming ``source``."""
        if not isinstance(data, dict) or data.get("format") != FILE_FORMAT:
            raise ValueError(f"{source}: not a tokenizer file (expected format {FILE_FORMAT!r})")
        if data.get("version") != FILE_VERSION:
            raise ValueError(f"{source}: unsupported version {data.get('version')!r} (expected {FILE_VERSION})")
        merges = data.get("merges")
        if not isinstance(merges, list):
            raise ValueError(f"{source}: 'merges' must be a list of [a, b] pairs")
        try:
            tokenizer = cls(merges)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from exc
        if data.get("vocab_size", tokenizer.vocab_size) != tokenizer.vocab_size:
            raise ValueError(
                f"{source}: vocab_size {data['vocab_size']!r} does not match the {len(merges)} merges "
                f"(expected {tokenizer.vocab_size})"
            )
        return tokenizer

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_dict` as JSON, atomically (temp file + ``os.replace``)."""
        atomic_write_text(path, json.dumps(self.to_dict(), ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Tokenizer:
        """Read a file written by :meth:`save`; a malformed file raises ``ValueError`` naming it."""
        name = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{name}: not a valid tokenizer JSON file ({exc})") from exc
        return cls.from_dict(data, source=name)

    def __repr__(self) -> str:
        return (f"Tokenizer(vocab_size={self.vocab_size}, merges={len(self._merges)}, "
                f"context_length={self.context_length})")


def _check_context_length(context_length: object) -> int:
    if isinstance(context_length, bool) or not isinstance(context_length, int):
        raise TypeError(f"context_length must be an int, got {type(context_length).__name__}")
    if context_length < 2:
        raise ValueError(f"context_length must be >= 2 (start and end tokens), got {context_length}")
    return context_length


@lru_cache(maxsize=1)
def default_tokenizer() -> Tokenizer:
    """OpenAI's CLIP tokenizer (49408 ids), built once from the packaged merges file."""
    return Tokenizer.from_openai_bpe()


def tokenize(texts: str | Sequence[str], context_length: int = 77, truncate: bool = False) -> torch.Tensor:
    """Equivalent of ``clip.tokenize``: ``[B, context_length]`` LongTensor from **OpenAI's** tokenizer (49,408 ids),
    for models with OpenAI's vocabulary (OpenAI's released weights, presets trained with ``tokenizer="openai"``).

    A model trained here has a vocabulary of its own, learned on its training captions: tokenize for it with
    ``model.tokenizer(texts)`` (attached by ``repro.load``; rows of the model's context length)."""
    return default_tokenizer()(texts, context_length=context_length, truncate=truncate)
