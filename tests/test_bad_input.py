"""What a careful but hostile user does by mistake (issue 14): each case gets the right result or a one-line error
naming the file, key or value — never lost work or a silent wrong answer."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch
from conftest import TINY, build_smoke, tiny_config, tiny_settings
from PIL import Image
from safetensors.torch import save_file

import repro
from repro.cli import main
from repro.models import CLIP, CLIPConfig
from repro.preprocess import Preprocess
from repro.train import TrainConfig, load_state, train


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    return build_smoke(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory):
    """A finished 8-step run (checkpoints at steps 4 and 8, model.safetensors)."""
    out = tmp_path_factory.mktemp("run") / "run"
    train(tiny_config(corpus, out))
    return out


def _model_file(tmp_path, tokenizer: bool = True, **metadata) -> str:
    torch.manual_seed(0)
    model = CLIP(CLIPConfig(**{"image_resolution": 32, **TINY}))
    path = tmp_path / "m.safetensors"
    tok = repro.Tokenizer.train(["a red circle", "a blue square"] * 4, 600) if tokenizer else None
    repro.save(path, model, tok, **metadata)
    return str(path)


# 1, 2 — images that convert("RGB") spoils


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_case1_transparency_is_composited_on_white(mode) -> None:
    if mode == "P":
        image = Image.new("P", (40, 30), 0)
        image.info["transparency"] = 0
    else:
        image = Image.new(mode, (40, 30), (0, 0) if mode == "LA" else (0, 0, 0, 0))
    white = Preprocess(16)(Image.new("RGB", (40, 30), (255, 255, 255)))
    assert torch.allclose(Preprocess(16)(image), white)


def test_case1_semi_transparent_pixels_blend_with_white_as_the_corpus_does() -> None:
    from repro.data.render import on_white

    image = Image.new("RGBA", (16, 16), (200, 0, 0, 128))
    expected = Preprocess(16)(on_white(image, 16))
    assert torch.allclose(Preprocess(16)(image), expected)


@pytest.mark.parametrize("mode, white", [("I;16", 65535), ("I", 65535), ("F", 1.0)])
def test_case2_high_range_grey_is_scaled(mode, white) -> None:
    ramp = np.tile(np.linspace(0, 1, 64), (64, 1))
    eight_bit = Image.fromarray(np.round(ramp * 255).astype(np.uint8), "L")
    dtype = {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]
    image = Image.fromarray((ramp * white).astype(dtype))
    image = image if image.mode == mode else image.convert(mode)
    assert image.mode == mode
    assert torch.allclose(Preprocess(32)(image), Preprocess(32)(eight_bit), atol=2 / 255 / 0.26)


# 3, 4, 5 — a run folder is never destroyed, a resume never silently changes the run


def test_case3_a_new_run_into_a_folder_holding_a_run_is_refused(corpus, run) -> None:
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(ValueError, match=rf"{run} already holds a run \(config.json, metrics.jsonl.*--resume"):
        train(tiny_config(corpus, run, lr=2e-3))
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_case4_resume_refuses_changed_settings_and_a_missing_run(corpus, run, tmp_path) -> None:
    with pytest.raises(ValueError, match=r"other settings \(batch_size: 16 -> 8; lr: 0.001 -> 0.002\)"):
        train(tiny_config(corpus, run, lr=2e-3, batch_size=8), resume=True)
    with pytest.raises(ValueError, match="nothing to resume in .*typo: it holds no checkpoint.safetensors"):
        train(tiny_config(corpus, tmp_path / "typo"), resume=True)
    assert not (tmp_path / "typo").exists()
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    harmless = dict(progress=False, log_every=2, checkpoint_every=3, device="cpu")
    summary = train(tiny_config(corpus, copy, **harmless), resume=True)  # finished: nothing left to do
    assert summary["steps"] == 8 and summary["final"]["step"] == 8


@pytest.mark.parametrize("key, wanted", [("epochs", r"a number > 0 \(or null when steps is set\)"),
                                         ("steps", "null or an integer >= 1")])
def test_case5_zero_epochs_or_steps_is_an_error(key, wanted) -> None:
    with pytest.raises(ValueError, match=rf"training config: {key} must be {wanted}, got 0"):
        TrainConfig(**{key: 0})
    with pytest.raises(ValueError, match="epochs must be .*got None"):
        TrainConfig(epochs=None)
    assert TrainConfig(epochs=None, steps=3).steps == 3


# 6 — evaluating on another corpus


def test_case6_eval_on_another_corpus_warns_and_refuses_training_concepts(corpus, run, tmp_path, capsys) -> None:
    other = build_smoke(tmp_path / "other", seed=1)
    model = str(run / "model.safetensors")
    assert main(["eval", model, "--corpus-dir", corpus, "--suite", "smoke-concept/zeroshot"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["eval", model, "--corpus-dir", other]) == 1
    err = capsys.readouterr().err
    assert f"warning: {model} was trained on corpus 'smoke' (stamp" in err and f"not on {other}" in err
    assert re.search(r"error: split '(val|zeroshot)' of .* of its 7 concepts were training concepts of", err)
    assert "--allow-training-concepts" in err
    assert main(["eval", model, "--corpus-dir", other, "--allow-training-concepts"]) == 0
    assert "training concepts" in capsys.readouterr().err  # still said, as a warning


# 7, 8, 9, 10 — files that are not what they seem


def test_case7_non_finite_weights_are_refused(tmp_path) -> None:
    model = CLIP(CLIPConfig(**{"image_resolution": 32, **TINY}))
    with torch.no_grad():
        model.visual.conv1.weight[0, 0, 0, 0] = float("nan")
    repro.save(tmp_path / "m.safetensors", model)
    with pytest.raises(ValueError, match=r"m.safetensors: tensor 'visual.conv1.weight' has 1 non-finite values"):
        repro.load(tmp_path / "m.safetensors")


def test_case8_eval_of_a_model_without_tokenizer_says_what_to_do(corpus, tmp_path, capsys) -> None:
    path = _model_file(tmp_path, tokenizer=False)
    assert main(["eval", path, "--corpus-dir", corpus]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no tokenizer, and its 600-token vocabulary is smaller" in err
    assert "--tokenizer FILE.json" in err


def test_case9_a_training_checkpoint_is_not_a_model(run) -> None:
    with pytest.raises(ValueError, match=rf"checkpoint.safetensors is a training checkpoint .*load {run}/model"):
        repro.load(run / "checkpoint.safetensors")


def test_case10_cut_metadata_cut_tokenizer_and_directories(run, tmp_path) -> None:
    tensors, meta = load_state(_model_file(tmp_path))
    for key in ("repro.config", "repro.tokenizer"):
        header = {k: json.dumps(v) for k, v in meta.items()}
        header[key] = header[key][: len(header[key]) // 2]  # cut short
        path = tmp_path / "cut.safetensors"
        save_file(tensors, str(path), metadata=header)
        with pytest.raises(ValueError, match=rf"cut.safetensors: its '{key}' metadata is not a JSON object"):
            repro.load(path)
    text = tmp_path / "tok.json"
    repro.Tokenizer.train(["a b c"] * 3, 520).save(text)
    text.write_text(text.read_text()[:40])
    with pytest.raises(ValueError, match="tok.json: not a valid tokenizer JSON file"):
        repro.Tokenizer.load(text)
    with pytest.raises(ValueError, match=rf"{run} is a directory, not a model file: load {run}/model.safetensors"):
        repro.load(run)
    with pytest.raises(ValueError, match=r"is a directory, not a model file \(load a .safetensors file\)"):
        repro.load(tmp_path)


# 11 — values checked when the config is built, before anything is on disk


@pytest.mark.parametrize("key, value, wanted", [
    ("batch_size", 0, "an integer >= 1"), ("batch_size", -4, "an integer >= 1"), ("lr", "abc", "a number > 0"),
    ("lr", float("nan"), "a number > 0"), ("min_crop_scale", 1.5, r"a number in \(0, 1\]"),
    ("objective", "clip2", "one of"), ("precision", "fp16", "one of"), ("betas", [0.9], "null or two numbers"),
    ("device", "gpu", '"auto" or a torch device'), ("seed", -1, "an integer >= 0"), ("progress", "yes", "true or"),
    ("max_train_images", 0, "null or an integer >= 1"), ("temperature", "hot", "one of"),
])
def test_case11_config_values_are_checked_at_construction(tmp_path, key, value, wanted) -> None:
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=rf"training config: {key} must be {wanted}"):
        TrainConfig.from_dict(tiny_settings(str(tmp_path), out) | {key: value})
    assert not out.exists()


def test_case11_an_empty_image_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="preprocess: the image is empty"):
        Preprocess(32)(Image.new("RGB", (0, 0)))


# 12 — one line per CLI error, a traceback on request


def test_case12_cli_errors_are_one_line_and_tracebacks_on_request(tmp_path, capsys, monkeypatch) -> None:
    args = ["train", "--set", "batch_size=0", "--set", f"out_dir={tmp_path / 'run'}"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("repro: error: training config: batch_size must be an integer >= 1, got 0")
    assert err.count("\n") == 1 and "Traceback" not in err
    with pytest.raises(ValueError, match="batch_size must be"):
        main(["--debug", *args])
    monkeypatch.setenv("REPRO_DEBUG", "1")
    with pytest.raises(ValueError, match="batch_size must be"):
        main(args)
    monkeypatch.delenv("REPRO_DEBUG")
    bad = tmp_path / "bad.json"
    bad.write_text('{"lr": 0.1,')
    assert main(["train", str(bad)]) == 1
    assert "bad.json: not valid JSON" in capsys.readouterr().err
    assert main(["train", "--set", "lr"]) == 1
    assert "--set expects KEY=VALUE, got 'lr'" in capsys.readouterr().err

