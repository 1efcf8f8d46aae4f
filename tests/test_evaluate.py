"""Tests of repro.evaluate: the paper's evaluation protocols (§3.1–3.3) on fakes whose features are known, so every
accuracy is exactly predictable, and one end-to-end run of a real (untrained) tiny CLIP on the smoke corpus."""

from __future__ import annotations

import zlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from repro.data.pack import PackedSplit
from repro.data.suites import Suite
from repro.evaluate import (
    CLASSNAME_ONLY,
    effective_robustness,
    encode_images,
    encode_texts,
    few_shot,
    image_to_text,
    linear_probe,
    logit,
    mean_per_class_recall,
    relative_robustness_gap_reduction,
    retrieval_eval,
    run_suites,
    sample_shots,
    search_C,
    semantic_search,
    topk_accuracy,
    zeroshot_classifier,
    zeroshot_eval,
)
from repro.preprocess import CLIP_MEAN, CLIP_STD

RES = 4  # fake images are RES × RES; the fake model's resolution is the same, so no resampling blurs the codes


# ----------------------------------------------------------------------------------------------------- fakes
def image_codes(ids: np.ndarray | list[int]) -> np.ndarray:
    """uint8 images [N, RES, RES, 3] whose red/green channels spell each image's id (id // 256, id % 256)."""
    ids = np.asarray(ids, dtype=np.int64)
    images = np.zeros((len(ids), RES, RES, 3), np.uint8)
    images[..., 0] = (ids // 256)[:, None, None]
    images[..., 1] = (ids % 256)[:, None, None]
    return images


def text_vector(text: str, dim: int) -> torch.Tensor:
    """A fixed pseudo-random vector per text (seeded by its CRC)."""
    return torch.randn(dim, generator=torch.Generator().manual_seed(zlib.crc32(text.encode())))


class FakeTokenizer:
    """Gives each distinct text an id (column 0 of its row) and records the calls."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.calls: list[dict] = []

    def __call__(self, texts: list[str], context_length: int = 77, truncate: bool = False) -> torch.Tensor:
        self.calls.append({"n": len(texts), "context_length": context_length, "truncate": truncate})
        out = torch.zeros(len(texts), context_length, dtype=torch.long)
        for row, text in enumerate(texts):
            if text not in self.texts:
                self.texts.append(text)
            out[row, 0] = self.texts.index(text)
        return out


class FakeModel(nn.Module):
    """encode_image: `image_table[id]` for the id coded in the pixels; encode_text: `text_fn(text)`."""

    def __init__(self, tokenizer: FakeTokenizer, image_table: torch.Tensor, text_fn) -> None:
        super().__init__()
        self.tokenizer, self.image_table, self.text_fn = tokenizer, image_table, text_fn
        self.config = SimpleNamespace(image_resolution=RES, embed_dim=image_table.shape[1])
        self.context_length = 8
        self.image_calls = 0

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1:] == (3, RES, RES) and x.dtype == torch.float32
        self.image_calls += 1
        pixel = x[:, :2].mean(dim=(2, 3)) * torch.tensor(CLIP_STD[:2]) + torch.tensor(CLIP_MEAN[:2])
        code = (pixel * 255).round().long()
        return self.image_table[code[:, 0] * 256 + code[:, 1]] * 3.0  # the scale must not matter

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.text_fn(self.tokenizer.texts[i]) for i in tokens[:, 0].tolist()]) * 2.0


CLASSES = ("circle", "square", "star", "heart", "moon", "cross")


def one_hot_setup(labels: list[int], styles: list[str] | None = None, dim: int = 8):
    """A split whose image i has one-hot feature e_{labels[i]}, and a model whose prompt for class c is e_c plus
    a little template-dependent noise — so zero-shot prediction is exactly the true class."""
    tok = FakeTokenizer()

    def text_fn(text: str) -> torch.Tensor:
        name = next(c for c in CLASSES if c in text)
        return torch.eye(dim)[CLASSES.index(name)] + 0.05 * text_vector(text, dim)

    table = torch.eye(dim)[torch.tensor(labels)]
    model = FakeModel(tok, table, text_fn)
    n = len(labels)
    fields = {"name": [CLASSES[c] for c in labels], "style": styles or ["flat"] * n}
    packed = PackedSplit(image_codes(range(n)), [[CLASSES[c]] for c in labels], fields, {})
    return model, tok, packed


def suite(templates=("a {}.", "a drawing of a {}."), classes=CLASSES, label="name") -> Suite:
    return Suite("fake/test", "test", label, tuple(classes), tuple(classes), tuple(templates), "none", "")


# ------------------------------------------------------------------------------------------------ features
def test_encode_images_normalised_batched_and_restores_training_mode():
    table = torch.randn(10, 5)
    model = FakeModel(FakeTokenizer(), table, None).train()
    images = image_codes(range(10))
    feats = encode_images(model, images, batch_size=3)
    assert feats.dtype == torch.float32 and feats.shape == (10, 5) and feats.device.type == "cpu"
    torch.testing.assert_close(feats, table / table.norm(dim=1, keepdim=True))
    assert model.image_calls == 4 and model.training
    torch.testing.assert_close(encode_images(model, torch.from_numpy(images), batch_size=256), feats)
    assert encode_images(model, images[:0]).shape == (0, 5)
    with pytest.raises(ValueError, match=r"uint8 \[N, H, W, 3\]"):
        encode_images(model, images.astype(np.float32))


def test_encode_texts_dedupes_keeps_order_and_truncates():
    tok = FakeTokenizer()
    model = FakeModel(tok, torch.zeros(1, 6), lambda t: text_vector(t, 6))
    texts = ["b", "a", "b", "c", "a"]
    feats = encode_texts(model, tok, texts, batch_size=2)
    expected = torch.stack([text_vector(t, 6) for t in texts])
    torch.testing.assert_close(feats, expected / expected.norm(dim=1, keepdim=True))
    assert sum(c["n"] for c in tok.calls) == 3  # three distinct texts
    assert all(c["context_length"] == 8 and c["truncate"] for c in tok.calls)
    encode_texts(model, tok, ["d"], context_length=5)
    assert tok.calls[-1]["context_length"] == 5


# ------------------------------------------------------------------------------------------------ zero-shot
def test_zeroshot_classifier_is_the_normalised_mean_of_normalised_prompts():
    tok = FakeTokenizer()
    model = FakeModel(tok, torch.zeros(1, 7), lambda t: text_vector(t, 7))
    templates = ("a {}.", "a photo of a {}.", "{} art")
    weights = zeroshot_classifier(model, tok, ["cat", "dog"], templates)
    assert weights.shape == (7, 2)
    for c, name in enumerate(["cat", "dog"]):
        vs = [text_vector(t.format(name), 7) for t in templates]
        mean = sum(v / v.norm() for v in vs) / len(vs)
        torch.testing.assert_close(weights[:, c], mean / mean.norm())
    single = zeroshot_classifier(model, tok, ["cat"], ["a {}."])[:, 0]
    torch.testing.assert_close(single, text_vector("a cat.", 7) / text_vector("a cat.", 7).norm())
    with pytest.raises(ValueError, match="placeholder"):
        zeroshot_classifier(model, tok, ["cat"], ["no slot"])


def test_zeroshot_eval_exact_when_features_match():
    labels = [0, 1, 2, 3, 4, 5, 0, 1, 2, 0]
    styles = ["flat", "flat", "3d", "3d", "flat", "3d", "flat", "3d", "flat", "flat"]
    model, tok, packed = one_hot_setup(labels, styles)
    r = zeroshot_eval(model, tok, packed, suite(), per_template=True)
    assert r["top1"] == r["top5"] == r["mean_per_class_recall"] == 1.0
    assert (r["n"], r["n_classes"], r["n_classes_present"], r["n_templates"]) == (10, 6, 6, 2)
    assert r["per_style"] == {"3d": {"top1": 1.0, "n": 4}, "flat": {"top1": 1.0, "n": 6}}
    assert r["per_template"] == {"a {}.": 1.0, "a drawing of a {}.": 1.0}
    only = zeroshot_eval(model, tok, packed, suite(), templates=CLASSNAME_ONLY)
    assert only["n_templates"] == 1 and only["top1"] == 1.0
    assert "circle" in tok.texts  # the bare class name was a prompt


def test_zeroshot_eval_shuffled_labels_give_the_agreement_rate():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, size=60).tolist()
    model, tok, packed = one_hot_setup(labels)
    shuffled = rng.permutation(labels)
    packed.fields["name"] = [CLASSES[c] for c in shuffled]
    r = zeroshot_eval(model, tok, packed, suite())
    assert r["top1"] == pytest.approx(np.mean(np.array(labels) == shuffled))
    recalls = [np.mean(np.array(labels)[shuffled == c] == c) for c in np.unique(shuffled)]
    assert r["mean_per_class_recall"] == pytest.approx(np.mean(recalls))


def test_zeroshot_eval_precomputed_features_top5_and_errors():
    model, tok, packed = one_hot_setup([0, 1, 2, 0])
    small = suite(classes=CLASSES[:3])
    feats = encode_images(model, packed.images)
    r = zeroshot_eval(model, tok, packed, small, image_features=feats)
    assert r["top1"] == 1.0 and r["top5"] is None and model.image_calls == 1  # no re-encoding
    with pytest.raises(ValueError, match="4 images"):
        zeroshot_eval(model, tok, packed, small, image_features=feats[:3])
    packed.fields["name"][2] = "blob"
    with pytest.raises(ValueError, match="'blob'"):
        zeroshot_eval(model, tok, packed, small)
    with pytest.raises(ValueError, match="'category'"):
        zeroshot_eval(model, tok, packed, suite(label="category"))


def test_metrics_imbalanced_recall_and_ties():
    labels = np.array([0] * 8 + [1] * 2)
    pred = np.zeros(10, dtype=int)
    assert np.mean(pred == labels) == 0.8
    assert mean_per_class_recall(pred, labels) == pytest.approx(0.5)
    # via zero-shot: 8 circles, 2 squares whose images look like circles
    model, tok, packed = one_hot_setup([0] * 10)
    packed.fields["name"] = ["circle"] * 8 + ["square"] * 2
    r = zeroshot_eval(model, tok, packed, suite())
    assert r["top1"] == pytest.approx(0.8) and r["mean_per_class_recall"] == pytest.approx(0.5)
    scores = np.array([[0.5, 0.5, 0.1], [0.2, 0.9, 0.9]])
    assert topk_accuracy(scores, [1, 1], 1) == 0.5  # row 0: tie lost to the lower index; row 1: tie won
    assert topk_accuracy(scores, [2, 0], 2) == 0.0 and topk_accuracy(scores, [2, 0], 3) == 1.0


# ------------------------------------------------------------------------------------------------ retrieval
def brute_force_recall(img: torch.Tensor, txt: dict[str, torch.Tensor], captions: list[list[str]], k: int):
    texts = list(txt)
    i2t = []
    for i, caps in enumerate(captions):
        scores = {t: float(img[i] @ txt[t]) for t in texts}
        best = max(scores[t] for t in caps)
        above = [t for t in texts if t not in caps and scores[t] >= best]
        i2t.append(len(above) < k)
    t2i = []
    for i, caps in enumerate(captions):
        for t in caps:
            own = float(img[i] @ txt[t])
            above = [j for j in range(len(captions)) if j != i and float(img[j] @ txt[t]) >= own]
            t2i.append(len(above) < k)
    return np.mean(i2t), np.mean(t2i)


def test_retrieval_recall_equals_a_brute_force_count():
    rng = np.random.default_rng(1)
    dim, n = 6, 30
    words = [f"thing {i}" for i in range(40)]
    captions = [list(rng.choice(words, size=rng.integers(1, 5), replace=False)) for _ in range(n)]
    tok = FakeTokenizer()
    table = torch.randn(n, dim, generator=torch.Generator().manual_seed(0))
    model = FakeModel(tok, table, lambda t: text_vector(t, dim))
    packed = PackedSplit(image_codes(range(n)), captions, {}, {})
    r = retrieval_eval(model, tok, packed, chunk=7)
    img = table / table.norm(dim=1, keepdim=True)
    txt = {t: text_vector(t, dim) / text_vector(t, dim).norm() for t in dict.fromkeys(sum(captions, []))}
    for k in (1, 5, 10):
        i2t, t2i = brute_force_recall(img, txt, captions, k)
        assert r[f"i2t_r{k}"] == pytest.approx(i2t) and r[f"t2i_r{k}"] == pytest.approx(t2i)
    assert (r["n_images"], r["n_captions"], r["n_texts"]) == (n, sum(map(len, captions)), len(txt))
    first = retrieval_eval(model, tok, packed, max_captions_per_image=1)
    assert first["n_captions"] == n
    assert first["i2t_r1"] == pytest.approx(brute_force_recall(img, txt, [c[:1] for c in captions], 1)[0])


def test_retrieval_ties_count_against_the_query():
    # both images' best caption is the shared string "dot": it is one candidate, correct for both, not a correct
    # caption tied with a wrong copy of itself
    e = torch.eye(3)
    texts = {"circle": e[0] + 1.5 * e[2], "square": e[1] + 1.5 * e[2], "dot": e[0] + e[1]}
    tok = FakeTokenizer()
    model = FakeModel(tok, e[:2], texts.__getitem__)
    packed = PackedSplit(image_codes([0, 1]), [["circle", "dot"], ["square", "dot"]], {}, {})
    r = retrieval_eval(model, tok, packed, ks=(1,))
    assert r["i2t_r1"] == 1.0 and r["n_texts"] == 3 and r["n_captions"] == 4
    # a collapsed model (all image features equal) gets no credit for text->image
    same = FakeModel(tok, torch.ones(2, 3), texts.__getitem__)
    assert retrieval_eval(same, tok, packed, ks=(1,))["t2i_r1"] == 0.0


def test_semantic_search_and_image_to_text():
    model, tok, packed = one_hot_setup([2, 0, 1, 0])
    hits = semantic_search(model, tok, packed, ["a circle", "a star"], k=2)
    assert [i for i, _ in hits[0]] == [1, 3] and hits[1][0][0] == 0
    assert hits[0][0][1] == pytest.approx(float(torch.nn.functional.normalize(model.text_fn("a circle"), dim=0)[0]))
    ranked = image_to_text(model, tok, packed, [0, 2], ["a square", "a star", "a circle"], k=3)
    assert [r[0][0] for r in ranked] == [1, 0] and len(ranked[0]) == 3
    assert all(a[1] >= b[1] for r in ranked for a, b in zip(r, r[1:], strict=False))
    with pytest.raises(IndexError, match="out of range"):
        image_to_text(model, tok, packed, [4], ["a star"])


# ------------------------------------------------------------------------------------------------ probes
def blobs(n_per_class: int, rng: np.random.Generator, classes: int = 4, dim: int = 8):
    centers = np.eye(classes, dim) * 6
    y = np.repeat(np.arange(classes), n_per_class)
    return centers[y] + rng.normal(size=(len(y), dim)), y


def test_linear_probe_separable_blobs_and_deterministic_C():
    rng = np.random.default_rng(0)
    (tx, ty), (sx, sy) = blobs(25, rng), blobs(15, rng)
    r = linear_probe(tx, ty, sx, sy, seed=3)
    assert r["top1"] >= 0.98 and r["mean_per_class_recall"] >= 0.98 and 1e-6 <= r["C"] <= 1e6
    assert (r["n_train"], r["n_val"], r["n_test"], r["n_classes"]) == (100, 20, 60, 4)
    assert linear_probe(tx, ty, sx, sy, seed=3) == r
    names = np.array(["a", "b", "c", "d"])
    assert linear_probe(tx, names[ty], sx, names[sy], seed=3)["top1"] == r["top1"]  # string labels
    with pytest.raises(ValueError, match="train_y"):
        linear_probe(tx, ty[:-1], sx, sy)
    with pytest.raises(ValueError, match="features per row"):
        linear_probe(tx, ty, sx[:, :3], sy)


def test_search_C_follows_the_parametric_binary_search():
    best, scores = search_C(lambda C: (-abs(np.log10(C) - 1.3), 0.0))
    assert best == pytest.approx(10**1.25)  # the grid point nearest 10^1.3 at 8 steps per decade
    exponents = np.log10(sorted(scores))
    assert set(np.round(exponents, 3)) >= {-6, -4, -2, 0, 2, 4, 6, 1, 1.5, 1.25}
    assert len(scores) <= 7 + 2 * 4


def test_few_shot_draws_reproducible_with_k_per_class():
    rng = np.random.default_rng(0)
    (tx, ty), (sx, sy) = blobs(10, rng), blobs(10, rng)
    keep = (ty != 3) | (np.arange(len(ty)) % 10 < 2)  # class 3 has only 2 training examples
    tx, ty = tx[keep], ty[keep]
    for k in (1, 4):
        rows = sample_shots(ty, k, seed=0, draw=0)
        counts = np.bincount(ty[rows])
        assert counts.tolist() == [k, k, k, min(k, 2)]
    assert set(sample_shots(ty, 2, 0, 1)) <= set(sample_shots(ty, 4, 0, 1))  # nested within a draw
    assert not np.array_equal(sample_shots(ty, 4, 0, 0), sample_shots(ty, 4, 0, 1))
    results = few_shot(tx, ty, sx, sy, shots=(1, 4), draws=2, seed=5, max_folds=2)
    # reproducible, and a (k, draw) result does not depend on which other shots and draws were asked for
    assert few_shot(tx, ty, sx, sy, shots=(4,), draws=1, seed=5, max_folds=2) == [results[2]]
    assert [(r["k"], r["draw"], r["n_train"]) for r in results] == [(1, 0, 4), (1, 1, 4), (4, 0, 14), (4, 1, 14)]
    assert [r["C_selection"] for r in results] == ["fixed", "fixed", "cv", "cv"]
    assert all(r["top1"] >= 0.9 for r in results)


# ------------------------------------------------------------------------------------------------ robustness
def test_effective_robustness_zero_on_the_trend_positive_above():
    slope, intercept = 0.8, -0.5
    ref_in = np.array([0.0, 0.3, 0.5, 0.7, 0.9])
    ref_shift = 1 / (1 + np.exp(-(slope * logit(ref_in) + intercept)))
    r = effective_robustness([0.6, 0.6], [float(1 / (1 + np.exp(-(slope * logit(0.6) + intercept)))), 0.9],
                             ref_in, ref_shift)
    assert r["slope"] == pytest.approx(slope) and r["intercept"] == pytest.approx(intercept)
    assert r["effective_robustness"][0] == pytest.approx(0, abs=1e-9) and r["effective_robustness"][1] > 0.3
    assert np.isfinite(effective_robustness(1.0, 1.0, ref_in, ref_shift)["predicted"])  # 100 % is clipped
    with pytest.raises(ValueError, match="fractions"):
        effective_robustness(76.2, 60.0, ref_in, ref_shift)
    with pytest.raises(ValueError, match="differ in length"):
        effective_robustness(0.5, 0.5, ref_in, ref_shift[:-1])


def test_relative_robustness_gap_reduction():
    # paper Figure 13: ResNet-101 and CLIP both 76.2 % on ImageNet; ObjectNet 32.6 % vs 72.3 %
    r = relative_robustness_gap_reduction([0.762, 0.762], [0.723, 0.5], [0.326, 0.5])
    assert r["reduction"][0] == pytest.approx((0.723 - 0.326) / (0.762 - 0.326))
    assert np.isnan(r["reduction"][1]) or r["reduction"][1] == 0.0
    assert r["max_reduction"] == pytest.approx(r["reduction"][0])
    assert relative_robustness_gap_reduction(0.8, 0.8, 0.6)["reduction"] == pytest.approx(1.0)  # no drop at all
    assert relative_robustness_gap_reduction(0.8, 0.6, 0.6)["reduction"] == pytest.approx(0.0)  # as the baseline


# ------------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def smoke_corpus(tmp_path_factory):
    from repro.data.build import BuildConfig, build

    root = tmp_path_factory.mktemp("smoke")
    build(BuildConfig(corpus="smoke", workers=1), root=root)
    return root / "build" / "smoke"


def test_run_suites_end_to_end_on_the_smoke_corpus(smoke_corpus, monkeypatch):
    from repro.data.pack import load_packed
    from repro.evaluate import runner
    from repro.models import CLIP, CLIPConfig
    from repro.tokenizer import Tokenizer

    train = load_packed(smoke_corpus / "packed" / "train_32.npz")
    tok = Tokenizer.train([c for caps in train.captions for c in caps], 700)
    torch.manual_seed(0)
    model = CLIP(CLIPConfig(64, 32, 1, 64, 8, context_length=16, vocab_size=tok.vocab_size, transformer_width=64,
                            transformer_layers=1))
    encoded = []
    original = runner.encode_images
    monkeypatch.setattr(runner, "encode_images", lambda m, images, **kw: encoded.append(len(images)) or
                        original(m, images, **kw))
    results = run_suites(model, tok, smoke_corpus, size=48, per_template=True)
    suites = [k for k in results if not k.startswith("retrieval/")]
    assert len(suites) == 8 and {"retrieval/val", "retrieval/zeroshot"} <= set(results)
    assert len(encoded) == 4  # four splits, each encoded once for two suites and retrieval
    for name in suites:
        r = results[name]
        assert r["suite"] == name and r["n"] > 0 and r["n_classes"] >= 2
        values = [r["top1"], r["mean_per_class_recall"], *r["per_template"].values()]
        assert all(0.0 <= v <= 1.0 for v in values) and len(r["per_template"]) == r["n_templates"]
        assert sum(s["n"] for s in r["per_style"].values()) == r["n"]
    for split in ("val", "zeroshot"):
        r = results[f"retrieval/{split}"]
        assert r["split"] == split and r["n_captions"] >= r["n_images"] > 0
        assert all(0.0 <= r[f"{d}_r{k}"] <= 1.0 for d in ("i2t", "t2i") for k in (1, 5, 10))
        assert r["i2t_r1"] <= r["i2t_r5"] <= r["i2t_r10"]
    one = run_suites(model, tok, smoke_corpus, size=32, suites=["smoke-category/val"], retrieval_splits=())
    assert list(one) == ["smoke-category/val"]
    with pytest.raises(ValueError, match="unknown suites"):
        run_suites(model, tok, smoke_corpus, size=32, suites=["nope"])
