"""The `repro` command line: `repro presets | tokenize | data build | train | eval | run`."""

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


def cmd_data_gpu_subset(args: argparse.Namespace) -> int:
    from .data.large import write_gpu_subset

    record = write_gpu_subset(args.corpus_dir, args.out, args.size, args.budget_mib, seed=args.seed)
    print(f"{args.out}: {record['mib']} MiB at {record['size']} px; {record['train_pictures']:,} training pictures "
          f"({100 * record['train_share']:.1f}%) and {len(record['eval_splits'])} evaluation splits")
    return 0


def _setting(text: str) -> tuple[str, object]:
    import json

    key, eq, value = text.partition("=")
    if not eq or not key:
        raise ValueError(f"--set expects KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _read_settings(path: str | None) -> dict:
    import json

    if not path:
        return {}
    try:
        settings = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(settings, dict):
        raise ValueError(f"{path}: expected a JSON object of TrainConfig keys, got {type(settings).__name__}")
    return settings


def cmd_train(args: argparse.Namespace) -> int:
    import logging

    from .train import TrainConfig, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    settings = _read_settings(args.config) | dict(_setting(s) for s in args.set)
    summary = train(TrainConfig.from_dict(settings), resume=args.resume)
    print(f"trained {summary['steps']} steps in {summary['wall_time_s']:.0f} s ({summary['img_s']:.0f} img/s); "
          f"final {summary['final']}; log {summary['log']}")
    return 0


def _eval_tokenizer(args: argparse.Namespace, model) -> object:
    """The tokenizer to evaluate `model` with: --tokenizer, else the model's own, else OpenAI's BPE when it fits
    the model's vocabulary; else a clear error."""
    from .tokenizer import Tokenizer, default_tokenizer

    tokenizer = Tokenizer.load(args.tokenizer) if args.tokenizer else model.tokenizer
    vocab = model.config.vocab_size
    if tokenizer is None:
        tokenizer = default_tokenizer()
        if tokenizer.vocab_size > vocab:
            raise ValueError(f"{args.checkpoint} holds no tokenizer, and its {vocab}-token vocabulary is smaller "
                             f"than OpenAI's BPE ({tokenizer.vocab_size} tokens): pass the tokenizer it was trained "
                             "with (--tokenizer FILE.json), or save the model with it (repro.save(path, model, "
                             "tokenizer))")
    elif tokenizer.vocab_size > vocab:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} tokens but {args.checkpoint}'s vocabulary only "
                         f"{vocab}: it is not the tokenizer the model was trained with")
    return tokenizer


def _check_eval_corpus(args: argparse.Namespace) -> None:
    """Warn when the checkpoint was trained on another corpus; refuse a zero-shot split holding its training
    concepts unless --allow-training-concepts."""
    from .checkpoint import read_metadata
    from .evaluate.runner import evaluated_splits
    from .provenance import eval_corpus_check

    path = Path(args.checkpoint)
    trained = read_metadata(path).get("corpus") if path.is_file() else None
    splits = evaluated_splits(args.corpus_dir, args.size, args.suite or None)
    warnings, leaks = eval_corpus_check(trained if isinstance(trained, dict) else None, args.corpus_dir, splits,
                                        args.size, what=str(path))
    for text in warnings + (leaks if args.allow_training_concepts else []):
        print(f"repro: warning: {text}", file=sys.stderr)
    if leaks and not args.allow_training_concepts:
        more = f" (and {len(leaks) - 1} more such splits)" if len(leaks) > 1 else ""
        raise ValueError(f"{leaks[0]}{more}: its zero-shot score would be inflated; evaluate on the model's own "
                         "corpus, or pass --allow-training-concepts to go on")


def cmd_eval(args: argparse.Namespace) -> int:
    import json

    from .evaluate import run_suites
    from .loading import load

    model, _ = load(args.checkpoint)
    tokenizer = _eval_tokenizer(args, model)
    _check_eval_corpus(args)
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
    if args.extend and not hasattr(module, "extend"):
        raise SystemExit(f"experiment {args.name} cannot be extended (only: objectives)")
    seeds = args.seeds or module.PROFILES[args.profile]["seeds"]
    for seed in range(seeds):
        if args.extend and result_path(args.name, args.profile, seed).is_file():
            print(f"extended {module.extend(args.profile, seed, Path(args.workdir))}")
            continue
        if result_path(args.name, args.profile, seed).is_file() and not args.force:
            print(f"{result_path(args.name, args.profile, seed)} exists (--force to re-run)")
            continue
        print(f"wrote {module.run(args.profile, seed, Path(args.workdir))}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="repro", description="clip-repro: CLIP reproduced at small scale")
    parser.add_argument("--version", action="version", version=f"repro {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (also: environment variable REPRO_DEBUG=1)")
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
    g = data.add_parser("gpu-subset", help="a copy of a built corpus that travels to the GPU machine: every "
                        "evaluation split and as many training pictures as fit the budget")
    g.add_argument("--corpus-dir", type=Path, required=True, help="a built corpus, e.g. $REPRO_DATA/build/large")
    g.add_argument("--out", type=Path, required=True, help="folder to write (a corpus folder: packed/, manifest.json)")
    g.add_argument("--size", type=int, default=32, help="packed resolution to take")
    g.add_argument("--budget-mib", type=float, default=60.0, help="most MiB the packed files may take together")
    g.add_argument("--seed", type=int, default=0, help="seed of the training pictures drawn")
    g.set_defaults(func=cmd_data_gpu_subset)
    t = sub.add_parser("train", help="train a model (see repro.train.TrainConfig for the keys)")
    t.add_argument("config", nargs="?", help="a JSON file of TrainConfig keys")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a key (JSON value)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in out_dir from its checkpoint, with the run's settings (without it, an "
                        "out_dir that holds a run is an error)")
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("eval", help="zero-shot and retrieval evaluation of a checkpoint on a built corpus")
    e.add_argument("checkpoint", help="a .safetensors model (repro.save) or a preset name")
    e.add_argument("--corpus-dir", required=True, help="a built corpus, e.g. ~/.cache/clip-repro/build/full")
    e.add_argument("--size", type=int, default=32, help="packed resolution to evaluate on")
    e.add_argument("--suite", action="append", default=[], help="only these suites (repeatable)")
    e.add_argument("--out", help="write the results as JSON there")
    e.add_argument("--tokenizer", help="a tokenizer JSON (default: the checkpoint's own, else OpenAI's BPE)")
    e.add_argument("--allow-training-concepts", action="store_true",
                   help="evaluate even when a zero-shot split holds concepts the model was trained on")
    e.set_defaults(func=cmd_eval)
    r = sub.add_parser("run", help="run an experiment at a profile, writing results/NAME/PROFILE/seed<K>.json")
    r.add_argument("name")
    r.add_argument("--profile", default="smoke", choices=["smoke", "cpu", "gpu"])
    r.add_argument("--seeds", type=int, default=0, help="number of seeds (default: the profile's)")
    r.add_argument("--workdir", default="runs", help="where checkpoints and logs go")
    r.add_argument("--force", action="store_true", help="re-run seeds whose result file exists")
    r.add_argument("--extend", action="store_true",
                   help="add to each seed's result file the runs the profile has gained since it was written "
                        "(objectives: its longer budgets), keeping what it holds; seeds without one are run")
    r.set_defaults(func=cmd_run)
    return parser


def error_line(error: BaseException) -> str:
    """One line naming the problem: the message (with the error's type when it is not a plain bad-input error)."""
    message = " ".join(str(error).split()) or type(error).__name__
    if not isinstance(error, (ValueError, OSError, RuntimeError)):
        message = f"{type(error).__name__}: {message}"
    return message


def main(argv: list[str] | None = None) -> int:
    """Run the command; an error prints one line (`repro: error: ...`, exit status 1), its traceback only with
    --debug or REPRO_DEBUG=1."""
    import os

    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("REPRO_DEBUG", "") not in ("", "0")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print("repro: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - every error reaches the user as one line
        if debug:
            raise
        print(f"repro: error: {error_line(e)} (--debug or REPRO_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
