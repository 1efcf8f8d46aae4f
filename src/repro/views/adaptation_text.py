"""The adaptation chapter's sentences (paper §3.3, Figure 14): what the selection chose, what the few-shot axis
shows, the verdict and where accuracy stays at its floor — from the `adaptation` result records, over the tables
of `repro.views.adaptation`."""

from __future__ import annotations

from collections.abc import Sequence

from ..stats import difference_interval
from .adaptation import NAMES, NO_FEW, SUMMARY, accuracy, gain, join, params, setting, sign, values
from .adaptation import _text as text


def selection_text(records: Sequence[dict]) -> str:
    """How the rates and the probe's C were chosen, and a warning when a chosen rate is the edge of its grid."""
    config = records[0]["config"]
    edge = [NAMES[m] for m in ("lora", "full_ft")
            if any(r["metrics"]["methods"][m]["lr"] == max(config[m]["lr_grid"]) for r in records)]
    text = (f"The probe's L-BFGS fits are capped at {config['probe_max_iter']:,} iterations (the paper: "
            "1,000).")
    if edge:
        text += (f" For {join(edge)} the chosen rate is the *largest* of the grid in some seed, so the grid "
                 "may not bracket the best rate; and a short selection run need not rank the rates as the full run "
                 "would. Both make the fine-tuned numbers less certain than the probe's, whose C search does "
                 "bracket its optimum.")
    return text


def fewshot_text(records: Sequence[dict]) -> str:
    """Per few-shot method: from which k it is above zero-shot in distribution (paired, 95%), and at the largest k
    its change of the held-out-style accuracy and of the drop relative to zero-shot; `NO_FEW` without the axis."""
    s = setting(records)
    if not s["few_shot"]:
        return NO_FEW
    top, lines = s["shots"][-1], []
    for m in s["few_methods"]:
        beats = [k for k in s["shots"] if sign(gain(records, m, "in_distribution", k)) > 0]
        lines.append(
            f"**{NAMES[m]}** ({params(records, m, top):,} parameters) "
            + (f"is above zero-shot in distribution beyond the seed-to-seed noise from k = {beats[0]}" if beats else
               "is never above zero-shot in distribution beyond the seed-to-seed noise")
            + f"; at k = {top} it changes the held-out-style accuracy by "
            f"{text(gain(records, m, 'held_out_styles', top), True)} points and the drop under the shift by "
            f"{text(gain(records, m, 'drop', top), True)} points relative to zero-shot.")
    return " ".join(lines)


def _best(records: Sequence[dict], key: str) -> str:
    return max(setting(records)["methods"], key=lambda m: float(values(records, m, key).mean()))


def verdict_text(records: Sequence[dict]) -> str:
    """The chapter's closing comparison: the best method in and out of distribution, LoRA against full
    fine-tuning, which adaptations show Figure 14's pattern, which keeps the smallest drop, and a caution when the
    cheapest adaptation is also the most accurate."""
    s = setting(records)
    acc = {(m, key): text(accuracy(records, m, key)) for m in s["methods"] for key in SUMMARY[:2]}
    b_in, b_held = _best(records, "in_distribution"), _best(records, "held_out_styles")
    lines = [f"The best in-distribution accuracy comes from **{NAMES[b_in]}** ({acc[b_in, 'in_distribution']} %), "
             f"the best accuracy on the held-out styles from **{NAMES[b_held]}** ({acc[b_held, 'held_out_styles']} "
             f"%); zero-shot reaches {acc['zeroshot', 'in_distribution']} % and "
             f"{acc['zeroshot', 'held_out_styles']} %.",
             f"LoRA trains {params(records, 'lora'):,} parameters, "
             f"{params(records, 'full_ft') / max(params(records, 'lora'), 1):.0f}× fewer than full fine-tuning's "
             f"{params(records, 'full_ft'):,}, and reaches {acc['lora', 'in_distribution']} % in distribution against "
             f"full fine-tuning's {acc['full_ft', 'in_distribution']} %."]
    pattern = [NAMES[m] for m in s["adapted"]
               if sign(gain(records, m, "in_distribution")) > 0 and sign(gain(records, m, "drop")) > 0]
    lines.append(f"The paper's Figure 14 pattern — more accuracy in distribution, a larger drop under the shift than "
                 f"zero-shot's — holds for {join(pattern)}: adapting to the training styles' labels buys "
                 "accuracy on those styles faster than on the held-out ones." if pattern else
                 "No adaptation shows the paper's Figure 14 pattern beyond the seed-to-seed noise.")
    adapted = sorted(s["adapted"], key=lambda m: float(values(records, m, "drop").mean()))
    smallest = adapted[0]
    others = []
    for m in adapted[1:]:
        diff = gain(records, m, "drop", over=smallest)
        others.append(f"{NAMES[m]}'s is {text(diff, True)} points larger "
                      f"({'clearly' if sign(diff) > 0 else 'but not beyond the seed-to-seed noise'})")
    lines.append(f"Among the adaptations, **{NAMES[smallest]}** keeps the smallest drop from in-distribution to the "
                 f"held-out styles ({text(difference_interval(values(records, smallest, 'drop')), True)} points); "
                 f"{'; '.join(others)}.")
    cheapest = min(s["adapted"], key=lambda m: params(records, m))
    if b_in == cheapest:
        lines.append(f"That the {NAMES[cheapest]}, with the fewest trained parameters, is also the most accurate is a "
                     "statement about this budget (see the discussion), not about the methods in general: fine-tuning "
                     "can change the features themselves, and with longer training it is commonly found to overtake a "
                     "probe on frozen ones in distribution (e.g. in the WiSE-FT experiments on CLIP "
                     "{cite}`wortsman2022wiseft`).")
    return " ".join(lines)


def floors_text(records: Sequence[dict]) -> str:
    """A paragraph on the held-out styles where zero-shot's mean top-1 is below twice chance ("" if none)."""
    s = setting(records)
    weak = [h for h in s["held"] if values(records, "zeroshot", h).mean() < 2 * s["chance"]]
    return (f"**Floors.** On {join(f'`{w}`' for w in weak)} zero-shot is within twice chance "
            f"(chance: {100 * s['chance']:.1f} %): there is almost nothing to lose there, and that score says how "
            "far those styles' pictures are from what the model learned.") if weak else ""
