"""Experiment reports: per target domain mean ± std over folds, worst domain, one figure."""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from damagemap.io_atomic import atomic_path, write_text_atomic
from damagemap.protocols.runner import FoldResult

METRICS = ("miou", "damage_iou", "f1")


def _group(r: FoldResult) -> str:
    shots = r.meta.get("n_shots")
    return r.target_domain if shots is None else f"{r.target_domain} ({shots}-shot)"


def summarise(results: Sequence[FoldResult]) -> dict:
    """``{recipe: {"domains": {target: {metric: {mean, std, n}}}, "worst_domain": …}}``.

    Standard deviations are over folds (ddof 0); NaN scores (e.g. no damage in a test fold and
    none predicted) are left out of the mean and counted in ``n_nan``.
    """
    table: dict[str, dict] = {}
    grouped: dict[tuple[str, str], list[FoldResult]] = defaultdict(list)
    for r in results:
        grouped[(r.recipe, _group(r))].append(r)
    for (recipe, target), rs in grouped.items():
        entry = table.setdefault(recipe, {"domains": {}})
        stats = {}
        for m in METRICS:
            vals = np.array([r.scores.get(m, math.nan) for r in rs], dtype=float)
            ok = vals[~np.isnan(vals)]
            stats[m] = {
                "mean": float(ok.mean()) if ok.size else math.nan,
                "std": float(ok.std()) if ok.size else math.nan,
                "n": int(ok.size),
                "n_nan": int(np.isnan(vals).sum()),
            }
        entry["domains"][target] = stats
    for recipe, entry in table.items():  # whole-network baselines: how they were initialised
        entry["init"] = "; ".join(sorted({r.init for r in results if r.recipe == recipe and r.init})) or None
    for entry in table.values():
        domains = {d: s["miou"]["mean"] for d, s in entry["domains"].items() if not math.isnan(s["miou"]["mean"])}
        entry["worst_domain"] = min(domains, key=domains.__getitem__) if domains else None
    return table


def _fmt(s: dict) -> str:
    return "n/a" if math.isnan(s["mean"]) else f"{s['mean']:.3f} ± {s['std']:.3f}"


def _label(recipe: str, entry: dict) -> str:
    """The recipe name, followed by its init note if it has one (e.g. ``"… (random init)"``)."""
    return f"{recipe} ({entry['init']})" if entry.get("init") else recipe


def markdown_table(summary: dict) -> str:
    """One row per (recipe, target domain): mIoU, damage IoU and F1 as mean ± std.

    A recipe with an init note (whole-network baselines) is labelled ``"name (note)"``.
    """
    lines = ["| recipe | target domain | mIoU | damage IoU | F1 | folds |", "|---|---|---|---|---|---|"]
    for recipe, entry in summary.items():
        for target, s in sorted(entry["domains"].items()):
            worst = " **(worst)**" if target == entry["worst_domain"] and len(entry["domains"]) > 1 else ""
            lines.append(
                f"| {_label(recipe, entry)} | {target}{worst} | {_fmt(s['miou'])} | {_fmt(s['damage_iou'])} | "
                f"{_fmt(s['f1'])} | {s['miou']['n'] + s['miou']['n_nan']} |"
            )
    return "\n".join(lines) + "\n"


def experiment_notes(results: Sequence[FoldResult]) -> dict[str, list[str]]:
    """Each recipe's distinct training notes over its folds, in first-seen order."""
    notes: dict[str, list[str]] = {}
    for r in results:
        seen = notes.setdefault(r.recipe, [])
        seen += [n for n in r.notes if n not in seen]
    return {recipe: ns for recipe, ns in notes.items() if ns}


def write_reports(results: Sequence[FoldResult], out_dir: str | Path, title: str = "") -> dict:
    """Write ``results.json``, ``results.csv`` (one row per fold), ``results.md``, ``results.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarise(results)
    folds = [
        {
            "recipe": r.recipe,
            "fold": r.fold,
            "target_domain": r.target_domain,
            "n_shots": r.meta.get("n_shots"),
            "init": r.init,
            **{m: r.scores.get(m) for m in METRICS},
        }
        for r in results
    ]
    notes = experiment_notes(results)
    payload = {"title": title, "summary": summary, "notes": notes, "folds": folds}
    write_text_atomic(out_dir / "results.json", json.dumps(payload, indent=2, default=float) + "\n")
    with atomic_path(out_dir / "results.csv") as tmp, tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(folds[0]) if folds else ["recipe"])
        w.writeheader()
        w.writerows(folds)
    noted = "".join(f"\n- {recipe}: {note}" for recipe, recipe_notes in notes.items() for note in recipe_notes)
    write_text_atomic(
        out_dir / "results.md",
        (f"## {title}\n\n" if title else "") + markdown_table(summary) + (f"\nNotes:{noted}\n" if noted else ""),
    )
    plot_summary(summary, out_dir / "results.png", title)
    return summary


def plot_summary(summary: dict, path: Path, title: str = "") -> None:
    """Grouped bars: mean mIoU (± std) per target domain, one bar per recipe."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recipes = list(summary)
    domains = sorted({d for e in summary.values() for d in e["domains"]})
    width = 0.8 / max(len(recipes), 1)
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(domains) * max(1, len(recipes) / 3)), 3.6))
    for i, recipe in enumerate(recipes):
        means = [summary[recipe]["domains"].get(d, {}).get("miou", {}).get("mean", np.nan) for d in domains]
        stds = [summary[recipe]["domains"].get(d, {}).get("miou", {}).get("std", np.nan) for d in domains]
        ax.bar(np.arange(len(domains)) + i * width - 0.4 + width / 2, means, width, yerr=stds, capsize=3, label=recipe)
    ax.set_xticks(np.arange(len(domains)), domains, rotation=20, ha="right")
    ax.set_ylabel("mIoU (mean ± std over folds)")
    ax.set_ylim(0, 1)
    ax.set_title(title or "recipes per target domain")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
