"""What identifies this edition of the book and the numbers on its pages.

* `sources_note(*results)`: one line per page saying where its numbers came from (profile, seeds, hardware,
  revision), with each experiment's details in a collapsed dropdown;
* `trained_model(results)`: the name of the CLIP behind an experiment's results, by what it is;
* `book_revision()`, `repository_url()` and `citation()`: the book's git revision and address, and a citation
  that names them (a committed file cannot contain its own commit, so the edition is identified here, at build
  time).
"""

from __future__ import annotations

import math
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .experiments.results import git_revision

if TYPE_CHECKING:
    from .book import ExperimentResults

__all__ = ["Revision", "book_revision", "citation", "repository_url", "sources_note", "train_config_of",
           "trained_model"]

DIRTY = "+dirty"


def _short(revision: str) -> str:
    """A recorded revision as 7 hex digits (and "+dirty" kept), e.g. "2f184d3+dirty"."""
    dirty = revision.endswith(DIRTY)
    base = revision[: -len(DIRTY)] if dirty else revision
    return (base[:7] if re.fullmatch(r"[0-9a-f]{7,40}", base) else base) + (DIRTY if dirty else "")


def _join(values: Iterable[str]) -> str:
    return ", ".join(dict.fromkeys(values))  # unique, in order


def _device(record: dict) -> str:
    hw = record.get("hardware", {})
    return hw.get("gpu") or f"{hw.get('cpu', '?')} ({hw.get('cores', '?')} cores)"


def _span(values: list[str]) -> str:
    values = sorted(set(values))
    return values[0] if len(values) == 1 else f"{values[0]} to {values[-1]}"


def sources_note(*results: ExperimentResults, appendix: str = "reproducibility.md") -> str:
    """MyST for a page's provenance footer: a collapsed dropdown titled with one short line ("Numbers on this page:
    cpu profile, 3 seeds, AMD EPYC (2 cores), revision 2f184d3 …") that opens on a table of each experiment's result
    folder, seeds, hardware, torch, wall time, revisions and dates, a plain sentence when any result came from code
    with uncommitted changes, and a link to the reproducibility appendix (`appendix`, relative to the page).

    Each experiment is listed once however often it is passed. Display with `IPython.display.Markdown`."""
    unique = list({(r.name, r.profile, str(r.root)): r for r in results if r.records}.values())
    if not unique:
        return "No result files were read on this page."
    records = [rec for r in unique for rec in r.records]
    revisions = [_short(str(rec.get("git_revision", "?"))) for rec in records]
    dirty = [rev for rev in revisions if rev.endswith(DIRTY)]
    seeds = sorted({len(r.records) for r in unique})
    seeds_text = f"{seeds[0]} seed{'s' * (seeds[0] != 1)}" if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]} seeds"
    by_date = sorted(records, key=lambda rec: str(rec.get("created", "")))
    commits = list(dict.fromkeys(_short(str(rec.get("git_revision", "?"))).removesuffix(DIRTY) for rec in by_date))
    commits_text = (f"revision {commits[0]}" if len(commits) == 1 else f"revisions {' and '.join(commits)}"
                    if len(commits) == 2 else f"{len(commits)} revisions, {commits[0]} to {commits[-1]}")
    changes = ("" if not dirty else ", with uncommitted changes" if len(dirty) == len(revisions)
               else ", some with uncommitted changes")
    title = (f"Numbers on this page: {_join(r.profile for r in unique)} profile, {seeds_text}, "
             f"{_join(_device(rec) for rec in records)}, {commits_text}{changes} — details")
    rows = ["| results | seeds | hardware | torch | minutes per seed | revision | date |",
            "|---|---|---|---|---|---|---|"]
    for r in unique:
        walls = [rec.get("wall_time_s", math.nan) for rec in r.records]
        where = f"`results/{r.name}/{r.profile}/`" if not r.fallback else f"`{r.name}`, run while this page executed"
        rows.append(" | ".join([
            f"| {where}", ", ".join(str(s) for s in r.seeds), _join(_device(rec) for rec in r.records),
            _join(str(rec.get("versions", {}).get("torch", "?")) for rec in r.records),
            f"{sum(walls) / len(walls) / 60:.1f}",
            _join(_short(str(rec.get("git_revision", "?"))) for rec in r.records),
            _span([str(rec.get("created", "?"))[:10] for rec in r.records]) + " |",
        ]))
    body = ["\n".join(rows)]
    if any(r.fallback for r in unique):
        body.append("Some of these results were **not committed**: they were produced at the smoke profile while "
                    "this page executed (see the warning at the top of the page).")
    if dirty:
        share = "All" if len(dirty) == len(revisions) else f"{len(dirty)} of {len(revisions)}"
        body.append(f"{share} of these result files were written by code **with uncommitted changes** (revision "
                    "marked \"+dirty\"): the code that ran was the recorded revision plus edits not in the "
                    "repository, so checking out that revision may not give exactly the same numbers.")
    body.append(f"Every result file, its configuration and the command that re-creates it are listed in the "
                f"[reproducibility appendix]({appendix}).")
    return f":::{{dropdown}} {title}\n" + "\n\n".join(body) + "\n:::"


def train_config_of(config: dict) -> dict | None:
    """The CLIP training configuration inside an experiment's recorded `config`: the config itself (experiments
    that train `clip_small`'s recipe) or its `clip_small`, `clip` or `train` entry; None when only a name is kept."""
    for candidate in (config, config.get("clip_small"), config.get("clip"), config.get("train")):
        if isinstance(candidate, dict) and isinstance(candidate.get("model"), str) and "model_overrides" in candidate:
            return candidate
    return None


def trained_model(results: ExperimentResults, details: bool = False) -> str:
    """What the CLIP behind `results` is (`repro.models.naming.describe`: "ViT-XS/8@32px (2.0M parameters)").

    Experiments that evaluate the `clip_small` model of their profile and record only its preset name (`longtext`,
    `search`) are described by the training configuration in the `clip_small` results of the same profile and seed,
    when those are at hand and name the same preset."""
    from .models.naming import describe

    first = results.records[0]
    train = train_config_of(first["config"])
    if train is None:
        name = first["config"].get("model")
        from .experiments.results import load_results

        same = [r for r in load_results("clip_small", results.profile, results.root) if r["seed"] == first["seed"]]
        train = next((c for c in (train_config_of(r["config"]) for r in same) if c and c["model"] == name),
                     {"model": name})
    return describe(train, details=details)


@dataclass(frozen=True)
class Revision:
    """The git revision a build of the book was made from."""

    commit: str  # full SHA, or "unknown" outside a git checkout
    date: str  # committer date, YYYY-MM-DD ("" when unknown)
    dirty: bool  # tracked files differ from the commit

    @property
    def short(self) -> str:
        return self.commit[:7] if self.commit != "unknown" else self.commit

    def text(self) -> str:
        """ "revision 2f184d3 (2026-12-01)", with ", with uncommitted changes" when dirty."""
        if self.commit == "unknown":
            return "an unversioned copy (no git revision)"
        extra = ", with uncommitted changes" if self.dirty else ""
        return f"revision {self.short} ({self.date}{extra})" if self.date else f"revision {self.short}{extra}"


def _git(*args: str, cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, check=True, cwd=cwd)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def book_revision() -> Revision:
    """HEAD of the checkout the book is built from (the working directory's repository)."""
    revision = git_revision()
    dirty = revision.endswith(DIRTY)
    commit = revision.removesuffix(DIRTY)
    date = _git("show", "-s", "--format=%cs", "HEAD") if commit != "unknown" else None
    return Revision(commit, date or "", dirty)


def _https(url: str) -> str | None:
    """A remote as a web address (git@host:owner/name.git → https://host/owner/name), without credentials; None for a
    local path."""
    url = url.strip()
    match = re.fullmatch(r"(?:ssh://)?git@([^:/]+)[:/](.+?)(?:\.git)?/?", url)
    if match:
        return f"https://{match[1]}/{match[2]}"
    if not re.match(r"https?://", url):
        return None  # a local path or another scheme is no address a reader can visit
    url = re.sub(r"^(https?://)[^@/]+@", r"\1", url)  # never print credentials
    return re.sub(r"\.git/?$", "", url)


def repository_url(root: Path | None = None) -> str | None:
    """The repository's address: `repository: url:` of the book's `_config.yml` when set (the one place it is
    configured), else the `origin` remote of the checkout, else None."""
    import yaml

    from .book import repo_root

    root = root or repo_root()
    config = root / "_config.yml"
    if config.is_file():
        url = ((yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("repository") or {}).get("url")
        if url:
            return str(url)
    remote = _git("remote", "get-url", "origin", cwd=root)
    return _https(remote) if remote else None


def _cff(root: Path) -> dict:
    import yaml

    return yaml.safe_load((root / "CITATION.cff").read_text(encoding="utf-8"))


def citation(style: str = "text", root: Path | None = None) -> str:
    """How to cite this edition: title, authors and version from `CITATION.cff`, the revision the book was built
    from (`book_revision`) and the repository's address (`repository_url`; "the clip-repro repository" when none is
    configured). `style`: "text", "bibtex", or "markdown" (the sentence and a BibTeX block)."""
    from .book import repo_root

    root = root or repo_root()
    cff, rev, url = _cff(root), book_revision(), repository_url(root)
    authors = [a.get("name") or " ".join(filter(None, (a.get("given-names"), a.get("family-names"))))
               for a in cff["authors"]]
    year = (rev.date or str(cff.get("date-released", "")))[:4]
    if style == "text":
        where = f". {url}" if url else " of the clip-repro repository"
        return f"{' and '.join(authors)} ({year}). *{cff['title']}*. Version {cff['version']}, {rev.text()}{where}."
    if style == "bibtex":
        key = "clip_repro" + (f"_{rev.short}" if rev.commit != "unknown" else "")
        fields = {
            "title": "{" + cff["title"] + "}",
            "author": " and ".join("{" + a + "}" for a in authors),
            "year": year,
            "version": cff["version"],
            "note": rev.text()[0].upper() + rev.text()[1:] + ("" if url else " of the clip-repro repository"),
        }
        if url:
            fields["url"] = url
        if rev.commit != "unknown":
            fields["commit"] = rev.commit
        lines = [f"  {k} = {{{v}}}," for k, v in fields.items()]
        return "@software{" + key + ",\n" + "\n".join(lines) + "\n}"
    if style == "markdown":
        return f"{citation('text', root)}\n\n```bibtex\n{citation('bibtex', root)}\n```"
    raise ValueError(f"unknown citation style {style!r}: use 'text', 'bibtex' or 'markdown'")
