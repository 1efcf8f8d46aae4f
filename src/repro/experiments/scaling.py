"""The compute study (paper Figure 9 in miniature): zero-shot error against training compute for five sizes of each
image-encoder family the paper uses — the ViT and CLIP's modified ResNet — trained on the same data for the same
number of images, as the paper trains its five ResNets; the text Transformer grows with the image encoder, as in
the paper's models. Training FLOPs are counted (`repro.flops`), not estimated from parameter counts.

The study also picks the headline model: the best mean zero-shot accuracy on the *validation* suites (never a test
suite) among the sizes that the headline budget can train for at least `HEADLINE_MIN_PASSES` times the study's
images (`choose_headline`)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..evaluate import run_suites
from ..evaluate.runner import load_suites
from ..train import TrainConfig, read_log
from .common import cached_json, corpus_for, shared_tokenizer, suite_facts, train_run
from .results import t95, write_result

if TYPE_CHECKING:
    import pandas as pd

NAME = "scaling"


#: every point: a 32-token context and the same 8,192-entry vocabulary learned on the training captions
_TEXT = {"context_length": 32, "vocab_size": 8192}


def _vit(width: int, layers: int, text_width: int, text_layers: int, patch: int = 8) -> dict:
    return {"model": "ViT-XS/8@32px", "model_overrides": _TEXT | {
        "embed_dim": text_width, "vision_width": width, "vision_layers": layers, "vision_patch_size": patch,
        "transformer_width": text_width, "transformer_layers": text_layers}}


def _resnet(width: int, stages: tuple[int, int, int, int], text_width: int, text_layers: int) -> dict:
    """CLIP's modified ResNet at 32 px: its stem and four stages divide the side by 32, so attention pooling sees
    one position (and the mean token) — the paper's architecture unchanged, at the icons' resolution."""
    return {"model": "RN-T@64px", "model_overrides": _TEXT | {
        "image_resolution": 32, "embed_dim": text_width, "vision_width": width, "vision_layers": list(stages),
        "transformer_width": text_width, "transformer_layers": text_layers}}


#: The two ladders, smallest first; the i-th rung of both families shares its text Transformer (width, layers).
LADDERS: dict[str, dict[str, dict]] = {
    "ViT": {
        "ViT 64-1": _vit(64, 1, 64, 1),
        "ViT 64-2": _vit(64, 2, 64, 2),
        "ViT 64-4": _vit(64, 4, 64, 3),
        "ViT 128-4": _vit(128, 4, 128, 3),
        "ViT 192-4": _vit(192, 4, 192, 4),
    },
    "ResNet": {
        "RN 4": _resnet(4, (1, 1, 1, 1), 64, 1),
        "RN 8": _resnet(8, (1, 1, 1, 1), 64, 2),
        "RN 16": _resnet(16, (1, 1, 1, 1), 64, 3),
        "RN 24": _resnet(24, (1, 1, 1, 1), 128, 3),
        "RN 32": _resnet(32, (1, 1, 1, 1), 192, 4),
    },
}

_SMOKE_LADDERS = {"ViT": {"ViT 64-2": _vit(64, 1, 64, 1), "ViT 64-4": _vit(64, 2, 64, 1)},
                  "ResNet": {"RN 8": _resnet(8, (1, 1, 1, 1), 64, 1), "RN 16": _resnet(16, (1, 1, 1, 1), 64, 1)}}

#: The suites every point is evaluated on: validation (for choosing), then the headline test suites.
CPU_SUITES = ("emoji-concept/val", "emoji-category/val",
              *(f"emoji-{label}/{split}" for split in ("named", "test-fluent-3d", "test-fluent-high-contrast",
                                                       "test-openmoji-black") for label in ("category", "concept")),
              "icons-concept/test-icons-game-icons", "fashion-mnist-test")
CPU_SELECT = ("emoji-concept/val", "emoji-category/val")

#: The headline is trained for at least this many times the study's images (see `choose_headline`) and ships in
#: float16 within 10 MB: at most 5 million parameters.
HEADLINE_MIN_PASSES = 3
SHIP_MAX_PARAMS = 5_000_000

PROFILES = {
    "smoke": {"corpus": "smoke", "seeds": 1, "ladders": _SMOKE_LADDERS,
              "train": dict(data_size=32, batch_size=32, steps=12, warmup_steps=2, lr=1e-3,
                            model_overrides={"context_length": 16, "vocab_size": 1024}),
              "suites": ("smoke-concept/val", "smoke-category/val", "smoke-concept/named"),
              "select": ("smoke-concept/val", "smoke-category/val"), "lengths": {"RN 8": (6,)}},
    "cpu": {"corpus": "large", "seeds": 1, "ladders": LADDERS,
            "train": dict(data_size=32, batch_size=256, steps=1024, warmup_steps=100, lr=1e-3),
            "suites": CPU_SUITES, "select": CPU_SELECT, "lengths": {"RN 16": (512, 2048)}},
    "gpu": {"corpus": "large", "seeds": 1, "ladders": LADDERS,
            "train": dict(data_size=32, batch_size=1024, steps=1600, warmup_steps=160, lr=2e-3),
            "suites": CPU_SUITES, "select": CPU_SELECT},
}


def point_configs(profile: str, seed: int, workdir: Path) -> dict[tuple[str, str, int], TrainConfig]:
    """The training configuration of every point of `profile`, keyed (family, size, steps): first the ladders —
    the same recipe, data and images seen — then the length arm (`lengths`: one size trained for other numbers of
    steps, warm-up a tenth of them). One tokenizer per vocabulary size, learned once on the training captions and
    shared by every point."""
    spec = PROFILES[profile]
    corpus = corpus_for(spec["corpus"])
    out = Path(workdir) / NAME / profile / f"seed{seed}"
    study_steps = spec["train"]["steps"]
    rungs = [[(family, size, model) for size, model in sizes.items()] for family, sizes in spec["ladders"].items()]
    plan = [(family, size, model, study_steps) for rung in zip(*rungs, strict=True)  # smallest of both first
            for family, size, model in rung]
    lengths = spec.get("lengths", {})
    plan += [(family, size, spec["ladders"][family][size], steps) for size, all_steps in lengths.items()
             for family in spec["ladders"] if size in spec["ladders"][family] for steps in all_steps]
    configs = {}
    for family, size, model, steps in plan:
        train = dict(spec["train"])
        overrides = train.pop("model_overrides", {}) | model["model_overrides"]
        if steps != study_steps:
            train |= {"steps": steps, "warmup_steps": steps // 10}
        folder = size.replace(" ", "-") + ("" if steps == study_steps else f"-{steps}steps")
        base = TrainConfig(corpus_dir=str(corpus), seed=seed, model=model["model"], model_overrides=overrides,
                           out_dir=str(out / folder), **train)
        tokenizer = shared_tokenizer(corpus, base.clip_config().vocab_size, Path(workdir), size=base.data_size)
        configs[family, size, steps] = TrainConfig.from_dict(asdict(base) | {"tokenizer": tokenizer})
    return configs


def train_point(config: TrainConfig, corpus: Path, suites: tuple[str, ...]) -> dict:
    """Train one point and evaluate it: counted training FLOPs, parameters, time, zero-shot top-1 per suite,
    retrieval on the validation split, and the final logit scale."""
    start = time.time()
    summary = train_run(config)
    model = summary["objective"].model.eval()
    evaluation = run_suites(model, summary["tokenizer"], corpus, config.data_size, suites=suites,
                            retrieval_splits=("val",))
    last = read_log(summary["log"])[-1]
    visual = sum(p.numel() for p in model.visual.parameters())
    return {
        "params": sum(p.numel() for p in model.parameters()), "vision_params": visual,
        "train_flops": summary["flops"]["total"], "images_seen": summary["total_steps"] * config.batch_size,
        "img_s": summary["img_s"], "train_wall_time_s": summary["wall_time_s"], "precision": summary["precision"],
        "final_loss": last["loss"], "final_logit_scale": last.get("logit_scale"),
        "zeroshot": {s: evaluation[s]["top1"] for s in suites if s in evaluation},
        "retrieval": {k: v for k, v in evaluation.get("retrieval/val", {}).items() if "_r" in k},
        "wall_time_s": time.time() - start,
    }


def largest(profile: str) -> list[str]:
    """The largest size of each family of `profile` (what a short GPU lease trains of the study)."""
    return [list(sizes)[-1] for sizes in PROFILES[profile]["ladders"].values()]


def run(profile: str, seed: int, workdir: Path, results_root: Path | None = None,
        sizes: Sequence[str] | None = None) -> Path:
    """Train and evaluate every point of the study (or only `sizes`) for one seed; a finished point is kept in the
    work folder and not trained again when an interrupted study is run again. Returns the result file's path."""
    spec = PROFILES[profile]
    corpus = corpus_for(spec["corpus"])
    points = []
    for (family, size, steps), config in point_configs(profile, seed, Path(workdir)).items():
        arm = "size" if steps == spec["train"]["steps"] else "length"
        if sizes is not None and (size not in sizes or arm != "size"):
            continue
        record = Path(config.out_dir) / "point.json"
        value = cached_json(record, asdict(config), lambda c=config: train_point(c, corpus, spec["suites"]))
        points.append({"family": family, "size": size, "steps": steps, "arm": arm,
                       "model_overrides": config.model_overrides} | value)
    facts = suite_facts(s for s in load_suites(corpus) if s.name in spec["suites"])
    settings = {"corpus": spec["corpus"], "train": spec["train"], "suites": list(spec["suites"]),
                "select": list(spec["select"]), "ladders": spec["ladders"], "suite_facts": facts}
    # the study's time is its points' (each trained and evaluated once, perhaps by an earlier, interrupted call)
    spent = sum(p.get("wall_time_s", p["train_wall_time_s"]) for p in points)
    return write_result(NAME, profile, seed, settings, {"points": points}, spent, None, results_root)


def fit_log_linear(compute: Sequence[float], error: Sequence[float]) -> dict:
    """Least-squares line log10(error) = intercept + slope · log10(compute) — Figure 9's log-log trend — with the
    slope's 95% interval (Student t on n − 2 degrees of freedom), R² and the residual spread; needs ≥ 3 points."""
    compute, error = np.asarray(compute, float), np.asarray(error, float)
    n = len(compute)
    if n < 3 or n != len(error):
        raise ValueError(f"a log-linear fit needs 3 or more (compute, error) pairs, got {n} and {len(error)}")
    if not ((compute > 0).all() and (error > 0).all() and np.isfinite(compute).all() and np.isfinite(error).all()):
        raise ValueError("compute and error must be finite and > 0 to take logarithms")
    x, y = np.log10(compute), np.log10(error)
    sxx = float(((x - x.mean()) ** 2).sum())
    if sxx == 0:
        raise ValueError(f"a log-linear fit needs two or more distinct compute values, got only {compute[0]:.3g}")
    slope = float(((x - x.mean()) * (y - y.mean())).sum() / sxx)
    intercept = float(y.mean() - slope * x.mean())
    residual = y - (intercept + slope * x)
    s2 = float((residual**2).sum() / (n - 2))
    t = t95(n - 2)
    total = float(((y - y.mean()) ** 2).sum())
    return {"slope": slope, "intercept": intercept, "slope_ci95": t * math.sqrt(s2 / sxx), "n": n,
            "r2": 1 - float((residual**2).sum()) / total if total > 0 else 1.0, "residual_sd": math.sqrt(s2),
            "x_mean": float(x.mean()), "sxx": sxx, "t95": t}


def predict(fit: dict, compute: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fitted error at `compute` and the 95% half-width of log10(error) there (the line's, not a new point's)."""
    x = np.log10(np.asarray(compute, float))
    s = fit["residual_sd"] * np.sqrt(1 / fit["n"] + (x - fit["x_mean"]) ** 2 / fit["sxx"])
    return 10 ** (fit["intercept"] + fit["slope"] * x), fit["t95"] * s


def compute_for(fit: dict, error: float) -> float:
    """The training FLOPs at which the fitted line reaches `error` (an extrapolation outside the fitted range)."""
    return float(10 ** ((math.log10(error) - fit["intercept"]) / fit["slope"]))


def points_table(record: dict, tests: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per point of a study's result: family, size, parameters, counted training FLOPs, time, validation
    score (mean of the `select` suites), mean test error (1 − mean top-1 over `tests`, by default every evaluated
    suite that is not a selection suite) and each suite's top-1."""
    import pandas as pd

    select = record["config"]["select"]
    rows = []
    for p in record["metrics"]["points"]:
        zs = p["zeroshot"]
        test = [s for s in (tests or zs) if s not in select and s in zs]
        rows.append({"family": p["family"], "size": p["size"], "arm": p.get("arm", "size"),
                     "steps": p.get("steps", record["config"]["train"]["steps"]),
                     "images_seen": p["images_seen"], "params": p["params"], "train_flops": p["train_flops"],
                     "train_wall_time_s": p["train_wall_time_s"], "img_s": p["img_s"], "precision": p["precision"],
                     "final_logit_scale": p["final_logit_scale"],
                     "validation": float(np.mean([zs[s] for s in select])),
                     "test_error": 1 - float(np.mean([zs[s] for s in test])), **zs})
    return pd.DataFrame(rows)


def _ladder(table: pd.DataFrame) -> pd.DataFrame:
    """The ladders' points only (not the length arm's)."""
    return table[table["arm"] == "size"] if "arm" in table else table


def length_series(table: pd.DataFrame, size: str, headline: pd.DataFrame | None = None) -> pd.DataFrame:
    """One size trained for different numbers of images: its ladder point, the length arm's points and the
    headline runs of the same model (`headline_points`), sorted by training FLOPs — error against images seen."""
    import pandas as pd

    own = table[table["size"] == size]
    parts = [own.assign(source=own["arm"].map({"size": "study", "length": "length arm"}))]
    if headline is not None and len(headline):
        parts.append(headline.assign(size=size, source="headline"))
    return pd.concat(parts, ignore_index=True).sort_values("train_flops", ignore_index=True)


def choose_headline(table: pd.DataFrame, budget_s: float, passes: float = HEADLINE_MIN_PASSES,
                    max_params: float = SHIP_MAX_PARAMS) -> pd.Series:
    """The headline model: the highest validation score among the points whose study training, run `passes` times
    over, fits in `budget_s` seconds — so the headline sees at least `passes` × the study's images — and that ship
    in the package's size limit (`max_params`). Test suites play no part in the choice."""
    table = _ladder(table)
    fits = table[(table["train_wall_time_s"] * passes <= budget_s) & (table["params"] <= max_params)]
    if fits.empty:
        raise ValueError(f"no point of the study can be trained {passes}× over in {budget_s:.0f} s with at most "
                         f"{max_params:.3g} parameters; the fastest took {table['train_wall_time_s'].min():.0f} s")
    return fits.loc[fits["validation"].idxmax()]


def fits_table(table: pd.DataFrame, column: str = "test_error") -> pd.DataFrame:
    """One log-log fit of `column` against training FLOPs per family (and over both), where there are ≥ 3 points:
    slope with its 95% interval, R², the compute range fitted and its span."""
    import pandas as pd

    table = _ladder(table)
    groups = [(f, g) for f, g in table.groupby("family", sort=False)] + [("both", table)]
    rows = []
    for family, group in groups:
        if len(group) < 3 or not (group[column] > 0).all():
            continue
        fit = fit_log_linear(group["train_flops"], group[column])
        rows.append({"family": family, "points": fit["n"], "slope": fit["slope"], "slope_ci95": fit["slope_ci95"],
                     "r2": fit["r2"], "flops_min": group["train_flops"].min(), "flops_max": group["train_flops"].max(),
                     "span": group["train_flops"].max() / group["train_flops"].min(), "fit": fit})
    return pd.DataFrame(rows)


def family_gap(table: pd.DataFrame, column: str = "test_error", a: str = "ResNet", b: str = "ViT") -> dict | None:
    """How family `a`'s fitted `column` compares with `b`'s at equal compute: the ratio of the two lines at the
    geometric middle of the compute range both cover, with a 95% interval from the two lines' uncertainties
    (independent fits, combined on the log scale). None when either family has fewer than 3 points or the ranges
    do not overlap."""
    fits = fits_table(table, column).set_index("family")
    if a not in fits.index or b not in fits.index:
        return None
    lo = max(fits.loc[a, "flops_min"], fits.loc[b, "flops_min"])
    hi = min(fits.loc[a, "flops_max"], fits.loc[b, "flops_max"])
    if lo > hi:
        return None
    at = math.sqrt(lo * hi)
    (ya, ha), (yb, hb) = predict(fits.loc[a, "fit"], at), predict(fits.loc[b, "fit"], at)
    log_ratio, half = math.log10(float(ya) / float(yb)), math.hypot(float(ha), float(hb))
    return {"at_flops": at, "a": a, "b": b, f"{column}_a": float(ya), f"{column}_b": float(yb),
            "ratio": 10**log_ratio, "ratio_lo": 10 ** (log_ratio - half), "ratio_hi": 10 ** (log_ratio + half)}


def headline_points(records: Sequence[dict], study: dict) -> pd.DataFrame:
    """The headline runs (`clip_small` result records that count their training FLOPs) as points on the study's
    axes: training FLOPs, validation score and mean test error over the study's suites — the same model as one of
    the study's points, trained on more images."""
    import pandas as pd

    select = study["config"]["select"]
    tests = [s for s in study["config"]["suites"] if s not in select]
    rows = []
    for r in records:
        flops = r["metrics"].get("train", {}).get("train_flops")
        if flops is None or not all(s in r["metrics"] for s in (*select, *tests)):
            continue
        rows.append({"seed": r["seed"], "train_flops": flops,
                     "images_seen": r["metrics"]["train"]["steps"] * r["config"]["batch_size"],
                     "validation": float(np.mean([r["metrics"][s]["top1"] for s in select])),
                     "test_error": 1 - float(np.mean([r["metrics"][s]["top1"] for s in tests])),
                     **{s: r["metrics"][s]["top1"] for s in (*select, *tests)}})
    return pd.DataFrame(rows, columns=["seed", "train_flops", "images_seen", "validation", "test_error",
                                       *select, *tests])
