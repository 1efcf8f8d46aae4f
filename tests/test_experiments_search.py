"""The `search` experiment end to end on the smoke corpus (retrieval recall@k with chance levels, and a gallery
stored beside the result so the book can show it without the corpus), and its small helpers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from repro.data.pack import PackedSplit
from repro.experiments import get, search
from repro.experiments.results import load_results


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> tuple[dict, object]:
    root = tmp_path_factory.mktemp("search")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REPRO_DATA", str(root / "data"))
        path = search.run("smoke", 0, root / "runs", results_root=root / "results")
    assert path == root / "results" / "search" / "smoke" / "seed0.json"
    [record] = load_results("search", "smoke", root=root / "results")
    return record, root


def test_profiles_match_clip_small() -> None:
    clip_small = get("clip_small")
    assert get("search") is search
    for profile, spec in clip_small.PROFILES.items():
        assert search.PROFILES[profile]["seeds"] == spec["seeds"]
        assert search.PROFILES[profile]["corpus"] == spec["corpus"]


def test_result_has_recalls_monotone_in_k_and_chance(smoke_run) -> None:
    record, root = smoke_run
    metrics = record["metrics"]
    assert {"model", "retrieval/val", "retrieval/zeroshot", "chance/val", "chance/zeroshot", "gallery"} <= set(metrics)
    assert (root / "runs" / "clip_small" / "smoke" / "seed0" / "model.safetensors").is_file()
    for split in search.SPLITS:
        found, chance = metrics[f"retrieval/{split}"], metrics[f"chance/{split}"]
        for direction in ("i2t", "t2i"):
            recalls = [found[f"{direction}_r{k}"] for k in search.KS]
            chances = [chance[f"{direction}_r{k}"] for k in search.KS]
            assert all(0.0 <= r <= 1.0 for r in recalls + chances)
            assert recalls == sorted(recalls) and chances == sorted(chances)
        assert chance["t2i_r1"] == pytest.approx(1 / found["n_candidate_images"])


def test_gallery_sidecar_matches_the_json(smoke_run) -> None:
    record, root = smoke_run
    gallery = record["metrics"]["gallery"]
    path = root / "results" / "search" / "smoke" / gallery["file"]
    assert path == search.gallery_path("smoke", 0, root / "results") and path.stat().st_size < 300_000
    arrays = search.load_gallery(path)  # allow_pickle=False inside
    with np.load(path, allow_pickle=False) as z:
        assert sorted(z.files) == sorted(gallery["shapes"])
    for key, shape in gallery["shapes"].items():
        assert list(arrays[key].shape) == shape and arrays[key].dtype == np.uint8
    queries, images = gallery["text_to_image"], gallery["image_to_text"]
    assert [(q["query"], q["split"]) for q in queries] == [tuple(q) for q in search.QUERIES["smoke"]]
    assert arrays["query_images"].shape[:2] == (len(queries), search.TOP)
    assert arrays["caption_images"].shape[0] == len(images) == search.IMAGES_PER_SPLIT * len(search.SPLITS)
    assert arrays["query_images"].shape[2:] == (gallery["image_px"], gallery["image_px"], 3)
    for q in queries:
        scores = [hit["score"] for hit in q["images"]]
        assert scores == sorted(scores, reverse=True) and all(isinstance(h["correct"], bool) for h in q["images"])
    for im in images:
        assert len(im["captions"]) == search.TOP and len({c["text"] for c in im["captions"]}) == search.TOP
    json.dumps(record)


def test_chance_recall_and_matching() -> None:
    packed = PackedSplit(np.zeros((4, 2, 2, 3), np.uint8), [["a", "b"], ["c"], ["d"], []],
                         {"name": ["red owl", "bowl", "owl", "x"]}, {})
    chance = search.chance_recall(packed, ks=(1, 2, 4))
    # 4 distinct captions; image 0 has 2 of them: P(hit@1) = 1/2, images 1, 2: 1/4; mean over the 3 with captions
    assert chance["i2t_r1"] == pytest.approx((1 / 2 + 1 / 4 + 1 / 4) / 3)
    assert chance["i2t_r4"] == pytest.approx(1.0) and chance["t2i_r2"] == pytest.approx(2 / 4)
    assert [search.is_match("owl", packed, i) for i in range(4)] == [True, False, True, False]
    assert search.train_mentions(packed, ["owl", "b"]) == {"owl": 0, "b": 1}
    drawn = search.draw_images(packed, np.random.default_rng(0), n=3)
    assert len(drawn) == 3 and drawn == sorted(drawn)
