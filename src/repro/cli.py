"""The `repro` command line (later issues add `data`, `train`, `eval`, `run`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__


def cmd_presets(args: argparse.Namespace) -> int:
    from .models import PRESETS, parameter_counts

    print(f"{'model':16s} {'image px':>8s} {'image params':>13s} {'text params':>12s}")
    for name, config in PRESETS.items():
        counts = parameter_counts(config)
        print(f"{name:16s} {config.image_resolution:8d} {counts['image'] / 1e6:12.2f}M {counts['text'] / 1e6:11.2f}M")
    return 0


def cmd_tokenize(args: argparse.Namespace) -> int:
    from .tokenizer import default_tokenizer

    tok = default_tokenizer()
    for text in args.texts:
        print(" ".join(str(i) for i in tok.encode(text)))
    return 0


def cmd_data_build(args: argparse.Namespace) -> int:
    import logging
    import os
    from pathlib import Path

    from .data.build import BuildConfig, build, corpus_dir

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.data_dir:
        os.environ["REPRO_DATA"] = str(args.data_dir)
    from .data.sources import data_dir

    overrides = {} if args.max_icons is None else {"max_icons": args.max_icons or None}
    config = BuildConfig.preset(
        args.corpus, workers=args.workers, seed=args.seed, pack_sizes=tuple(int(s) for s in args.pack_sizes.split(",")),
        **overrides,
    )
    manifest = build(config, force=args.force)
    out = corpus_dir(Path(data_dir()), config.corpus)
    print(f"corpus {config.corpus!r} at {out} (built in {manifest['wall_time_s']} s)")
    for split, styles in sorted(manifest["counts"].items()):
        print(f"  {split:24s} {sum(styles.values()):7d} images")
    if args.summary_dir:
        from .data.summary import write_summary

        print(f"summary written to {write_summary(Path(data_dir()), config.corpus, args.summary_dir)}")
    return 0


def _setting(text: str) -> tuple[str, object]:
    import json

    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def cmd_train(args: argparse.Namespace) -> int:
    import json
    import logging

    from .train import TrainConfig, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    settings = json.loads(Path(args.config).read_text()) if args.config else {}
    settings |= dict(_setting(s) for s in args.set)
    summary = train(TrainConfig.from_dict(settings), resume=args.resume)
    print(f"trained {summary['steps']} steps in {summary['wall_time_s']:.0f} s ({summary['img_s']:.0f} img/s); "
          f"final {summary['final']}; log {summary['log']}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import json

    from .evaluate import run_suites
    from .loading import load
    from .tokenizer import default_tokenizer

    model, _ = load(args.checkpoint)
    tokenizer = model.tokenizer or default_tokenizer()
    results = run_suites(model, tokenizer, Path(args.corpus_dir), args.size, args.suite or None)
    text = json.dumps(results, indent=1, default=float)
    if args.out:
        from .files import atomic_write_text

        atomic_write_text(args.out, text)
    for name, r in results.items():
        shown = {k: round(v, 4) for k, v in r.items() if isinstance(v, float)}
        print(f"{name:40s} {shown}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import logging

    from . import experiments
    from .experiments.results import result_path

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    module = experiments.get(args.name)
    if args.profile not in module.PROFILES:
        raise SystemExit(f"experiment {args.name} has no profile {args.profile!r}: {', '.join(module.PROFILES)}")
    seeds = args.seeds or module.PROFILES[args.profile]["seeds"]
    for seed in range(seeds):
        if result_path(args.name, args.profile, seed).is_file() and not args.force:
            print(f"{result_path(args.name, args.profile, seed)} exists (--force to re-run)")
            continue
        print(f"wrote {module.run(args.profile, seed, Path(args.workdir))}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="repro", description="clip-repro: CLIP reproduced at small scale")
    parser.add_argument("--version", action="version", version=f"repro {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("presets", help="list the model presets and their parameter counts").set_defaults(func=cmd_presets)
    p = sub.add_parser("tokenize", help="print OpenAI BPE ids of each text (no start/end tokens)")
    p.add_argument("texts", nargs="+")
    p.set_defaults(func=cmd_tokenize)
    data = sub.add_parser("data", help="build the captioned corpus and evaluation suites").add_subparsers(
        dest="data_command", required=True)
    b = data.add_parser("build", help="fetch, verify, render, caption, split and pack the corpus (cached)")
    b.add_argument("--corpus", choices=["full", "large", "smoke"], default="full",
                   help="full: emoji, icons, clip art, real photos (needs npm, apt-get, pip); large: the same with "
                   "every allowed icon set (repro.data.large); smoke: generated")
    b.add_argument("--data-dir", type=Path, default=None, help="data directory (default: $REPRO_DATA or user cache)")
    b.add_argument("--max-icons", type=int, default=None,
                   help="icons taken from the allowed Iconify sets (0: all; default: full 30,000, large all)")
    b.add_argument("--pack-sizes", default="32,48,64", help="resolutions of the packed arrays")
    b.add_argument("--workers", type=int, default=0, help="render processes (0: one per core)")
    b.add_argument("--seed", type=int, default=0, help="seed of the concept split and icon sampling")
    b.add_argument("--force", action="store_true", help="rebuild even if the corpus is up to date")
    b.add_argument("--summary-dir", type=Path, default=None,
                   help="also write the book's summary files (manifest, suites, grid, captions) there")
    b.set_defaults(func=cmd_data_build)
    t = sub.add_parser("train", help="train a model (see repro.train.TrainConfig for the keys)")
    t.add_argument("config", nargs="?", help="a JSON file of TrainConfig keys")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a key (JSON value)")
    t.add_argument("--resume", action="store_true", help="continue from out_dir/checkpoint.safetensors")
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("eval", help="zero-shot and retrieval evaluation of a checkpoint on a built corpus")
    e.add_argument("checkpoint", help="a .safetensors model (repro.save) or a preset name")
    e.add_argument("--corpus-dir", required=True, help="a built corpus, e.g. ~/.cache/clip-repro/build/full")
    e.add_argument("--size", type=int, default=32, help="packed resolution to evaluate on")
    e.add_argument("--suite", action="append", default=[], help="only these suites (repeatable)")
    e.add_argument("--out", help="write the results as JSON there")
    e.set_defaults(func=cmd_eval)
    r = sub.add_parser("run", help="run an experiment at a profile, writing results/NAME/PROFILE/seed<K>.json")
    r.add_argument("name")
    r.add_argument("--profile", default="smoke", choices=["smoke", "cpu", "gpu"])
    r.add_argument("--seeds", type=int, default=0, help="number of seeds (default: the profile's)")
    r.add_argument("--workdir", default="runs", help="where checkpoints and logs go")
    r.add_argument("--force", action="store_true", help="re-run seeds whose result file exists")
    r.set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
