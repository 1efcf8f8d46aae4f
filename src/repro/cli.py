"""The `repro` command line (later issues add `data`, `train`, `eval`, `run`)."""

from __future__ import annotations

import argparse
import sys

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="repro", description="clip-repro: CLIP reproduced at small scale")
    parser.add_argument("--version", action="version", version=f"repro {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("presets", help="list the model presets and their parameter counts").set_defaults(func=cmd_presets)
    p = sub.add_parser("tokenize", help="print OpenAI BPE ids of each text (no start/end tokens)")
    p.add_argument("texts", nargs="+")
    p.set_defaults(func=cmd_tokenize)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
