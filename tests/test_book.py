"""The book's helpers (`repro.book`): committed results are preferred, missing ones are produced at the smoke
profile outside `results/` and flagged; tables are numbered MyST with a CSV; the citation file is valid."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from repro import book
from repro.experiments.results import write_result

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def chapter_dir(tmp_path, monkeypatch) -> Path:
    """A fake book: a root with _toc.yml, the working directory set to its chapters/ folder as during a build."""
    (tmp_path / "_toc.yml").write_text("root: chapters/intro\n")
    chapters = tmp_path / "chapters"
    chapters.mkdir()
    monkeypatch.chdir(chapters)
    monkeypatch.delenv("REPRO_PROFILE", raising=False)
    monkeypatch.delenv("REPRO_FALLBACK_DIR", raising=False)
    return chapters


def test_repo_root_is_found_from_a_chapter(chapter_dir) -> None:
    assert book.repo_root() == chapter_dir.parent.resolve()


def test_committed_results_are_preferred_gpu_first(chapter_dir) -> None:
    root = chapter_dir.parent / "results"
    for profile in ("cpu", "gpu"):
        for seed in range(2):
            write_result("clip_small", profile, seed, {"seed": seed}, {"acc": 0.1 * (seed + 1)}, 1.0, root=root)
    found = book.experiment_results("clip_small")
    assert (found.profile, found.seeds, found.fallback, found.notice()) == ("gpu", [0, 1], False, "")
    assert found.values("acc") == pytest.approx([0.1, 0.2])
    note = book.sources_note(found)
    assert "gpu profile, 2 seeds" in note and "results/clip_small/gpu/" in note
    assert book.experiment_results("clip_small", profiles=["cpu"]).profile == "cpu"


def test_active_profile_selects_results(chapter_dir, monkeypatch) -> None:
    write_result("clip_small", "cpu", 0, {}, {"acc": 0.5}, 1.0, root=chapter_dir.parent / "results")
    monkeypatch.setenv("REPRO_PROFILE", "cpu")
    assert book.experiment_results("clip_small").profile == "cpu"


def test_unknown_active_profile_is_a_clear_error(chapter_dir, monkeypatch) -> None:
    monkeypatch.setenv("REPRO_PROFILE", "tpu")
    with pytest.raises(ValueError, match="has no profile 'tpu'"):
        book.experiment_results("clip_small")


def test_missing_results_run_the_smoke_profile_outside_results(chapter_dir, monkeypatch, tmp_path_factory) -> None:
    monkeypatch.setenv("REPRO_DATA", str(tmp_path_factory.mktemp("data")))
    found = book.experiment_results("clip_small")
    assert found.fallback and found.profile == "smoke" and len(found.records) == 1
    assert "smoke" in found.notice() and found.notice().startswith("```{warning}")
    assert not (chapter_dir.parent / "results").exists()
    assert (chapter_dir.parent / "_build" / "fallback" / "results" / "clip_small" / "smoke" / "seed0.json").is_file()
    again = book.experiment_results("clip_small")  # reused, not re-run
    assert again.records[0]["created"] == found.records[0]["created"]


def test_fmt_ci() -> None:
    assert book.fmt_ci({"mean": 0.25, "ci95": 0.05, "n": 3}) == "25.0 ± 5.0"
    assert book.fmt_ci({"mean": 0.25, "ci95": math.nan, "n": 1}) == "25.0"
    assert book.fmt_ci({"mean": 14.05, "ci95": 0.04, "n": 3}, scale=1.0, digits=2) == "14.05 ± 0.04"


def test_table_is_numbered_myst_with_a_csv(chapter_dir) -> None:
    df = pd.DataFrame({"model": ["a|b", "c"], "acc": [0.123456, math.nan]})
    text = book.table(df, "tab-demo", "A demo\n`table`.")
    assert text.startswith("::::{table} A demo `table`.\n:name: tab-demo\n")  # a colon fence: backticks allowed
    assert "| a\\|b | 0.1235 |" in text and "| c | — |" in text
    assert "{download}`Download this table as CSV <../_build/tables/tab-demo.csv>`" in text
    assert pd.read_csv(chapter_dir.parent / "_build" / "tables" / "tab-demo.csv")["acc"][0] == pytest.approx(0.123456)
    with pytest.raises(ValueError, match="table name 'Bad Name'"):
        book.table(df, "Bad Name", "x")


def test_citation_file_is_valid_cff() -> None:
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0"
    assert {"message", "title", "authors", "version", "license"} <= set(cff)
    [paper] = cff["references"]
    assert paper["title"] == "Learning Transferable Visual Models From Natural Language Supervision"
    assert paper["year"] == 2021


def test_every_cited_key_is_in_the_bibliography() -> None:
    import re

    keys = set(re.findall(r"^@\w+\{([^,]+),", (ROOT / "references.bib").read_text(encoding="utf-8"), re.M))
    cited = {key.strip() for path in (ROOT / "chapters").glob("*.md")
             for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", path.read_text(encoding="utf-8"))
             for key in group.split(",")}
    assert cited <= keys, f"cited but not in references.bib: {sorted(cited - keys)}"


def test_ci_text_and_signed_over_seeds() -> None:
    from repro.stats import accuracy_interval, difference_interval

    acc = accuracy_interval([0.1, 0.2, 0.3])
    text = f"20.0 [{100 * acc['low']:.1f}, {100 * acc['high']:.1f}]"
    assert book.ci_text([0.1, 0.2, 0.3]) == book.fmt_ci(acc) == text
    assert 0 < acc["low"] < 0.1 and book.ci_text([0.001, 0.01, 0.002]).split("[")[1][0] != "-"  # never below 0
    assert book.signed([0.012]) == "+1.2"
    diff = difference_interval([0.01, 0.02, 0.03])
    assert book.signed([0.01, 0.02, 0.03]) == f"+2.0 [{100 * diff['low']:.1f}, {100 * diff['high']:.1f}]" \
        == book.signed(diff)
    stats = book.mean_ci([0.01, 0.02, 0.03])  # mean_ci's stats still print as mean ± half-width
    assert book.signed(stats) == f"+2.0 ± {100 * stats['ci95']:.1f}"
    assert book.signed([-0.5, -0.5], scale=1, digits=2) == "-0.50 [-0.50, -0.50]"


def test_compare_results_pairs_suites_by_name() -> None:
    def results(values: list[float]) -> book.ExperimentResults:
        records = [{"seed": i, "metrics": {"a/val": {"top1": v, "n_classes": 9}, "train": {"steps": 3}}}
                   for i, v in enumerate(values)]
        return book.ExperimentResults("x", "cpu", records, Path("."))

    df = book.compare_results(results([0.1, 0.2]), results([0.3]))
    assert list(df["suite"]) == ["a/val"] and df["classes"][0] == 9
    assert df["difference (points)"][0] == 15.0 and df["after"][0] == "30.0" and df["seeds"][0] == "2 / 1"


def test_zero_shot_table_orders_kinds_and_reads_name_occurrence() -> None:
    def suite(shift: str, top1: float, n: int = 4) -> dict:
        return {"top1": top1, "top5": min(1.0, 2 * top1), "shift": shift, "n_classes": n}

    records = [{"seed": i, "metrics": {"e/zeroshot": suite("unseen words", 0.25), "e/val": suite("in-distribution", v),
                                       "e/named": suite("zero-shot concepts", 0.5, 10), "retrieval/val": {"t2i_r1": 1},
                                       "train": {"steps": 3}}} for i, v in enumerate((0.5, 0.7))]
    names = {"suites": {"e/named": {"named_in_training": 10, "n_classes": 10},
                        "e/zeroshot": {"named_in_training": 0, "n_classes": 4}}}
    df = book.zero_shot_table(book.ExperimentResults("x", "cpu", records, Path(".")), names)
    assert list(df["suite"]) == ["e/named", "e/val", "e/zeroshot"]
    assert list(df["named in training (%)"].fillna(-1)) == [100, -1, 0]
    assert df["top-1 (%)"].iloc[0] == "50.0 [50.0, 50.0]" and df["chance (%)"].iloc[0] == 10.0
    assert df["top-1 (%)"].iloc[1] == book.ci_text([0.5, 0.7])


def test_sign_of_and_seed_band_over_seeds() -> None:
    import numpy as np

    assert book.sign_of([0.1, 0.11, 0.12]) == 1 and book.sign_of([-0.1, -0.11, -0.12]) == -1
    assert book.sign_of([-0.1, 0.1, 0.0]) == 0 and book.sign_of([0.2]) == 1
    mean, lo, hi = book.seed_band(np.array([[0.1, 0.5], [0.3, 0.5]]))
    assert np.allclose(mean, [0.2, 0.5]) and lo[0] < 0.2 < hi[0] and lo[1] == hi[1] == 0.5
    single = book.seed_band(np.array([[0.4, 0.6]]))
    assert np.allclose(single[1], single[2])
    assert book.versus_chance(book.mean_ci([0.5, 0.52, 0.51]), 0.1).startswith("above")
    assert book.versus_chance(book.mean_ci([0.05, 0.2]), 0.1) == "not distinguishable from chance"


def test_name_occurrence_reads_the_corpus_record_or_none(tmp_path) -> None:
    (tmp_path / "data" / "full").mkdir(parents=True)
    (tmp_path / "data" / "full" / "names.json").write_text('{"suites": {}, "train_pictures": 3}')
    records = [{"seed": 0, "config": {"corpus": "full"}, "metrics": {}}]
    assert book.ExperimentResults("x", "cpu", records, tmp_path).name_occurrence()["train_pictures"] == 3
    other = [{"seed": 0, "config": {"corpus": "large"}, "metrics": {}}]
    assert book.ExperimentResults("x", "cpu", other, tmp_path).name_occurrence() is None


def test_an_empty_table_is_still_a_numbered_table(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "_toc.yml").write_text("root: x\n")
    text = book.table(pd.DataFrame(), "tab-empty", "Nothing yet.")
    assert ":name: tab-empty" in text and "not in these results" in text
