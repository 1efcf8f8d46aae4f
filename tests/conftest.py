"""Shared test helpers. OpenAI's reference code comes from the `openai-clip==1.0.1` distribution (installed with
--no-deps by `make test`); its package __init__ imports torchvision, which this CPU build of torch cannot import,
so single files are loaded by path instead."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]


def load_openai_module(name: str) -> ModuleType:
    """Load `clip/<name>.py` of OpenAI's release without running `clip/__init__.py`, or skip the test."""
    spec = importlib.util.find_spec("clip")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("OpenAI's reference code is absent: `pip install --no-deps openai-clip==1.0.1` (make test does)")
    path = Path(list(spec.submodule_search_locations)[0]) / f"{name}.py"
    if not path.is_file():
        pytest.skip(f"{path} not found in the installed openai-clip distribution")
    key = f"_openai_clip_{name}"
    if key not in sys.modules:
        module_spec = importlib.util.spec_from_file_location(key, path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        sys.modules[key] = module
    return sys.modules[key]


@pytest.fixture(scope="session")
def openai_model() -> ModuleType:
    """OpenAI's `clip/model.py` (CLIP, build_model, convert_weights)."""
    return load_openai_module("model")


@contextlib.contextmanager
def smoke_experiment(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[dict]:
    """One smoke run of experiment `name` (training the smoke clip_small first when it needs it) into temporary
    data / runs / results folders, with REPRO_DATA pointing there while the block runs. Yields {"root", "path" (the
    result file), "record" (its contents), "corpus" (the smoke corpus)}."""
    from repro.experiments import get
    from repro.experiments.common import corpus_for
    from repro.experiments.results import load_results

    root = tmp_path_factory.mktemp(name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REPRO_DATA", str(root / "data"))
        path = get(name).run("smoke", 0, root / "runs", results_root=root / "results")
        [record] = load_results(name, "smoke", root=root / "results")
        yield {"root": root, "path": path, "record": record, "corpus": corpus_for("smoke")}
