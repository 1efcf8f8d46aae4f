"""What a model was trained on, and whether an evaluation corpus is fair to it.

A run records its corpus (`corpus_identity`: name, build stamp, training split, the SHA-256 of its packed file) and
a fingerprint of its training concepts (the `name` field: 32-bit hashes of the distinct names, delta-coded and
compressed, ~4 bytes a concept). `eval_corpus_check` compares that record with the corpus an evaluation runs on: a
different corpus is a warning; a split that its own corpus keeps free of training concepts (a zero-shot split) but
that holds concepts *this model* was trained on would inflate a "zero-shot" score, and is reported as a leak.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .data.pack import load_text

CONCEPT_FIELD = "name"


#: The instruction sets a CPU's matrix products (and so fp32 and bf16 speed and rounding) depend on: one model name
#: ("AMD EPYC") covers processors with and without bf16 instructions.
MATRIX_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_info(cpuinfo: str) -> dict:
    """The processor's model name, family/model numbers and which of `MATRIX_FLAGS` it has, from /proc/cpuinfo's
    text (its first processor); keys it does not state are left out."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            break  # the first processor's block ends here
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    info = {"cpu": fields["model name"]} if fields.get("model name") else {}
    if "cpu family" in fields and "model" in fields:
        info["cpu_family_model"] = f"{fields['cpu family']}/{fields['model']}"
    if "flags" in fields:
        flags = set(fields["flags"].split())
        info["cpu_matrix_flags"] = [f for f in MATRIX_FLAGS if f in flags]
    return info


def cpu_record() -> dict:
    """`cpu_info` of this machine (empty where /proc/cpuinfo cannot be read)."""
    try:
        return cpu_info(Path("/proc/cpuinfo").read_text())
    except OSError:
        return {}


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def corpus_identity(config) -> dict:
    """What a run trains on, recorded in its checkpoint and model: the corpus's name and build stamp (from its
    manifest, when it has one), the training split, its size and the SHA-256 of its packed file."""
    corpus = Path(config.corpus_dir)
    path = corpus / "packed" / f"{config.train_split}_{config.data_size}.npz"
    manifest = corpus / "manifest.json"
    info = json.loads(manifest.read_text(encoding="utf-8")) if manifest.is_file() else {}
    return {"name": info.get("corpus", corpus.name), "stamp": info.get("stamp"), "train_split": config.train_split,
            "train_file": path.name, "train_sha256": file_sha256(path), "max_train_images": config.max_train_images}


def _hashes(names: Iterable[str]) -> np.ndarray:
    return np.unique(np.array([int.from_bytes(hashlib.sha256(n.encode()).digest()[:4], "big")
                               for n in set(names) - {""}], dtype=np.uint32))


def concept_fingerprint(names: Iterable[str]) -> dict:
    """A compact record of a set of concept names (hashes; membership tests have a ~1e-9·n false-positive rate)."""
    h = _hashes(names)
    delta = np.diff(h, prepend=np.uint32(0)).astype("<u4")
    return {"field": CONCEPT_FIELD, "n": len(h), "sha256_32": base64.b64encode(zlib.compress(delta.tobytes(), 9))
            .decode("ascii")}


def fingerprint_members(fingerprint: dict, names: Iterable[str]) -> list[str]:
    """The `names` (sorted) that the fingerprinted set contains."""
    delta = np.frombuffer(zlib.decompress(base64.b64decode(fingerprint["sha256_32"])), dtype="<u4")
    known = np.cumsum(delta, dtype=np.uint64).astype(np.uint32)
    names = sorted(set(names) - {""})
    found = np.isin(np.array([_hashes([n])[0] for n in names], dtype=np.uint32), known)
    return [n for n, hit in zip(names, found, strict=True) if hit]


def _split_names(corpus: Path, split: str, size: int) -> set[str] | None:
    path = corpus / "packed" / f"{split}_{size}.npz"
    if not path.is_file():
        found = sorted(path.parent.glob(f"{split}_*.npz"))
        if not found:
            return None
        path = found[0]
    return set(load_text(path)["fields"].get(CONCEPT_FIELD, []))


def same_corpus(trained: dict, corpus_dir: str | Path) -> bool:
    """True when `corpus_dir` is the build the model was trained on (same stamp, or the same training file)."""
    corpus = Path(corpus_dir)
    manifest = corpus / "manifest.json"
    info = json.loads(manifest.read_text(encoding="utf-8")) if manifest.is_file() else {}
    if trained.get("stamp") and info.get("stamp"):
        return trained["stamp"] == info["stamp"] and trained.get("name") == info.get("corpus")
    train_file = corpus / "packed" / str(trained.get("train_file", ""))
    return train_file.is_file() and file_sha256(train_file) == trained.get("train_sha256")


def eval_corpus_check(trained: dict | None, corpus_dir: str | Path, splits: Sequence[str], size: int,
                      what: str = "the model") -> tuple[list[str], list[str]]:
    """(warnings, leaks) for evaluating a model trained on `trained` (its `corpus` record; None: unknown) on the
    `splits` of `corpus_dir`. A leak names a zero-shot split of that corpus holding the model's training concepts."""
    corpus = Path(corpus_dir)
    if not trained or same_corpus(trained, corpus):
        return [], []
    warnings = [f"{what} was trained on corpus {trained.get('name')!r} (stamp {trained.get('stamp')}, "
                f"{trained.get('train_file')} sha256 {str(trained.get('train_sha256'))[:12]}…), not on {corpus}"]
    fingerprint = trained.get("concepts")
    own_train = _split_names(corpus, trained.get("train_split", "train"), size)
    if not fingerprint or own_train is None:
        why = "records no training concepts" if not fingerprint else f"{corpus} has no packed training split"
        return warnings + [f"cannot check the splits for training concepts: {what} {why}"], []
    leaks = []
    for split in dict.fromkeys(splits):
        names = _split_names(corpus, split, size) or set()
        if names & own_train:
            continue  # not a zero-shot split of its corpus: it shares concepts with training by design
        seen = fingerprint_members(fingerprint, names)
        if seen:
            shown = ", ".join(repr(n) for n in seen[:5]) + (", …" if len(seen) > 5 else "")
            leaks.append(f"split {split!r} of {corpus} holds only concepts unseen in its corpus's training, but "
                         f"{len(seen)} of its {len(names)} concepts were training concepts of {what}: {shown}")
    return warnings, leaks
