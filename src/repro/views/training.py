"""Tables and figures of the training chapter (paper §2.5), from the `clip_small` result records
(`repro.experiments.clip_small`): the recipe beside the paper's, the curves every run logs (loss, learning rate,
logit scale, throughput), the speed of each seed, and the numbers of the temperature paragraph (how far Adam lets
the logit scale travel: `repro.optim.lr_sum`, `logit_scale_reach`)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd

from ..models import PRESETS, parameter_counts
from ..models.naming import describe, millions
from ..optim import adam_settings, logit_scale_reach, lr_lambda, lr_sum, param_groups
from ..stats import accuracy_interval, difference_interval
from ..train_config import TrainConfig

#: The paper's recipe (§2.2, §2.5, Appendix F Tables 19–21): web pairs, batch, epochs, warmup steps, peak learning
#: rate of RN50 / RN101 / ViT-B, initial temperature and the largest logit scale.
PAPER = {"pairs": 400_000_000, "batch": 32768, "epochs": 32, "warmup": 2000, "lr": 5e-4, "temperature": 0.07,
         "clamp": 100.0}
#: Optimiser steps of the paper's runs, derived: 32 epochs of 400M pairs in batches of 32,768.
PAPER_STEPS = round(PAPER["epochs"] * PAPER["pairs"] / PAPER["batch"])
SEED_COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"]
#: What may differ between the seeds of one recipe (the precision as configured may be "auto" for some seeds and
#: set for others, as long as every seed trained in the same one: `used_precision`).
PER_SEED = ("seed", "out_dir", "precision")


def used_precision(record: dict) -> str:
    """The precision a clip_small seed trained in: its training log's, else its configuration's."""
    return record["metrics"]["train"]["final"].get("precision") or record["config"]["precision"]


def train_config(records: Sequence[dict]) -> TrainConfig:
    """The training configuration the seeds share (`PER_SEED` aside); an error if they differ, or if they trained in
    different precisions."""
    shared = [{k: v for k, v in r["config"].items() if k not in PER_SEED} for r in records]
    if any(s != shared[0] for s in shared[1:]):
        raise ValueError("the clip_small seeds were trained with different configurations")
    used = {r["seed"]: used_precision(r) for r in records}
    if len(set(used.values())) > 1:
        raise ValueError(f"the clip_small seeds trained in different precisions: {used}")
    config = records[0]["config"]
    return TrainConfig.from_dict({f.name: config[f.name] for f in fields(TrainConfig) if f.name in config})


def run_facts(records: Sequence[dict]) -> dict:
    """Steps, epochs, steps per epoch, batch size, warmup, peak learning rate, the precision the runs trained in
    (the log's, where a run chose it with "auto"), the chance level ln N of the loss, the model's size and the
    training throughput (pictures per second, mean and t interval over seeds)."""
    config = train_config(records)
    train = records[0]["metrics"]["train"]
    steps, epochs = int(train["steps"]), float(train["final"]["epoch"])
    return {"steps": steps, "epochs": epochs, "steps_per_epoch": round(steps / epochs), "batch": config.batch_size,
            "precision": used_precision(records[0]), "chance": math.log(config.batch_size),
            "warmup": min(config.warmup_steps, steps), "lr": config.lr,
            "parameters": millions(parameter_counts(config.clip_config())["total"]),
            "img_s": difference_interval([r["metrics"]["train"]["img_s"] for r in records])}


def precision_choice(records: Sequence[dict]) -> str:
    """How the seeds came by their precision, for the recipe table: ' (chosen by precision="auto")' for all, the
    seeds of each way where some chose it and others had it set, and nothing where every seed had it set."""
    auto = [r["seed"] for r in records if r["config"]["precision"] == "auto"]
    if not auto:
        return ""
    if len(auto) == len(records):
        return ' (chosen by precision="auto")'
    fixed = [r["seed"] for r in records if r["seed"] not in auto]
    return (f' (chosen by precision="auto" for seeds {", ".join(map(str, auto))}; set for seeds '
            f'{", ".join(map(str, fixed))})')


def decay_groups(config: TrainConfig) -> dict:
    """Which parameters of this run's objective `param_groups` decays and which it exempts (names and parameter
    counts), with the objective's initial logit scale and its clamp."""
    from ..objectives import make_objective

    objective = make_objective("clip", config.clip_config())
    groups = param_groups(objective, config.weight_decay)
    names = {id(p): n for n, p in objective.named_parameters()}
    return {"decayed": [names[id(p)] for p in groups[0]["params"]],
            "exempt": [names[id(p)] for p in groups[1]["params"]],
            "n_decayed": sum(p.numel() for p in groups[0]["params"]),
            "n_exempt": sum(p.numel() for p in groups[1]["params"]),
            "init_scale": float(objective.model.logit_scale.detach().exp()), "clamp": objective.clamp}


def training_data(records: Sequence[dict], results_root: str | Path) -> str:
    """The training data of the runs: the corpus's committed manifest when there is one, else what one epoch's
    steps cover."""
    facts = run_facts(records)
    manifest = Path(results_root) / "data" / str(records[0]["config"].get("corpus", "")) / "manifest.json"
    if manifest.is_file():
        n = sum(json.loads(manifest.read_text(encoding="utf-8"))["counts"]["train"].values())
        return f"{n:,} pictures (several captions each, one drawn per step)"
    n = facts["steps_per_epoch"] * facts["batch"]
    return f"≥ {n:,} pictures ({facts['steps_per_epoch']} full batches an epoch)"


def recipe_table(records: Sequence[dict], results_root: str | Path) -> pd.DataFrame:
    """The paper's hyperparameters (with the section or table of the paper) beside those of the runs, read from
    their result files and the package code (`adam_settings`, `param_groups`)."""
    config, facts = train_config(records), run_facts(records)
    clip, groups = config.clip_config(), decay_groups(config)
    betas, eps = adam_settings(config)
    paper_models = {name: parameter_counts(PRESETS[name])["total"] / 1e6 for name in ("ViT-B/32", "ViT-L/14")}
    chosen = precision_choice(records)
    rows = [
        ("optimizer", "AdamW, decoupled weight decay", "§2.5", "AdamW (`torch.optim.AdamW`)"),
        ("Adam β1, β2", "0.9, 0.98 (ViT) · 0.9, 0.999 (ResNet)", "Table 19",
         f"{betas[0]}, {betas[1]} ({'ViT' if clip.is_vit else 'ResNet'})"),
        ("Adam ε", "1e-6 (ViT) · 1e-8 (ResNet)", "Table 19", f"{eps:g}"),
        ("weight decay", "0.2, not on gains or biases", "§2.5, Table 19",
         f"{config.weight_decay:g}, not on {len(groups['exempt'])} tensors (gains, biases, temperature)"),
        ("peak learning rate", f"{PAPER['lr']:g} (RN50, RN101, ViT-B)", "Tables 20–21", f"{config.lr:g}"),
        ("schedule", f"warmup {PAPER['warmup']:,} steps, cosine decay", "§2.5, Table 19",
         f"warmup {facts['warmup']} steps, cosine decay to 0"),
        ("batch size", f"{PAPER['batch']:,}", "§2.5", f"{config.batch_size:,}"),
        ("epochs (steps)", f"{PAPER['epochs']} (≈{PAPER_STEPS:,}, derived)", "§2.5",
         f"{facts['epochs']:g} ({facts['steps']:,})"),
        ("image resolution", f"{PRESETS['ViT-B/32'].image_resolution} px (ViT-L/14@336px: 336)", "§2.4",
         f"{clip.image_resolution} px"),
        ("augmentation", "random square crop only", "§2.3",
         f"random square crop (scale ≥ {config.min_crop_scale:g}) of {config.data_size} px pictures"),
        ("precision", "mixed precision", "§2.5", facts["precision"] + chosen),
        ("model", f"ViT-B/32 ({paper_models['ViT-B/32']:.0f}M) … ViT-L/14 ({paper_models['ViT-L/14']:.0f}M), "
         "RN50 … RN50x64", "§2.4", describe(config)),
        ("training data", f"{PAPER['pairs'] / 1e6:.0f}M (image, text) pairs from the web", "§2.2",
         training_data(records, results_root)),
        ("temperature", "learned, init τ = 0.07 (scale 14.3), scale ≤ 100", "§2.5, Table 19",
         f"{config.temperature}, init scale {groups['init_scale']:.1f}, scale ≤ {groups['clamp']:g}"),
    ]
    frame = pd.DataFrame(rows, columns=["hyperparameter", "paper", "paper ref.", "ours (clip_small)"])
    frame.index = range(1, len(frame) + 1)
    return frame


def checkpoint_checked(records: Sequence[dict], runs_root: str | Path | None = None) -> Path | None:
    """The first saved run folder (each seed's `out_dir`, else `runs_root/clip_small/<profile>/seed<k>`, by default
    under the repository's `runs`) whose checkpoint's optimiser state holds exactly `adam_settings`' betas and ε;
    None when no checkpoint is at hand (the book then says so). A checkpoint that disagrees is an error."""
    from ..book import repo_root
    from ..checkpoint import load_state

    runs_root = repo_root() / "runs" if runs_root is None else runs_root
    betas, eps = adam_settings(train_config(records))
    for record in records:
        for folder in (Path(record["config"]["out_dir"]),
                       Path(runs_root) / "clip_small" / record["profile"] / f"seed{record['seed']}"):
            if (folder / "checkpoint.safetensors").is_file():
                groups = load_state(folder / "checkpoint.safetensors")[1]["optimizer"]["param_groups"]
                if not all(tuple(g["betas"]) == betas and g["eps"] == eps for g in groups):
                    raise ValueError(f"{folder}: the saved optimiser's betas / eps differ from {betas}, {eps}")
                return folder
    return None


def curves(records: Sequence[dict]) -> dict[int, pd.DataFrame]:
    """Each seed's logged curves (step, loss, lr, logit_scale, img_s) as a DataFrame, keyed by seed."""
    return {r["seed"]: pd.DataFrame(r["curves"]) for r in records}


def loss_facts(records: Sequence[dict]) -> dict:
    """The first logged loss (mean over seeds) and its step, the final loss (mean and t interval over seeds) and
    the last batch's image→text accuracy (interval inside [0, 1])."""
    first = [r["curves"]["loss"][0] for r in records]
    train = [r["metrics"]["train"]["final"] for r in records]
    return {"first_loss": float(np.mean(first)), "first_step": int(records[0]["curves"]["step"][0]),
            "final_loss": difference_interval([t["loss"] for t in train]),
            "final_accuracy": accuracy_interval([t["accuracy"] for t in train], run_facts(records)["batch"])}


def temperature_facts(records: Sequence[dict]) -> dict:
    """Where the logit scale went: its initial value and clamp, the final scale and temperature over seeds, whether
    it rose or fell and the step where the mean curve turned, and how far Adam could move it: Σ lr over our schedule
    and the paper's (`lr_sum`), the distance in t to the clamp, the distance travelled, and the largest scale each
    schedule can reach (`logit_scale_reach`)."""
    config, facts = train_config(records), run_facts(records)
    groups = decay_groups(config)
    init, clamp = groups["init_scale"], groups["clamp"] or PAPER["clamp"]
    final = difference_interval([r["metrics"]["train"]["final"]["logit_scale"] for r in records])
    mean = pd.concat([c.set_index("step")["logit_scale"] for c in curves(records).values()], axis=1).mean(axis=1)
    rose = final["mean"] >= init
    turn = int(mean.idxmax() if rose else mean.idxmin())
    return {"init": init, "clamp": clamp, "final": final,
            "temperature": difference_interval([r["metrics"]["train"]["final"]["temperature"] for r in records]),
            "rose": rose, "moved": abs(final["mean"] - init) / init > 0.1, "turn_step": turn,
            "turn_value": float(mean.loc[turn]),
            "budget": lr_sum(config.lr, config.warmup_steps, facts["steps"]),
            "budget_paper": lr_sum(PAPER["lr"], PAPER["warmup"], PAPER_STEPS),
            "needed": math.log(clamp) - math.log(init), "travelled": math.log(final["mean"] / init),
            "reach": logit_scale_reach(config.lr, config.warmup_steps, facts["steps"], init),
            "reach_paper": logit_scale_reach(PAPER["lr"], PAPER["warmup"], PAPER_STEPS, init)}


def _curve_axes(records: Sequence[dict], column: str, ax, **kw) -> None:
    kw = {"lw": 2} | kw
    for (seed, c), color in zip(curves(records).items(), SEED_COLORS, strict=False):
        ax.plot(c["step"], c[column], color=color, label=f"seed {seed}", **kw)
    ax.set_xlabel("optimizer step")
    ax.grid(alpha=0.3)


def loss_figure(records: Sequence[dict]):
    """The loss of the batch at every logged step, per seed, against the chance level ln N."""
    import matplotlib.pyplot as plt

    facts = run_facts(records)
    fig, ax = plt.subplots(figsize=(8, 4.6))
    _curve_axes(records, "loss", ax, lw=1.6, marker="o", ms=3)
    ax.axhline(facts["chance"], color="black", ls="--", lw=1.5,
               label=f"chance: ln {facts['batch']} = {facts['chance']:.2f}")
    ax.set(ylabel="contrastive loss (nats)", title=f"Training loss, batch {facts['batch']}")
    ax.legend(loc="lower left")
    fig.tight_layout()
    return fig


def lr_figure(records: Sequence[dict]):
    """The logged learning rate per seed, over `lr_lambda` × the peak rate, with the end of the warmup."""
    import matplotlib.pyplot as plt

    facts = run_facts(records)
    fig, ax = plt.subplots(figsize=(8, 3.8))
    _curve_axes(records, "lr", ax, alpha=0.8)
    f = lr_lambda(facts["warmup"], facts["steps"])
    grid = np.arange(facts["steps"])
    ax.plot(grid + 1, [facts["lr"] * f(s) for s in grid], color="black", lw=1, alpha=0.6,
            label="lr_lambda × peak lr")
    ax.axvline(facts["warmup"], color="grey", ls=":", lw=1.5)
    ax.set_ylabel("learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def logit_scale_figure(records: Sequence[dict]):
    """The logit scale per seed: left on a log axis against the initial value and the clamp, right zoomed in."""
    import matplotlib.pyplot as plt

    t = temperature_facts(records)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.4))
    for ax in (ax0, ax1):
        _curve_axes(records, "logit_scale", ax)
        ax.axhline(t["init"], color="black", ls="--", lw=1.2, label=f"init 1/0.07 = {t['init']:.1f}")
    ax0.axhline(t["clamp"], color="#c44e52", ls="--", lw=1.2, label=f"clamp {t['clamp']:g}")
    ax0.set(yscale="log", ylim=(5, 150), ylabel="logit scale exp(t) (log axis)", title="against the init and the clamp")
    ax0.legend(loc="center right")
    ax1.set(ylabel="logit scale exp(t)", title="zoomed in")
    fig.tight_layout()
    return fig


def throughput_figure(records: Sequence[dict]):
    """Pictures per second per seed, averaged from the start of the run to each logged step."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.8))
    _curve_axes(records, "img_s", ax)
    ax.set_ylabel("pictures / second")
    ax.set_ylim(0, None)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def speed_table(records: Sequence[dict]) -> pd.DataFrame:
    """Steps, throughput and wall time (training; training + evaluation) of each seed."""
    return pd.DataFrame([{"seed": r["seed"], "steps": int(r["metrics"]["train"]["steps"]),
                          "pictures / s": round(float(r["metrics"]["train"]["img_s"]), 1),
                          "training (min)": round(float(r["metrics"]["train"]["train_wall_time_s"]) / 60, 1),
                          "training + evaluation (min)": round(float(r["wall_time_s"]) / 60, 1)} for r in records])


def machine(records: Sequence[dict]) -> str:
    """The machine the runs trained on, from the first result file: its GPU, else its CPU and cores."""
    hw = records[0].get("hardware", {})
    return hw.get("gpu") or f"{hw.get('cpu', '?')}, {hw.get('cores', '?')} cores"
