"""Model FLOPs utilisation (MFU) of repro's CLIP training step on this machine, fp32 and bf16, and the bf16 loss curve.

MFU = model FLOPs per training step / step time / the machine's GEMM ceiling for that precision, the ceiling measured
in the same run (`torch.matmul` at the step's own matrix sizes plus a large square product; the best rate counts).

Model FLOPs (`step_flops`) are counted from the model's shapes, as this implementation evaluates it: every matrix
product of both towers' forward — patch embedding, q/k/v, attention scores and values, out-projection, MLP, the
final projections and the N×N logits — with the text tower on its real (packed) tokens and attention over each
batch's longest caption, and the last block of each tower only at the pooled token (`Transformer.forward_at`);
×3 for forward and backward. Layer norms, softmax, GELU, biases and the optimiser are not counted. The count is
checked against `torch.utils.flop_counter` on one fp32 step.

Variants of the step (each on its own copy of the model, fused AdamW as `repro.train` builds it, timed in interleaved
rounds after warm-up): fp32; bf16 = autocast with `repro.models.layers.BF16_CPU_ATTENTION` (the default bf16 path on
a CPU); bf16-plain = autocast with the plain-autograd `math_attention`; bf16-sdpa = autocast through SDPA's fused
kernel (the bf16 path before this benchmark existed; slow, so only with --sdpa).

    python benchmarks/bench_mfu.py --json benchmarks/results/mfu.json
    python benchmarks/bench_mfu.py --models w256 --variants fp32,bf16 --profile bf16@w256
    python benchmarks/bench_mfu.py --skip-steps --curves ~/.cache/clip-repro/build/full --tokenizer train
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F

from repro.models import PRESETS, CLIPConfig, layers
from repro.objectives import make_objective
from repro.train import param_groups

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_clip import random_batch  # noqa: E402

#: the models timed: the `cpu` profile's clip_small model (ViT-XS/8@32px, widths 128) and a width-256 ViT
MODELS = {
    "cpu": ("ViT-XS/8@32px", {}, 256),
    "w256": ("ViT-T/4@32px", {}, 256),
}
VARIANTS = ("fp32", "bf16", "bf16-plain", "bf16-sdpa")


def machine() -> dict:
    """CPU model, the bf16 / AMX flags, cores, threads, torch, date and load average."""
    info: dict = {"cpu": platform.processor(), "flags": []}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        fields = dict(ln.split(":", 1) for ln in out.splitlines() if ":" in ln)
        info["cpu"] = fields.get("Model name", info["cpu"]).strip()
        flags = fields.get("Flags", "").split()
        info["flags"] = sorted(f for f in flags if f.startswith("amx") or f in ("avx512_bf16", "avx512f", "avx2"))
    return info | {"cores": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                   "python": platform.python_version(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                   "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                   "loadavg": os.getloadavg()}


def step_flops(c: CLIPConfig, batch: int, lengths: torch.Tensor) -> dict[str, float]:
    """Forward matrix-product FLOPs of one CLIP training step (see the module docstring), and "train" = 3 × that.
    `lengths`: each caption's tokens through its end token."""
    b, e = batch, c.embed_dim
    grid = c.image_resolution // c.vision_patch_size
    n, w, depth = grid * grid + 1, c.vision_width, c.vision_layers
    vision = 2 * b * grid * grid * 3 * c.vision_patch_size**2 * w  # patch embedding
    vision += (depth - 1) * (2 * b * n * 12 * w * w + 4 * b * n * n * w)  # full blocks
    vision += 2 * b * n * 2 * w * w + 2 * b * 10 * w * w + 4 * b * n * w  # last block: k, v everywhere; the rest at 1
    vision += 2 * b * w * e
    tokens, longest = int(lengths.sum()), int(lengths.max())
    tw, tl = c.transformer_width, c.transformer_layers
    text = (tl - 1) * (2 * tokens * 12 * tw * tw + 4 * b * longest * longest * tw)
    text += 2 * tokens * 2 * tw * tw + 2 * b * 10 * tw * tw + 4 * b * longest * tw
    text += 2 * b * tw * e
    logits = 2 * b * b * e
    forward = vision + text + logits
    return {"vision": vision, "text": text, "logits": logits, "forward": forward, "train": 3 * forward}


def counted_flops(step: Callable[[], None]) -> int:
    """FLOPs of one call of `step` as torch's FlopCounterMode counts them (matrix products, convolutions, SDPA;
    forward and backward as executed)."""
    from repro.flops import counting

    with counting(True) as counted:
        step()
    return counted.total


def gemm_shapes(c: CLIPConfig, batch: int, lengths: torch.Tensor) -> list[tuple[int, int, int]]:
    """(m, k, n) of the step's main products: the vision and text blocks' q/k/v, MLP in and out, a weight gradient,
    and 2048³ for the machine's peak."""
    n = (c.image_resolution // c.vision_patch_size) ** 2 + 1
    w, tw, tokens = c.vision_width, c.transformer_width, int(lengths.sum())
    rows = batch * n
    return [(rows, w, 3 * w), (rows, w, 4 * w), (rows, 4 * w, w), (w, rows, 4 * w), (tokens, tw, 3 * tw),
            (tokens, tw, 4 * tw), (2048, 2048, 2048)]


def gemm_rates(shapes: list[tuple[int, int, int]], dtype: torch.dtype, repeats: int) -> dict[str, float]:
    """GFLOP/s of `torch.matmul` per shape (median over `repeats` after 3 warm-up calls)."""
    out = {}
    g = torch.Generator().manual_seed(0)
    for m, k, n in shapes:
        a, b = torch.randn(m, k, generator=g).to(dtype), torch.randn(k, n, generator=g).to(dtype)
        for _ in range(3):
            torch.matmul(a, b)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.matmul(a, b)
            times.append(time.perf_counter() - t0)
        out[f"{m}x{k}x{n}"] = 2 * m * k * n / statistics.median(times) / 1e9
    return out


@contextlib.contextmanager
def bf16_attention(kind: str) -> Iterator[None]:
    """Route bf16 CPU attention through `kind`: "fused" (the default), "plain" or "sdpa"."""
    fn = {"fused": layers.fused_math_attention, "plain": layers.math_attention,
          "sdpa": F.scaled_dot_product_attention}[kind]
    before = layers.BF16_CPU_ATTENTION
    layers.BF16_CPU_ATTENTION = fn
    try:
        yield
    finally:
        layers.BF16_CPU_ATTENTION = before


def make_step(objective: torch.nn.Module, variant: str, images: torch.Tensor, texts: torch.Tensor
              ) -> Callable[[], float]:
    """One training step of `variant` on its own copy of `objective` (fused AdamW as repro.train builds it);
    returns the loss."""
    model = copy.deepcopy(objective).train()
    opt = torch.optim.AdamW(param_groups(model, 0.2), lr=1e-4, betas=(0.9, 0.98), eps=1e-6, fused=True)
    bf16 = variant.startswith("bf16")
    kind = variant.split("-", 1)[1] if "-" in variant else "fused"

    def step() -> float:
        with bf16_attention(kind), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = model.training_loss(images, texts)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.after_step()
        return loss.item()

    return step


def time_steps(steps: dict[str, Callable[[], float]], rounds: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per call of each step, interleaved: every round runs each once, the order rotated."""
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    names, out = list(steps), {k: [] for k in steps}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            t0 = time.perf_counter()
            steps[name]()
            out[name].append(time.perf_counter() - t0)
        print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in out.items()), flush=True)
    return out


def profile_step(step: Callable[[], float], top: int = 25) -> str:
    """The top operators (self CPU time) of one step, as torch.profiler's table."""
    from torch.profiler import profile

    step()
    with profile() as p:
        step()
    return p.key_averages().table(sort_by="self_cpu_time_total", row_limit=top)


def bench_model(key: str, args: argparse.Namespace, ceilings: dict[str, float]) -> dict:
    preset, overrides, batch = MODELS[key]
    batch = args.batch or batch
    c = CLIPConfig.from_dict(PRESETS[preset].to_dict() | overrides)
    torch.manual_seed(0)
    objective = make_objective("clip", c)
    images, texts = random_batch(c, batch, args.caption_len, torch.device("cpu"))
    texts = texts[:, : int(texts.argmax(-1).max()) + 1]  # what repro.train feeds: cut after the last end token
    lengths = texts.argmax(-1) + 1
    flops = step_flops(c, batch, lengths)
    counted = counted_flops(make_step(objective, "fp32", images, texts))
    print(f"\n[{key}] {preset} {overrides or ''} batch {batch}, text {tuple(texts.shape)} ({int(lengths.sum())} "
          f"real tokens): {flops['train'] / 1e9:.2f} GFLOP per step counted from shapes, "
          f"{counted / 1e9:.2f} by torch's FlopCounterMode (fp32 step; ratio {counted / flops['train']:.3f})")
    variants = [v for v in args.variants.split(",") if v != "bf16-sdpa" or args.sdpa]
    steps = {v: make_step(objective, v, images, texts) for v in variants}
    first_loss = {v: fn() for v, fn in steps.items()}  # also a warm-up call
    seconds = time_steps(steps, args.rounds, max(0, args.warmup - 1))
    out = {"preset": preset, "overrides": overrides, "batch": batch, "text_shape": list(texts.shape),
           "text_tokens": int(lengths.sum()), "flops": flops, "flops_counted_fp32": counted,
           "first_loss": first_loss, "variants": {}}
    for v, s in seconds.items():
        med = statistics.median(s)
        achieved = flops["train"] / med / 1e9
        ceiling = ceilings["bf16" if v.startswith("bf16") else "fp32"]
        out["variants"][v] = {"seconds": s, "median_s": med, "img_s": batch / med, "gflop_s": achieved,
                              "mfu": achieved / ceiling, "mfu_of_fp32_ceiling": achieved / ceilings["fp32"]}
    if "fp32" in seconds:
        for v in seconds:
            paired = [a / b for a, b in zip(seconds["fp32"], seconds[v], strict=True)]
            out["variants"][v]["speedup_over_fp32"] = {"paired_median": statistics.median(paired),
                                                       "of_medians": out["variants"]["fp32"]["median_s"]
                                                       / out["variants"][v]["median_s"]}
    if args.auto:  # what precision="auto" measures and chooses for this step (repro.train's own code)
        from repro.precision import choose_precision, measure_precisions

        def optimizer(m: torch.nn.Module) -> torch.optim.Optimizer:
            return torch.optim.AdamW(param_groups(m, 0.2), lr=1e-4, betas=(0.9, 0.98), eps=1e-6, fused=True)

        samples = measure_precisions(objective, optimizer, (images, texts, None), torch.device("cpu"))
        medians = {k: statistics.median(v) for k, v in samples.items()}
        out["auto"] = {"samples": samples, "seconds_per_step": medians, "chosen": choose_precision(medians)}
        print(f"precision=auto measures {medians} and chooses {out['auto']['chosen']}")
    print(f"{'variant':<11} {'median s':>9} {'img/s':>7} {'GFLOP/s':>8} {'MFU':>6} {'vs fp32':>8}  first loss")
    for v, r in out["variants"].items():
        sp = r.get("speedup_over_fp32", {}).get("paired_median", float("nan"))
        print(f"{v:<11} {r['median_s']:9.3f} {r['img_s']:7.1f} {r['gflop_s']:8.1f} {r['mfu']:6.1%} {sp:7.2f}x  "
              f"{first_loss[v]:.5f}")
    return out


def curves(args: argparse.Namespace) -> dict:
    """fp32 and bf16 training of the width-256 model on a real corpus through `repro.train.train`, same seed and
    data: the loss at every step and the throughput the training loop reports."""
    from repro.train import TrainConfig, read_log, train

    preset, overrides, _ = MODELS["w256"]
    tokenizer = args.tokenizer
    if tokenizer not in ("train", "openai"):
        from repro.tokenizer import Tokenizer

        overrides = overrides | {"vocab_size": Tokenizer.load(tokenizer).vocab_size}
    out: dict = {"preset": preset, "overrides": overrides, "batch": args.curve_batch, "steps": args.curve_steps,
                 "corpus": str(args.curves), "images": args.curve_images, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("fp32", "bf16"):
            config = TrainConfig(corpus_dir=str(args.curves), out_dir=f"{tmp}/{precision}", model=preset,
                                 model_overrides=overrides, tokenizer=tokenizer, batch_size=args.curve_batch,
                                 steps=args.curve_steps, warmup_steps=10, lr=5e-4, log_every=1,
                                 checkpoint_every=10**6, precision=precision, progress=False, seed=0,
                                 max_train_images=args.curve_images)
            t0 = time.perf_counter()
            summary = train(config)
            rows = read_log(summary["log"])
            # the log's img_s is cumulative: t_k = images_k / img_s_k; the rate after the first 5 steps (warm-up)
            at = [r["step"] * args.curve_batch / r["img_s"] for r in rows]
            skip = min(5, len(rows) - 1)
            steady = (rows[-1]["step"] - rows[skip - 1]["step"]) * args.curve_batch / (at[-1] - at[skip - 1]) \
                if skip >= 1 else summary["img_s"]
            out["runs"][precision] = {"loss": [r["loss"] for r in rows], "img_s_after_5_steps": steady,
                                      "logit_scale": [r["logit_scale"] for r in rows], "img_s": summary["img_s"],
                                      "wall_time_s": summary["wall_time_s"], "total_s": time.perf_counter() - t0}
            print(f"[curves] {precision}: {summary['img_s']:.1f} img/s ({steady:.1f} after 5 steps), final loss "
                  f"{rows[-1]['loss']:.4f}", flush=True)
    a, b = out["runs"]["fp32"]["loss"], out["runs"]["bf16"]["loss"]
    diffs = [abs(x - y) for x, y in zip(a, b, strict=True)]
    out["abs_diff"] = {"max": max(diffs), "mean": sum(diffs) / len(diffs), "max_relative": max(
        d / x for d, x in zip(diffs, a, strict=True))}
    out["bf16_over_fp32_img_s"] = out["runs"]["bf16"]["img_s"] / out["runs"]["fp32"]["img_s"]
    out["bf16_over_fp32_img_s_after_5_steps"] = (out["runs"]["bf16"]["img_s_after_5_steps"]
                                                 / out["runs"]["fp32"]["img_s_after_5_steps"])
    d = out["abs_diff"]
    print(f"[curves] |loss difference| max {d['max']:.4f} (relative {d['max_relative']:.2%}), mean {d['mean']:.4f}; "
          f"bf16/fp32 throughput {out['bf16_over_fp32_img_s']:.2f}x "
          f"({out['bf16_over_fp32_img_s_after_5_steps']:.2f}x after 5 steps)")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS), help=f"of {list(MODELS)}")
    p.add_argument("--variants", default="fp32,bf16,bf16-plain", help=f"of {list(VARIANTS)}")
    p.add_argument("--sdpa", action="store_true", help="also time bf16-sdpa (slow)")
    p.add_argument("--batch", type=int, default=None, help="batch size for every model (default: each model's)")
    p.add_argument("--caption-len", type=int, default=16, help="captions' lengths uniform in [3, this] tokens")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--gemm-repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--auto", action="store_true", help="also run precision=auto's measurement and choice per model")
    p.add_argument("--skip-steps", action="store_true", help="only the GEMM ceilings (and --curves)")
    p.add_argument("--profile", default="", metavar="VARIANT@MODEL", help="torch.profiler table of one step")
    p.add_argument("--curves", type=Path, default=None, metavar="CORPUS_DIR",
                   help="also train the width-256 model in fp32 and bf16 on this built corpus, loss at every step")
    p.add_argument("--tokenizer", default="train", help="for --curves: 'train' (learn BPE first) or a JSON path")
    p.add_argument("--curve-batch", type=int, default=128)
    p.add_argument("--curve-steps", type=int, default=30)
    p.add_argument("--curve-images", type=int, default=8192, help="the first this many training images (one epoch "
                   "must hold --curve-steps batches)")
    p.add_argument("--json", metavar="OUT")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine()
    print(f"machine: {info}")
    result: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "machine": info, "models": {}}
    shapes: list[tuple[int, int, int]] = []
    for key in args.models.split(","):
        preset, overrides, batch = MODELS[key]
        c = CLIPConfig.from_dict(PRESETS[preset].to_dict() | overrides)
        _, texts = random_batch(c, args.batch or batch, args.caption_len, torch.device("cpu"))
        shapes += [s for s in gemm_shapes(c, args.batch or batch, texts.argmax(-1) + 1) if s not in shapes]
    rates = {name: gemm_rates(shapes, dtype, args.gemm_repeats)
             for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    ceilings = {name: max(r.values()) for name, r in rates.items()}
    result["gemm_gflop_s"], result["ceiling_gflop_s"] = rates, ceilings
    print("GEMM GFLOP/s (torch.matmul, m x k x n):")
    for shape in rates["fp32"]:
        print(f"  {shape:<20} fp32 {rates['fp32'][shape]:8.1f}   bf16 {rates['bf16'][shape]:8.1f}")
    print(f"ceilings: fp32 {ceilings['fp32']:.1f} GFLOP/s, bf16 {ceilings['bf16']:.1f} GFLOP/s "
          f"({ceilings['bf16'] / ceilings['fp32']:.2f}x)")
    if not args.skip_steps:
        for key in args.models.split(","):
            result["models"][key] = bench_model(key, args, ceilings)
    if args.profile:
        variant, key = args.profile.split("@")
        preset, overrides, batch = MODELS[key]
        c = CLIPConfig.from_dict(PRESETS[preset].to_dict() | overrides)
        torch.manual_seed(0)
        images, texts = random_batch(c, args.batch or batch, args.caption_len, torch.device("cpu"))
        texts = texts[:, : int(texts.argmax(-1).max()) + 1]
        table = profile_step(make_step(make_objective("clip", c), variant, images, texts))
        print(f"\n[profile {variant}@{key}]\n{table}")
        result["profile"] = {"what": args.profile, "table": table}
    if args.curves:
        result["curves"] = curves(args)
    result["machine"]["loadavg_end"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
