"""Low-rank adaptation, LoRA (Hu et al., 2021 — not part of the CLIP paper), for this package's CLIP.

A frozen weight W [out, in] is used as W + (alpha / r) · B A with A [r, in] and B [out, r]: only A and B are
trained, r (out + in) numbers per weight instead of out · in. A starts random (Kaiming-uniform, as `nn.Linear`'s
weight and Hu et al.'s reference code), B at zero, so the adapted model starts *exactly* equal to the original one.
`merge_lora` folds B A into W, after which the model is a plain CLIP again with OpenAI's state-dict layout.

How it is attached. Our attention keeps OpenAI's fused `attn.in_proj_weight` [3w, w] — a bare `nn.Parameter` read
with `F.linear`, not an `nn.Linear` module — so LoRA is written as a *parametrization*
(`torch.nn.utils.parametrize`): every read of the weight returns W + (alpha / r) B A, whichever module owns the
weight and however it is used (the fused q/k/v projection, `nn.Linear`'s forward, `forward_at`'s slices). Nothing
in the model's code changes, and `parametrize.remove_parametrizations(..., leave_parametrized=True)` is the merge.

Only torch is needed (the training machine has no package registry).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = ["TARGETS", "LoRA", "add_lora", "count_trainable", "lora_parameter_count", "lora_parameters",
           "lora_targets", "merge_lora"]

#: The weights adapted in each residual block: attention's fused q/k/v projection and output projection, and the
#: MLP's two layers (Hu et al. adapt only W_q and W_v of GPT-3; small models gain from adapting more).
TARGETS = ("attn.in_proj_weight", "attn.out_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")

#: The Transformer of each tower, by the prefix of its parameter names in OpenAI's layout.
TOWERS = {"image": "visual.transformer", "text": "transformer"}


class LoRA(nn.Module):
    """The parametrization weight ↦ weight + (alpha / rank) · lora_B @ lora_A (Hu et al., 2021, eq. 3)."""

    def __init__(self, out_features: int, in_features: int, rank: int, alpha: float,
                 generator: torch.Generator | None = None, dtype: torch.dtype | None = None,
                 device: torch.device | None = None) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.rank, self.alpha, self.scaling = rank, alpha, alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, in_features, dtype=dtype, device=device))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank, dtype=dtype, device=device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5), generator=generator)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + self.scaling * (self.lora_B @ self.lora_A)

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}, in={self.lora_A.shape[1]}, out={self.lora_B.shape[0]}"


def lora_targets(model: nn.Module, towers: Sequence[str] = ("image", "text"), last_blocks: int | None = None,
                 targets: Sequence[str] = TARGETS) -> list[str]:
    """Qualified names of the weights to adapt: `targets` in every block of each tower (or its last `last_blocks`
    blocks), e.g. "visual.transformer.resblocks.0.attn.in_proj_weight". The image tower must be a ViT."""
    names = []
    for tower in towers:
        if tower not in TOWERS:
            raise ValueError(f"unknown tower {tower!r}; known: {list(TOWERS)}")
        try:
            blocks = model.get_submodule(TOWERS[tower] + ".resblocks")
        except AttributeError as e:
            raise ValueError(f"the {tower} tower has no Transformer blocks ({TOWERS[tower]}.resblocks): "
                             "LoRA here adapts Transformer blocks (a ViT image encoder, not a ResNet)") from e
        first = 0 if last_blocks is None else max(0, len(blocks) - last_blocks)
        names += [f"{TOWERS[tower]}.resblocks.{i}.{t}" for i in range(first, len(blocks)) for t in targets]
    return names


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    module_name, _, tensor_name = name.rpartition(".")
    return model.get_submodule(module_name), tensor_name


def add_lora(model: nn.Module, rank: int = 4, alpha: float | None = None, towers: Sequence[str] = ("image", "text"),
             last_blocks: int | None = None, targets: Sequence[str] = TARGETS, seed: int = 0) -> list[str]:
    """Freeze every parameter of `model` and put a LoRA of `rank` (scaling alpha / rank; alpha defaults to rank)
    on each weight `lora_targets` names; returns those names. The model's outputs are unchanged until B moves.
    A is drawn from a generator seeded with `seed`, so adapters are reproducible whatever the global RNG state."""
    alpha = float(rank if alpha is None else alpha)
    names = lora_targets(model, towers, last_blocks, targets)
    model.requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    for name in names:
        module, tensor_name = _owner(model, name)
        if parametrize.is_parametrized(module, tensor_name):
            raise ValueError(f"{name} already has a parametrization (LoRA added twice?)")
        weight = getattr(module, tensor_name)
        lora = LoRA(weight.shape[0], weight.shape[1], rank, alpha, generator, weight.dtype, torch.device("cpu"))
        parametrize.register_parametrization(module, tensor_name, lora.to(weight.device))
    return names


def _loras(model: nn.Module) -> Iterable[tuple[nn.Module, str, LoRA]]:
    for module in model.modules():
        if parametrize.is_parametrized(module):
            for tensor_name, plist in module.parametrizations.items():
                for p in plist:
                    if isinstance(p, LoRA):
                        yield module, tensor_name, p


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every LoRA A and B of `model` (what the optimiser trains)."""
    return [p for _, _, lora in _loras(model) for p in (lora.lora_A, lora.lora_B)]


@torch.no_grad()
def merge_lora(model: nn.Module) -> nn.Module:
    """Fold each LoRA into its weight (W ← W + (alpha / r) B A) and remove the parametrizations: the model computes
    what the adapted model computed and has the base model's state-dict keys again. Every parameter is made
    trainable again, as in a freshly loaded model. Returns `model` (changed in place)."""
    for module, tensor_name, _ in list(_loras(model)):
        parametrize.remove_parametrizations(module, tensor_name, leave_parametrized=True)
    model.requires_grad_(True)
    return model


def count_trainable(model: nn.Module) -> int:
    """Number of parameters with `requires_grad` (each shared tensor counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())


def lora_parameter_count(model: nn.Module, rank: int, names: Sequence[str]) -> int:
    """The formula: Σ over the adapted weights W [out, in] of rank · (out + in) (A is r × in, B is out × r)."""
    total = 0
    for name in names:
        module, tensor_name = _owner(model, name)
        out_features, in_features = getattr(module, tensor_name).shape
        total += rank * (out_features + in_features)
    return total
