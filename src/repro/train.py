"""Training (paper §2.5): one loop for every objective, on packed uint8 images held in (GPU) memory.

AdamW with decoupled weight decay on weights only (not gains, biases or the temperature), Adam β/ε per family,
linear warmup then cosine decay, the random square crop as the only augmentation, bf16 autocast (fp32 master
weights, layer norms and loss) where a short measurement at the start finds it faster (`precision="auto"`), optional
torch.compile, data parallelism through torchrun + DDP with the global-batch contrastive loss, atomic checkpoints
that resume to the very same loss curve, a progress bar and a JSONL log.

Every random draw of a step (batch order, caption choice, crops) comes from generators seeded by (seed, epoch) or
(seed, step) and drawn for the whole global batch, so a resumed run and a run on any number of ranks see the same
data as one uninterrupted process.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors import SafetensorError
from torch import nn
from tqdm.auto import tqdm

from . import flops as flop_count
from . import runs
from .checkpoint import load_state, save_state
from .config import progress_disabled
from .data.pack import load_packed
from .data.tensors import crop_params, normalize, square_crop, to_float
from .loading import save as save_model
from .models import CLIPConfig
from .optim import adam_settings, logit_scale_reach, lr_lambda, lr_sum, param_groups
from .precision import auto_key, autocast_for, measure_precisions, precision_cache, resolve_precision
from .provenance import concept_fingerprint, corpus_identity
from .tokenizer import Tokenizer
from .train_config import TrainConfig

__all__ = ["CheckpointNotWritten", "TrainConfig", "TrainData", "TrainingDiverged", "adam_settings",
           "corpus_identity", "load_state", "logit_scale_reach", "lr_lambda", "lr_sum", "param_groups", "read_log",
           "train"]

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class CheckpointNotWritten(RuntimeError):
    """A checkpoint could not be written (a full disk, …); the previous one is intact and the run stops."""


def _device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and dist.is_initialized():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device(name)


def _init_distributed() -> tuple[int, int]:
    """(rank, world size); initialises the process group when launched by torchrun with several processes."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


#: the last training split tokenized in this process: {"key": (file, tokenizer, context, rows), "tokens": ...}
_TOKENIZED: dict = {}


class TrainData:
    """The training split in memory: uint8 images and every caption, tokenized once, as tensors on `device` (and
    integer labels of `config.label` for the supervised objective, whose rows without a label are left out)."""

    def __init__(self, config: TrainConfig, tokenizer: Tokenizer, context_length: int, device: torch.device):
        path = Path(config.corpus_dir) / "packed" / f"{config.train_split}_{config.data_size}.npz"
        packed = load_packed(path)
        n = len(packed) if config.max_train_images is None else min(len(packed), config.max_train_images)
        keep = list(range(n))
        self.classes: list[str] = []
        self.labels: torch.Tensor | None = None
        if config.objective == "supervised":
            if config.label not in packed.fields:
                raise ValueError(f"{path}: no label field {config.label!r}; fields: {sorted(packed.fields)}")
            values = packed.fields[config.label]
            self.classes = list(config.label_classes or sorted(set(values[:n]) - {""}))
            if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
                raise ValueError(f"{path}: label field {config.label!r} needs 2 or more distinct classes, got "
                                 f"{self.classes[:5]}")
            wanted = set(self.classes)
            keep = [i for i in keep if values[i] in wanted]
            index = {c: k for k, c in enumerate(self.classes)}
            self.labels = torch.tensor([index[values[i]] for i in keep], device=device)
        if not keep:
            raise ValueError(f"{path}: the training split is empty")
        self.images = torch.from_numpy(packed.images[keep]).to(device)
        captions = [packed.captions[i] for i in keep]
        self.fields = {k: [v[i] for i in keep] for k, v in packed.fields.items()}
        counts = torch.tensor([len(c) for c in captions])
        if (counts == 0).any():
            raise ValueError(f"{path}: image {keep[int((counts == 0).nonzero()[0])]} has no caption")
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
        self.counts = counts
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, hash(tokenizer.merges), context_length,
               hash(tuple(keep)))
        if _TOKENIZED.get("key") != key:  # a sweep in one process tokenizes its training captions once
            _TOKENIZED.clear()
            _TOKENIZED.update(key=key, tokens=tokenizer([c for cs in captions for c in cs], context_length,
                                                        truncate=True))
        tokens = _TOKENIZED["tokens"]
        self.lengths = tokens.argmax(-1) + 1  # through the end token, the largest id; on the CPU, like the indices
        self.tokens = tokens.to(device)

    def __len__(self) -> int:
        return len(self.images)


def build_tokenizer(config: TrainConfig, vocab_size: int) -> Tokenizer:
    if config.tokenizer == "openai":
        return Tokenizer.from_openai_bpe()
    if config.tokenizer != "train":
        return Tokenizer.load(config.tokenizer)
    packed = load_packed(Path(config.corpus_dir) / "packed" / f"{config.train_split}_{config.data_size}.npz")
    texts = [c for cs in packed.captions[: config.max_train_images] for c in cs]
    return Tokenizer.train(texts, vocab_size)


class _Step(nn.Module):
    """Gives the objective a `forward` so DistributedDataParallel can wrap it."""

    def __init__(self, objective: nn.Module) -> None:
        super().__init__()
        self.objective = objective

    def forward(self, images: torch.Tensor, texts: torch.Tensor, labels: torch.Tensor | None = None):
        return self.objective.training_loss(images, texts, labels)


def _optimizer_state(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors = {f"optim.{i}.{k}": v for i, st in sd["state"].items() for k, v in st.items() if torch.is_tensor(v)}
    keys = {str(i): [k for k, v in st.items() if torch.is_tensor(v)] for i, st in sd["state"].items()}
    return tensors, {"param_groups": sd["param_groups"], "state_keys": keys}


def save_checkpoint(path: Path, objective: nn.Module, opt, sched, step: int, tokenizer: Tokenizer,
                    config: TrainConfig, corpus: dict | None = None, precision: dict | None = None,
                    flops: dict[int, int] | None = None) -> None:
    """Weights, optimiser moments, scheduler and RNG state in one safetensors file, written atomically; the file
    it replaces is kept as checkpoint.prev.safetensors; `precision` (`resolve_precision`'s record) goes with them,
    so a resumed `auto` run keeps the precision it chose, and so do the FLOPs counted so far ({step: FLOPs}), so a
    resumed run reports the same training compute. A failed write (a full disk) raises CheckpointNotWritten and
    leaves both files as they were."""
    tensors = {f"model.{k}": v for k, v in objective.state_dict().items()}
    opt_tensors, opt_meta = _optimizer_state(opt)
    tensors |= opt_tensors | {"rng.cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    try:
        runs.keep_previous(path)
        save_state(path, tensors, {"step": step, "optimizer": opt_meta, "scheduler": sched.state_dict(),
                                   "tokenizer": tokenizer.to_dict(), "train_config": asdict(config),
                                   "corpus": corpus, "precision": precision,
                                   "flops_counted": {str(k): v for k, v in (flops or {}).items()}})
    except (OSError, SafetensorError) as e:
        kept = f"{path} (step {load_state(path)[1]['step']})" if path.is_file() else "absent (none was written yet)"
        raise CheckpointNotWritten(f"could not write the checkpoint of step {step} to {path}: {e}; the previous "
                                   f"checkpoint is intact: {kept}. Free space and resume the run") from e


def restore_checkpoint(tensors: dict, meta: dict, objective: nn.Module, opt, sched, device: torch.device) -> int:
    """Restore what `save_checkpoint` wrote (tensors and metadata as `load_state` reads them); returns its step."""
    objective.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    state = {int(i): {k: tensors[f"optim.{i}.{k}"].to(device) for k in keys}
             for i, keys in meta["optimizer"]["state_keys"].items()}
    opt.load_state_dict({"state": state, "param_groups": meta["optimizer"]["param_groups"]})
    sched.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng.cpu"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return int(meta["step"])


def load_checkpoint(path: Path, objective: nn.Module, opt, sched, device: torch.device) -> int:
    """Restore the checkpoint file `path`; returns the step to continue from."""
    return restore_checkpoint(*load_state(path), objective, opt, sched, device)


def _packed_train_file(config: TrainConfig) -> Path:
    """The packed training split, or a clear error when corpus_dir is not a built corpus that has it."""
    corpus = Path(config.corpus_dir)
    path = corpus / "packed" / f"{config.train_split}_{config.data_size}.npz"
    if not config.corpus_dir or not (corpus / "packed").is_dir():
        raise FileNotFoundError(f"corpus_dir {config.corpus_dir!r} is not a built corpus (no packed/ folder): "
                                "build one with `repro data build` and set corpus_dir to it")
    if not path.is_file():
        have = sorted(p.name for p in path.parent.glob("*.npz"))
        raise FileNotFoundError(f"{path} is missing: split {config.train_split!r} is not packed at "
                                f"{config.data_size} px (packed: {', '.join(have) or 'none'})")
    return path


def train(config: TrainConfig, resume: bool = False, stop_after: int | None = None,
          callback: Callable[[int, nn.Module], None] | None = None, replace: bool = False) -> dict:
    """Train as `config` says; returns a summary (steps, loss, throughput, paths). `resume` continues the run in
    out_dir from its checkpoint (refusing changed settings and an out_dir that holds no run); without it, an
    out_dir that holds a run is an error unless `replace` (the old run's files are then removed, with a warning).
    See `repro.runs` for what keeps a run folder whole. `stop_after` ends the process's work after that many steps
    (for tests of interrupted runs) without changing the schedule. `callback(steps_done, objective)` runs on rank 0
    after every optimizer step (e.g. to evaluate during training, for curves against images seen); the objective is
    back in training mode afterwards and its time is not counted in the throughput.

    `precision="auto"` times a few steps of fp32 and of bf16 autocast on a copy of the model before training (see
    `resolve_precision`) and trains in the faster; the summary's "precision" says which ran and
    "precision_choice" why (with the seconds per step measured), as does every log row ("precision") and the
    checkpoint. The measurement (eager steps, also with `compile`) is not counted in the throughput either.

    The summary's "flops" is the training compute, counted (`repro.flops`): the FLOPs of a few steps' forward and
    backward and their mean times the number of steps."""
    from .objectives import make_objective

    rank, world = _init_distributed()
    device = _device(config.device)
    out = Path(config.out_dir)
    ckpt_path, log_path = out / runs.CHECKPOINT, out / runs.LOG
    if config.batch_size % world:
        raise ValueError(f"batch_size {config.batch_size} is not divisible by the {world} processes")
    _packed_train_file(config)
    clip_config = config.clip_config()
    begin = runs.plan(config, resume, replace)
    if begin.meta is not None:
        tokenizer = Tokenizer.from_dict(begin.meta["tokenizer"], source=str(begin.path))
    else:
        tokenizer = build_tokenizer(config, clip_config.vocab_size)
    if tokenizer.vocab_size != clip_config.vocab_size:
        clip_config = CLIPConfig.from_dict(clip_config.to_dict() | {"vocab_size": tokenizer.vocab_size})
    data = TrainData(config, tokenizer, clip_config.context_length, device)
    corpus = corpus_identity(config) | {"n_train": len(data), "concepts": concept_fingerprint(data.fields["name"])}
    before = (begin.meta or {}).get("corpus") or {}
    if before.get("train_sha256") not in (None, corpus["train_sha256"]):
        raise runs.RunFolderError(
            f"cannot resume the run in {out}: its training split {corpus['train_file']} changed since the "
            f"checkpoint (sha256 {before['train_sha256'][:12]}… -> {corpus['train_sha256'][:12]}…)")
    torch.manual_seed(config.seed)
    temperature = {"learnable": {}, "unclamped": {"clamp": None},
                   "fixed": {"learn_temperature": False, "fixed_temperature": config.fixed_temperature}}
    kw = temperature[config.temperature] if config.objective in ("clip", "bow-contrastive") else {}
    if config.objective == "supervised":
        kw = {"num_classes": len(data.classes), "width": config.baseline_width, "depth": config.baseline_depth}
    objective = make_objective(config.objective, clip_config, **kw)
    objective.to(device)
    betas, eps = adam_settings(config)

    def make_optimizer(module: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.AdamW(param_groups(module, config.weight_decay), lr=config.lr, betas=betas, eps=eps,
                                 fused=device.type in ("cpu", "cuda") or None)  # fused: one kernel, same update

    opt = make_optimizer(objective)
    steps_per_epoch = len(data) // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size {config.batch_size} exceeds the {len(data)} training images")
    total = config.steps or max(1, int(config.epochs * steps_per_epoch))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(min(config.warmup_steps, total), total))
    start = 0
    if begin.tensors is not None:
        start = restore_checkpoint(begin.tensors, begin.meta, objective, opt, sched, device)
        begin.tensors = None  # the weights now live in the objective
        log.info("resumed from %s at step %d", begin.path, start)
    if world > 1:
        dist.barrier()  # every rank has read the folder before rank 0 changes it
    if rank == 0:
        runs.begin(config, begin, resume)
    step_module: nn.Module = _Step(objective)
    if world > 1:
        step_module = nn.parallel.DistributedDataParallel(step_module, device_ids=[device.index] if device.index
                                                          is not None else None)
    forward = torch.compile(step_module) if config.compile else step_module
    per_rank = config.batch_size // world
    res = clip_config.image_resolution

    def batch_at(step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """This rank's (images, texts, labels) of `step`, from generators seeded by (seed, epoch) and (seed, step)."""
        epoch, k = divmod(step, steps_per_epoch)
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(config.seed * 1000003 + epoch))
        g = torch.Generator().manual_seed(config.seed * 1000003 + 7919 * (step + 1))
        batch = order[k * config.batch_size:(k + 1) * config.batch_size]
        caption = data.offsets[batch] + (torch.rand(config.batch_size, generator=g) * data.counts[batch]).long()
        scale, shift = crop_params(config.batch_size, config.min_crop_scale, g, device)
        mine = slice(rank * per_rank, (rank + 1) * per_rank)
        length = int(data.lengths[caption].max())  # the global batch's longest caption: the same on every rank
        index = batch[mine].to(device)
        images = normalize(square_crop(to_float(data.images[index]), res, scale[mine], shift[mine]))
        texts = data.tokens[caption[mine].to(device), :length]
        labels = data.labels[index] if data.labels is not None else None
        return images, texts, labels

    end = total if stop_after is None else min(total, start + stop_after)
    measured = time.time()
    precision = None
    if rank == 0 or config.precision != "auto":  # with auto, every rank trains in rank 0's choice
        precision = resolve_precision(
            config, device, begin.meta, key=auto_key(config, clip_config, device, per_rank), cache=precision_cache(),
            measure=lambda: measure_precisions(objective, make_optimizer, batch_at(min(start, total - 1)), device))
    if world > 1 and config.precision == "auto":
        shared = [precision]
        dist.broadcast_object_list(shared, src=0, device=device if device.type == "cuda" else None)
        precision = shared[0]
    if rank == 0 and precision["how"] != "explicit":
        timing = ", ".join(f"{p} {s:.3f} s/step" for p, s in precision.get("seconds_per_step", {}).items())
        log.info("precision auto -> %s (%s%s; %.1f s)", precision["used"], precision["how"],
                 f": {timing}" if timing else "", time.time() - measured)
    used = precision["used"]
    autocast = autocast_for(used, device)
    bar = tqdm(total=total, initial=start, desc="train", unit="step", disable=rank != 0 or not config.progress
               or progress_disabled())
    t0, seen, last = time.time(), 0, {}
    # the same steps are counted however often the run is interrupted: chosen over the whole run, kept in checkpoints
    count_at = flop_count.steps_to_count(0, total)
    counted = {int(k): v for k, v in ((begin.meta or {}).get("flops_counted") or {}).items() if int(k) < start}
    for step in range(start, end):
        images, texts, labels = batch_at(step)
        if step in count_at:  # the FLOPs of this step's forward + backward, on a copy (repro.flops); not timed
            paused = time.time()
            counted[step] = world * flop_count.step_flops(objective, (images, texts, labels),
                                                          lambda: autocast_for(used, device))
            t0 += time.time() - paused
        with autocast:
            loss, metrics = forward(images, texts, labels)
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"loss is {loss.item()} at step {step} (lr {sched.get_last_lr()[0]:.3g}); the last good checkpoint "
                f"is {ckpt_path if ckpt_path.is_file() else 'absent (none was written yet)'}"
            )
        lr = sched.get_last_lr()[0]  # the rate this step uses
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        objective.after_step()
        seen += config.batch_size
        bar.update(1)
        if rank == 0 and ((step + 1) % config.log_every == 0 or step + 1 == total):
            last = {"step": step + 1, "epoch": round((step + 1) / steps_per_epoch, 4), "loss": loss.item(),
                    "lr": lr, **{k: float(v) for k, v in metrics.items() if k != "loss"},
                    "img_s": seen / (time.time() - t0), "precision": used}
            with open(log_path, "a") as f:
                f.write(json.dumps(last) + "\n")
            bar.set_postfix(loss=f"{last['loss']:.3f}")
        if rank == 0 and ((step + 1) % config.checkpoint_every == 0 or step + 1 == total):
            save_checkpoint(ckpt_path, objective, opt, sched, step + 1, tokenizer, config, corpus, precision,
                            counted)
        if callback is not None and rank == 0:
            paused = time.time()
            callback(step + 1, objective)
            objective.train()
            t0 += time.time() - paused
    bar.close()
    wall = time.time() - t0
    if not last and rank == 0 and log_path.is_file():
        last = (read_log(log_path) or [{}])[-1]  # a resumed run that had nothing left to do
    if rank == 0 and end == total and hasattr(objective.model, "encode_text") and hasattr(objective.model, "visual"):
        if config.objective == "clip":
            save_model(out / "model.safetensors", objective.model, tokenizer, step=total, corpus=corpus)
    if world > 1:
        dist.barrier()
    return {"steps": end, "total_steps": total, "final": last, "wall_time_s": wall, "img_s": seen / max(wall, 1e-9),
            "checkpoint": str(ckpt_path), "log": str(log_path), "tokenizer": tokenizer, "objective": objective,
            "clip_config": clip_config, "precision": used, "precision_choice": precision,
            "corpus": {k: corpus[k] for k in ("name", "stamp", "train_file", "train_sha256", "n_train")},
            "flops": {"per_step_counted": [counted[k] for k in sorted(counted)],
                      "total": flop_count.total_flops([counted[k] for k in sorted(counted)], total) if end == total
                      else None}}


def read_log(path: str | os.PathLike) -> list[dict]:
    """The JSONL metrics of a run."""
    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]
