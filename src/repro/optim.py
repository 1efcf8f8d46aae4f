"""The optimiser's settings and schedule (paper §2.5, Tables 18–19): which parameters are decayed, Adam's β and ε
per family, linear warm-up then cosine decay, and how far that schedule lets the learnable temperature travel."""

from __future__ import annotations

import math

from torch import nn

from .train_config import TrainConfig


def param_groups(objective: nn.Module, weight_decay: float) -> list[dict]:
    """Decoupled weight decay on weights only: not on gains, biases, norms or the temperature (paper §2.5)."""
    exempt = set(getattr(objective, "no_weight_decay", lambda: set())())
    decay, no_decay = [], []
    for name, p in objective.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.ndim < 2 or "logit_scale" in name or ".ln_" in name or ".bn" in name or name in exempt
        (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_lambda(warmup: int, total: int):
    """Linear warmup to 1 over `warmup` steps, then cosine decay to 0 at `total`."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return f


def adam_settings(config: TrainConfig) -> tuple[tuple[float, float], float]:
    """Adam's (β1, β2) and ε for a run: the config's when set, else the paper's per family (Table 18–19): β2 0.98
    and ε 1e-6 for a ViT, 0.999 and 1e-8 for a ResNet (the supervised baseline is a ResNet)."""
    vit = config.clip_config().is_vit and config.objective != "supervised"
    betas = config.betas or ((0.9, 0.98) if vit else (0.9, 0.999))
    return betas, config.eps or (1e-6 if vit else 1e-8)


def lr_sum(lr: float, warmup: int, total: int) -> float:
    """Σ_t lr_t over the schedule (`lr_lambda` at peak `lr`): about the most Adam can move any one parameter, since
    its update m̂/√v̂ has magnitude ≤ 1 per step when the gradient keeps its sign."""
    f = lr_lambda(min(warmup, total), total)
    return lr * sum(f(t) for t in range(total))


def logit_scale_reach(lr: float, warmup: int, total: int, start: float = 1 / 0.07) -> float:
    """The largest logit scale a run can reach from `start`: log(scale) grows by at most `lr_sum` over the run. The
    paper's clamp at 100 needs a sum of ln(100 · 0.07) ≈ 1.95 (paper §2.5)."""
    return start * math.exp(lr_sum(lr, warmup, total))


def descend(optimizer, scheduler, loss, what: str) -> None:
    """One optimisation step on `loss`: refuse a non-finite loss (naming `what` — the run and step), clear the old
    gradients, backpropagate, step the optimizer and then the learning-rate schedule."""
    if not loss.isfinite():
        raise RuntimeError(f"{what}: the loss is {loss.item()}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
