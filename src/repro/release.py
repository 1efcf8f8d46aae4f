"""The trained model that ships with the package, as `clip.load("ViT-B/32")` ships OpenAI's weights:
`repro.load("clip-small")` returns the book's `clip_small` model (seed 0 of the headline `cpu` profile) with its
tokenizer and preprocess. `export_model` makes that file from a training run: weights in float16 (half their float32
size), the tokenizer and config, and a card saying how the model was trained, on what, and what it
scores on the shipped evaluation sample (`repro.data.sample`), measured on the float16 weights as they ship.

    python -m repro.release sample --corpus-dir DIR      # draw the evaluation sample from a built corpus
    python -m repro.release model --run runs/clip_small/cpu/seed0 --result results/clip_small/cpu/seed0.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import torch

from .checkpoint import load_state
from .loading import PRETRAINED, load, save

CARD_KEY = "repro.card"


def export_model(run_dir: str | os.PathLike, out: str | os.PathLike, result: str | os.PathLike,
                 name: str = "clip-small", dtype: torch.dtype = torch.float16,
                 sample: str | os.PathLike | None = None) -> dict:
    """Write the shipped model of training run `run_dir` (its `model.safetensors` and `config.json`) to `out`,
    with a card naming the result file `result` that recorded the run's evaluation; returns the card."""
    from .data.sample import load_sample
    from .evaluate.runner import sample_accuracies
    from .experiments.results import git_revision

    run_dir = Path(run_dir)
    model, _ = load(run_dir / "model.safetensors")
    tokenizer = model.tokenizer
    record = json.loads(Path(result).read_text(encoding="utf-8"))
    evaluation = load_sample(sample)
    _, run_meta = load_state(run_dir / "model.safetensors")
    card = {
        "name": name, "dtype": str(dtype).removeprefix("torch."),
        "trained_by": f"repro run {record['experiment']} --profile {record['profile']} (seed {record['seed']})",
        "result_file": Path(result).as_posix(),
        "result_revision": record["git_revision"], "result_created": record["created"],
        "hardware": record["hardware"], "train_config": json.loads((run_dir / "config.json").read_text()),
        "corpus": {k: v for k, v in (run_meta.get("corpus") or {}).items() if k != "concepts"},  # in "corpus"
        "steps": run_meta.get("step"), "exported_at_revision": git_revision(),
        "sample": {"corpus": evaluation.meta["corpus"], "n": len(evaluation),
                   "fp32_accuracies": sample_accuracies(model, tokenizer, evaluation)},
    }
    rounded = model.to(dtype)
    with tempfile.TemporaryDirectory() as tmp:  # measure the weights as they ship: rounded to `dtype`
        save(Path(tmp) / "m.safetensors", rounded, tokenizer)
        shipped, _ = load(Path(tmp) / "m.safetensors")
    card["sample"]["accuracies"] = sample_accuracies(shipped.float(), tokenizer, evaluation)
    save(out, rounded, tokenizer, corpus=run_meta.get("corpus"), step=card["steps"], **{CARD_KEY: card})
    return card


def main(argv: list[str] | None = None) -> None:
    from .data.sample import build_sample

    p = argparse.ArgumentParser(prog="python -m repro.release", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("sample", help="draw the shipped evaluation sample from a built corpus")
    s.add_argument("--corpus-dir", required=True)
    s.add_argument("--out", default=str(Path(__file__).parent / "assets" / "sample-32px.npz"))
    m = sub.add_parser("model", help="export a trained clip_small run as the shipped model")
    m.add_argument("--run", required=True, help="the run folder (model.safetensors, config.json)")
    m.add_argument("--result", required=True, help="the result file that recorded the run's evaluation")
    m.add_argument("--out", default=str(Path(__file__).parent / "assets" / PRETRAINED["clip-small"]))
    args = p.parse_args(argv)
    if args.what == "sample":
        meta = build_sample(args.corpus_dir, args.out)
        print(f"{args.out}: {meta['n']} images of {', '.join(meta['splits'])}")
    else:
        card = export_model(args.run, args.out, args.result)
        size = Path(args.out).stat().st_size
        print(f"{args.out}: {size / 1e6:.1f} MB; sample accuracies {json.dumps(card['sample']['accuracies'])}")


if __name__ == "__main__":
    main()
