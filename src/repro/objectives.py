"""Training objectives behind one interface, so a single training loop drives CLIP and its baselines.

* `ContrastiveObjective`: CLIP's symmetric InfoNCE loss over the global batch (paper §2.3, Figure 3), with a
  learnable (clamped or unclamped) or fixed temperature, and zero-shot prompt ensembling (§3.1.4).
* `bow_contrastive`: the same loss with a bag-of-words text encoder (Figure 2, "Bag of Words Contrastive").
* `BagOfWordsPrediction`: predict the caption's bag of words from the image (Figure 2, "Bag of Words Prediction").
* `CaptionLM`: predict the caption token by token given the image (Figure 2, "Transformer Language Model").
* `SupervisedObjective`: cross-entropy on labels, for the supervised ResNet-101 baseline (§3.3, Figure 13).

Token ids follow CLIP's tokenizer: start token (id vocab_size - 2), content ids, end token (vocab_size - 1, the
largest id, so its position is `argmax`), zero padding. Content tokens are those before the end token that are not
special; id 0 is a real byte token, so padding is recognised by position, never by value.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .losses import clip_loss
from .models import resnet
from .models.clip import CLIP, CLIPConfig
from .models.layers import LayerNorm, Transformer
from .models.vision import ModifiedResNet, VisionTransformer

LossAndMetrics = tuple[Tensor, dict[str, float]]  # (scalar loss, metrics to log)
KINDS = ("clip", "bow-contrastive", "bow-predict", "caption-lm", "supervised")
_CHUNK = 1024  # prompts encoded per forward pass in zero-shot evaluation
_PAIRS = 256  # (image, prompt) pairs scored per forward pass by the caption LM's zero-shot evaluation


def content_mask(texts: Tensor, vocab_size: int) -> Tensor:
    """Bool [B, L]: True at content tokens (before the end token, not start/end); padding is excluded by position."""
    end = texts.argmax(dim=-1, keepdim=True)
    positions = torch.arange(texts.shape[1], device=texts.device)
    return (positions < end) & (texts < vocab_size - 2)


def bag_of_words(texts: Tensor, vocab_size: int) -> Tensor:
    """Normalised bag-of-words distribution [B, vocab_size] over each row's content tokens (all zero if none)."""
    counts = torch.zeros(texts.shape[0], vocab_size, device=texts.device)
    counts.scatter_add_(1, texts.long(), content_mask(texts, vocab_size).float())
    return counts / counts.sum(dim=1, keepdim=True).clamp(min=1)


def class_mean(scores: Tensor, class_index: Tensor) -> Tensor:
    """Average per-prompt scores [B, T] over each class's prompts: [B, C] with C = class_index.max() + 1."""
    num_classes = int(class_index.max()) + 1
    sums = scores.new_zeros(scores.shape[0], num_classes).index_add_(1, class_index, scores)
    counts = torch.bincount(class_index, minlength=num_classes).clamp(min=1)
    return sums / counts.to(scores.dtype)


def build_image_encoder(config: CLIPConfig) -> nn.Module:
    """The image encoder CLIP builds for `config` (ViT or ModifiedResNet, §2.4), outputting [B, embed_dim]."""
    if config.is_vit:
        return VisionTransformer(
            config.image_resolution, config.vision_patch_size, config.vision_width, config.vision_layers,
            config.embed_dim,
        )
    return ModifiedResNet(
        config.vision_layers, config.embed_dim, config.vision_heads, config.image_resolution, config.vision_width
    )


class Objective(nn.Module):
    """What a training step optimises; the trainer only calls these. All parameters live in `self.model`.

    `forward` is `training_loss`, so the objective can be wrapped in DistributedDataParallel."""

    image_resolution: int
    model: nn.Module

    def training_loss(self, images: Tensor, texts: Tensor, labels: Tensor | None = None) -> LossAndMetrics:
        """images [B,3,R,R]; texts [B,L] token ids; labels [B] (supervised only) -> (scalar loss, metrics)."""
        raise NotImplementedError

    def forward(self, images: Tensor, texts: Tensor, labels: Tensor | None = None) -> LossAndMetrics:
        return self.training_loss(images, texts, labels)

    def after_step(self) -> None:
        """Called after each optimiser step (e.g. to clamp the temperature)."""

    def zero_shot_logits(self, images: Tensor, class_texts: Tensor, class_index: Tensor) -> Tensor:
        """Scores [B, C] of each image for each class from prompts class_texts [T, L] of classes class_index [T]."""
        raise NotImplementedError

    def no_weight_decay(self) -> set[str]:
        """Names (as in `self.named_parameters()`) exempt from weight decay besides gains and biases."""
        return set()


class BagOfWordsEncoder(nn.Module):
    """Text encoder of Figure 2's "Bag of Words Contrastive": mean of content-token embeddings -> linear projection.

    Order- and padding-invariant by construction."""

    def __init__(self, vocab_size: int, width: int, embed_dim: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.projection = nn.Linear(width, embed_dim, bias=False)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.projection.weight, std=width**-0.5)

    def forward(self, texts: Tensor) -> Tensor:
        """Text features [B, embed_dim] (not normalised) from token ids [B, L]."""
        mask = content_mask(texts, self.vocab_size).unsqueeze(-1).to(self.token_embedding.weight.dtype)
        summed = (self.token_embedding(texts) * mask).sum(dim=1)
        return self.projection(summed / mask.sum(dim=1).clamp(min=1))


class BagOfWordsCLIP(nn.Module):
    """CLIP's image encoder and temperature with a `BagOfWordsEncoder` as the text tower (Figure 2).

    Exposes CLIP's interface (`encode_image`, `encode_text`, `forward`, `logit_scale`, `clamp_logit_scale`,
    `config`, `context_length`); the state dict holds `visual.*` (CLIP's layout), `text.*` and `logit_scale`."""

    def __init__(self, config: CLIPConfig) -> None:
        super().__init__()
        self.config, self.context_length, self.vocab_size = config, config.context_length, config.vocab_size
        self.visual = build_image_encoder(config)
        self.text = BagOfWordsEncoder(config.vocab_size, config.transformer_width, config.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_image(self, image: Tensor) -> Tensor:
        return self.visual(image)

    def encode_text(self, text: Tensor) -> Tensor:
        if text.ndim != 2 or text.shape[1] > self.context_length:
            raise ValueError(f"text must be [batch, length <= {self.context_length}], got {tuple(text.shape)}")
        return self.text(text)

    def forward(self, image: Tensor, text: Tensor) -> tuple[Tensor, Tensor]:
        """Scaled cosine similarities (logits_per_image, logits_per_text), as `CLIP.forward`."""
        image_features = F.normalize(self.encode_image(image), dim=-1)
        text_features = F.normalize(self.encode_text(text), dim=-1)
        logits = self.logit_scale.exp() * image_features @ text_features.t()
        return logits, logits.t()

    clamp_logit_scale = CLIP.clamp_logit_scale


class ContrastiveObjective(Objective):
    """CLIP's objective (§2.3, Figure 3): symmetric cross-entropy over the global batch's cosine similarities.

    The temperature is learnable and clamped to logit scale <= `clamp` after each step (clamp=None: unclamped),
    or, with `fixed_temperature` τ (or learn_temperature=False), frozen at ln(1/τ) (requires_grad False)."""

    def __init__(
        self, model: CLIP | BagOfWordsCLIP, learn_temperature: bool = True, clamp: float | None = 100.0,
        fixed_temperature: float | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.image_resolution = model.config.image_resolution
        self.clamp = clamp
        self.learn_temperature = learn_temperature and fixed_temperature is None
        if fixed_temperature is not None:
            if not fixed_temperature > 0:
                raise ValueError(f"fixed_temperature must be positive, got {fixed_temperature}")
            with torch.no_grad():
                model.logit_scale.fill_(math.log(1 / fixed_temperature))
        model.logit_scale.requires_grad_(self.learn_temperature)

    def training_loss(self, images: Tensor, texts: Tensor, labels: Tensor | None = None) -> LossAndMetrics:
        """Metrics: loss, logit_scale (exp(t)), temperature (1/exp(t)), accuracy (in-batch image->text, local)."""
        image_features = self.model.encode_image(images)
        text_features = self.model.encode_text(texts)
        scale = self.model.logit_scale.exp()
        loss = clip_loss(image_features, text_features, scale)
        with torch.no_grad():
            sims = F.normalize(image_features, dim=-1) @ F.normalize(text_features, dim=-1).t()
            accuracy = (sims.argmax(dim=1) == torch.arange(len(sims), device=sims.device)).float().mean()
        temperature = (-self.model.logit_scale.detach()).exp()  # not 1 / scale: a diverged run may reach scale 0
        values = torch.stack([loss.detach(), scale.detach(), temperature, accuracy]).float().tolist()
        return loss, dict(zip(("loss", "logit_scale", "temperature", "accuracy"), values, strict=True))

    def after_step(self) -> None:
        if self.learn_temperature and self.clamp is not None:
            self.model.clamp_logit_scale(self.clamp)

    @torch.no_grad()
    def zero_shot_logits(self, images: Tensor, class_texts: Tensor, class_index: Tensor) -> Tensor:
        """Prompt ensembling (§3.1.4): mean of normalised prompt embeddings per class, renormalised; then
        logit_scale × cosine similarity."""
        prompts = torch.cat([F.normalize(self.model.encode_text(c), dim=-1) for c in class_texts.split(_CHUNK)])
        num_classes = int(class_index.max()) + 1
        classes = prompts.new_zeros(num_classes, prompts.shape[1]).index_add_(0, class_index, prompts)
        image_features = F.normalize(self.model.encode_image(images), dim=-1)
        return self.model.logit_scale.exp() * image_features @ F.normalize(classes, dim=-1).t()

    def no_weight_decay(self) -> set[str]:
        return {"model.logit_scale"}


def bow_contrastive(config: CLIPConfig, **kw) -> ContrastiveObjective:
    """Figure 2's "Bag of Words Contrastive (CLIP)": CLIP's loss and image encoder, bag-of-words text encoder."""
    return ContrastiveObjective(BagOfWordsCLIP(config), **kw)


class BagOfWordsPredictor(nn.Module):
    """Image encoder + linear head over the vocabulary (logits of the caption's bag of words)."""

    def __init__(self, visual: nn.Module, embed_dim: int, vocab_size: int) -> None:
        super().__init__()
        self.visual = visual
        self.head = nn.Linear(embed_dim, vocab_size)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.visual(images))


class BagOfWordsPrediction(Objective):
    """Figure 2's "Bag of Words Prediction": cross-entropy of the image's predicted word distribution against the
    caption's normalised bag of words (soft targets over content tokens)."""

    def __init__(self, visual: nn.Module, embed_dim: int, vocab_size: int, image_resolution: int | None = None):
        super().__init__()
        self.vocab_size = vocab_size
        self.model = BagOfWordsPredictor(visual, embed_dim, vocab_size)
        self.image_resolution = image_resolution or visual.input_resolution

    def training_loss(self, images: Tensor, texts: Tensor, labels: Tensor | None = None) -> LossAndMetrics:
        """Mean over captions with at least one content token. Metrics: loss."""
        target = bag_of_words(texts, self.vocab_size)
        per_caption = F.cross_entropy(self.model(images).float(), target, reduction="none")
        has_words = (target.sum(dim=1) > 0).float()
        loss = (per_caption * has_words).sum() / has_words.sum().clamp(min=1)
        return loss, {"loss": loss.item()}

    @torch.no_grad()
    def zero_shot_logits(self, images: Tensor, class_texts: Tensor, class_index: Tensor) -> Tensor:
        """Mean log-probability of each prompt's content tokens, averaged over the class's prompts."""
        log_probs = F.log_softmax(self.model(images).float(), dim=-1)  # [B, V]
        prompts = bag_of_words(class_texts, self.vocab_size)  # [T, V]: a token's weight is 1 / (content tokens)
        return class_mean(log_probs @ prompts.t(), class_index)


class CaptionModel(nn.Module):
    """Image-conditioned causal Transformer LM: the image embedding, projected, is a prefix token before the
    caption's token embeddings; the output at position j predicts token j (GPT-2-style init as CLIP's text)."""

    def __init__(
        self, visual: nn.Module, embed_dim: int, vocab_size: int, context_length: int, width: int, layers: int,
        tie_embeddings: bool = True,
    ) -> None:
        super().__init__()
        self.visual, self.context_length, self.vocab_size = visual, context_length, vocab_size
        self.image_prefix = nn.Linear(embed_dim, width)
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.transformer = Transformer(width, layers, heads=max(1, width // 64), causal=True)
        self.ln_final = LayerNorm(width)
        self.lm_head = None if tie_embeddings else nn.Linear(width, vocab_size, bias=False)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        proj_std = width**-0.5 * (2 * max(layers, 1)) ** -0.5
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=width**-0.5)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=(2 * width) ** -0.5)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        if self.lm_head is not None:
            nn.init.normal_(self.lm_head.weight, std=width**-0.5)

    def token_logits(self, image_features: Tensor, texts: Tensor) -> Tensor:
        """Logits [N, L, V]; position j sees the image and tokens < j and predicts texts[:, j]."""
        if texts.ndim != 2 or texts.shape[1] > self.context_length:
            raise ValueError(f"texts must be [batch, length <= {self.context_length}], got {tuple(texts.shape)}")
        prefix = self.image_prefix(image_features.to(self.image_prefix.weight.dtype)).unsqueeze(1)
        x = torch.cat([prefix, self.token_embedding(texts[:, :-1])], dim=1)
        x = self.ln_final(self.transformer(x + self.positional_embedding[: texts.shape[1]].to(x.dtype)))
        weight = self.token_embedding.weight if self.lm_head is None else self.lm_head.weight
        return x @ weight.t().to(x.dtype)

    def log_likelihood(self, image_features: Tensor, texts: Tensor) -> tuple[Tensor, Tensor]:
        """Per-token log p(texts[:, j] | image, texts[:, <j]) [N, L] and the mask of scored tokens (1 <= j <= end)."""
        length = int(texts.argmax(dim=-1).max()) + 1  # positions after the last end token never matter (causal)
        texts = texts[:, :length]
        logits = self.token_logits(image_features, texts).float()
        token_lp = -F.cross_entropy(logits.flatten(0, 1), texts.long().flatten(), reduction="none").view(texts.shape)
        positions = torch.arange(length, device=texts.device)
        mask = (positions >= 1) & (positions <= texts.argmax(dim=-1, keepdim=True))
        return token_lp, mask


class CaptionLM(Objective):
    """Figure 2's "Transformer Language Model": next-token cross-entropy of the caption given the image, over the
    tokens after the start token up to and including the end token (padding ignored)."""

    def __init__(
        self, visual: nn.Module, embed_dim: int, vocab_size: int, context_length: int, width: int, layers: int,
        tie_embeddings: bool = True, image_resolution: int | None = None,
    ) -> None:
        super().__init__()
        self.model = CaptionModel(visual, embed_dim, vocab_size, context_length, width, layers, tie_embeddings)
        self.image_resolution = image_resolution or visual.input_resolution

    def training_loss(self, images: Tensor, texts: Tensor, labels: Tensor | None = None) -> LossAndMetrics:
        """Metrics: loss (mean per-token NLL), perplexity."""
        token_lp, mask = self.model.log_likelihood(self.model.visual(images), texts)
        loss = -(token_lp * mask).sum() / mask.sum().clamp(min=1)
        return loss, {"loss": loss.item(), "perplexity": math.exp(min(loss.item(), 50.0))}

    @torch.no_grad()
    def zero_shot_logits(self, images: Tensor, class_texts: Tensor, class_index: Tensor) -> Tensor:
        """log p(prompt | image), summed over the prompt's tokens (end token included), averaged over templates."""
        features = self.model.visual(images)  # [B, D]
        b, chunk = features.shape[0], max(1, _PAIRS // features.shape[0])
        scores = []
        for prompts in class_texts.split(chunk):  # score every (image, prompt) pair of the chunk at once
            t = prompts.shape[0]
            token_lp, mask = self.model.log_likelihood(features.repeat_interleave(t, dim=0), prompts.repeat(b, 1))
            scores.append((token_lp * mask).sum(dim=1).view(b, t))
        return class_mean(torch.cat(scores, dim=1), class_index)


class SupervisedObjective(Objective):
    """Cross-entropy on labels: the supervised ResNet-101 baseline of §3.3 / Figure 13."""

    def __init__(self, classifier: nn.Module, num_classes: int, image_resolution: int = 224) -> None:
        super().__init__()
        self.model, self.num_classes, self.image_resolution = classifier, num_classes, image_resolution

    def predict(self, images: Tensor) -> Tensor:
        """Class logits [B, num_classes]."""
        return self.model(images)

    def training_loss(self, images: Tensor, texts: Tensor, labels: Tensor | None = None) -> LossAndMetrics:
        """Metrics: loss, accuracy. `texts` is ignored; labels are required."""
        if labels is None:
            raise ValueError("the supervised objective needs integer class labels [B]")
        logits = self.predict(images)
        if logits.shape[-1] != self.num_classes:
            raise ValueError(f"classifier outputs {logits.shape[-1]} classes, expected {self.num_classes}")
        loss = F.cross_entropy(logits.float(), labels.long())
        accuracy = (logits.argmax(dim=-1) == labels).float().mean()
        return loss, {"loss": loss.item(), "accuracy": accuracy.item()}

    def zero_shot_logits(self, images: Tensor, class_texts: Tensor, class_index: Tensor) -> Tensor:
        raise NotImplementedError(
            "a supervised model has no text encoder and cannot score prompts: evaluate it on its own label set "
            "with predict(images) (mapping datasets' classes onto its labels, as §3.3 does for ImageNet shifts)"
        )


def make_objective(kind: str, config: CLIPConfig, **kw) -> Objective:
    """Build an objective; the four Figure-2 kinds share the image encoder `config` describes (ViT or ResNet).

    kw: "clip"/"bow-contrastive": learn_temperature, clamp, fixed_temperature. "caption-lm": width, layers
    (default: the config's text transformer), tie_embeddings. "supervised": num_classes (required), and either
    classifier (a torchvision-layout ResNet) or depth (18, 34, 50, 101 — the default — or 152), width (default 64)
    and small_input (default True) for `resnet{depth}`."""
    if kind == "clip":
        return ContrastiveObjective(CLIP(config), **kw)
    if kind == "bow-contrastive":
        return bow_contrastive(config, **kw)
    if kind == "bow-predict":
        return BagOfWordsPrediction(build_image_encoder(config), config.embed_dim, config.vocab_size, **kw)
    if kind == "caption-lm":
        width = kw.pop("width", config.transformer_width)
        layers = kw.pop("layers", config.transformer_layers)
        return CaptionLM(
            build_image_encoder(config), config.embed_dim, config.vocab_size, config.context_length, width, layers,
            **kw,
        )
    if kind == "supervised":
        if "num_classes" not in kw:
            raise ValueError("make_objective('supervised', ...) needs num_classes=")
        num_classes = kw.pop("num_classes")
        classifier = kw.pop("classifier", None)
        if classifier is None:
            depth = kw.pop("depth", 101)
            build = getattr(resnet, f"resnet{depth}", None) if depth in (18, 34, 50, 101, 152) else None
            if build is None:
                raise ValueError(f"no ResNet of depth {depth!r}; expected 18, 34, 50, 101 or 152")
            classifier = build(num_classes, small_input=kw.pop("small_input", True), width=kw.pop("width", 64))
        return SupervisedObjective(classifier, num_classes, kw.pop("image_resolution", config.image_resolution), **kw)
    raise ValueError(f"unknown objective kind {kind!r}; expected one of {', '.join(KINDS)}")
