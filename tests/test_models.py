"""CLIP's encoders: shapes, invariances, OpenAI layout and numerical equality with OpenAI's reference model."""

from __future__ import annotations

import math

import pytest
import torch

from repro.models import CLIP, PRESETS, CLIPConfig, build_model, infer_config, parameter_counts

SMALL_VIT = CLIPConfig(64, 32, 2, 128, 8, context_length=16, vocab_size=300, transformer_width=128,
                       transformer_layers=2)
SMALL_RN = CLIPConfig(64, 64, (1, 2, 1, 1), 16, None, context_length=16, vocab_size=300, transformer_width=128,
                      transformer_layers=2)
OPENAI_PRESETS = ["RN50", "RN101", "RN50x4", "RN50x16", "RN50x64", "ViT-B/32", "ViT-B/16", "ViT-L/14",
                  "ViT-L/14@336px"]


def make_text(batch: int, config: CLIPConfig, seed: int = 0) -> torch.Tensor:
    """Random ids with an end token (the largest id) at a random position and zero padding after it."""
    g = torch.Generator().manual_seed(seed)
    text = torch.randint(1, config.vocab_size - 2, (batch, config.context_length), generator=g)
    ends = torch.randint(1, config.context_length, (batch,), generator=g)
    for i, e in enumerate(ends):
        text[i, e] = config.vocab_size - 1
        text[i, e + 1:] = 0
    return text


def openai_clip(openai_model, config: CLIPConfig):
    return openai_model.CLIP(
        config.embed_dim, config.image_resolution, config.vision_layers, config.vision_width,
        config.vision_patch_size, config.context_length, config.vocab_size, config.transformer_width,
        config.transformer_heads, config.transformer_layers,
    )


@pytest.mark.parametrize("config", [SMALL_VIT, SMALL_RN], ids=["vit", "resnet"])
def test_shapes(config: CLIPConfig) -> None:
    torch.manual_seed(0)
    model = CLIP(config).eval()
    image = torch.randn(3, 3, config.image_resolution, config.image_resolution)
    text = make_text(5, config)
    assert model.encode_image(image).shape == (3, config.embed_dim)
    assert model.encode_text(text).shape == (5, config.embed_dim)
    logits_per_image, logits_per_text = model(image, text)
    assert logits_per_image.shape == (3, 5) and logits_per_text.shape == (5, 3)
    assert torch.equal(logits_per_text, logits_per_image.t())


@pytest.mark.parametrize("name", [n for n in PRESETS if n not in OPENAI_PRESETS])
def test_small_presets_run(name: str) -> None:
    config = PRESETS[name]
    model = CLIP(config).eval()
    image = torch.randn(2, 3, config.image_resolution, config.image_resolution)
    with torch.no_grad():
        logits, _ = model(image, make_text(2, config))
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()


def test_logit_scale_init_and_clamp() -> None:
    model = CLIP(SMALL_VIT)
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    model.clamp_logit_scale()
    assert model.logit_scale.exp().item() == pytest.approx(100.0)
    with torch.no_grad():
        model.logit_scale.fill_(3.0)
    model.clamp_logit_scale()
    assert model.logit_scale.item() == 3.0


def test_tokens_after_end_token_do_not_matter() -> None:
    torch.manual_seed(0)
    model = CLIP(SMALL_VIT).eval()
    text = make_text(4, SMALL_VIT)
    noisy = text.clone()
    for i in range(4):
        end = int(text[i].argmax())
        noisy[i, end + 1:] = torch.randint(1, SMALL_VIT.vocab_size - 2, (SMALL_VIT.context_length - end - 1,))
    with torch.no_grad():
        torch.testing.assert_close(model.encode_text(noisy), model.encode_text(text), rtol=0, atol=1e-6)


def test_causal_mask_holds() -> None:
    """Changing the token at position j changes activations at positions >= j only."""
    torch.manual_seed(0)
    model = CLIP(SMALL_VIT).eval()
    text = torch.randint(1, 200, (1, SMALL_VIT.context_length))
    j = 7
    changed = text.clone()
    changed[0, j] = (text[0, j] + 1) % 200 + 1
    with torch.no_grad():
        a, b = model.encode_tokens(text), model.encode_tokens(changed)
    torch.testing.assert_close(a[:, :j], b[:, :j], rtol=0, atol=0)
    assert (a[:, j:] - b[:, j:]).abs().amax(dim=-1).min() > 1e-4


def test_shorter_context_equals_padded() -> None:
    """Ids shorter than the context use the first positions; padding after the end token changes nothing."""
    torch.manual_seed(0)
    model = CLIP(SMALL_VIT).eval()
    short = make_text(3, CLIPConfig(**{**SMALL_VIT.to_dict(), "context_length": 8}))
    padded = torch.zeros(3, SMALL_VIT.context_length, dtype=torch.long)
    padded[:, :8] = short
    with torch.no_grad():
        torch.testing.assert_close(model.encode_text(short), model.encode_text(padded), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("config", [SMALL_VIT, SMALL_RN], ids=["vit", "resnet"])
def test_state_dict_round_trip(config: CLIPConfig) -> None:
    torch.manual_seed(0)
    model = CLIP(config).eval()
    assert infer_config(model.state_dict()) == config
    clone = build_model({k: v.clone() for k, v in model.state_dict().items()})
    assert not clone.training
    image = torch.randn(2, 3, config.image_resolution, config.image_resolution)
    text = make_text(2, config)
    with torch.no_grad():
        for a, b in zip(model(image, text), clone(image, text), strict=True):
            assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_build_model_keeps_dtype(dtype: torch.dtype) -> None:
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in CLIP(SMALL_VIT).state_dict().items()}
    model = build_model(state)
    assert {p.dtype for p in model.parameters()} == {dtype}
    image = torch.randn(2, 3, 32, 32, dtype=dtype)
    with torch.no_grad():
        assert model.encode_image(image).dtype == dtype
        assert model.encode_text(make_text(2, SMALL_VIT)).dtype == dtype


def test_build_model_errors_name_the_keys() -> None:
    state = CLIP(SMALL_VIT).state_dict()
    with pytest.raises(ValueError, match="missing key 'text_projection'"):
        build_model({k: v for k, v in state.items() if k != "text_projection"})
    with pytest.raises(ValueError, match=r"missing keys: \['visual.ln_post.bias'\]"):
        build_model({k: v for k, v in state.items() if k != "visual.ln_post.bias"})
    with pytest.raises(ValueError, match=r"unexpected keys: \['visual.extra'\]"):
        build_model({**state, "visual.extra": torch.zeros(1)})
    bad = dict(state)
    bad["visual.ln_pre.weight"] = torch.ones(7)
    with pytest.raises(ValueError, match="visual.ln_pre.weight: checkpoint"):
        build_model(bad)


def test_bad_inputs_give_clear_errors() -> None:
    model = CLIP(SMALL_VIT).eval()
    with pytest.raises(ValueError, match=r"shape \[batch, 3, 32, 32\].*\(2, 3, 64, 64\)"):
        model.encode_image(torch.randn(2, 3, 64, 64))
    with pytest.raises(TypeError, match="floating-point"):
        model.encode_image(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(TypeError, match="got list"):
        model.encode_text([[1, 2, 3]])
    with pytest.raises(ValueError, match="context_length 16"):
        model.encode_text(torch.ones(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="4 stage depths"):
        CLIPConfig(64, 64, (1, 1, 1), 16, None)
    with pytest.raises(ValueError, match="vision_patch_size must be given"):
        CLIPConfig(64, 64, 2, 64, None)
    with pytest.raises(ValueError, match="multiple of 64"):
        CLIP(CLIPConfig(64, 32, 2, 96, 8))
    with pytest.raises(ValueError, match=r"unknown CLIPConfig keys: \['heads'\]"):
        CLIPConfig.from_dict({**SMALL_VIT.to_dict(), "heads": 4})


@pytest.mark.parametrize("name", OPENAI_PRESETS)
def test_presets_have_openai_layout(name: str, openai_model) -> None:
    """Every key and shape of OpenAI's model equals ours, and `build_model` recovers the preset."""
    config = PRESETS[name]
    with torch.device("meta"):
        ours = CLIP(config).state_dict()
        theirs = openai_clip(openai_model, config).state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    assert infer_config(theirs) == config


def test_paper_parameter_counts() -> None:
    """The paper's (rounded) sizes: ViT-B/16 86M image, 63M text; ViT-L/14 304M image, 123M text."""
    b16, b32, l14 = (parameter_counts(PRESETS[n]) for n in ("ViT-B/16", "ViT-B/32", "ViT-L/14"))
    assert round(b16["image"] / 1e6) == 86 and round(b16["text"] / 1e6) == 63
    assert round(b32["text"] / 1e6) == 63
    assert round(l14["image"] / 1e6) == 304 and int(l14["text"] / 1e6) == 123


@pytest.mark.parametrize("config", [SMALL_VIT, SMALL_RN], ids=["vit", "resnet"])
def test_equals_openai_reference(config: CLIPConfig, openai_model) -> None:
    """OpenAI's own model with random weights, loaded into ours: every output is the same."""
    torch.manual_seed(0)
    reference = openai_clip(openai_model, config).eval()
    if not config.is_vit:  # make BN statistics non-trivial
        for m in reference.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.data.normal_(1, 0.1)
    ours = build_model(reference.state_dict())
    image = torch.randn(3, 3, config.image_resolution, config.image_resolution)
    text = make_text(4, config)
    with torch.no_grad():
        torch.testing.assert_close(ours.encode_image(image), reference.encode_image(image), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours.encode_text(text), reference.encode_text(text), rtol=1e-5, atol=1e-5)
        for a, b in zip(ours(image, text), reference(image, text), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_loads_openai_fp16_checkpoint_layout(openai_model) -> None:
    """OpenAI's released weights are mixed fp16/fp32 (`convert_weights`); each tensor keeps its dtype."""
    torch.manual_seed(0)
    reference = openai_clip(openai_model, SMALL_VIT)
    openai_model.convert_weights(reference)
    state = reference.state_dict()
    state.update(input_resolution=torch.tensor(32), context_length=torch.tensor(16), vocab_size=torch.tensor(300))
    ours = build_model(state)
    ours_state = ours.state_dict()
    assert {k: v.dtype for k, v in ours_state.items()} == {k: v.dtype for k, v in reference.state_dict().items()}
    assert ours.dtype == torch.float16
