"""The book builds from committed files alone: no chapter reads the corpus or a local training run, and the pages
executed for the book show no progress bars."""

from __future__ import annotations

import re

import jupytext
import pytest
from conftest import REPO

from repro import book
from repro.config import progress_disabled
from repro.evaluate.features import encode_images

CHAPTERS = sorted((REPO / "chapters").glob("*.md"))
#: Calls and paths that only work where the corpus was built or a model was trained on this machine.
LOCAL_ONLY = (r"\bcorpus_for\b", r"\bcorpus_dir\(", r"\bdata_dir\(", r"\bload_packed\b", r"\bREPRO_DATA\b",
              r"\btrained_clip\b", r"\bSplitCache\b", r"\brun_suites\b", r"\bload_suites\b", r"(?<!\w)runs/",
              r"\.cache/clip-repro", r"build/full")


def code_of(path) -> str:
    return "\n".join(c.source for c in jupytext.read(path).cells if c.cell_type == "code")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_no_chapter_reads_the_corpus_or_a_local_run(chapter) -> None:
    found = [pattern for pattern in LOCAL_ONLY if re.search(pattern, code_of(chapter))]
    assert not found, f"{chapter.name} executes code that needs a built corpus or a local run: {found}"


def test_local_only_check_catches_a_corpus_import(tmp_path) -> None:
    header = (REPO / "chapters" / "exercises.md").read_text().split("# Exercises")[0]
    page = tmp_path / "page.md"
    page.write_text(header + "# T\n\n```{code-cell} ipython3\nfrom repro.experiments.common import corpus_for\n```\n"
                    "```{code-cell} ipython3\nmodel = load('../runs/clip_small/cpu/seed0/model.safetensors')\n```\n")
    code = code_of(page)
    assert [p for p in LOCAL_ONLY if re.search(p, code)] == [r"\bcorpus_for\b", r"(?<!\w)runs/"]


def test_suite_facts_of_committed_results_need_no_corpus(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("REPRO_DATA", str(tmp_path))  # an empty data folder
    monkeypatch.chdir(REPO / "chapters")
    facts = book.experiment_results("objectives").suite_facts()
    assert facts["emoji-category/val"]["n_classes"] == 9
    assert facts["emoji-category/val"]["chance"] == pytest.approx(1 / 9)


@pytest.mark.parametrize("value, disabled", [("", False), ("0", False), ("false", False), ("1", True), ("True", True)])
def test_progress_bars_follow_tqdm_disable(monkeypatch, capsys, value, disabled) -> None:
    import numpy as np
    from test_models import SMALL_VIT

    from repro.models import CLIP

    monkeypatch.setenv("TQDM_DISABLE", value)
    assert progress_disabled() is disabled
    encode_images(CLIP(SMALL_VIT), np.zeros((4, 32, 32, 3), np.uint8), batch_size=1, progress=True)
    assert ("encode images" in capsys.readouterr().err) is not disabled


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_a_chapter_defines_no_helpers(chapter) -> None:
    """Summaries, tables, figures and verdicts are package functions (repro.views, repro.claims), written once."""
    defined = re.findall(r"^(?:def|class) (\w+)", code_of(chapter), re.M)
    assert not defined, f"{chapter.name} defines {defined}: move them into the package (repro.views)"


def line_kinds(path) -> list[str]:
    """Each line of a chapter as "prose" (outside code cells, fences included), "option" (a cell's `:tags:` lines
    and the `---` block of a figure's caption) or "code" (the rest inside a cell, blank lines included)."""
    kinds, inside, options, first = [], False, False, False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```{code-cell}"):
            kinds.append("prose")
            inside, options, first = True, False, True
            continue
        if inside and line.startswith("```"):
            inside = False
            kinds.append("prose")
            continue
        if not inside:
            kinds.append("prose")
            continue
        if first and line.strip() == "---":
            options = True
            kinds.append("option")
        elif options:
            options = line.strip() != "---"
            kinds.append("option")
        else:
            kinds.append("option" if re.match(r"^:[\w-]+:", line) else "code")
        first = False
    return kinds


def code_fraction(path) -> float:
    """The share of a chapter's lines that are inside code cells (their options included; blank lines elsewhere
    count as prose)."""
    kinds = line_kinds(path)
    return sum(k != "prose" for k in kinds) / max(len(kinds), 1)


def code_fraction_nonblank(path) -> float:
    """The share of a chapter's non-blank lines that are code inside code cells, not counting the cells' options,
    so that blank lines cannot dilute the code."""
    lines = path.read_text(encoding="utf-8").splitlines()
    kinds = [k for k, line in zip(line_kinds(path), lines, strict=True) if line.strip()]
    return sum(k == "code" for k in kinds) / max(len(kinds), 1)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_a_chapter_is_mostly_prose(chapter) -> None:
    """At most a third of a chapter is code, counted both ways: all lines with cell options as code, and non-blank
    lines with cell options as neither."""
    assert code_fraction(chapter) <= 1 / 3, f"{chapter.name}: {code_fraction(chapter):.0%} of its lines are code"
    share = code_fraction_nonblank(chapter)
    assert share <= 1 / 3, f"{chapter.name}: {share:.0%} of its non-blank lines are code"


def test_code_fraction_nonblank_skips_blank_lines_and_cell_options(tmp_path) -> None:
    page = tmp_path / "page.md"
    page.write_text("Prose.\n\n\n```{code-cell} ipython3\n---\ntags: [remove-input]\n---\nx = 1\n\ny = 2\n```\n"
                    "```{code-cell} ipython3\n:tags: [remove-cell]\nz = 3\n```\nMore prose.\n", encoding="utf-8")
    # non-blank lines: Prose, fence, ---, tags, ---, x, y, fence, fence, :tags:, z, fence, More prose = 13; code: 3
    assert code_fraction_nonblank(page) == pytest.approx(3 / 13)
