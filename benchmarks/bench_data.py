"""Is the step or the data the bottleneck? Times, side by side in one run, the assembly of a training batch from the
packed arrays (index, random square crop, normalise, caption pick and token gather — what `repro.train` does before
the model) against a whole training step of the same batch.

    python benchmarks/bench_data.py --corpus-dir ~/.cache/clip-repro/build/smoke --batch 256
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from repro.data.tensors import crop_params, normalize, square_crop, to_float
from repro.experiments.clip_small import PROFILES
from repro.objectives import make_objective
from repro.train import TrainConfig, TrainData, build_tokenizer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus-dir", required=True)
    p.add_argument("--profile", default="cpu", help="clip_small profile whose model and sizes are used")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    config = TrainConfig(corpus_dir=args.corpus_dir, **(PROFILES[args.profile]["train"] | {"batch_size": args.batch}))
    clip_config = config.clip_config()
    tokenizer = build_tokenizer(config, clip_config.vocab_size)
    device = torch.device(args.device)
    data = TrainData(config, tokenizer, clip_config.context_length, device)
    objective = make_objective("clip", clip_config).to(device)
    opt = torch.optim.AdamW(objective.parameters(), lr=1e-4)
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

    def step(images, texts) -> None:
        loss, _ = objective.training_loss(images, texts)
        opt.zero_grad()
        loss.backward()
        opt.step()

    data_t, step_t = [], []
    for r in range(args.repeats + 1):
        sync()
        t0 = time.perf_counter()
        images, texts = assemble(r)
        sync()
        t1 = time.perf_counter()
        step(images, texts)
        sync()
        t2 = time.perf_counter()
        if r:  # the first round warms up
            data_t.append(t1 - t0)
            step_t.append(t2 - t1)
    d, s = statistics.median(data_t), statistics.median(step_t)
    print(f"device {device}, batch {args.batch}, {clip_config.image_resolution} px model, "
          f"{torch.get_num_threads()} threads")
    print(f"batch assembly {d * 1e3:8.1f} ms   ({args.batch / d:8.0f} img/s)")
    print(f"training step  {s * 1e3:8.1f} ms   ({args.batch / s:8.0f} img/s)")
    print(f"data share of a step: {d / (d + s):.1%}")


if __name__ == "__main__":
    main()
