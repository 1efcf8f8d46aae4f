"""The contrastive objective of CLIP (paper §2.3, Figure 3): a symmetric cross-entropy over the N×N matrix of
scaled cosine similarities of a batch's image and text embeddings, with the N matching pairs as the labels.

With data parallelism the negatives come from the *global* batch: every rank gathers every rank's embeddings
(`gather_features`, which passes gradients back to the rank that produced them), so the loss and, after
DistributedDataParallel averages gradients, the update equal those of one process on the whole batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def contrastive_loss(logits_per_image: torch.Tensor) -> torch.Tensor:
    """(CE over each row + CE over each column) / 2, the i-th image matching the i-th text (Figure 3's last lines).

    `logits_per_image` is [N, N]: entry (i, j) = exp(t) · cos(image_i, text_j)."""
    if logits_per_image.ndim != 2 or logits_per_image.shape[0] != logits_per_image.shape[1]:
        raise ValueError(f"logits must be a square [N, N] matrix, got shape {tuple(logits_per_image.shape)}")
    labels = torch.arange(logits_per_image.shape[0], device=logits_per_image.device)
    loss_i = F.cross_entropy(logits_per_image, labels)
    loss_t = F.cross_entropy(logits_per_image.t(), labels)
    return (loss_i + loss_t) / 2


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums the gradient over ranks and returns each rank its own slice."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        world, rank = dist.get_world_size(), dist.get_rank()
        ctx.rank, ctx.n = rank, x.shape[0]
        sizes = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(world)]
        dist.all_gather(sizes, torch.tensor([x.shape[0]], device=x.device))
        if any(int(s) != x.shape[0] for s in sizes):
            got = [int(s) for s in sizes]
            raise ValueError(f"every rank must hold the same batch size to gather features, got {got}")
        chunks = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(chunks, x.contiguous())
        return torch.cat(chunks)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def gather_features(x: torch.Tensor) -> torch.Tensor:
    """Concatenate `x` [n, d] from every rank, in rank order ([world·n, d]), keeping the autograd graph.

    Outside a multi-process group it returns `x` unchanged."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)


def clip_loss(
    image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor, gather: bool = True
) -> torch.Tensor:
    """CLIP's loss from unnormalised embeddings (Figure 3): L2-normalise, gather across ranks, scale the cosine
    similarities by `logit_scale` (= exp(t), e.g. `model.logit_scale.exp()`), then `contrastive_loss`; in fp32 whatever
the features' dtype (bf16 would round logits near 100 to steps of 0.5)."""
    if image_features.shape != text_features.shape or image_features.ndim != 2:
        raise ValueError(
            "image and text features must both be [N, d] with the same shape, got "
            f"{tuple(image_features.shape)} and {tuple(text_features.shape)}"
        )
    with torch.autocast(image_features.device.type, enabled=False):  # the loss in fp32 under bf16 autocast too
        image_features = F.normalize(_at_least_fp32(image_features), dim=-1)
        text_features = F.normalize(_at_least_fp32(text_features), dim=-1)
        if gather:
            image_features, text_features = gather_features(image_features), gather_features(text_features)
        return contrastive_loss(_at_least_fp32(logit_scale) * image_features @ text_features.t())


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """bf16 / fp16 → fp32; fp32 and fp64 unchanged (the same tensor)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))
