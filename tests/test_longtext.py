"""Long text beyond the context (`repro.longtext`): truncation, chunk-and-average and sliding windows on a tiny random
CLIP — spans cover every token, every row is bracketed by start and end tokens, a short text is the same under all
three — and the `longtext` experiment end to end on the smoke corpus."""

from __future__ import annotations

import json
from itertools import pairwise

import pytest
import torch

from repro import longtext
from repro.evaluate.features import encode_texts, normalize
from repro.experiments import get
from repro.experiments import longtext as experiment
from repro.experiments.results import load_results
from repro.models import CLIP, CLIPConfig
from repro.tokenizer import Tokenizer

WORDS = ["a red circle", "a blue square", "a green star", "an emoji of a cat", "a flag of france", "a yellow heart"]
CONTEXT = 12


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.train(WORDS * 5, 560)


@pytest.fixture(scope="module")
def model(tokenizer: Tokenizer) -> CLIP:
    torch.manual_seed(0)
    config = CLIPConfig(32, 16, 1, 64, 8, context_length=CONTEXT, vocab_size=tokenizer.vocab_size,
                        transformer_width=64, transformer_layers=2)
    return CLIP(config).eval()


def long_text(n_parts: int = 40) -> str:
    """Numbered phrases, so that no two windows of its tokens are the same (each distinct piece is encoded once)."""
    return ". ".join(f"{WORDS[i % len(WORDS)]} {i}" for i in range(n_parts))


def recorded_rows(model: CLIP, monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """Every token row the model encodes from now on (the rows the strategies build)."""
    rows: list[torch.Tensor] = []
    original = model.encode_text

    def spy(text: torch.Tensor) -> torch.Tensor:
        rows.extend(text.clone())
        return original(text)

    monkeypatch.setattr(model, "encode_text", spy)
    return rows


def body(row: torch.Tensor, tokenizer: Tokenizer) -> list[int]:
    """The text ids of one row, after checking its layout: start, ids, end, zero padding."""
    ids = row.tolist()
    end = ids.index(tokenizer.end_id)
    assert ids[0] == tokenizer.start_id and all(i == tokenizer.pad_id for i in ids[end + 1:])
    assert tokenizer.start_id not in ids[1:end] and tokenizer.end_id not in ids[1:end]
    return ids[1:end]


def test_short_text_is_the_same_under_all_strategies(model, tokenizer) -> None:
    texts = ["a red circle", "an emoji of a cat. a flag of france", ""]
    assert all(len(tokenizer.encode(t)) <= CONTEXT - 2 for t in texts)
    reference = encode_texts(model, tokenizer, texts)
    for embed in (longtext.embed_truncate, longtext.embed_chunks, longtext.embed_sliding):
        features = embed(model, tokenizer, texts)
        assert features.shape == (3, model.config.embed_dim)
        torch.testing.assert_close(features, reference, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(longtext.embed_sliding(model, tokenizer, texts, stride=1, window=CONTEXT - 2),
                               reference, atol=1e-5, rtol=1e-5)


def test_truncate_matches_the_tokenizers_truncation(model, tokenizer) -> None:
    text = long_text()
    assert len(tokenizer.encode(text)) > 3 * CONTEXT
    torch.testing.assert_close(longtext.embed_truncate(model, tokenizer, [text]),
                               encode_texts(model, tokenizer, [text]), atol=1e-5, rtol=1e-5)


def test_chunks_cover_every_token_exactly_once(model, tokenizer, monkeypatch) -> None:
    text = long_text()
    ids = tokenizer.encode(text)
    rows = recorded_rows(model, monkeypatch)
    features = longtext.embed_chunks(model, tokenizer, [text])
    pieces = [body(row, tokenizer) for row in rows]
    assert sum(pieces, []) == ids
    assert all(len(p) == CONTEXT - 2 for p in pieces[:-1]) and 1 <= len(pieces[-1]) <= CONTEXT - 2
    monkeypatch.undo()
    manual = normalize(normalize(model.encode_text(torch.stack(rows))).mean(dim=0, keepdim=True))
    torch.testing.assert_close(features, manual, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n", [0, 1, 9, 10, 11, 29, 30, 31, 100])
@pytest.mark.parametrize("window", [1, 4, 10])
def test_spans_cover_the_text(n: int, window: int) -> None:
    chunks = longtext.chunk_spans(n, window)
    assert [i for s, e in chunks for i in range(s, e)] == list(range(n))
    assert all(0 <= e - s <= window for s, e in chunks)
    for stride in sorted({1, max(1, window // 2), window}):
        spans = longtext.sliding_spans(n, window, stride)
        covered = [i for s, e in spans for i in range(s, e)]
        assert sorted(set(covered)) == list(range(n))
        assert all(e - s == min(window, n) for s, e in spans)
        starts = [s for s, _ in spans]
        assert starts == sorted(set(starts)) and all(b - a <= stride for a, b in pairwise(starts))


def test_sliding_windows_cover_every_token(model, tokenizer, monkeypatch) -> None:
    text = long_text(25)
    ids = tokenizer.encode(text)
    rows = recorded_rows(model, monkeypatch)
    longtext.embed_sliding(model, tokenizer, [text], stride=3)
    pieces = [body(row, tokenizer) for row in rows]
    spans = longtext.sliding_spans(len(ids), CONTEXT - 2, 3)
    assert pieces == [ids[s:e] for s, e in spans]
    assert len(pieces) > len(longtext.chunk_spans(len(ids), CONTEXT - 2))
    assert pieces[0] == ids[: CONTEXT - 2] and pieces[-1] == ids[-(CONTEXT - 2):]


def test_cache_shares_pieces_between_strategies(model, tokenizer) -> None:
    texts = [long_text(12), long_text(30)]
    cache: dict = {}
    truncated = longtext.embed_truncate(model, tokenizer, texts, cache=cache)
    assert len(cache) == 1  # both texts begin with the same tokens
    longtext.embed_chunks(model, tokenizer, texts, cache=cache)
    n = len(cache)
    torch.testing.assert_close(longtext.embed_truncate(model, tokenizer, texts, cache=cache), truncated)
    assert len(cache) == n


def test_bad_window_stride_and_context_are_clear_errors(model, tokenizer) -> None:
    with pytest.raises(ValueError, match="stride must be between 1 and the window"):
        longtext.embed_sliding(model, tokenizer, ["a red circle"], stride=0)
    with pytest.raises(ValueError, match="stride must be between 1 and the window"):
        longtext.embed_sliding(model, tokenizer, ["a red circle"], stride=CONTEXT)
    with pytest.raises(ValueError, match="window must be an int between 1 and context_length - 2"):
        longtext.embed_sliding(model, tokenizer, ["a red circle"], window=CONTEXT - 1)
    with pytest.raises(ValueError, match="window must be an int between 1"):
        longtext.embed_sliding(model, tokenizer, ["a red circle"], window=0)
    with pytest.raises(ValueError, match="context_length must be an int >= 3"):
        longtext.embed_chunks(model, tokenizer, ["a red circle"], context_length=2)
    with pytest.raises(ValueError, match="window must be >= 1"):
        longtext.chunk_spans(5, 0)
    with pytest.raises(ValueError, match="more than the 10 a row can hold"):
        longtext.piece_rows([list(range(11))], tokenizer, CONTEXT)
    with pytest.raises(TypeError, match="list of str"):
        longtext.embed_chunks(model, tokenizer, "a red circle")


def test_long_query_places_the_caption() -> None:
    distractors = ["d1", "d2", "d3", "d4"]
    assert experiment.long_query("cap", distractors, "beginning") == ("cap. d1. d2. d3. d4", 0)
    assert experiment.long_query("cap", distractors, "middle") == ("d1. d2. cap. d3. d4", 2)
    assert experiment.long_query("cap", distractors, "end") == ("d1. d2. d3. d4. cap", 4)
    with pytest.raises(ValueError, match="position must be one of"):
        experiment.long_query("cap", distractors, "top")
    pool = iter(["x y", "z"] * 10).__next__
    assert experiment.fill(lambda t: len(t.split()), "cap", pool, 5) == ["x y", "z", "x y"]


def test_recall_and_chance() -> None:
    queries = torch.eye(3)
    gallery = torch.tensor([[1.0, 0, 0], [0, 0, 1], [0, 1, 0]])
    ranks = experiment.own_rank(queries, gallery, torch.tensor([0, 1, 2]))
    assert ranks.tolist() == [0, 2, 2]  # queries 1 and 2: one image scores higher, one ties (ties count against)
    found = experiment.recall(ranks, 3, ks=(1, 3))
    assert found["r1"] == pytest.approx(1 / 3) and found["r3"] == 1.0 and found["mean_rank"] == pytest.approx(7 / 3)
    assert found["rank_pct"] == pytest.approx((0 + 1 + 1) / 3)
    assert experiment.chance(4, ks=(1, 5)) == {"r1": 0.25, "r5": 1.0, "mean_rank": 2.5, "rank_pct": 0.5}


def test_smoke_experiment_end_to_end(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("REPRO_DATA", str(tmp_path / "data"))
    assert get("longtext") is experiment
    clip_small = get("clip_small")  # it evaluates every seed of the headline model
    assert [experiment.PROFILES[p]["seeds"] for p in ("smoke", "cpu", "gpu")] == [
        clip_small.PROFILES[p]["seeds"] for p in ("smoke", "cpu", "gpu")]
    path = experiment.run("smoke", 0, tmp_path / "runs", results_root=tmp_path / "results")
    assert path == tmp_path / "results" / "longtext" / "smoke" / "seed0.json"
    [record] = load_results("longtext", "smoke", root=tmp_path / "results")
    metrics, spec = record["metrics"], experiment.PROFILES["smoke"]
    window = metrics["model"]["window"]
    assert window == metrics["model"]["context_length"] - 2
    for split in spec["splits"]:
        found = metrics[split]
        assert found["short"]["n"] == found["n_queries"] > 0 and found["chance"]["r1"] == 1 / found["n_gallery"]
        for kind in spec["distractors"]:
            for factor in spec["factors"]:
                for position in experiment.POSITIONS:
                    cell = found["long"][kind][f"{factor}x"][position]
                    assert cell["tokens"] >= factor * metrics["model"]["context_length"]
                    assert cell["truncate"]["pieces"] == 1 and cell["chunks"]["pieces"] >= factor
                    assert cell["sliding"]["pieces"] >= cell["chunks"]["pieces"]
                    for strategy in experiment.STRATEGIES:
                        recalls = [cell[strategy][f"r{k}"] for k in experiment.KS]
                        assert recalls == sorted(recalls) and all(0 <= r <= 1 for r in recalls)
                        assert 0 <= cell[strategy]["rank_pct"] <= 1
            first = found["long"][kind]
            assert first[f"{spec['factors'][0]}x"]["beginning"]["caption_start"] == 0
            assert first[f"{spec['factors'][0]}x"]["end"]["caption_start"] > window
            # the first window holds the same tokens whatever the length when the caption is at the beginning
            assert first[f"{spec['factors'][0]}x"]["beginning"]["truncate"] == \
                first[f"{spec['factors'][-1]}x"]["beginning"]["truncate"]
    assert (tmp_path / "runs" / "clip_small" / "smoke" / "seed0" / "model.safetensors").is_file()
    json.dumps(record)
