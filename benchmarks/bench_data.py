"""Is the step or the data the bottleneck? Times, side by side in one run, the assembly of a training batch from the
packed arrays (index, random square crop, normalise, caption pick and token gather — what `repro.train` does before
the model) against a whole training step of the same batch; and that step with the text tower on padded rows
(`bench_clip.padded_text`) instead of packed ones, on the corpus's real captions.

    python benchmarks/bench_data.py --corpus-dir ~/.cache/clip-repro/build/smoke --batch 256
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from bench_clip import padded_text  # a sibling script: benchmarks/ is on sys.path when run as a script

from repro.data.tensors import crop_params, normalize, square_crop, to_float
from repro.experiments.clip_small import PROFILES
from repro.objectives import make_objective
from repro.train import TrainConfig, TrainData, build_tokenizer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus-dir", required=True)
    p.add_argument("--profile", default="cpu", help="clip_small profile whose model and sizes are used")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    config = TrainConfig(corpus_dir=args.corpus_dir, **(PROFILES[args.profile]["train"] | {"batch_size": args.batch}))
    clip_config = config.clip_config()
    tokenizer = build_tokenizer(config, clip_config.vocab_size)
    device = torch.device(args.device)
    data = TrainData(config, tokenizer, clip_config.context_length, device)
    torch.manual_seed(0)
    objective = make_objective("clip", clip_config).to(device)
    padded = copy.deepcopy(objective)
    padded.model.encode_text = lambda t, m=padded.model: padded_text(m, t)
    packed_run = (objective, torch.optim.AdamW(objective.parameters(), lr=1e-4))
    padded_run = (padded, torch.optim.AdamW(padded.parameters(), lr=1e-4))
    res = clip_config.image_resolution

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def assemble(step: int):
        g = torch.Generator().manual_seed(step)
        batch = torch.randint(0, len(data), (args.batch,), generator=g)
        caption = data.offsets[batch] + (torch.rand(args.batch, generator=g) * data.counts[batch]).long()
        scale, shift = crop_params(args.batch, config.min_crop_scale, g, device)
        index = batch.to(device)
        images = normalize(square_crop(to_float(data.images[index]), res, scale, shift))
        texts = data.tokens[caption.to(device), : int(data.lengths[caption].max())]
        return images, texts

    def step(images, texts, run) -> None:
        objective, opt = run
        loss, _ = objective.training_loss(images, texts)
        opt.zero_grad()
        loss.backward()
        opt.step()

    data_t, step_t, padded_t = [], [], []
    for r in range(args.repeats + 1):
        sync()
        t0 = time.perf_counter()
        images, texts = assemble(r)
        sync()
        t1 = time.perf_counter()
        step(images, texts, packed_run)
        sync()
        t2 = time.perf_counter()
        step(images, texts, padded_run)
        sync()
        if r:  # the first round warms up
            data_t.append(t1 - t0)
            step_t.append(t2 - t1)
            padded_t.append(time.perf_counter() - t2)
    d, s, sp = statistics.median(data_t), statistics.median(step_t), statistics.median(padded_t)
    speedup = statistics.median(b / a for a, b in zip(step_t, padded_t, strict=True))
    print(f"device {device}, batch {args.batch}, {clip_config.image_resolution} px model, "
          f"{torch.get_num_threads()} threads")
    print(f"batch assembly {d * 1e3:8.1f} ms   ({args.batch / d:8.0f} img/s)")
    print(f"training step  {s * 1e3:8.1f} ms   ({args.batch / s:8.0f} img/s)")
    print(f"data share of a step: {d / (d + s):.1%}")
    print(f"step, text padded {sp * 1e3:8.1f} ms   ({args.batch / sp:8.0f} img/s); packed text is {speedup:.2f}x "
          f"faster (median of same-round ratios; captions: mean {data.lengths.float().mean():.1f} tokens)")


if __name__ == "__main__":
    main()
