"""What a reader meets on the rendered pages: one provenance footer per page, a citation with the book's revision
and address, model names that say what the model is, and no words about how the book was made."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from repro.book import (
    ExperimentResults,
    baseline_name,
    baseline_names,
    citation,
    describe,
    repository_url,
    sources_note,
    trained_model,
)
from repro.edition import _https, book_revision, train_config_of
from repro.experiments.results import write_result
from repro.models import CLIP, PRESETS, parameter_counts
from repro.models.naming import effective_config, millions, preset_of, resnet_parameters
from repro.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.md"))
CPU_TRAIN = {"model": "ViT-T/4@32px", "model_overrides": {
    "embed_dim": 128, "vision_width": 128, "vision_layers": 4, "vision_patch_size": 8, "transformer_width": 128,
    "transformer_layers": 3, "context_length": 32, "vocab_size": 4096}}


# --- model names -----------------------------------------------------------------------------------------------

def test_millions() -> None:
    assert [millions(n) for n in (700_842, 1_976_705, 44_549_160, 151_277_313)] == ["0.70M", "2.0M", "44.5M", "151M"]


def test_a_preset_plus_overrides_is_named_by_the_preset_it_equals() -> None:
    """The committed cpu results record ViT-T/4@32px plus overrides: that model is ViT-XS/8@32px."""
    assert preset_of(effective_config(CPU_TRAIN)) == "ViT-XS/8@32px"
    assert describe(CPU_TRAIN) == "ViT-XS/8@32px (2.0M parameters)"
    assert describe(PRESETS["ViT-XS/8@32px"]) == describe(CPU_TRAIN)
    assert describe(CPU_TRAIN, details=True).startswith("ViT-XS/8@32px (2.0M parameters: ViT, width 128, 4 layers, "
                                                        "patch 8, 32 px; text width 128, 3 layers, context 32")


def test_a_train_config_is_named_by_its_effective_model() -> None:
    config = TrainConfig()
    total = parameter_counts(config.clip_config())["total"]
    assert describe(config) == f"{config.model} ({millions(total)} parameters)"
    assert describe(TrainConfig(**CPU_TRAIN)) == "ViT-XS/8@32px (2.0M parameters)"


def test_a_model_no_preset_equals_is_described_by_its_numbers() -> None:
    tiny = {"model": "ViT-XS/8@32px", "model_overrides": {"vision_layers": 2, "context_length": 16}}
    text = describe(tiny)
    assert preset_of(effective_config(tiny)) is None
    assert text.startswith("ViT, width 128, 2 layers, patch 8, 32 px; text width 128, 3 layers, context 16")
    assert text.endswith(f"; {millions(parameter_counts(effective_config(tiny))['total'])} parameters")
    resnet = {"model": "RN-T@64px", "model_overrides": {"vision_width": 16}}
    assert describe(resnet).startswith("modified ResNet, width 16, stages 1-1-1-1, 64 px;")
    with pytest.raises(ValueError, match="unknown model preset 'ViT-Q'"):
        describe({"model": "ViT-Q"})


def test_committed_results_name_the_model_they_trained() -> None:
    for path in (ROOT / "results").glob("*/cpu/seed0.json"):
        config = json.loads(path.read_text())["config"]
        for train in (config, config.get("clip_small"), config.get("clip"), config.get("train")):
            if isinstance(train, dict) and train.get("model_overrides"):
                config = effective_config(train)
                count = millions(sum(p.numel() for p in CLIP(config).parameters()))
                assert describe(train) == describe(config) and f"{count} parameters" in describe(train), path


def test_baseline_names_say_depth_width_and_size() -> None:
    assert baseline_name(101, 8, 700_842) == "ResNet-101 (width 8, 0.70M parameters)"
    assert resnet_parameters(18, 64, 1000, small_input=False) == 11_689_512  # torchvision's resnet18
    with pytest.raises(ValueError, match="no ResNet of depth 20"):
        resnet_parameters(20)


def test_baseline_names_agree_with_the_recorded_models() -> None:
    path = ROOT / "results" / "robustness" / "cpu" / "seed0.json"
    if not path.is_file():
        pytest.skip("no committed robustness results")
    metrics = json.loads(path.read_text())["metrics"]
    classes = metrics["task"]["n_classes"]
    for entry in metrics["supervised"].values():
        assert resnet_parameters(entry["depth"], entry["width"], classes) == entry["parameters"]
        assert baseline_name(entry["depth"], entry["width"], entry["parameters"]) == \
            baseline_name(entry["depth"], entry["width"], num_classes=classes)


def test_baseline_names_of_a_result() -> None:
    supervised = {"resnet101": {"depth": 101, "width": 8, "parameters": 700_842},
                  "resnet18": {"depth": 18, "width": 16, "parameters": 712_818}}
    assert baseline_names(supervised) == {"resnet101": "ResNet-101 (width 8, 0.70M parameters)",
                                          "resnet18": "ResNet-18 (width 16, 0.71M parameters)"}


def test_the_trained_model_is_found_in_the_result_or_in_clip_small(tmp_path) -> None:
    assert train_config_of({"clip_small": CPU_TRAIN, "model": "x"}) is CPU_TRAIN
    assert train_config_of({"train": CPU_TRAIN}) is CPU_TRAIN and train_config_of({"model": "ViT-T/4@32px"}) is None
    own = ExperimentResults("robustness", "cpu", [{"seed": 0, "config": {"clip_small": CPU_TRAIN}}], tmp_path)
    assert trained_model(own) == "ViT-XS/8@32px (2.0M parameters)"
    # longtext and search keep only the preset's name: the clip_small results of the profile and seed say the rest
    named = ExperimentResults("longtext", "cpu", [{"seed": 1, "config": {"model": "ViT-T/4@32px"}}], tmp_path)
    assert trained_model(named) == describe({"model": "ViT-T/4@32px"})  # no clip_small results: the name alone
    write_result("clip_small", "cpu", 1, CPU_TRAIN, {}, 1.0, root=tmp_path)
    assert trained_model(named) == "ViT-XS/8@32px (2.0M parameters)"


# --- one provenance footer per page ------------------------------------------------------------------------------

def _record(seed: int, revision: str, created: str = "2026-11-23T01:00:00Z") -> dict:
    return {"seed": seed, "git_revision": revision, "created": created, "wall_time_s": 120.0,
            "hardware": {"cpu": "AMD EPYC", "cores": 2}, "versions": {"torch": "2.13.0+cpu"}, "metrics": {}}


def test_sources_note_is_one_dropdown_per_page() -> None:
    clean = "a" * 40
    a = ExperimentResults("clip_small", "cpu", [_record(0, clean), _record(1, clean)], Path("results"))
    b = ExperimentResults("prompts", "cpu", [_record(0, "b" * 40), _record(1, "b" * 40)], Path("results"))
    text = sources_note(a, b, a)
    assert text.startswith(":::{dropdown} Numbers on this page: cpu profile, 2 seeds, AMD EPYC (2 cores), "
                           "revisions aaaaaaa and bbbbbbb — details\n") and text.endswith("\n:::")
    assert text.count(":::") == 2 and text.count("`results/clip_small/cpu/`") == 1  # each experiment once
    assert "| `results/prompts/cpu/` | 0, 1 | AMD EPYC (2 cores) | 2.13.0+cpu | 2.0 | bbbbbbb | 2026-11-23 |" in text
    assert "uncommitted" not in text and "[reproducibility appendix](reproducibility.md)" in text
    assert sources_note() == "No result files were read on this page."


def test_sources_note_says_plainly_when_code_had_uncommitted_changes() -> None:
    records = [_record(0, "c" * 40 + "+dirty"), _record(1, "d" * 40, "2026-11-24T00:00:00Z")]
    text = sources_note(ExperimentResults("fewshot", "cpu", records, Path("results")))
    title = text.splitlines()[0]
    assert title.endswith("revisions ccccccc and ddddddd, some with uncommitted changes — details")
    assert "ccccccc+dirty, ddddddd" in text and "1 of 2 of these result files were written by code **with " \
        "uncommitted changes**" in text and "2026-11-23 to 2026-11-24" in text


def test_every_chapter_has_at_most_one_sources_note_and_no_repeated_provenance() -> None:
    for path in CHAPTERS:
        text = path.read_text(encoding="utf-8")
        assert ".provenance()" not in text, f"{path.name}: use repro.book.sources_note once per page"
        reads = "experiment_results(" in text or "results_in(" in text
        assert text.count("sources_note(") == (1 if reads and path.stem != "reproducibility" else 0), path.name


# --- a citation with a place -------------------------------------------------------------------------------------

def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=a@b.c", "-c", "user.name=A", *args], cwd=repo, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture()
def book_repo(tmp_path, monkeypatch) -> Path:
    """A tiny book checkout: _toc.yml, _config.yml without an address, CITATION.cff, one commit."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "book"
    (repo / "chapters").mkdir(parents=True)
    (repo / "_toc.yml").write_text("root: chapters/intro\n")
    (repo / "_config.yml").write_text('title: t\nrepository:\n  url: ""\n')
    shutil.copy(ROOT / "CITATION.cff", repo / "CITATION.cff")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "one")
    monkeypatch.chdir(repo / "chapters")
    return repo


def test_citation_names_the_revision_and_no_invented_address(book_repo) -> None:
    commit = _git(book_repo, "rev-parse", "HEAD")
    date = _git(book_repo, "show", "-s", "--format=%cs", "HEAD")
    assert book_revision().commit == commit and not book_revision().dirty
    assert repository_url() is None
    text = citation("text")
    assert text.startswith(f"The clip-repro authors ({date[:4]}). *CLIP, reproduced small")
    assert text.endswith(f"Version 0.1.0, revision {commit[:7]} ({date}) of the clip-repro repository.")
    bib = citation("bibtex")
    assert bib.startswith(f"@software{{clip_repro_{commit[:7]},\n") and f"  commit = {{{commit}}}," in bib
    assert "url" not in bib and "of the clip-repro repository" in bib
    assert citation("markdown") == f"{text}\n\n```bibtex\n{bib}\n```"
    with pytest.raises(ValueError, match="unknown citation style"):
        citation("apa")


def test_citation_gives_the_configured_address_then_the_remote(book_repo) -> None:
    _git(book_repo, "remote", "add", "origin", "git@github.com:someone/clip-repro.git")
    assert repository_url() == "https://github.com/someone/clip-repro"
    assert "  url = {https://github.com/someone/clip-repro}," in citation("bibtex")
    assert citation("text").endswith("). https://github.com/someone/clip-repro.")
    (book_repo / "_config.yml").write_text("repository:\n  url: https://example.org/book\n")
    assert repository_url() == "https://example.org/book"  # the config is the one configured place
    (book_repo / "CITATION.cff").write_text("changed", encoding="utf-8")
    assert book_revision().dirty and "with uncommitted changes" in book_revision().text()


def test_remote_addresses_are_web_addresses_without_credentials() -> None:
    assert _https("https://user:token@github.com/o/r.git") == "https://github.com/o/r"
    assert _https("ssh://git@gitlab.com/o/r.git") == "https://gitlab.com/o/r"
    assert _https("/work/main") is None


def test_citation_file_says_the_revision_identifies_the_edition() -> None:
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert "revision" in cff["message"] and "How to cite" in cff["message"]
    url = (yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8")).get("repository") or {}).get("url")
    assert cff.get("repository-code") == (url or None), "CITATION.cff and _config.yml give different addresses"


# --- the book speaks of CLIP, not of how it was made -------------------------------------------------------------

MAKING = re.compile(r"seed doc|\bissues?\b(?! button)|\btickets?\b|\bsessions?\b|\bCEO\b|requested|the brief\b",
                    re.IGNORECASE)


@pytest.mark.parametrize("path", [*CHAPTERS, ROOT / "README.md"], ids=lambda p: p.name)
def test_no_words_about_how_the_book_was_made(path: Path) -> None:
    lines = [f"{i}: {line.strip()}" for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if MAKING.search(line)]
    assert not lines, f"{path.name}: " + "; ".join(lines)
