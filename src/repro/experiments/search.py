"""Retrieval and semantic search with the trained small CLIP (Radford et al., 2021, §3.1 and Table 13): recall@k
in both directions on the in-distribution (`val`) and unseen-concept (`zeroshot`) splits, beside the recall a
random ranking would get, and a gallery — the top images for a few text queries and the top captions for a few
images — stored with its thumbnails so that the book can show it without the corpus.

The model is not trained here: `common.trained_clip` loads the `clip_small` run of the same profile and seed
(training it first only when its weights are missing).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..data.pack import PackedSplit, load_packed
from ..evaluate.features import encode_images
from ..evaluate.retrieval import hubness, image_to_text, retrieval_eval, semantic_search, text_to_image_hubness
from ..files import atomic_write
from . import clip_small
from .common import corpus_for, trained_clip
from .results import result_path, write_result

NAME = "search"

#: The same sizes and seeds as `clip_small`: this experiment evaluates its models.
PROFILES = {profile: {"corpus": spec["corpus"], "seeds": spec["seeds"]}
            for profile, spec in clip_small.PROFILES.items()}

SPLITS = ("val", "zeroshot")
KS = (1, 5, 10)
TOP = 5
#: Hubness is measured on each caption's top HUB_K images (text→image).
HUB_K = 10
#: Images shown with their top captions: from each split, a seeded draw of images of distinct concepts (the same
#: images for every model seed).
IMAGES_PER_SPLIT = 3
GALLERY_SEED = 0

#: Text queries per corpus, each with the split it searches. `val` concepts: their emoji pictures were never
#: trained on, but their names occur in training captions (icons, clip art). `zeroshot` concepts: neither their
#: pictures nor their names occur anywhere in training. Chosen by hand from the splits' concept names.
QUERIES: dict[str, list[tuple[str, str]]] = {
    "full": [("pizza", "val"), ("soccer ball", "val"), ("skull", "val"), ("lemon", "val"),
             ("panda", "zeroshot"), ("owl", "zeroshot"), ("ghost", "zeroshot"), ("sushi", "zeroshot")],
    "large": [("pizza", "val"), ("soccer ball", "val"), ("skull", "val"), ("lemon", "val"),
              ("panda", "zeroshot"), ("owl", "zeroshot"), ("ghost", "zeroshot"), ("sushi", "zeroshot")],
    "smoke": [("yellow circle", "val"), ("green square", "val"), ("red star", "val"), ("black diamond", "val"),
              ("red circle", "zeroshot"), ("purple square", "zeroshot"), ("pink star", "zeroshot"),
              ("blue cross", "zeroshot")],
}


def gallery_path(profile: str, seed: int, root: Path | None = None) -> Path:
    """The thumbnails' sidecar beside the result file: results/search/PROFILE/seedK_gallery.npz."""
    return result_path(NAME, profile, seed, root).with_name(f"seed{seed}_gallery.npz")


def load_gallery(path: str | Path) -> dict[str, np.ndarray]:
    """The gallery's arrays (no pickle): `query_images` [Q, TOP, H, W, 3] and `caption_images` [M, H, W, 3]."""
    with np.load(path, allow_pickle=False) as z:
        return {key: z[key] for key in z.files}


def mentions(phrase: str, text: str) -> bool:
    """Whether `text` contains `phrase` as whole words, ignoring case (so "owl" is not found in "bowl")."""
    return re.search(rf"(?<!\w){re.escape(phrase.lower())}(?!\w)", text.lower()) is not None


def is_match(concept: str, packed: PackedSplit, index: int) -> bool:
    """A retrieved image is correct when its concept name or one of its captions names `concept`."""
    return any(mentions(concept, t) for t in [packed.fields["name"][index], *packed.captions[index]])


def chance_recall(packed: PackedSplit, ks: Sequence[int] = KS) -> dict[str, float]:
    """Recall@k of a random ranking, for the candidates `retrieval_eval` ranks. Text→image: one correct image
    among all N images, k / N. Image→text: an image with m distinct own captions among the T distinct captions of
    the split hits at k with probability 1 − C(T−m, k) / C(T, k), averaged over the images that have captions."""
    captions = [list(dict.fromkeys(c)) for c in packed.captions]
    n_texts = len({t for caps in captions for t in caps})
    n_images = len(packed)
    out: dict[str, float] = {}
    for k in ks:
        miss = [np.prod([(n_texts - len(caps) - j) / (n_texts - j) for j in range(min(k, n_texts))])
                for caps in captions if caps]
        out[f"i2t_r{k}"] = float(1.0 - np.clip(np.mean(miss), 0.0, 1.0))
        out[f"t2i_r{k}"] = min(1.0, k / n_images)
    return out


def random_hubness(queries: int, candidates: int, k: int = HUB_K, seed: int = 0) -> dict:
    """`hubness` of a random ranking (each query's top k drawn uniformly without replacement): what an even
    spread of answers looks like at this number of queries and candidates."""
    g = torch.Generator().manual_seed(seed)
    k = min(k, candidates)
    top = torch.cat([torch.rand(min(1024, queries - s), candidates, generator=g).topk(k, dim=1).indices
                     for s in range(0, queries, 1024)])
    return hubness(top, candidates)


def draw_images(packed: PackedSplit, rng: np.random.Generator, n: int = IMAGES_PER_SPLIT) -> list[int]:
    """`n` image indices of distinct concepts, in a random order drawn from `rng`, then sorted."""
    chosen: dict[str, int] = {}
    for i in rng.permutation(len(packed)).tolist():
        chosen.setdefault(packed.fields["name"][i], i)
        if len(chosen) == n:
            break
    return sorted(chosen.values())


def train_mentions(packed: PackedSplit, phrases: Sequence[str]) -> dict[str, int]:
    """How many training captions mention each phrase (whole words): 0 for a zero-shot concept."""
    text = "\n".join(t.lower() for caps in packed.captions for t in caps)
    return {p: len(re.findall(rf"(?<!\w){re.escape(p.lower())}(?!\w)", text)) if p.lower() in text else 0
            for p in phrases}


def _gallery(model: torch.nn.Module, tokenizer: object, splits: dict[str, PackedSplit],
             features: dict[str, torch.Tensor], queries: list[tuple[str, str]], mentioned: dict[str, int]):
    """Top images per query and top captions per drawn image, with their thumbnails. A caption is correct when
    only pictures of the image's own concept carry it (a generic tag shared by several concepts is not)."""
    text_to_image, query_images = [], []
    for query, split in queries:
        packed = splits[split]
        [hits] = semantic_search(model, tokenizer, packed, [query], k=TOP, image_features=features[split])
        matching = [i for i in range(len(packed)) if is_match(query, packed, i)]
        categories = Counter(packed.fields["category"][i] for i in matching)
        category = categories.most_common(1)[0][0] if categories else ""
        text_to_image.append({
            "query": query, "split": split, "train_caption_mentions": mentioned[query], "n_matching": len(matching),
            "category": category,
            "category_share": packed.fields["category"].count(category) / len(packed) if category else 0.0,
            "images": [{"index": i, "score": round(s, 4), "name": packed.fields["name"][i],
                        "style": packed.fields["style"][i], "category": packed.fields["category"][i],
                        "caption": packed.captions[i][0] if packed.captions[i] else "",
                        "correct": is_match(query, packed, i)} for i, s in hits],
        })
        query_images.append(packed.images[[i for i, _ in hits]])
    rng = np.random.default_rng(GALLERY_SEED)
    image_text, caption_images = [], []
    for split in SPLITS:
        packed = splits[split]
        candidates = list(dict.fromkeys(t for caps in packed.captions for t in caps))
        concepts_of: dict[str, set[str]] = {}  # caption -> the concepts whose pictures carry it
        for name, caps in zip(packed.fields["name"], packed.captions, strict=True):
            for caption in caps:
                concepts_of.setdefault(caption, set()).add(name)
        drawn = draw_images(packed, rng)
        ranked = image_to_text(model, tokenizer, packed, drawn, candidates, k=TOP, image_features=features[split])
        for i, hits in zip(drawn, ranked, strict=True):
            name = packed.fields["name"][i]
            image_text.append({
                "split": split, "index": i, "name": name, "style": packed.fields["style"][i],
                "category": packed.fields["category"][i],
                "captions": [{"text": candidates[j], "score": round(s, 4),
                              "correct": concepts_of[candidates[j]] == {name}} for j, s in hits],
            })
            caption_images.append(packed.images[i])
    arrays = {"query_images": np.stack(query_images).astype(np.uint8),
              "caption_images": np.stack(caption_images).astype(np.uint8)}
    return text_to_image, image_text, arrays


def run(profile: str, seed: int, workdir: Path, results_root: Path | None = None) -> Path:
    """Evaluate one seed's trained `clip_small` model: recall@k with chance levels, and the gallery (its
    thumbnails to `seedK_gallery.npz` beside the result file). Returns the result file's path."""
    spec = PROFILES[profile]
    start = time.time()
    model, tokenizer, train_config = trained_clip(profile, seed, Path(workdir), results_root)
    corpus = corpus_for(spec["corpus"])
    size = train_config.data_size
    splits = {s: load_packed(corpus / "packed" / f"{s}_{size}.npz") for s in SPLITS}
    features = {s: encode_images(model, p.images) for s, p in splits.items()}

    metrics: dict = {"model": {"parameters": sum(p.numel() for p in model.parameters()),
                               "name": train_config.model, "image_px": size}}
    for split, packed in splits.items():
        metrics[f"retrieval/{split}"] = retrieval_eval(
            model, tokenizer, packed, image_features=features[split], ks=KS
        ) | {"split": split, "n_candidate_images": len(packed)}
        metrics[f"chance/{split}"] = chance_recall(packed)
        metrics[f"hubness/{split}"] = text_to_image_hubness(model, tokenizer, packed, k=HUB_K,
                                                            image_features=features[split])
        metrics[f"hubness_random/{split}"] = random_hubness(metrics[f"hubness/{split}"]["queries"], len(packed))

    queries = QUERIES[spec["corpus"]]
    train = load_packed(corpus / "packed" / f"train_{size}.npz")
    mentioned = train_mentions(train, [q for q, _ in queries])
    for split, packed in splits.items():  # a concept's bare name is its first caption
        names = sorted({caps[0] for caps in packed.captions if caps})
        counts = train_mentions(train, names)
        metrics[f"named_in_training/{split}"] = {"concepts": len(names), "named": sum(c > 0 for c in counts.values())}
    metrics["model"] |= {"train_images": len(train), "train_epochs": train_config.epochs,
                         "train_steps": train_config.steps, "train_batch_size": train_config.batch_size}
    del train
    text_to_image, image_text, arrays = _gallery(model, tokenizer, splits, features, queries, mentioned)

    sidecar = gallery_path(profile, seed, results_root)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    atomic_write(sidecar, write)
    metrics["gallery"] = {
        "file": sidecar.name, "k": TOP, "image_px": size, "gallery_seed": GALLERY_SEED,
        "shapes": {key: list(a.shape) for key, a in arrays.items()},
        "text_to_image": text_to_image, "image_to_text": image_text,
    }
    run_dir = Path(workdir) / clip_small.NAME / profile / f"seed{seed}"
    config = {"corpus": spec["corpus"], "clip_small_run": str(run_dir), "model": train_config.model,
              "data_size": size, "ks": list(KS), "top": TOP, "hubness_k": HUB_K,
              "queries": [list(q) for q in queries], "images_per_split": IMAGES_PER_SPLIT}
    json.dumps(metrics)  # fail here, not half-way through writing, if anything is not JSON
    return write_result(NAME, profile, seed, config, metrics, time.time() - start, None, results_root)
