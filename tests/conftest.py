"""Shared test helpers. OpenAI's reference code comes from the `openai-clip==1.0.1` distribution (installed with
--no-deps by `make test`); its package __init__ imports torchvision, which this CPU build of torch cannot import,
so single files are loaded by path instead."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]

# `precision="auto"` caches its measurements per machine; the tests keep theirs out of the user's data directory.
os.environ.setdefault("REPRO_PRECISION_CACHE",
                      str(Path(tempfile.mkdtemp(prefix="repro-precision-")) / "precision.json"))


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


#: a model small enough to train a few steps in a fraction of a second
TINY = {"embed_dim": 64, "vision_width": 64, "vision_layers": 1, "vision_patch_size": 8, "transformer_width": 64,
        "transformer_layers": 1, "context_length": 16, "vocab_size": 600}


def build_smoke(root: Path, seed: int = 0) -> str:
    """The smoke corpus built (offline, seconds) under `root`; returns its directory."""
    from repro.data.build import BuildConfig, build, corpus_dir

    build(BuildConfig(corpus="smoke", workers=1, pack_sizes=(32,), seed=seed), root=root)
    return str(corpus_dir(root, "smoke"))


def tiny_settings(corpus: str, out: str | os.PathLike, **kw) -> dict:
    """Training settings of an 8-step run of the TINY model on `corpus` into `out`, with `kw` replacing them."""
    base = dict(corpus_dir=corpus, out_dir=str(out), model="ViT-T/4@32px", model_overrides=TINY, data_size=32,
                batch_size=16, steps=8, warmup_steps=2, lr=1e-3, log_every=1, checkpoint_every=4, progress=False)
    return base | kw


def tiny_config(corpus: str, out: str | os.PathLike, **kw):
    """`tiny_settings` as a TrainConfig."""
    from repro.train import TrainConfig

    return TrainConfig(**tiny_settings(corpus, out, **kw))


#: faults injected by tests/test_faults.py, and those the code survived (reported at the end of the session)
FAULTS: Counter = Counter()


def record_fault(kind: str, survived: bool) -> None:
    FAULTS[f"injected:{kind}"] += 1
    FAULTS["injected"] += 1
    if survived:
        FAULTS[f"survived:{kind}"] += 1
        FAULTS["survived"] += 1


def pytest_terminal_summary(terminalreporter) -> None:
    if FAULTS["injected"]:
        kinds = sorted({k.split(":", 1)[1] for k in FAULTS if ":" in k})
        detail = ", ".join(f"{k} {FAULTS['survived:' + k]}/{FAULTS['injected:' + k]}" for k in kinds)
        terminalreporter.write_sep("=", f"fault injection: {FAULTS['survived']} of {FAULTS['injected']} faults "
                                        f"survived ({detail})")
        out = os.environ.get("REPRO_FAULTS_JSON")
        if out:
            Path(out).write_text(json.dumps(dict(FAULTS), indent=1))


def committed_results(name: str, profile: str = "cpu") -> list[dict]:
    """The committed result records of experiment `name` at `profile`; the test is skipped when there are none."""
    from repro.experiments.results import load_results

    found = load_results(name, profile, Path(__file__).resolve().parents[1] / "results")
    if not found:
        pytest.skip(f"no committed {name} results")
    return found
