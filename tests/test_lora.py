"""`repro.lora` (Hu et al., 2021) on a small random CLIP: the adapted model starts equal to the base model, only the
low-rank factors get gradients, merging gives the adapted model's outputs back in OpenAI's state-dict layout, and
the trainable-parameter count follows r · (out + in) per adapted weight."""

from __future__ import annotations

import copy

import pytest
import torch

from repro import lora
from repro.models import CLIP, CLIPConfig

CONFIG = CLIPConfig(embed_dim=64, image_resolution=16, vision_layers=2, vision_width=64, vision_patch_size=8,
                    context_length=8, vocab_size=100, transformer_width=64, transformer_layers=2)


@pytest.fixture()
def base() -> CLIP:
    torch.manual_seed(0)
    return CLIP(CONFIG).eval()


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    images = torch.randn(3, 3, 16, 16, generator=g)
    text = torch.randint(1, 98, (3, 8), generator=g)
    text[:, 5] = 99  # the end token (largest id)
    return images, text


def _outputs(model: CLIP) -> tuple[torch.Tensor, torch.Tensor]:
    images, text = _inputs()
    with torch.no_grad():
        return model.encode_image(images), model.encode_text(text)


def _perturb(model: CLIP) -> None:
    """Move every B (and A) away from its initialisation, as training would."""
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in lora.lora_parameters(model):
            p.add_(0.05 * torch.randn(p.shape, generator=g))


def test_adapted_model_starts_equal_to_the_base_model(base) -> None:
    model = copy.deepcopy(base)
    names = lora.add_lora(model, rank=4, alpha=8)
    assert len(names) == len(lora.TARGETS) * (CONFIG.vision_layers + CONFIG.transformer_layers)
    for ours, theirs in zip(_outputs(model), _outputs(base), strict=True):
        assert torch.equal(ours, theirs)  # B = 0: exactly the same numbers, not just close
    assert all(torch.count_nonzero(p) == 0 for n, p in model.named_parameters() if n.endswith("lora_B"))
    assert all(torch.count_nonzero(p) > 0 for n, p in model.named_parameters() if n.endswith("lora_A"))


def test_only_the_lora_factors_get_gradients(base) -> None:
    model = copy.deepcopy(base)
    lora.add_lora(model, rank=2)
    _perturb(model)  # with B = 0 the gradient of A is zero: make both non-trivial
    images, text = _inputs()
    logits, _ = model(images, text)
    logits.logsumexp(dim=1).sum().backward()
    trained = {id(p) for p in lora.lora_parameters(model)}
    for name, p in model.named_parameters():
        if id(p) in trained:
            assert p.requires_grad and p.grad is not None and torch.count_nonzero(p.grad) > 0, name
        else:
            assert not p.requires_grad and p.grad is None, name


def test_merge_gives_the_adapted_model_with_the_base_layout(base) -> None:
    model = copy.deepcopy(base)
    lora.add_lora(model, rank=4, alpha=16, towers=("image", "text"))
    _perturb(model)
    adapted = _outputs(model)
    assert not torch.allclose(adapted[0], _outputs(base)[0])  # the perturbation does change the model
    merged = lora.merge_lora(model)
    for ours, theirs in zip(_outputs(merged), adapted, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    state, reference = merged.state_dict(), base.state_dict()
    assert set(state) == set(reference)  # OpenAI's key names (e.g. attn.in_proj_weight), nothing extra
    assert all(state[k].shape == reference[k].shape and state[k].dtype == reference[k].dtype for k in reference)
    assert not lora.lora_parameters(merged)
    assert lora.count_trainable(merged) == sum(p.numel() for p in base.parameters())
    # the merged weights load into a fresh CLIP, which computes the same
    fresh = CLIP(CONFIG).eval()
    fresh.load_state_dict(state, strict=True)
    for ours, theirs in zip(_outputs(fresh), adapted, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("rank", "towers", "last_blocks"), [(1, ("image", "text"), None), (4, ("text",), None),
                                                             (8, ("image",), 1)])
def test_trainable_parameter_count_follows_the_formula(base, rank, towers, last_blocks) -> None:
    model = copy.deepcopy(base)
    names = lora.add_lora(model, rank=rank, towers=towers, last_blocks=last_blocks)
    w = CONFIG.transformer_width  # = vision_width here
    per_block = rank * ((3 * w + w) + (w + w) + (4 * w + w) + (w + 4 * w))  # in_proj, out_proj, c_fc, c_proj
    blocks = sum({"image": CONFIG.vision_layers, "text": CONFIG.transformer_layers}[t] for t in towers)
    blocks = blocks if last_blocks is None else last_blocks * len(towers)
    assert len(names) == 4 * blocks
    assert lora.count_trainable(model) == per_block * blocks == lora.lora_parameter_count(model, rank, names)
    assert all(n.startswith(("visual.", "transformer.")) for n in names)
    assert all(n.startswith("visual.") for n in names) == (towers == ("image",))


def test_bad_arguments_are_refused(base) -> None:
    model = copy.deepcopy(base)
    with pytest.raises(ValueError, match="unknown tower"):
        lora.add_lora(model, towers=("audio",))
    with pytest.raises(ValueError, match="rank must be"):
        lora.add_lora(copy.deepcopy(base), rank=0)
    lora.add_lora(model, rank=2)
    with pytest.raises(ValueError, match="already has a parametrization"):
        lora.add_lora(model, rank=2)
