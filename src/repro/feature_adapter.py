"""CLIP-Adapter (Gao et al., 2021, "CLIP-Adapter: Better Vision-Language Models with Feature Adapters" — not part
of the CLIP paper): a small bottleneck MLP on the frozen image features, mixed back into them with a residual ratio.

    A(f) = ReLU(f W1) W2,   W1 [D, D/r], W2 [D/r, D], no biases (the paper's eq. 2, reduction r = 4)
    f'   = α · A(f) + (1 − α) · f                                  (eq. 3, α the "residual ratio")
    logits = logit_scale · cos(f', w_c)

with w_c the frozen zero-shot classifier (`repro.evaluate.zeroshot.zeroshot_classifier`, the prompt ensemble of
CLIP §3.1.4). Only W1 and W2 train: 2 · D · D/r parameters. α = 0 is zero-shot CLIP exactly. (The authors' code
puts a second ReLU after W2; we follow the equation.) The adapter reads the L2-normalised features that
`repro.evaluate.features.encode_images` gives; the cosine makes the logits independent of f's scale at α = 0.
"""

from __future__ import annotations

import torch
from torch import nn

from .evaluate.features import normalize

__all__ = ["CLIPAdapter"]


class CLIPAdapter(nn.Module):
    """The visual adapter of CLIP-Adapter (Gao et al., 2021, §3.2) for D-dimensional image features: `forward(f)`
    gives f' = α A(f) + (1 − α) f, `logits(f, weights, logit_scale)` the scaled cosine to the class weights [D, C].
    The weights start as `nn.Linear`'s (Kaiming-uniform) from a generator seeded with `seed`."""

    def __init__(self, dim: int, reduction: int = 4, alpha: float = 0.2, seed: int = 0) -> None:
        super().__init__()
        if reduction < 1 or dim % reduction:
            raise ValueError(f"the feature width {dim} must be divisible by the reduction {reduction}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"the residual ratio alpha must be in [0, 1], got {alpha}")
        self.dim, self.reduction, self.alpha = dim, reduction, float(alpha)
        self.fc = nn.Sequential(nn.Linear(dim, dim // reduction, bias=False), nn.ReLU(),
                                nn.Linear(dim // reduction, dim, bias=False))
        generator = torch.Generator().manual_seed(seed)
        for layer in (self.fc[0], self.fc[2]):
            bound = layer.in_features ** -0.5  # nn.Linear's default: Kaiming-uniform with a = √5
            with torch.no_grad():
                layer.weight.uniform_(-bound, bound, generator=generator)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Adapted features f' = α · A(f) + (1 − α) · f, [N, D]."""
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise ValueError(f"features must be [N, {self.dim}], got {tuple(features.shape)}")
        return self.alpha * self.fc(features) + (1.0 - self.alpha) * features

    def logits(self, features: torch.Tensor, weights: torch.Tensor, logit_scale: torch.Tensor | float
               ) -> torch.Tensor:
        """logit_scale · cos(f', w_c): [N, C] for class weights [D, C] (unit columns, as zeroshot_classifier's)."""
        return logit_scale * normalize(self(features)) @ weights

    def extra_repr(self) -> str:
        return f"dim={self.dim}, reduction={self.reduction}, alpha={self.alpha:g}"
