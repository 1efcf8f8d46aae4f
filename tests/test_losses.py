"""CLIP's loss equals the paper's Figure 3 pseudocode, and its distributed form equals the single-process loss."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from repro.losses import clip_loss, contrastive_loss


def figure3_loss(I_f: np.ndarray, T_f: np.ndarray, W_i: np.ndarray, W_t: np.ndarray, t: float) -> float:
    """A NumPy transcription of the paper's Figure 3 (numerically stable log-softmax for cross_entropy)."""

    def l2_normalize(x: np.ndarray, axis: int) -> np.ndarray:
        return x / np.linalg.norm(x, axis=axis, keepdims=True)

    def cross_entropy_loss(logits: np.ndarray, labels: np.ndarray, axis: int) -> float:
        shifted = logits - logits.max(axis=axis, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        picked = log_probs[labels, labels]  # the diagonal, read along either axis
        return float(-picked.mean())

    I_e = l2_normalize(np.dot(I_f, W_i), axis=1)
    T_e = l2_normalize(np.dot(T_f, W_t), axis=1)
    logits = np.dot(I_e, T_e.T) * np.exp(t)
    n = I_f.shape[0]
    labels = np.arange(n)
    loss_i = cross_entropy_loss(logits, labels, axis=0)
    loss_t = cross_entropy_loss(logits, labels, axis=1)
    return (loss_i + loss_t) / 2


@pytest.mark.parametrize("n,t", [(2, 0.0), (8, math.log(1 / 0.07)), (33, math.log(100))])
def test_clip_loss_equals_figure3(n: int, t: float) -> None:
    rng = np.random.default_rng(n)
    I_f, T_f = rng.normal(size=(n, 24)), rng.normal(size=(n, 16))
    W_i, W_t = rng.normal(size=(24, 8)), rng.normal(size=(16, 8))
    scale = torch.tensor(math.exp(t), dtype=torch.float64)
    ours = clip_loss(torch.from_numpy(I_f @ W_i), torch.from_numpy(T_f @ W_t), scale)
    assert ours.item() == pytest.approx(figure3_loss(I_f, T_f, W_i, W_t, t), rel=1e-10, abs=1e-12)


def test_loss_at_chance_is_log_n() -> None:
    for n in (1, 4, 256):
        assert contrastive_loss(torch.zeros(n, n)).item() == pytest.approx(math.log(n))


def test_loss_is_symmetric_in_modalities() -> None:
    torch.manual_seed(0)
    a, b = torch.randn(6, 5), torch.randn(6, 5)
    assert clip_loss(a, b, torch.tensor(10.0)).item() == pytest.approx(clip_loss(b, a, torch.tensor(10.0)).item())


def test_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"same shape, got \(4, 8\) and \(5, 8\)"):
        clip_loss(torch.randn(4, 8), torch.randn(5, 8), torch.tensor(1.0))
    with pytest.raises(ValueError, match="square"):
        contrastive_loss(torch.randn(3, 4))


# --- distributed: 2 gloo processes on CPU ------------------------------------------------------------------

BATCH, DIM = 8, 6


class TwoTowers(torch.nn.Module):
    """Stand-ins for the image and text encoders: one linear map each."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.image, self.text = torch.nn.Linear(10, DIM), torch.nn.Linear(7, DIM)

    def forward(self, images: torch.Tensor, texts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.image(images), self.text(texts)


def batch_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(BATCH, 10, generator=g), torch.randn(BATCH, 7, generator=g)


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        towers = TwoTowers()
        model = DDP(towers)  # averages gradients over ranks during backward
        images, texts = batch_inputs()
        shard = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
        loss = clip_loss(*model(images[shard], texts[shard]), torch.tensor(14.0))
        loss.backward()
        grads = {n: p.grad.numpy() for n, p in towers.named_parameters()}
        np.savez(os.path.join(out_dir, f"rank{rank}.npz"), loss=loss.detach().numpy(), **grads)
        dist.barrier()  # no rank tears gloo down while the other still talks to it (an abort, now and then)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_distributed_loss_and_gradients_equal_single_process(tmp_path) -> None:
    world = 2
    mp.spawn(_worker, args=(world, str(tmp_path / "init"), str(tmp_path)), nprocs=world, join=True)
    towers = TwoTowers()
    loss = clip_loss(*towers(*batch_inputs()), torch.tensor(14.0))
    loss.backward()
    for rank in range(world):
        got = np.load(tmp_path / f"rank{rank}.npz")
        assert float(got["loss"]) == pytest.approx(loss.item(), rel=1e-6)
        for name, p in towers.named_parameters():
            np.testing.assert_allclose(got[name], p.grad.numpy(), rtol=1e-5, atol=1e-7, err_msg=name)
