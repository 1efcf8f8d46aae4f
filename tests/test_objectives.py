"""The training objectives (CLIP, Figure 2's baselines, the supervised ResNet) on a tiny configuration: losses are
right, gradients reach the image encoder, a few steps overfit a fixed batch, and zero-shot scoring ranks it."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from repro.losses import clip_loss
from repro.models import CLIP, CLIPConfig
from repro.models.resnet import resnet18
from repro.objectives import (
    KINDS,
    BagOfWordsCLIP,
    BagOfWordsEncoder,
    CaptionLM,
    ContrastiveObjective,
    Objective,
    SupervisedObjective,
    bag_of_words,
    content_mask,
    make_objective,
)

CFG = CLIPConfig(64, 32, 2, 128, 8, context_length=16, vocab_size=300, transformer_width=128, transformer_layers=2)
RN_CFG = CLIPConfig(64, 32, (1, 1, 1, 1), 32, None, context_length=16, vocab_size=300, transformer_width=64,
                    transformer_layers=1)
START, END = CFG.vocab_size - 2, CFG.vocab_size - 1
FIGURE2 = ["clip", "bow-contrastive", "bow-predict", "caption-lm"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread is faster, and robust to a busy machine (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tokens(rows: list[list[int]], length: int = CFG.context_length) -> torch.Tensor:
    """CLIP tokenizer layout: start, ids, end, zero padding."""
    out = torch.zeros(len(rows), length, dtype=torch.long)
    for i, ids in enumerate(rows):
        row = [START, *ids, END]
        out[i, : len(row)] = torch.tensor(row)
    return out


def batch(n: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n random images, captions "a photo of <class i> <attribute i>" (shared template tokens 5 6 7), labels."""
    images = torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    texts = tokens([[5, 6, 7, 20 + i, 40 + i] for i in range(n)])
    return images, texts, torch.arange(n)


def build(kind: str, seed: int = 0, config: CLIPConfig = CFG) -> Objective:
    torch.manual_seed(seed)
    if kind == "supervised":
        return make_objective(kind, config, num_classes=4, classifier=resnet18(4, small_input=True, width=8))
    return make_objective(kind, config)


def train(objective: Objective, steps: int, lr: float = 1e-3) -> list[float]:
    images, texts, labels = batch()
    params = [p for p in objective.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    losses = []
    objective.train()
    for _ in range(steps):
        loss, metrics = objective.training_loss(images, texts, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        objective.after_step()
        losses.append(metrics["loss"])
    return losses


_TRAINED: dict[str, tuple[Objective, list[float]]] = {}


def trained(kind: str) -> tuple[Objective, list[float]]:
    """The objective overfit to `batch()` (cached across tests)."""
    if kind not in _TRAINED:
        objective = build(kind)
        _TRAINED[kind] = objective, train(objective, 100 if kind == "caption-lm" else 40)
    return _TRAINED[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_loss_is_finite_and_gradient_reaches_image_encoder(kind: str) -> None:
    objective = build(kind)
    images, texts, labels = batch()
    loss, metrics = objective(images, texts, labels)  # forward is training_loss
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert metrics["loss"] == pytest.approx(loss.item())
    assert all(isinstance(v, float) for v in metrics.values())
    loss.backward()
    encoder = objective.model if kind == "supervised" else objective.model.visual
    grads = [p.grad for p in encoder.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    assert objective.image_resolution == CFG.image_resolution
    names = dict(objective.named_parameters())
    assert objective.no_weight_decay() <= set(names)


@pytest.mark.parametrize("kind", ["clip", "bow-contrastive", "bow-predict", "caption-lm"])
def test_resnet_image_encoder(kind: str) -> None:
    objective = build(kind, config=RN_CFG)
    loss, _ = objective.training_loss(*batch())
    loss.backward()
    assert type(objective.model.visual).__name__ == "ModifiedResNet"
    assert objective.model.visual.conv1.weight.grad.abs().sum() > 0


def test_figure2_objectives_share_the_image_encoder_architecture() -> None:
    shapes = [
        {k: v.shape for k, v in build(kind).model.visual.state_dict().items()} for kind in FIGURE2
    ]
    assert all(s == shapes[0] for s in shapes)
    assert shapes[0] == {k: v.shape for k, v in CLIP(CFG).visual.state_dict().items()}


@pytest.mark.parametrize("kind", FIGURE2 + ["supervised"])
def test_few_steps_overfit_a_fixed_batch(kind: str) -> None:
    _, losses = trained(kind)
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("kind", FIGURE2)
def test_zero_shot_ranks_the_overfit_captions(kind: str) -> None:
    objective, _ = trained(kind)
    objective.eval()
    images, texts, _ = batch()
    # two "templates" per class: the caption itself and the caption with the attribute token dropped
    class_texts = torch.cat([texts, tokens([[5, 6, 7, 20 + i] for i in range(4)])])
    class_index = torch.arange(4).repeat(2)
    logits = objective.zero_shot_logits(images, class_texts, class_index)
    assert logits.shape == (4, 4) and torch.isfinite(logits).all()
    assert logits.argmax(dim=1).tolist() == [0, 1, 2, 3]
    # a subset of images and a permuted prompt order give the matching scores
    perm = torch.tensor([5, 2, 7, 0, 3, 6, 1, 4])
    again = objective.zero_shot_logits(images[:2], class_texts[perm], class_index[perm])
    torch.testing.assert_close(again, logits[:2], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["clip", "bow-contrastive"])
def test_contrastive_loss_equals_clip_loss(kind: str) -> None:
    objective = build(kind)
    images, texts, _ = batch()
    loss, metrics = objective.training_loss(images, texts)
    model = objective.model
    expected = clip_loss(model.encode_image(images), model.encode_text(texts), model.logit_scale.exp())
    torch.testing.assert_close(loss, expected)
    assert metrics["logit_scale"] == pytest.approx(1 / 0.07, rel=1e-5)
    assert metrics["temperature"] == pytest.approx(0.07, rel=1e-5)
    assert 0.0 <= metrics["accuracy"] <= 1.0


@pytest.mark.parametrize("logit_scale", [-1e4, 1e4])
def test_contrastive_metrics_survive_a_diverged_temperature(logit_scale: float) -> None:
    objective = ContrastiveObjective(CLIP(CFG), clamp=None)
    with torch.no_grad():
        objective.model.logit_scale.fill_(logit_scale)
    _, metrics = objective.training_loss(*batch()[:2])  # no ZeroDivisionError; the trainer sees the bad loss
    assert metrics["logit_scale"] in (0.0, math.inf) and metrics["temperature"] in (0.0, math.inf)


def test_contrastive_zero_shot_is_prompt_ensembling() -> None:
    objective = build("clip")
    images, texts, _ = batch()
    class_texts = torch.cat([texts, tokens([[9, 20 + i] for i in range(4)])])
    class_index = torch.arange(4).repeat(2)
    model = objective.model
    with torch.no_grad():
        prompts = F.normalize(model.encode_text(class_texts), dim=-1)
        classes = F.normalize((prompts[:4] + prompts[4:]) / 2, dim=-1)
        expected = model.logit_scale.exp() * F.normalize(model.encode_image(images), dim=-1) @ classes.t()
    torch.testing.assert_close(objective.zero_shot_logits(images, class_texts, class_index), expected)


@pytest.mark.parametrize("kwargs", [{"fixed_temperature": 0.05}, {"learn_temperature": False}])
def test_fixed_temperature_is_not_trained(kwargs: dict) -> None:
    torch.manual_seed(0)
    objective = ContrastiveObjective(CLIP(CFG), **kwargs)
    scale = objective.model.logit_scale
    start = math.log(1 / kwargs.get("fixed_temperature", 0.07))
    assert not scale.requires_grad and scale.item() == pytest.approx(start)
    images, texts, _ = batch()
    opt = torch.optim.AdamW(objective.parameters(), lr=1e-2, weight_decay=0.1)  # frozen parameter included
    for _ in range(3):
        loss, metrics = objective.training_loss(images, texts)
        opt.zero_grad()
        loss.backward()
        opt.step()
        objective.after_step()
    assert scale.grad is None and scale.item() == pytest.approx(start)
    assert metrics["temperature"] == pytest.approx(math.exp(-start), rel=1e-5)


def test_clamp_holds_at_ln_100_and_none_lets_it_exceed() -> None:
    clamped = ContrastiveObjective(CLIP(CFG))
    free = ContrastiveObjective(CLIP(CFG), clamp=None)
    assert clamped.model.logit_scale.requires_grad and free.model.logit_scale.requires_grad
    for objective in (clamped, free):
        with torch.no_grad():
            objective.model.logit_scale.fill_(math.log(500))
        objective.after_step()
    assert clamped.model.logit_scale.item() == pytest.approx(math.log(100))
    assert free.model.logit_scale.item() == pytest.approx(math.log(500))
    # the temperature is trained: a step moves it
    before = clamped.model.logit_scale.item()
    loss, _ = clamped.training_loss(*batch()[:2])
    loss.backward()
    assert clamped.model.logit_scale.grad is not None and clamped.model.logit_scale.grad != 0
    assert before == pytest.approx(math.log(100))


def test_bag_of_words_target_excludes_specials_and_padding() -> None:
    texts = tokens([[5, 5, 7], [0, 9], []])  # id 0 inside a caption is a real token, not padding
    texts[1, -1] = 123  # junk after the end token
    mask = content_mask(texts, CFG.vocab_size)
    assert mask.sum(dim=1).tolist() == [3, 2, 0]
    target = bag_of_words(texts, CFG.vocab_size)
    assert target.shape == (3, CFG.vocab_size)
    torch.testing.assert_close(target.sum(dim=1), torch.tensor([1.0, 1.0, 0.0]))
    assert target[0, 5] == pytest.approx(2 / 3) and target[0, 7] == pytest.approx(1 / 3)
    assert target[1, 0] == pytest.approx(0.5) and target[1, 9] == pytest.approx(0.5)
    assert target[:, [START, END, 123]].abs().sum() == 0


def test_bag_of_words_prediction_loss_is_soft_cross_entropy() -> None:
    objective = build("bow-predict")
    images, texts, _ = batch()
    loss, _ = objective.training_loss(images, texts)
    log_probs = F.log_softmax(objective.model(images), dim=-1)
    expected = -(bag_of_words(texts, CFG.vocab_size) * log_probs).sum(dim=1).mean()
    torch.testing.assert_close(loss, expected)


def test_bow_encoder_ignores_padding_and_order() -> None:
    torch.manual_seed(0)
    encoder = BagOfWordsEncoder(CFG.vocab_size, 32, 16)
    texts = tokens([[5, 6, 7, 0], [7, 0, 6, 5]])
    padded = texts.clone()
    padded[:, -3:] = torch.tensor([11, 12, 13])
    out = encoder(texts)
    assert out.shape == (2, 16)
    torch.testing.assert_close(out[0], out[1])
    torch.testing.assert_close(encoder(padded), out)
    expected = encoder.projection(encoder.token_embedding(torch.tensor([5, 6, 7, 0])).mean(dim=0))
    torch.testing.assert_close(out[0], expected)
    assert not torch.allclose(encoder(tokens([[5, 6, 8, 0]])), out[:1])


def test_bow_clip_swaps_only_the_text_tower() -> None:
    model = BagOfWordsCLIP(CFG)
    keys = set(model.state_dict())
    assert "logit_scale" in keys and {k for k in keys if k.startswith("text.")}
    clip_visual = {k for k in CLIP(CFG).state_dict() if k.startswith("visual.")}
    assert {k for k in keys if k.startswith("visual.")} == clip_visual
    images, texts, _ = batch()
    logits_per_image, logits_per_text = model(images, texts)
    assert logits_per_image.shape == (4, 4)
    torch.testing.assert_close(logits_per_text, logits_per_image.t())


def test_caption_lm_ignores_padding_and_is_causal() -> None:
    objective = build("caption-lm")
    assert isinstance(objective, CaptionLM)
    images, texts, _ = batch()
    loss, metrics = objective.training_loss(images, texts)
    assert metrics["perplexity"] == pytest.approx(math.exp(loss.item()), rel=1e-5)
    junk = texts.clone()
    junk[:, 8:] = torch.randint(1, 200, (4, CFG.context_length - 8))  # everything after the end token (position 6)
    torch.testing.assert_close(objective.training_loss(images, junk)[0], loss)
    # by hand: next-token NLL over positions 1..end (the 5 content tokens and the end token)
    model = objective.model
    logits = model.token_logits(model.visual(images), texts)
    assert logits.shape == (4, CFG.context_length, CFG.vocab_size)
    expected = F.cross_entropy(logits[:, 1:7].reshape(-1, CFG.vocab_size), texts[:, 1:7].reshape(-1))
    torch.testing.assert_close(loss, expected)
    # causal: changing token k changes only the predictions at positions > k
    changed = texts.clone()
    changed[:, 3] = 99
    other = model.token_logits(model.visual(images), changed)
    torch.testing.assert_close(other[:, :4], logits[:, :4])
    assert not torch.allclose(other[:, 4:], logits[:, 4:])
    # conditioned on the image: another image changes every prediction, including the first
    other = model.token_logits(model.visual(images.flip(0)), texts)
    assert not torch.allclose(other[:, 0], logits[:, 0])


def test_caption_lm_untied_head() -> None:
    objective = make_objective("caption-lm", CFG, width=64, layers=1, tie_embeddings=False)
    assert objective.model.lm_head is not None and objective.model.transformer.layers == 1
    loss, _ = objective.training_loss(*batch()[:2])
    loss.backward()
    assert objective.model.lm_head.weight.grad is not None


def test_supervised_objective() -> None:
    objective, _ = trained("supervised")
    assert isinstance(objective, SupervisedObjective)
    images, texts, labels = batch()
    objective.eval()
    assert objective.predict(images).shape == (4, 4)
    with pytest.raises(NotImplementedError, match="own label set"):
        objective.zero_shot_logits(images, texts, labels)
    with pytest.raises(ValueError, match="labels"):
        objective.training_loss(images, texts)


def test_make_objective_supervised_default_is_resnet101() -> None:
    objective = make_objective("supervised", CFG, num_classes=7, width=4)
    assert objective.model.small_input and objective.model.fc.out_features == 7
    assert [len(s) for s in (objective.model.layer1, objective.model.layer2, objective.model.layer3,
                             objective.model.layer4)] == [3, 4, 23, 3]
    with pytest.raises(ValueError, match="num_classes"):
        make_objective("supervised", CFG)


def test_make_objective_unknown_kind() -> None:
    with pytest.raises(ValueError, match="caption-lm") as info:
        make_objective("mae", CFG)
    assert all(kind in str(info.value) for kind in KINDS)
