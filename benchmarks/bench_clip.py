"""Throughput of repro's CLIP against Hugging Face `transformers.CLIPModel` (and open_clip) configured identically.

Both models get the same weights (ours copied into HF's layout, outputs checked to agree) and the same random batch.
Timed interleaved round-robin over repeats after warm-up: (1) a training step: both towers, `repro.losses.clip_loss`,
backward, AdamW; (2) image encoding and (3) text encoding without gradients. See benchmarks/README.md.

Every model runs with its library's defaults: ours as `repro.models` and `repro.train` use it (fused AdamW on CPU and
CUDA), HF's with its default attention and the optimiser HF's `Trainer` defaults to (`TrainingArguments.optim`).

    python benchmarks/bench_clip.py [--preset ViT-T/8@64px] [--batch 64] [--bf16] [--compile] [--adam plain]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import importlib.metadata
import json
import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from repro.losses import clip_loss
from repro.models import CLIP, PRESETS, CLIPConfig, count_parameters

Encoder = Callable[[torch.Tensor], torch.Tensor]
TASKS = ("train", "image", "text")


@dataclass
class Runner:
    """One model under test: its image and text encoders (→ unnormalised embeddings) and its optimiser."""

    name: str
    model: nn.Module
    image: Encoder
    text: Encoder
    fused_adam: bool = False


def hf_model(c: CLIPConfig, attn: str | None) -> nn.Module:
    """HF CLIPModel with our architecture; `attn` None = HF's default attention implementation."""
    import transformers

    tw, vw = c.transformer_width, c.vision_width
    common = dict(hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=c.embed_dim)
    text = dict(vocab_size=c.vocab_size, hidden_size=tw, intermediate_size=4 * tw, num_attention_heads=tw // 64,
                num_hidden_layers=c.transformer_layers, max_position_embeddings=c.context_length, **common,
                # eos_token_id=2 selects HF's pooling at argmax(ids), which is ours (end token = largest id)
                eos_token_id=2, bos_token_id=c.vocab_size - 2, pad_token_id=0)
    vision = dict(hidden_size=vw, intermediate_size=4 * vw, num_hidden_layers=c.vision_layers, **common,
                  num_attention_heads=vw // 64, image_size=c.image_resolution, patch_size=c.vision_patch_size)
    cfg = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=c.embed_dim)
    return transformers.CLIPModel._from_config(cfg, **({} if attn is None else {"attn_implementation": attn}))


_RENAMES = [
    (r"^token_embedding\.", "text_model.embeddings.token_embedding."),
    (r"^positional_embedding$", "text_model.embeddings.position_embedding.weight"),
    (r"^transformer\.resblocks\.", "text_model.encoder.layers."),
    (r"^ln_final\.", "text_model.final_layer_norm."),
    (r"^visual\.class_embedding$", "vision_model.embeddings.class_embedding"),
    (r"^visual\.positional_embedding$", "vision_model.embeddings.position_embedding.weight"),
    (r"^visual\.conv1\.", "vision_model.embeddings.patch_embedding."),
    (r"^visual\.ln_pre\.", "vision_model.pre_layrnorm."),
    (r"^visual\.ln_post\.", "vision_model.post_layernorm."),
    (r"^visual\.transformer\.resblocks\.", "vision_model.encoder.layers."),
    (r"\.attn\.out_proj\.", ".self_attn.out_proj."),
    (r"\.ln_1\.", ".layer_norm1."), (r"\.ln_2\.", ".layer_norm2."),
    (r"\.mlp\.c_fc\.", ".mlp.fc1."), (r"\.mlp\.c_proj\.", ".mlp.fc2."),
]


def openai_to_hf(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """OpenAI/repro state dict → HF CLIPModel's: split packed q/k/v, transpose the two projections, rename."""
    out: dict[str, torch.Tensor] = {}
    for key, t in sd.items():
        if key in ("text_projection", "visual.proj"):
            out[{"text_projection": "text_projection.weight"}.get(key, "visual_projection.weight")] = t.t().contiguous()
            continue
        for pat, rep in _RENAMES:
            key = re.sub(pat, rep, key)
        if m := re.match(r"(.*)\.attn\.in_proj_(weight|bias)$", key):
            for name, part in zip("qkv", t.chunk(3), strict=True):
                out[f"{m[1]}.self_attn.{name}_proj.{m[2]}"] = part.clone()
        else:
            out[key] = t.clone()
    return out


def _pooled(out: object) -> torch.Tensor:  # transformers ≥ 5 returns an output object, 4.x a tensor
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def build(args: argparse.Namespace, c: CLIPConfig, dev: torch.device) -> tuple[list[Runner], dict]:
    torch.manual_seed(0)
    ours = CLIP(c)
    sd = {k: v.detach() for k, v in ours.state_dict().items()}
    hf_fused = hf_trainer_fused_adam()
    fused = {"library": (dev.type in ("cpu", "cuda"), hf_fused), "fused": (True, True), "plain": (False, False)}
    ours_fused, hf_fused = fused[args.adam]
    runners = [Runner("ours", ours, ours.encode_image, ours.encode_text, ours_fused)]
    info: dict = {"params": {"ours": count_parameters(ours)}, "fused_adamw": {"ours": ours_fused, "hf": hf_fused}}
    if args.ours_padded:
        padded = copy.deepcopy(ours)
        runners.append(Runner("ours:padded", padded, padded.encode_image, lambda t, m=padded: padded_text(m, t),
                              ours_fused))
    for attn in args.hf_attn.split(","):
        try:
            hf = hf_model(c, None if attn == "default" else attn)
        except (ImportError, ValueError) as e:
            print(f"skip HF attn={attn}: {e}")
            continue
        impl = info.setdefault("hf_default_attn", hf.config._attn_implementation) if attn == "default" else attn
        name = f"hf:{impl}" + ("(default)" if attn == "default" else "")
        if any(r.name.startswith(f"hf:{impl}") for r in runners):
            continue
        hf.load_state_dict(openai_to_hf(sd), strict=True)
        info["params"][name] = count_parameters(hf)
        runners.append(Runner(name, hf, lambda x, m=hf: _pooled(m.get_image_features(pixel_values=x)),
                              lambda t, m=hf: _pooled(m.get_text_features(input_ids=t)), hf_fused))
    if args.open_clip:
        try:
            import open_clip

            oc = open_clip.CLIP(c.embed_dim, quick_gelu=True, vision_cfg=dict(
                layers=c.vision_layers, width=c.vision_width, head_width=64, patch_size=c.vision_patch_size,
                image_size=c.image_resolution), text_cfg=dict(context_length=c.context_length, vocab_size=c.vocab_size,
                width=c.transformer_width, heads=c.transformer_width // 64, layers=c.transformer_layers))
            missing, unexpected = oc.load_state_dict(sd, strict=False)
            print(f"open_clip {open_clip.__version__}: missing {missing}, unexpected {unexpected}")
            info["params"]["open_clip"] = count_parameters(oc)
            runners.append(Runner("open_clip", oc, oc.encode_image, oc.encode_text))
        except Exception as e:  # noqa: BLE001 - optional dependency; any failure means "skip"
            print(f"skip open_clip: {type(e).__name__}: {e}")
    for r in runners:
        r.model.to(dev).train()  # no dropout/BN in these ViTs: train mode changes nothing in the encoders
    return runners, info


def padded_text(m: CLIP, text: torch.Tensor) -> torch.Tensor:
    """`encode_text` without packing (what it was before): ids trimmed after the batch's last end token, every row
    padded to that length through all blocks, the last block at the end token only. Same features, more work."""
    end = text.argmax(-1)
    x = m.transformer.forward_at(m.embed_text(text[:, : int(end.max()) + 1]), end)
    return m.ln_final(x) @ m.text_projection


def hf_trainer_fused_adam() -> bool:
    """Whether HF's `Trainer` defaults to fused AdamW here (`TrainingArguments.optim`: "adamw_torch_fused" since
    torch 2.8 in recent transformers)."""
    import transformers

    return "fused" in str(transformers.TrainingArguments.__dataclass_fields__["optim"].default)


def random_batch(c: CLIPConfig, batch: int, caption_len: int, dev: torch.device,
                 shortest: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Images N(0,1); captions as our tokenizer makes them: start (vocab-2), words, end (vocab-1, the largest id),
    zero padding; lengths (with start/end) uniform in [shortest, caption_len] (capped at the context length)."""
    g = torch.Generator().manual_seed(1)
    images = torch.randn(batch, 3, c.image_resolution, c.image_resolution, generator=g)
    ids = torch.randint(1, c.vocab_size - 2, (batch, c.context_length), generator=g)
    longest = min(caption_len, c.context_length)
    lengths = torch.randint(min(shortest, longest), longest + 1, (batch,), generator=g)
    ids[:, 0] = c.vocab_size - 2
    ids[torch.arange(c.context_length) > (lengths - 1)[:, None]] = 0
    ids[torch.arange(batch), lengths - 1] = c.vocab_size - 1
    return images.to(dev), ids.to(dev)


@torch.no_grad()
def check_agreement(runners: list[Runner], images: torch.Tensor, texts: torch.Tensor) -> dict[str, float]:
    """Max |difference| from ours of the image/text embeddings and the loss on the first 8 pairs (fp32, no grad)."""
    feats = {r.name: (r.image(images[:8]), r.text(texts[:8]), r.model.logit_scale.exp()) for r in runners}
    ref = feats["ours"]
    out = {}
    for name, (fi, ft, s) in feats.items():
        diff = max((fi - ref[0]).abs().max().item(), (ft - ref[1]).abs().max().item(),
                   (clip_loss(fi, ft, s) - clip_loss(*ref)).abs().item())
        out[name] = diff
        print(f"  {name:<24} max |Δ| vs ours = {diff:.2e}  {'OK' if diff < 1e-4 else 'MISMATCH'}")
    return out


def flops_per_item(c: CLIPConfig) -> dict[str, float]:
    """Model forward FLOPs per image and per text (full context): 2·(weights a token touches)·tokens + 4·L·T²·w for
    attention scores and values; blocks touch 12·w² weights per token (biases, norms, softmax ignored); the patch
    conv is 3·p²·w per patch token; the projection one token. A training pair costs 3× (backward = 2× forward)."""
    n = (c.image_resolution // c.vision_patch_size) ** 2 + 1
    vw, vl, tw, tl, t = c.vision_width, c.vision_layers, c.transformer_width, c.transformer_layers, c.context_length
    patch = 3 * c.vision_patch_size**2 * vw * (n - 1)
    image = 2 * (patch + 12 * vw * vw * vl * n + vw * c.embed_dim) + 4 * vl * n * n * vw
    text = 2 * (12 * tw * tw * tl * t + tw * c.embed_dim) + 4 * tl * t * t * tw
    return {"image": image, "text": text, "train": 3 * (image + text)}


def seconds(fn: Callable[[], None], sync: Callable[[], None]) -> tuple[float, float]:
    """Wall-clock and CPU (this process, all threads) seconds of one call."""
    sync()
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    sync()
    return time.perf_counter() - t0, time.process_time() - c0


def profile(runners: list[Runner], fns: dict[str, dict[str, Callable[[], None]]], tasks: list[str]) -> None:
    """Per operator the least self CPU time over 3 profiled calls (robust to preemption by other processes): the top
    operators of each runner × task and the share of time in GEMM, attention and convolution kernels."""
    from torch.profiler import profile as prof

    for task in tasks:
        for r in runners:
            runs = []
            for _ in range(3):
                with prof() as p:
                    fns[r.name][task]()
                runs.append({e.key: e.self_cpu_time_total / 1e3 for e in p.key_averages()})
            ms = sorted(((min(run.get(k, 0.0) for run in runs), k) for k in runs[0]), reverse=True)
            total = sum(t for t, _ in ms)
            gemm = sum(t for t, k in ms if k in ("aten::mm", "aten::addmm", "aten::bmm") or "_attention" in k
                       or "convolution" in k)
            top = ", ".join(f"{k.removeprefix('aten::')} {t:.0f}" for t, k in ms[:8])
            print(f"[profile {task} {r.name}] {total:.0f} ms, GEMM/attention/conv {gemm / total:.0%}; top (ms): {top}")


def machine(dev: torch.device) -> dict:
    cpu, tv = platform.processor(), None
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        tv = importlib.metadata.version("transformers")
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpu": cpu, "cores": os.cpu_count(),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "transformers": tv,
            "python": platform.python_version(), "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="ViT-T/8@64px", choices=[k for k, v in PRESETS.items() if v.is_vit])
    p.add_argument("--overrides", type=json.loads, default={}, metavar="JSON",
                   help="CLIPConfig fields to change in the preset, e.g. the cpu profile's clip_small model")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=7, help="timed rounds (each runner × task once per round)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls of each runner × task first")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--bf16", action="store_true", help="autocast to bfloat16 (forward and loss) for every model")
    p.add_argument("--compile", action="store_true", help="torch.compile the loss and the encoders of every model")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--peak-tflops", type=float, default=989.0, help="peak dense bf16 TFLOP/s for MFU (CUDA)")
    p.add_argument("--open-clip", action="store_true", help="also time open_clip if importable")
    p.add_argument("--hf-attn", default="default,sdpa,eager", help="HF attn implementations (deduplicated)")
    p.add_argument("--adam", default="library", choices=["library", "fused", "plain"],
                   help="AdamW per runner: each library's default (ours: fused, as repro.train; HF: its Trainer's), "
                        "fused for all, or the unfused implementation for all")
    p.add_argument("--ours-padded", action="store_true",
                   help="also time ours with the text tower on padded rows instead of packed ones (`padded_text`)")
    p.add_argument("--trim-input", action="store_true",
                   help="give every model ids cut after the batch's last end token (what repro.train and a "
                        "pad-to-longest tokenizer feed) instead of ids padded to the context length")
    p.add_argument("--caption-len", type=int, default=16,
                   help="longest caption in tokens; lengths are uniform in [3, this] (mean 9.5 at 16; the corpus's "
                        "captions: mean 8.9, median 8, 90th percentile 15 with clip_small's cpu tokenizer)")
    p.add_argument("--caption-min", type=int, default=3,
                   help="shortest caption in tokens; --caption-min 32 --caption-len 32: every caption fills the "
                        "32-token context (no padding for packing to skip)")
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--profile", action="store_true", help="torch.profiler: top ops of one call per runner × task")
    p.add_argument("--json", metavar="OUT", help="write results and machine info to this JSON file")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    c = CLIPConfig.from_dict(PRESETS[args.preset].to_dict() | args.overrides)
    runners, info = build(args, c, dev)
    images, texts = random_batch(c, args.batch, args.caption_len, dev, args.caption_min)
    if args.trim_input:
        texts = texts[:, : int(texts.argmax(-1).max()) + 1]
    name = args.preset + (f" {json.dumps(args.overrides)}" if args.overrides else "")
    print(f"{name}, batch {args.batch}, {'bf16 autocast' if args.bf16 else 'fp32'}, {machine(dev)}")
    print(f"parameters: {info['params']}  (HF's position_ids are buffers, q/k/v biases = our in_proj_bias)")
    print(f"text ids {tuple(texts.shape)}; fused AdamW: {info['fused_adamw']}")
    print("agreement of embeddings and loss (same weights):")
    info["max_abs_diff"] = check_agreement(runners, images, texts)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def autocast() -> contextlib.AbstractContextManager:
        return torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16)

    def make(r: Runner) -> dict[str, Callable[[], None]]:
        opt = torch.optim.AdamW(r.model.parameters(), lr=1e-5, **({"fused": True} if r.fused_adam else {}))
        loss_fn = lambda: clip_loss(r.image(images), r.text(texts), r.model.logit_scale.exp())  # noqa: E731
        enc_image, enc_text = (lambda: r.image(images)), (lambda: r.text(texts))
        if args.compile:
            loss_fn, enc_image, enc_text = map(torch.compile, (loss_fn, enc_image, enc_text))

        def train() -> None:
            with autocast():
                loss = loss_fn()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        def encode(fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
            def run() -> None:
                with torch.no_grad(), autocast():
                    fn()
            return run
        return {"train": train, "image": encode(enc_image), "text": encode(enc_text)}

    tasks = [t for t in args.tasks.split(",") if t in TASKS]
    fns = {r.name: make(r) for r in runners}
    first_call: dict[str, dict[str, float]] = {}
    for r in runners:  # warm-up; with --compile the first call is the compilation
        for task in tasks:
            try:
                first_call.setdefault(r.name, {})[task] = round(seconds(fns[r.name][task], sync)[0], 2)
            except Exception as e:
                if args.compile:  # the compiler needs a working C++ toolchain (CPU) or triton (CUDA)
                    raise SystemExit(f"--compile skipped: torch.compile failed on this machine ({r.name}/{task}): "
                                     f"{type(e).__name__}: {str(e)[:500]}") from e
                raise
            for _ in range(args.warmup - 1):
                fns[r.name][task]()
    print(f"first call (s; includes compilation with --compile): {first_call}")
    samples: dict[str, dict[str, list[float]]] = {t: {r.name: [] for r in runners} for t in tasks}
    cpu_samples: dict[str, dict[str, list[float]]] = {t: {r.name: [] for r in runners} for t in tasks}
    for rep in range(args.repeats):  # interleaved: every round runs every task of every runner, order rotated
        order = runners[rep % len(runners):] + runners[: rep % len(runners)]
        for task in tasks:
            for r in order:
                wall, cpu_s = seconds(fns[r.name][task], sync)
                samples[task][r.name].append(args.batch / wall)
                cpu_samples[task][r.name].append(args.batch / cpu_s)
        print(f"round {rep + 1}/{args.repeats} done", flush=True)

    flops = flops_per_item(c)
    hf_ref = next((r.name for r in runners if r.name.endswith("(default)")), runners[0].name)
    results: dict = {}
    cuda = dev.type == "cuda"
    quartiles = lambda s: statistics.quantiles(s, n=4, method="inclusive") if len(s) > 1 else s * 3  # noqa: E731
    print(f"\nthroughput (per s) and ratios to {hf_ref}: of medians, median [IQR] of same-round (paired) ratios, "
          "and the paired ratio of throughput per CPU-second (less sensitive to other processes)")
    print(f"{'task':<6} {'model':<22} {'median':>8} {'IQR':>15} {'best':>7} {'ratio':>6} {'paired ratio':>20} "
          f"{'cpu':>6}" + "   MFU" * cuda)
    for task in tasks:
        ref = samples[task][hf_ref]
        ref_med = statistics.median(ref)
        for r in runners:
            s = samples[task][r.name]
            (q1, med, q3), (p1, pm, p3) = quartiles(s), quartiles([a / b for a, b in zip(s, ref, strict=True)])
            sc, rc = cpu_samples[task][r.name], cpu_samples[task][hf_ref]
            cpu_ratio = statistics.median(a / b for a, b in zip(sc, rc, strict=True))
            mfu = med * flops[task] / (args.peak_tflops * 1e12) if cuda else None
            results.setdefault(task, {})[r.name] = {
                "median": med, "q1": q1, "q3": q3, "best": max(s), "samples": s, "mfu": mfu,
                "ratio_of_medians": med / ref_med, "paired_ratio": {"median": pm, "q1": p1, "q3": p3},
                "per_cpu_second": sc, "cpu_paired_ratio": cpu_ratio}
            print(f"{task:<6} {r.name:<22} {med:8.1f} {f'[{q1:.1f}, {q3:.1f}]':>15} {max(s):7.1f} {med / ref_med:5.2f}x"
                  f" {pm:6.2f}x [{p1:.2f}, {p3:.2f}] {cpu_ratio:5.2f}x" + (f"{mfu:7.1%}" if cuda else ""))
    print("(train: image-text pairs/s; image: images/s; text: texts/s)")
    if args.profile:
        profile(runners, fns, tasks)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "machine": machine(dev), "config": c.to_dict(), "flops_per_item": flops,
                       "first_call_s": first_call, "results": results, **info}, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
