"""The paper's claims, each tested from the committed result files: what the paper found, what we found (an effect
with its 95% interval), the smallest effect our experiment could detect, and a verdict (`repro.stats.verdict`) with
explicit preconditions — "untestable here" when a precondition fails, "inconclusive" when the experiment could not
have detected an effect of the paper's size. The introduction's claims table and summary figure are
`repro.views.claims.table` and `figure` of `collect()`; nothing here is computed in a chapter."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .claim import Claim, above_chance, seed_mde
from .claims_robustness import adaptation_gain, beats_supervised_probe, effective_robustness
from .stats import Verdict, accuracy_interval, difference_interval, interval_text, min_detectable_effect, verdict


def zero_shot(clip) -> list[Claim]:
    """§3.1: zero-shot classification of concepts never trained on, from their names alone; and, as a check beside
    it, concepts whose names no training caption contains."""
    metrics = clip.records[0]["metrics"]
    family = "emoji-concept" if "emoji-concept/zeroshot" in metrics else "smoke-concept"  # the smoke corpus's shapes
    headline = f"{family}/named" if f"{family}/named" in metrics else f"{family}/zeroshot"
    m = metrics[headline]
    out = [above_chance(
        "zero-shot, named concepts", "Zero-shot transfer: a classifier for unseen concepts from their names alone "
        "(§3.1)", "76.2% ImageNet top-1 (ViT-L/14@336px, Fig. 13)",
        f"{m['n_classes']}-way classification of pictures never trained on, whose names other pictures' captions "
        "contain", clip.values(f"{headline}|top1"), 1 / m["n_classes"], m.get("n"), "zeroshot.md")]
    if headline.endswith("/named"):
        u = metrics[f"{family}/zeroshot"]
        out.append(above_chance(
            "unseen names", "(Not a claim of the paper) Concepts whose names the text encoder never read",
            "— (zero-shot in the paper assumes the names occur in the pre-training text)",
            f"{u['n_classes']}-way classification of concepts whose names were scrubbed from every caption",
            clip.values(f"{family}/zeroshot|top1"), 1 / u["n_classes"], u.get("n"), "zeroshot.md"))
    return out


def retrieval(clip) -> Claim:
    """§3.1, Table 13: text→image retrieval works zero-shot."""
    metrics = clip.records[0]["metrics"]
    suite = "retrieval/named" if "retrieval/named" in metrics else "retrieval/zeroshot"
    n = metrics[suite]["n_images"]
    return above_chance("text→image R@1", "Text→image retrieval works zero-shot (§3.1, Table 13)",
                        "Flickr30k / MSCOCO R@1 well above chance", f"R@1 among {n} images of zero-shot concepts",
                        clip.values(f"{suite}|t2i_r1"), 1 / n, metrics[suite].get("n_captions"), "retrieval.md")


def temperature_reaches_clamp(clip) -> Claim:
    """§2.5: the learnable logit scale grows until its clip at 100 — testable only where Adam's per-step bound lets
    it get there (`repro.optim.logit_scale_reach`)."""
    from .optim import logit_scale_reach

    finals = [r["curves"]["logit_scale"][-1] for r in clip.records if r["curves"].get("logit_scale")]
    config = clip.records[0]["config"]
    steps = clip.records[0]["metrics"]["train"]["steps"]
    reach = logit_scale_reach(config["lr"], config["warmup_steps"], steps)
    effect = difference_interval(finals)
    pre = [(reach >= 100, f"Adam's step bound lets the logit scale reach at most {reach:.0f} in {steps:,} steps")]
    result = verdict(effect, None, math.inf, pre)
    if result.kind != "untestable here":
        reached = bool(finals) and min(finals) >= 99.0
        result = (Verdict("reproduced", "reproduced: every seed ends at the clip") if reached else
                  Verdict("not reproduced", f"not reproduced: free to reach 100 (bound {reach:.0f}), it ended at "
                                            f"{effect['mean']:.1f}"))
    return Claim("logit scale at the clip", "The learnable temperature grows until the logit scale hits its clip at "
                 "100 (§2.5)", "released models end at 100 (init 1/0.07 = 14.3)",
                 "final logit scale of the headline model", interval_text(effect, scale=1.0), effect, result, 100.0,
                 math.nan, unit="logit scale", scale=1.0, chapter="training.md")


def compute_scaling(study) -> list[Claim]:
    """Fig. 9: zero-shot error falls log-linearly with model compute (one claim per model family)."""
    from .experiments import scaling

    fits = scaling.fits_table(scaling.points_table(study.records[0])).set_index("family")
    out = []
    for family in (f for f in ("ResNet", "ViT") if f in fits.index):
        f = fits.loc[family]
        dof = int(f["points"]) - 2
        # the smallest slope the fit detects with 80% power, from its standard error (regression dof n − 2)
        mde = min_detectable_effect(f["slope_ci95"] / f["fit"]["t95"] * math.sqrt(dof + 1), dof + 1)
        effect = {"mean": f["slope"], "low": f["slope"] - f["slope_ci95"], "high": f["slope"] + f["slope_ci95"],
                  "n": dof + 2}
        result = verdict(effect, None, mde, direction=-1, unit="", scale=1.0)  # error should fall: slope < 0
        out.append(Claim(f"Fig. 9 slope, {family}", f"Zero-shot error falls log-linearly with model compute (Fig. 9), "
                         f"{family}s", "5 ResNets over 44× compute: a smooth log-log trend" if family == "ResNet"
                         else "— (Fig. 9 has only ResNets)",
                         f"{dof + 2} {family}s over {f['span']:.0f}× counted training FLOPs, the same images",
                         f"log-log slope {interval_text(effect, scale=1.0, digits=3, signed=True)}", effect, result,
                         None, mde, unit="slope", scale=1.0, chapter="scaling.md"))
    return out


def prompt_ensembling(prompts) -> Claim:
    """§3.1.4, Fig. 4: engineered and ensembled prompts beat the bare class name — here, templates chosen on
    validation suites, scored on the headline zero-shot suites (names that occur in training text)."""
    from .experiments import prompts as experiment

    first = experiment.suite_metrics(prompts.records[0])
    mode = "chosen" if any("chosen" in m for m in first.values()) else "ensemble"
    suites = [s for s, m in first.items() if s.endswith("/named") and mode in m] or \
             [s for s, m in first.items() if s.endswith("/zeroshot") and mode in m]
    gains = experiment.gain(prompts.records, mode, suites)
    effect = difference_interval(gains)
    base = [float(np.mean([experiment.suite_metrics(r)[s]["classname"]["top1"] - 1 / first[s]["classname"]["n_classes"]
                           for s in suites])) for r in prompts.records]
    pre = [(difference_interval(base)["low"] > 0, "the bare class names are not above chance on these suites")]
    mde = seed_mde(gains)
    what = "templates chosen on validation suites" if mode == "chosen" else "the ensemble of every template"
    return Claim("prompts over class name", "Prompt engineering and ensembling improve zero-shot accuracy over the "
                 "bare class name (§3.1.4)", "+~5 points averaged over 36 datasets (Fig. 4)",
                 f"top-1 gain of {what} over the class name, averaged over {len(suites)} zero-shot suites",
                 f"{interval_text(effect, signed=True)} points", effect, verdict(effect, 0.05, mde, pre), 0.05, mde,
                 chapter="zeroshot.md")


def few_shot_equivalence(fewshot) -> Claim:
    """§3.2, Figs. 6–7: zero-shot CLIP matches a ≈4-shot linear probe on its own features. Per seed: the median over
    drawing test sets of the shots a probe needs to match zero-shot (< 1 counted as 0.5, > 16 as 32)."""
    from .experiments.fewshot import shots_to_match

    per_seed = []
    usable = []
    for record in fewshot.records:
        matches = []
        for entry in record["metrics"].values():
            if not str(entry.get("pool", "")).startswith("train"):  # drawings: probes on CLIP's training pictures
                continue
            for run in entry["tests"].values():
                shots = sorted(int(k) for k in run["few_shot"])
                match = shots_to_match(shots, [run["few_shot"][str(k)] for k in shots], run["zero_shot"])
                matches.append(match if isinstance(match, float) else 0.5 if match.startswith("<") else 32.0)
                usable.append(run["zero_shot"] > 1 / entry["n_classes"])
        per_seed.append(float(np.median(matches)) if matches else math.nan)
    logs = difference_interval(np.log2(per_seed))
    effect = {"mean": float(2 ** logs["mean"]), "low": 2 ** logs["low"], "high": 2 ** logs["high"], "n": logs["n"]}
    pre = [(bool(usable) and all(usable), "zero-shot is not above chance on every drawing test set")]
    if not all(h for h, _ in pre):
        result = verdict(effect, None, math.inf, pre)
    elif logs["n"] < 2:
        result = Verdict("inconclusive", "inconclusive: one seed, no interval")
    elif effect["high"] < 2 or effect["low"] > 8:
        result = Verdict("not reproduced", "not reproduced: zero-shot is worth "
                         f"{'fewer' if effect['high'] < 2 else 'more'} shots here than the paper's ≈4")
    elif 1 <= effect["low"] and effect["high"] <= 16:
        result = Verdict("reproduced", "reproduced: the same order as the paper (within 4× of 4 shots)")
    else:
        result = Verdict("inconclusive", "inconclusive: the interval spans more than 1–16 shots")
    return Claim("shots to match zero-shot", "Zero-shot CLIP is worth a few labelled examples per class: it matches a "
                 "≈4-shot linear probe on its own features (§3.2)", "≈4 shots on average; median 5.4 (Figs. 6–7)",
                 "shots per class a k-shot probe needs to match zero-shot, median over drawing test sets",
                 f"{interval_text(effect, scale=1.0)} shots", effect, result, 4.0, math.nan, unit="shots",
                 scale=1.0, chapter="fewshot.md")


def mnist_pixels(limits) -> Claim:
    """§6: on MNIST, logistic regression on raw pixels beats zero-shot CLIP (the first task stands in where the
    results have no MNIST, e.g. the smoke profile's shapes)."""
    tasks = list(limits.records[0]["metrics"]["tasks"])
    task = "mnist-test" if "mnist-test" in tasks else tasks[0]
    zs = limits.values(f"tasks|{task}|zeroshot|top1")
    px = limits.values(f"tasks|{task}|probe_pixels|top1")
    gap = [p - z for p, z in zip(px, zs, strict=True)]
    effect, mde = difference_interval(gap), seed_mde(gap)
    result, zero_shot = verdict(effect, None, mde), accuracy_interval(zs)
    chance = limits.records[0]["metrics"]["tasks"][task].get("chance")
    if result.kind == "reproduced" and chance is not None and zero_shot["low"] <= chance:  # weaker than the paper's
        result = Verdict(result.kind, f"{result.text}; our zero-shot is not above chance ({100 * chance:.0f}%) there")
    return Claim("MNIST: pixels over zero-shot", "Zero-shot CLIP is weak far out of its training distribution: on "
                 "MNIST it is beaten by logistic regression on raw pixels (§6)",
                 "88% zero-shot, below raw-pixel logistic regression",
                 f"raw-pixel logistic regression minus zero-shot top-1 on `{task}`",
                 f"{interval_text(accuracy_interval(px))}% vs {interval_text(zero_shot)}%", effect, result, None,
                 mde, chapter="limitations.md")


def objectives_order(objs) -> list[Claim]:
    """§2.3, Fig. 2: bag-of-words prediction reaches the caption language model's zero-shot accuracy with 3× fewer
    images, and the contrastive objective with 4× fewer than bag-of-words prediction. Our ratio per seed: how many
    times more images the slower objective needs to reach the highest accuracy both reach
    (`objectives_summary.efficiency_ratios`, summarised by `efficiency_summary`); untestable where the slower
    objective does not leave chance."""
    from .experiments.objectives import base_kind
    from .experiments.objectives_summary import MEASURED, efficiency_ratios, efficiency_summary, pairs_for

    suite = objs.records[0]["config"]["suites"][0]
    facts = objs.suite_facts()
    chance = 1 / facts[suite]["n_classes"] if suite in facts else None
    pairs = pairs_for(objs.records)
    per_seed = efficiency_ratios(objs.records, suite, pairs, chance)
    summary = efficiency_summary(objs.records, suite, chance, pairs, per_seed).set_index("pair")
    lm = [s for f, s in pairs if f == "bow-predict" and base_kind(s) == "caption-lm"][-1]  # its longest budget
    out = []
    for pair, paper in ((f"bow-predict>{lm}", 3.0), ("bow-contrastive>bow-predict", 4.0)):
        row = summary.loc[pair]
        ratios = per_seed[(per_seed["pair"] == pair) & per_seed["bound"].isin(MEASURED)]["ratio"].to_numpy(float)
        logs = difference_interval(np.log(ratios)) if len(ratios) else {"n": 0, "std": math.nan}
        effect = {"mean": row["ratio"], "low": row["low"], "high": row["high"], "n": int(row["n_reached"])}
        mde = math.exp(seed_mde(np.log(ratios))) if len(ratios) > 1 else math.inf
        fast, slow = pair.split(">")
        if row["status"] == "untestable":
            result = Verdict("untestable here", f"untestable here: {row['reason']}")
        elif row["status"] == "not reached":  # ratio < the slower budget over the faster one
            below = float(per_seed[per_seed["pair"] == pair]["ratio_below"].max())
            result = Verdict("contradicted", f"contradicted: {row['reason']}") if below <= 1 else Verdict(
                "inconclusive", f"inconclusive: {row['reason']} within its shorter budget: only ratio < {below:g}×")
        elif effect["n"] < 2 or not math.isfinite(effect["low"]):
            result = Verdict("inconclusive", f"inconclusive: {row['status']} ({row['reason'] or 'one seed'})")
        elif effect["low"] > 1:
            result = Verdict("reproduced", f"reproduced: {fast} needs fewer images than {slow}")
        elif effect["high"] < 1:
            result = Verdict("contradicted", f"contradicted: {fast} needs more images than {slow}")
        else:
            result = Verdict("inconclusive", f"inconclusive: no significant ratio (logs sd {logs['std']:.2g})")
        out.append(Claim(f"Fig. 2: {fast} vs {base_kind(slow)}", f"{OBJECTIVE_NAMES[fast]} learns zero-shot "
                         f"transfer with fewer images than {OBJECTIVE_NAMES[base_kind(slow)]} (§2.3)",
                         f"{paper:g}× (Fig. 2)",
                         f"images {slow} needs over those {fast} needs to reach the same zero-shot top-1 on "
                         f"`{suite}` (the lower of their final accuracies)",
                         row["result"], effect, result, paper, mde, unit="×", scale=1.0, chapter="objectives.md"))
    return out


#: How the claims name the objectives of Figure 2.
OBJECTIVE_NAMES = {"caption-lm": "predicting the caption with a language model",
                   "bow-predict": "predicting its bag of words", "bow-contrastive": "the contrastive objective",
                   "clip": "CLIP's contrastive objective"}


def learnable_temperature(temps) -> Claim:
    """§2.5: a learnable τ spares tuning it — learnable vs the best fixed τ (chosen on a validation suite, scored
    on another: `temperature_summary.learnable_vs_best_fixed`), paired over seeds; testable only where the
    learnable τ is free to move (Adam's bound lets it reach the clip)."""
    from .experiments import temperature_summary as summary
    from .optim import logit_scale_reach

    select, score = summary.default_select(temps.records), summary.default_score(temps.records)
    if score == select:
        raise ValueError(f"the temperature results choose and score on the same suite {select!r}")
    pairs = summary.learnable_vs_best_fixed(temps.records, score, select)
    gap = pairs["difference"].tolist()
    effect, mde = difference_interval(gap), seed_mde(gap)
    train = temps.records[0]["config"]["train"]
    steps = train.get("steps") or 0
    reach = logit_scale_reach(train["lr"], train["warmup_steps"], steps) if steps else math.nan
    pre = [(reach >= 100, f"the learnable τ cannot move far: Adam's bound lets the logit scale reach {reach:.0f} in "
            f"{steps:,} steps")]
    return Claim("learnable − best fixed τ", "A learnable temperature (init 0.07, logit scale clipped at 100) spares "
                 "tuning τ (§2.5)", "no ablation in the paper; τ learned", f"zero-shot on `{score}`, learnable τ "
                 f"minus the best fixed τ on `{select}` (τ = {pairs['tau'].iloc[0]:g})",
                 f"{interval_text(effect, signed=True)} points", effect, verdict(effect, None, mde, pre), None, mde,
                 chapter="temperature.md")


def architecture() -> Claim:
    """The model and tokenizer are OpenAI's, checked by the test suite against OpenAI's code."""
    return Claim("identical to OpenAI's", "Model and tokenizer identical to OpenAI's (released code)", "—",
                 "state-dict keys, shapes and outputs against OpenAI's code", "equal (test suite)",
                 {"mean": math.nan, "low": math.nan, "high": math.nan, "n": 0},
                 Verdict("reproduced", "exact (checked by the test suite)"), chapter="architecture.md")


#: Each claim's experiments (loaded by name) and the function that tests it, in the order of the table.
CLAIMS: tuple[tuple[tuple[str, ...], Callable], ...] = (
    (("clip_small",), zero_shot), (("clip_small",), temperature_reaches_clamp), (("scaling",), compute_scaling),
    (("clip_small",), retrieval), (("prompts",), prompt_ensembling), (("fewshot",), few_shot_equivalence),
    (("limitations",), mnist_pixels), (("objectives",), objectives_order), (("temperature",), learnable_temperature),
    (("robustness",), beats_supervised_probe), (("robustness",), effective_robustness),
    (("adaptation",), adaptation_gain), ((), architecture),
)


def collect(load: Callable[[str], object]) -> list[Claim]:
    """Every claim, from `load(name)` -> the experiment's results (e.g. `repro.book.experiment_results`)."""
    loaded: dict[str, object] = {}
    out: list[Claim] = []
    for names, test in CLAIMS:
        args = [loaded.setdefault(n, load(n)) for n in names]
        got = test(*args)
        out.extend(got if isinstance(got, list) else [got])
    return out
