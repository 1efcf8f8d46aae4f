"""The project's metadata agrees with itself: environment.yml lists pyproject's dependencies; the console script
and the packaged BPE file exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python >= 3.11")


def pyproject_requirements() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs |= {r for r in extra if not r.startswith("clip-repro")}  # self-references name other extras
    return {r.replace(" ", "") for r in reqs}


def environment_requirements() -> set[str]:
    lines = (REPO / "environment.yml").read_text().splitlines()
    start = lines.index("  - pip:")
    reqs = set()
    for line in lines[start + 1:]:
        m = re.match(r"^\s{6}- (\S.*)$", line)
        if m and not m.group(1).startswith("-e"):
            reqs.add(m.group(1).replace(" ", ""))
    return reqs


def test_environment_yml_agrees_with_pyproject() -> None:
    assert environment_requirements() == pyproject_requirements()


def test_console_script_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "repro.cli", "presets"], capture_output=True, text=True, check=True)
    assert "ViT-B/32" in out.stdout and "87.85M" in out.stdout
    out = subprocess.run([sys.executable, "-m", "repro.cli", "tokenize", "a diagram"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.split() == ["320", "22697"]


def test_bpe_file_is_packaged_with_its_licence() -> None:
    from importlib import resources

    assets = resources.files("repro") / "assets"
    assert (assets / "bpe_simple_vocab_16e6.txt.gz").is_file()
    assert "MIT License" in (assets / "NOTICE").read_text()
