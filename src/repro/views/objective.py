"""The objective chapter's checks and figures (paper §2.3, Figure 3): the paper's pseudocode written literally in
numpy and compared with `repro.losses.clip_loss`, the gradient of the loss against its closed form, the loss of
random features against the batch size (its chance level ln N), and one row of the softmax at several logit scales.
Nothing here is trained; everything is computed from seeded random draws."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..losses import clip_loss, contrastive_loss

#: The paper's numbers (§2.5): its batch, the initial temperature and the largest logit scale.
PAPER_BATCH, PAPER_TEMPERATURE, PAPER_CLAMP = 32768, 0.07, 100.0
#: The embedding width of the paper's ViT-B models, for the random features of the chance-level figure.
DIM = 512


# --- Figure 3, literally -----------------------------------------------------------------------------------------

def l2_normalize(x: np.ndarray, axis: int) -> np.ndarray:
    return x / np.linalg.norm(x, axis=axis, keepdims=True)


def cross_entropy_loss(logits: np.ndarray, labels: np.ndarray, axis: int) -> float:
    """Mean cross-entropy of a softmax taken along `axis`; entry k of `labels` is the answer of slice k."""
    z = logits - logits.max(axis=axis, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=axis, keepdims=True))
    k = np.arange(len(labels))
    picked = log_p[labels, k] if axis == 0 else log_p[k, labels]
    return float(-picked.mean())


def figure3_loss(I_f, T_f, W_i, W_t, t):
    """Figure 3 of the paper, line by line, in numpy (with its names)."""
    n = I_f.shape[0]
    I_e = l2_normalize(np.dot(I_f, W_i), axis=1)
    T_e = l2_normalize(np.dot(T_f, W_t), axis=1)
    logits = np.dot(I_e, T_e.T) * np.exp(t)
    labels = np.arange(n)
    loss_i = cross_entropy_loss(logits, labels, axis=0)
    loss_t = cross_entropy_loss(logits, labels, axis=1)
    return (loss_i + loss_t) / 2


def random_batch(n: int = 64, d_i: int = 96, d_t: int = 80, d_e: int = 32, seed: int = 0) -> dict:
    """Figure 3's inputs, drawn at random: features I_f, T_f, projections W_i, W_t and t = ln(1/0.07)."""
    rng = np.random.default_rng(seed)
    return {"I_f": rng.normal(size=(n, d_i)), "T_f": rng.normal(size=(n, d_t)), "W_i": rng.normal(size=(d_i, d_e)),
            "W_t": rng.normal(size=(d_t, d_e)), "t": math.log(1 / PAPER_TEMPERATURE)}


def pseudocode_check(batch: dict | None = None) -> pd.DataFrame:
    """`figure3_loss` and `clip_loss` on the same projected features, in float64 and float32: one row per dtype
    with both losses and their absolute difference."""
    b = random_batch() if batch is None else batch
    reference = figure3_loss(b["I_f"], b["T_f"], b["W_i"], b["W_t"], b["t"])
    rows = []
    for dtype in (torch.float64, torch.float32):
        ours = clip_loss(torch.tensor(b["I_f"] @ b["W_i"], dtype=dtype), torch.tensor(b["T_f"] @ b["W_t"], dtype=dtype),
                         torch.tensor(math.exp(b["t"]), dtype=dtype)).item()
        rows.append({"dtype": str(dtype).removeprefix("torch."), "Figure 3 (numpy)": reference, "clip_loss": ours,
                     "|difference|": abs(ours - reference)})
    return pd.DataFrame(rows)


def gradient_check(batch: dict | None = None) -> pd.DataFrame:
    """The gradient of `contrastive_loss` by autograd against its closed form, ((P_row − 1) + (P_col − 1)) / 2N for
    the logits and Σ_ij (∂L/∂logits_ij) · logits_ij for t: the largest absolute difference of each."""
    b = random_batch() if batch is None else batch
    image = torch.tensor(b["I_f"] @ b["W_i"], requires_grad=True)
    text = torch.tensor(b["T_f"] @ b["W_t"], requires_grad=True)
    t = torch.tensor(b["t"], dtype=torch.float64, requires_grad=True)
    logits = t.exp() * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).t()
    logits.retain_grad()
    contrastive_loss(logits).backward()
    with torch.no_grad():
        eye = torch.eye(len(logits), dtype=torch.float64)
        grad_logits = ((logits.softmax(dim=1) - eye) + (logits.softmax(dim=0) - eye)) / (2 * len(logits))
        grad_t = (grad_logits * logits).sum()
    return pd.DataFrame([
        {"gradient": "d loss / d logits (largest entry)", "autograd": logits.grad.abs().max().item(),
         "formula": grad_logits.abs().max().item(), "|difference|": (logits.grad - grad_logits).abs().max().item()},
        {"gradient": "d loss / d t", "autograd": t.grad.item(), "formula": grad_t.item(),
         "|difference|": abs(t.grad.item() - grad_t.item())}])


# --- the loss at chance ------------------------------------------------------------------------------------------

def random_features_loss(n: int, d: int, scale: float, gen: torch.Generator, sample: int = 1024) -> float:
    """CLIP's loss of n random (image, text) feature pairs. Up to 2048 pairs: `clip_loss` on the whole batch.
    Beyond: the same terms averaged over `sample` random rows and columns (an unbiased estimate of the mean)."""
    image, text = torch.randn(n, d, generator=gen), torch.randn(n, d, generator=gen)
    if n <= 2048:
        return clip_loss(image, text, torch.tensor(scale)).item()
    image, text = F.normalize(image, dim=-1), F.normalize(text, dim=-1)
    rows = torch.randperm(n, generator=gen)[:sample]
    cols = torch.randperm(n, generator=gen)[:sample]
    row_logits = scale * image[rows] @ text.t()  # image -> every text
    col_logits = scale * text[cols] @ image.t()  # text -> every image
    loss_i = (row_logits.logsumexp(1) - row_logits[torch.arange(sample), rows]).mean()
    loss_t = (col_logits.logsumexp(1) - col_logits[torch.arange(sample), cols]).mean()
    return ((loss_i + loss_t) / 2).item()


def chance_losses(sizes: Sequence[int] = tuple(2**k for k in range(1, 16)),
                  scales: Sequence[float] = (1.0, 1 / PAPER_TEMPERATURE), dim: int = DIM,
                  seed: int = 0) -> pd.DataFrame:
    """The loss of random `dim`-dimensional features per batch size and logit scale (the mean of 8 draws up to 256
    pairs, of 2 beyond), beside ln N and the approximation ln N + s²/2d."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for scale in scales:
        for n in sizes:
            loss = np.mean([random_features_loss(n, dim, scale, gen) for _ in range(8 if n <= 256 else 2)])
            rows.append({"batch": n, "scale": scale, "loss": float(loss), "ln_n": math.log(n),
                         "approximation": math.log(n) + scale**2 / (2 * dim)})
    return pd.DataFrame(rows)


def chance_figure(frame: pd.DataFrame, our_batch: int):
    """The loss of random features against the batch size (log axis), at each logit scale of `frame`
    (`chance_losses`), with ln N, ln N + s²/2d at the largest scale, and our batch and the paper's marked."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.8))
    one = frame[frame["scale"] == frame["scale"].min()]
    ax.plot(one["batch"], one["ln_n"], color="black", lw=2, label="ln N")
    s0 = float(frame["scale"].max())
    top = frame[frame["scale"] == s0]
    ax.plot(top["batch"], top["approximation"], color="#dd8452", ls=":", lw=2, label=f"ln N + s²/2d (s = {s0:.1f})")
    for (scale, part), (marker, color) in zip(frame.groupby("scale"), (("o", "#4c72b0"), ("s", "#dd8452")),
                                              strict=False):
        ax.plot(part["batch"], part["loss"], marker, color=color, ms=7,
                label=f"random features, logit scale {scale:.3g}" + (" (init)" if scale == s0 else ""))
    for n, name in ((our_batch, "our batch"), (PAPER_BATCH, "paper's batch")):
        ax.axvline(n, color="grey", ls="--", lw=1)
        ax.annotate(f"{name}\nN = {n:,}", (n, 0.5), xytext=(-6, 0), textcoords="offset points", ha="right",
                    fontsize=11, color="dimgrey")
    ax.set(xlabel="batch size N (log scale)", ylabel="loss (nats)")
    ax.set_xscale("log", base=2)
    ax.set_ylim(0, None)
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# --- the temperature ---------------------------------------------------------------------------------------------

#: One row of cosine similarities: the match at 0.30 and 31 negatives between 0.00 and 0.25 ("easy"), and the same
#: row with its most similar negative moved above the match, to 0.35 ("hard").
POSITIVE = 0.30
NEGATIVES = np.linspace(0.0, 0.25, 31)
EASY_ROW = np.concatenate([[POSITIVE], NEGATIVES])
HARD_ROW = np.concatenate([[POSITIVE], NEGATIVES[:-1], [0.35]])
SCALES = {"1": 1.0, f"{1 / PAPER_TEMPERATURE:.1f} (init, 1/0.07)": 1 / PAPER_TEMPERATURE, "100 (clamp)": PAPER_CLAMP}


def row_softmax(sims: np.ndarray, scale: float) -> np.ndarray:
    """The softmax of one row of similarities at logit scale `scale`."""
    z = scale * sims
    p = np.exp(z - z.max())
    return p / p.sum()


def row_loss(sims: np.ndarray, scale: float) -> float:
    """Cross-entropy of entry 0 (the match), computed with torch's cross_entropy as contrastive_loss does."""
    logits = torch.tensor(scale * sims)[None]
    return F.cross_entropy(logits, torch.zeros(1, dtype=torch.long)).item()


def match_probabilities() -> dict[str, float]:
    """The match's softmax probability in the easy row at each scale of `SCALES`."""
    return {name: float(row_softmax(EASY_ROW, s)[0]) for name, s in SCALES.items()}


def temperature_figure():
    """Left: the softmax over the easy row at each scale of `SCALES` (log axis). Right: the easy and the hard row's
    cross-entropy against the logit scale, with the initial scale and the clamp."""
    import matplotlib.pyplot as plt

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.8))
    order = np.argsort(EASY_ROW)
    for (name, s), c in zip(SCALES.items(), ["#4c72b0", "#dd8452", "#c44e52"], strict=True):
        p = row_softmax(EASY_ROW, s)
        ax0.plot(EASY_ROW[order], p[order], "o-", color=c, ms=4, lw=1.5, label=f"scale {name}")
        ax0.plot([POSITIVE], [p[0]], "*", color=c, ms=16, mec="black")
    ax0.annotate("the match", (POSITIVE, row_softmax(EASY_ROW, PAPER_CLAMP)[0]), xytext=(-90, -10),
                 textcoords="offset points", arrowprops={"arrowstyle": "->"}, fontsize=11)
    ax0.set(xlabel="cosine similarity of each caption to the image", ylabel="softmax probability", yscale="log",
            ylim=(1e-4, 1.5), title="one row of the softmax")
    ax0.legend(loc="lower right")
    ax0.grid(alpha=0.3)
    grid = np.logspace(-0.5, 2.7, 200)
    ax1.plot(grid, [row_loss(EASY_ROW, s) for s in grid], color="#4c72b0", lw=2,
             label="match most similar (0.30 > all)")
    ax1.plot(grid, [row_loss(HARD_ROW, s) for s in grid], color="#c44e52", lw=2,
             label="one negative above the match (0.35)")
    ax1.axhline(math.log(len(EASY_ROW)), color="black", lw=1, ls=":", label=f"ln {len(EASY_ROW)} (uniform)")
    for s, name in ((1 / PAPER_TEMPERATURE, "init"), (PAPER_CLAMP, "clamp")):
        ax1.axvline(s, color="grey", ls="--", lw=1)
        ax1.text(s * 1.08, 6.3, name, color="dimgrey", fontsize=11)
    ax1.set(xscale="log", xlabel="logit scale s = exp(t) = 1/τ (log scale)", ylabel="cross-entropy of the row (nats)",
            ylim=(0, 7), title="the loss against the scale")
    ax1.legend(loc="lower left")
    ax1.grid(alpha=0.3)
    fig.tight_layout()
    return fig
