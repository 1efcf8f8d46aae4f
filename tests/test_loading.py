"""The seeds' API (`repro.load`, `repro.save`, `repro.tokenize`) and safetensors checkpoints written atomically."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import repro
from repro.checkpoint import load_state, save_state
from repro.files import atomic_write_text
from repro.models import CLIP, CLIPConfig
from repro.tokenizer import Tokenizer

TINY = CLIPConfig(64, 32, 1, 64, 8, context_length=16, vocab_size=600, transformer_width=64, transformer_layers=1)


def test_seeds_api_with_a_preset() -> None:
    model, preprocess = repro.load("ViT-B/32", seed=0)
    assert not model.training and model.tokenizer is None and preprocess.n_px == 224
    image = preprocess(Image.new("RGB", (300, 260), (200, 30, 30))).unsqueeze(0)
    text = repro.tokenize(["a diagram", "a dog", "a cat"])
    assert text[:, :5].tolist() == [[49406, 320, 22697, 49407, 0], [49406, 320, 1929, 49407, 0],
                                     [49406, 320, 2368, 49407, 0]]
    with torch.no_grad():
        logits_per_image, logits_per_text = model(image, text)
        assert model.encode_image(image).shape == (1, 512) and model.encode_text(text).shape == (3, 512)
    assert logits_per_image.shape == (1, 3) and logits_per_text.shape == (3, 1)


def test_save_and_load_round_trip_with_tokenizer(tmp_path) -> None:
    torch.manual_seed(0)
    model = CLIP(TINY).eval()
    tokenizer = Tokenizer.train([f"a photo of a {w}" for w in ("cat", "dog", "bird", "cat dog")] * 5, 600)
    path = tmp_path / "tiny.safetensors"
    repro.save(path, model, tokenizer, step=12)
    loaded, preprocess = repro.load(path)
    assert loaded.config == TINY and preprocess.n_px == 32
    assert loaded.tokenizer.merges == tokenizer.merges
    _, metadata = load_state(path)
    assert metadata["step"] == 12
    image = torch.randn(2, 3, 32, 32)
    text = tokenizer(["a photo of a cat", "a dog"], context_length=16)
    with torch.no_grad():
        for a, b in zip(model(image, text), loaded(image, text), strict=True):
            assert torch.equal(a, b)


def test_loads_plain_openai_layout_safetensors(tmp_path) -> None:
    """A state dict in OpenAI's layout with no metadata (e.g. converted OpenAI weights): shapes give the config."""
    model = CLIP(TINY)
    path = tmp_path / "openai_layout.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    loaded, _ = repro.load(path)
    assert loaded.config == TINY


def test_load_errors_name_the_problem(tmp_path) -> None:
    with pytest.raises(ValueError, match="'ViT-Q/7' is neither a model name .*ViT-B/32"):
        repro.load("ViT-Q/7")
    pt = tmp_path / "model.pt"
    pt.write_bytes(b"not opened")
    with pytest.raises(ValueError, match="model.pt: only .safetensors checkpoints are loaded"):
        repro.load(pt)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ValueError, match="corrupt.safetensors is not a readable safetensors file"):
        repro.load(corrupt)
    with pytest.raises(FileNotFoundError, match="no checkpoint file at"):
        load_state(tmp_path / "missing.safetensors")


def test_writes_are_atomic(tmp_path, monkeypatch) -> None:
    """A write that fails part-way leaves the previous file intact and no temporary file behind."""
    path = tmp_path / "state.safetensors"
    save_state(path, {"w": torch.ones(3)}, {"step": 1})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("repro.checkpoint.save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        save_state(path, {"w": torch.zeros(3)}, {"step": 2})
    tensors, metadata = load_state(path)
    assert torch.equal(tensors["w"], torch.ones(3)) and metadata["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.safetensors"]


def test_atomic_text_file_is_world_readable(tmp_path) -> None:
    path = tmp_path / "sub" / "notes.json"
    atomic_write_text(path, "{}")
    assert path.read_text() == "{}" and (path.stat().st_mode & 0o777) == 0o644
