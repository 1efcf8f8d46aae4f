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

    config = BuildConfig(
        corpus=args.corpus, max_icons=args.max_icons or None, workers=args.workers, seed=args.seed,
        pack_sizes=tuple(int(s) for s in args.pack_sizes.split(",")),
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
    b.add_argument("--corpus", choices=["full", "smoke"], default="full",
                   help="full: emoji, icons, clip art, real photos (needs npm, apt-get, pip); smoke: generated")
    b.add_argument("--data-dir", type=Path, default=None, help="data directory (default: $REPRO_DATA or user cache)")
    b.add_argument("--max-icons", type=int, default=30_000, help="icons taken from the allowed Iconify sets (0: all)")
    b.add_argument("--pack-sizes", default="32,48,64", help="resolutions of the packed arrays")
    b.add_argument("--workers", type=int, default=0, help="render processes (0: one per core)")
    b.add_argument("--seed", type=int, default=0, help="seed of the concept split and icon sampling")
    b.add_argument("--force", action="store_true", help="rebuild even if the corpus is up to date")
    b.add_argument("--summary-dir", type=Path, default=None,
                   help="also write the book's summary files (manifest, suites, grid, captions) there")
    b.set_defaults(func=cmd_data_build)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
