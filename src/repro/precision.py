"""`precision="auto"` (the training default): train in whichever of fp32 and bf16 autocast is faster on this
machine for this model shape, measured on a copy of the model at the start of a run, the choice cached per machine
and shape and recorded with the run. bf16 is taken only when clearly faster: fp32 is the exact reference."""

from __future__ import annotations

import copy
import datetime
import json
import logging
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .files import atomic_write_text
from .models import CLIPConfig
from .train_config import TrainConfig

log = logging.getLogger(__name__)


#: what `precision="auto"` chooses from on a CPU, the exact one first
CANDIDATES = ("fp32", "bf16")
#: untimed and timed training steps of each candidate that `precision="auto"` runs (on a copy of the model)
AUTO_WARMUP, AUTO_TIMED = 2, 3
#: a candidate other than fp32 is chosen only when it takes less than this fraction of fp32's time per step: a
#: 3-step measurement varies by several per cent, and fp32 is the exact reference
AUTO_MARGIN = 0.9
#: bumped when a precision's code path changes enough to make cached choices stale
AUTO_VERSION = 1


def precision_cache() -> Path:
    """Where `precision="auto"` keeps its choices per machine and model shape: `precision.json` in the data
    directory (`REPRO_DATA`, else the user cache). Every seed of a sweep, and a rerun of an interrupted experiment,
    then trains in the precision measured first; delete the file to measure again. `REPRO_PRECISION_CACHE`, if set,
    names another file (the test suite keeps its own)."""
    from .data.sources import data_dir

    return Path(os.environ.get("REPRO_PRECISION_CACHE") or data_dir() / "precision.json")


def choose_precision(seconds: dict[str, float], margin: float = AUTO_MARGIN) -> str:
    """The precision with the fewest seconds per step among `seconds` ({"fp32": s, "bf16": s, ...}), where anything
    but fp32 must beat fp32 by `margin` (take less than margin × fp32's time)."""
    if not seconds:
        raise ValueError("choose_precision needs at least one measured precision")
    bound = seconds.get("fp32", math.inf) * margin
    others = {p: t for p, t in seconds.items() if p != "fp32" and t < bound}
    if others:
        return min(others, key=others.__getitem__)
    return "fp32" if "fp32" in seconds else min(seconds, key=seconds.__getitem__)


def autocast_for(precision: str, device: torch.device) -> torch.autocast:
    """bf16 autocast (matrix products and convolutions in bf16; weights, layer norms and the loss stay fp32) or
    nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def _seconds_per_step(step: Callable[[], None], warmup: int, timed: int, device: torch.device) -> list[float]:
    """Wall-clock seconds of each of `timed` calls of `step`, after `warmup` untimed ones."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        step()
    out = []
    for _ in range(timed):
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        out.append(time.perf_counter() - t0)
    return out


def measure_precisions(objective: nn.Module, make_optimizer: Callable[[nn.Module], torch.optim.Optimizer],
                       batch: tuple, device: torch.device, candidates: tuple[str, ...] = CANDIDATES,
                       warmup: int = AUTO_WARMUP, timed: int = AUTO_TIMED) -> dict[str, list[float]]:
    """Seconds of each timed training step (loss, backward, optimiser step) of each candidate precision on `batch`
    (images, texts, labels), each on a fresh deep copy of `objective` with its own throw-away optimiser, the RNG
    state restored afterwards: the run's model, optimiser and random streams are untouched."""
    out = {}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for precision in candidates:
            trial = copy.deepcopy(objective)
            trial.train()
            opt = make_optimizer(trial)

            def step(trial: nn.Module = trial, opt: torch.optim.Optimizer = opt, precision: str = precision) -> None:
                with autocast_for(precision, device):
                    loss, _ = trial.training_loss(*batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                trial.after_step()

            out[precision] = _seconds_per_step(step, warmup, timed, device)
            del trial, opt
    return out


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), platform.processor())
    except OSError:
        return platform.processor()


def auto_key(config: TrainConfig, clip_config: CLIPConfig, device: torch.device, per_rank: int) -> str:
    """The machine (CPU, cores, threads, torch), the code version and the shape of the step: what a choice holds
    for."""
    return json.dumps({"machine": [_cpu_name(), os.cpu_count(), torch.get_num_threads(), torch.__version__,
                                   AUTO_VERSION, str(device)],
                       "step": [clip_config.to_dict(), config.objective, per_rank, config.baseline_depth,
                                config.baseline_width, config.data_size]}, sort_keys=True)


def _read_choices(path: Path) -> dict:
    try:
        choices = json.loads(path.read_text(encoding="utf-8"))
        return choices if isinstance(choices, dict) else {}
    except (OSError, ValueError):
        return {}


def resolve_precision(config: TrainConfig, device: torch.device, meta: dict | None,
                      measure: Callable[[], dict[str, list[float]]], key: str, cache: Path | None = None) -> dict:
    """What the run trains in and why: {"requested", "used", "how"; after a measurement also "seconds_per_step"
    (the median of each candidate's timed steps), "samples", "margin", "measured_at"}. `how`: "explicit" (fp32 or
    bf16 was asked for), "resumed" (the precision the checkpoint's run used), "cuda" (bf16 where the GPU supports
    it), "measured" (`measure()` now) or "cached" (an earlier measurement for the same `key` in the JSON file
    `cache`, which a new measurement is added to)."""
    requested = config.precision
    if requested != "auto":
        return {"requested": requested, "used": requested, "how": "explicit"}
    before = (meta or {}).get("precision")
    if before:
        return before | {"how": "resumed"}
    if device.type == "cuda":
        return {"requested": "auto", "used": "bf16" if torch.cuda.is_bf16_supported() else "fp32", "how": "cuda"}
    if device.type != "cpu":
        return {"requested": "auto", "used": "fp32", "how": f"no measurement on {device.type}"}
    choices = _read_choices(cache) if cache is not None else {}
    if isinstance(choices.get(key), dict) and choices[key].get("used") in CANDIDATES:
        return choices[key] | {"how": "cached", "cache": str(cache)}
    samples = measure()
    seconds = {p: statistics.median(t) for p, t in samples.items()}
    choice = {"requested": "auto", "used": choose_precision(seconds), "how": "measured", "seconds_per_step": seconds,
              "samples": samples, "margin": AUTO_MARGIN,
              "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(cache, json.dumps(_read_choices(cache) | {key: choice}, indent=1))
        except OSError as e:
            log.warning("could not record the precision choice in %s: %s", cache, e)
    return choice
