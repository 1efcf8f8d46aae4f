"""Training compute, counted rather than estimated (the x-axis of paper Figure 9): torch's `FlopCounterMode` counts
the floating-point operations of a step's forward and backward as they execute — matrix products, convolutions and
attention (2 FLOPs per multiply-add), in both the ViT and the modified ResNet, on the real (packed) caption tokens.
Element-wise work (norms, activations, the optimiser) is not counted, as is usual for model FLOPs.

The text tower's cost changes with each batch's captions, so `train` counts a few steps spread over the run
(`steps_to_count`) and multiplies their mean by the number of steps (`total_flops`). It counts on a copy of the
model (`step_flops`): under the counter some kernels round differently, and a run must not depend on whether a step
was counted. The counted steps are chosen over the whole run and kept in checkpoints, so a resumed run reports the
same compute as an uninterrupted one."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator

COUNTED_STEPS = 4


def steps_to_count(start: int, end: int, k: int = COUNTED_STEPS) -> set[int]:
    """Up to `k` step indices spread evenly over [start, end): the first, the last and ones between."""
    if end <= start:
        return set()
    n = end - start
    m = min(k, n)
    return {start + (i * (n - 1)) // max(m - 1, 1) for i in range(m)}


class _Count:
    total: int | None = None


@contextlib.contextmanager
def counting(on: bool) -> Iterator[_Count]:
    """Inside the block, count FLOPs when `on` (the result's `.total` is set on leaving); otherwise do nothing."""
    result = _Count()
    if not on:
        yield result
        return
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        yield result
    result.total = int(counter.get_total_flops())


def step_flops(objective, batch: tuple, autocast: Callable[[], contextlib.AbstractContextManager]) -> int:
    """FLOPs of one forward + backward of `objective.training_loss(*batch)`, counted on a deep copy of the objective
    so that the run's weights, gradients and normalisation statistics are untouched; `autocast()` gives the run's
    precision context."""
    twin = copy.deepcopy(objective)
    with counting(True) as result:
        with autocast():
            loss, _ = twin.training_loss(*batch)
        loss.backward()
    return result.total


def total_flops(counted: list[int], steps: int) -> float | None:
    """The run's training FLOPs: the mean counted step times `steps` (None when no step was counted)."""
    return sum(counted) / len(counted) * steps if counted else None
