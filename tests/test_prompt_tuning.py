"""CoOp's prompt learner (`repro.prompt_tuning`): with its context set to the token embeddings of a template's
words it computes exactly `model.encode_text` of the filled template, and only the context vectors train."""

from __future__ import annotations

import pytest
import torch

from repro.models import CLIP, CLIPConfig
from repro.prompt_tuning import PromptLearner, encode_text_embeddings
from repro.tokenizer import Tokenizer

CLASSNAMES = ["dog", "red car", "cat face", "hot beverage", "a very long class name with many many words in it"]


@pytest.fixture(scope="module")
def clip_and_tokenizer() -> tuple[CLIP, Tokenizer]:
    texts = [f"a picture of a {c}." for c in CLASSNAMES] * 3 + ["an emoji of a dog", "a photo of the cat"] * 3
    tokenizer = Tokenizer.train(texts, vocab_size=700)
    torch.manual_seed(0)
    config = CLIPConfig(embed_dim=32, image_resolution=16, vision_layers=1, vision_width=64, vision_patch_size=8,
                        context_length=16, vocab_size=tokenizer.vocab_size, transformer_width=64,
                        transformer_layers=2)
    model = CLIP(config).eval()
    with torch.no_grad():  # trained-looking scales, so that a wrong position or mask would show
        model.token_embedding.weight.normal_(0, 1.0)
        model.positional_embedding.normal_(0, 0.5)
    model.requires_grad_(False)
    return model, tokenizer


def test_context_of_a_template_equals_encode_text(clip_and_tokenizer) -> None:
    model, tokenizer = clip_and_tokenizer
    names = CLASSNAMES[:4]
    learner = PromptLearner(model, tokenizer, names, ctx_init="a picture of a")
    assert learner.n_ctx == len(tokenizer.encode("a picture of a")) == 4
    ids = tokenizer([f"a picture of a {c}." for c in names], context_length=model.context_length)
    # the learner's sequence is the template's: [SOS] ctx <name> . [EOS]
    implied = torch.cat([learner.tokens[:, :1], ids[:, 1:1 + learner.n_ctx], learner.tokens[:, 1:]], dim=1)
    assert torch.equal(implied[:, :ids.shape[1]], ids)
    with torch.no_grad():
        expected = model.encode_text(ids)
        got = learner()
    assert got.shape == (len(names), model.config.embed_dim)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_encode_text_embeddings_is_encode_text(clip_and_tokenizer) -> None:
    model, tokenizer = clip_and_tokenizer
    ids = tokenizer(["a picture of a dog.", "cat face", "an emoji of a red car."], context_length=model.context_length)
    with torch.no_grad():
        got = encode_text_embeddings(model, model.token_embedding(ids), ids.argmax(dim=-1))
        torch.testing.assert_close(got, model.encode_text(ids), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="embeddings must be"):
        encode_text_embeddings(model, torch.zeros(1, model.context_length + 1, 64), torch.tensor([3]))


def test_only_the_context_trains(clip_and_tokenizer) -> None:
    model, tokenizer = clip_and_tokenizer
    learner = PromptLearner(model, tokenizer, CLASSNAMES, n_ctx=3, seed=1)
    assert [name for name, _ in learner.named_parameters()] == ["ctx"]
    assert sum(p.numel() for p in learner.parameters() if p.requires_grad) == 3 * model.transformer.width
    assert learner.ctx.std().item() == pytest.approx(0.02, rel=0.3)  # CoOp's N(0, 0.02²) initialisation
    assert torch.equal(PromptLearner(model, tokenizer, CLASSNAMES, n_ctx=3, seed=1).ctx, learner.ctx)
    features = learner()
    assert features.shape == (len(CLASSNAMES), model.config.embed_dim)  # the long name is truncated, EOT kept
    assert (learner.tokens.argmax(dim=-1) + learner.n_ctx < model.context_length).all()
    features.square().sum().backward()
    assert learner.ctx.grad is not None and learner.ctx.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())


def test_bad_arguments(clip_and_tokenizer) -> None:
    model, tokenizer = clip_and_tokenizer
    with pytest.raises(ValueError, match="n_ctx must be >= 1, got 0"):
        PromptLearner(model, tokenizer, CLASSNAMES, n_ctx=0)
    with pytest.raises(ValueError, match="n_ctx 14 leaves no room"):
        PromptLearner(model, tokenizer, CLASSNAMES, n_ctx=14)
    with pytest.raises(ValueError, match="at least one class name"):
        PromptLearner(model, tokenizer, [])
