"""Experiment reports: per target domain mean ± std over folds and pooled scores, worst domain, one figure."""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from damagemap.io_atomic import atomic_path, write_text_atomic
from damagemap.protocols.results_figure import plot_summary
from damagemap.protocols.runner import FoldResult
from damagemap.training.building_scores import xview2_score
from damagemap.training.metrics import ConfusionMatrix

METRICS = ("miou", "damage_iou", "f1", "building_f1", "xview2")
"""Scores shown as mean ± std over folds (building F1 and xView2 only where footprints were scored)."""
POOLED = ("miou", "precision", "recall", "f1")
POOLED_BUILDINGS = ("precision", "recall", "f1")
NO_POSITIVES_MARK = "†"
NO_POSITIVES_NOTE = (
    f"{NO_POSITIVES_MARK} folds whose test set holds no positive (damaged) pixels: their F1 is 0 or n/a and "
    "their mIoU is background IoU alone; pooled scores include them, and a target with no positive at all "
    "is never named worst."
)


def _group(r: FoldResult) -> str:
    shots = r.meta.get("n_shots")
    return r.target_domain if shots is None else f"{r.target_domain} ({shots}-shot)"


def has_positives(scores: dict) -> bool:
    """Whether a fold's test set held positive pixels (from its confusion matrix, else its recall)."""
    matrix, damage = scores.get("confusion"), scores.get("damage_classes")
    if matrix is not None and damage is not None:
        return bool(np.asarray(matrix)[list(damage)].sum() > 0)
    recall = scores.get("recall")  # recall is NaN exactly when the test set has no positive pixel
    return recall is not None and not math.isnan(recall)


def _pooled(rs: Sequence[FoldResult], key: str) -> ConfusionMatrix | None:
    """The sum of the folds' ``key`` confusion matrices (None unless every fold has one)."""
    mats = [r.scores.get(key) for r in rs]
    if not mats or any(m is None for m in mats):
        return None
    cms = []
    for m in mats:
        assert m is not None
        cm = ConfusionMatrix(len(m))
        cm.matrix = np.asarray(m, dtype=np.int64)
        cms.append(cm)
    return ConfusionMatrix.merge(cms)


def _pooled_scores(rs: Sequence[FoldResult]) -> dict:
    """Pooled pixel (and building) scores of one target over its folds: from summed confusions."""
    out: dict = {}
    damage = rs[0].scores.get("damage_classes")
    pixels = _pooled(rs, "confusion")
    if pixels is None or damage is None:
        return out
    s = pixels.scores(tuple(damage))
    out["pixel"] = {m: s[m] for m in POOLED}
    buildings = _pooled(rs, "building_confusion")
    if buildings is not None:
        b = buildings.scores(tuple(damage))
        out["building"] = {m: b[m] for m in POOLED_BUILDINGS} | {"n": int(buildings.matrix.sum())}
        if pixels.num_classes > 2:
            out["xview2"] = xview2_score(pixels.matrix)["xview2"]
    return out


def _worst(domains: dict[str, dict]) -> str | None:
    """Lowest pooled F1 (ties: pooled mIoU) among targets with positives; mean mIoU for older fold records."""

    def key(d: str) -> tuple[float, float]:
        pooled = domains[d]["pooled"].get("pixel")
        if pooled is not None:
            return (pooled["f1"], pooled["miou"])
        return (domains[d]["miou"]["mean"], 0.0)

    candidates = [d for d, s in domains.items() if s["has_positives"] and not math.isnan(key(d)[0])]
    return min(candidates, key=key) if candidates else None


def summarise(results: Sequence[FoldResult]) -> dict:
    """``{recipe: {"domains": {target: {metric: {mean, std, n}, "pooled": …}}, "worst_domain": …}}``.

    Standard deviations are over folds (ddof 0; NaN over a single fold, shown "n/a"); NaN scores
    (e.g. no damage in a test fold and none predicted) are left out of the mean and counted in
    ``n_nan``. ``pooled`` holds the scores of the confusion summed over the target's folds
    (``pixel``, and ``building`` / ``xview2`` where footprints were scored); ``no_positive_folds``
    counts folds without positive pixels. The worst domain is the lowest pooled F1 among targets
    with positives.
    """
    table: dict[str, dict] = {}
    grouped: dict[tuple[str, str], list[FoldResult]] = defaultdict(list)
    for r in results:
        grouped[(r.recipe, _group(r))].append(r)
    for (recipe, target), rs in grouped.items():
        entry = table.setdefault(recipe, {"domains": {}})
        stats: dict = {}
        for m in METRICS:
            vals = np.array([r.scores.get(m, math.nan) for r in rs], dtype=float)
            ok = vals[~np.isnan(vals)]
            stats[m] = {
                "mean": float(ok.mean()) if ok.size else math.nan,
                "std": float(ok.std()) if ok.size > 1 else math.nan,
                "n": int(ok.size),
                "n_nan": int(np.isnan(vals).sum()),
            }
        positives = [has_positives(r.scores) for r in rs]
        stats["n_folds"] = len(rs)
        stats["no_positive_folds"] = sum(not p for p in positives)
        stats["has_positives"] = any(positives)
        stats["pooled"] = _pooled_scores(rs)
        entry["domains"][target] = stats
    for recipe, entry in table.items():  # whole-network baselines: how they were initialised
        entry["init"] = "; ".join(sorted({r.init for r in results if r.recipe == recipe and r.init})) or None
    for entry in table.values():
        entry["worst_domain"] = _worst(entry["domains"])
    return table


def _fmt(s: dict) -> str:
    if math.isnan(s["mean"]):
        return "n/a"
    return f"{s['mean']:.3f} ± " + ("n/a" if math.isnan(s["std"]) else f"{s['std']:.3f}")


def _num(v: float | None) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{v:.3f}"


def _prf(p: dict | None) -> str:
    return "n/a" if p is None else " / ".join(_num(p[m]) for m in ("precision", "recall", "f1"))


def _label(recipe: str, entry: dict) -> str:
    """The recipe name, followed by its init note if it has one (e.g. ``"… (random init)"``)."""
    return f"{recipe} ({entry['init']})" if entry.get("init") else recipe


def markdown_table(summary: dict) -> str:
    """One row per (recipe, target domain): mean ± std over folds, then pooled scores.

    Columns: mIoU, damage IoU and F1 (mean ± std); pooled P / R / F1 of damaged pixels; where
    footprints were scored, building F1 (mean ± std) and pooled building P / R / F1, and xView2
    for K-class recipes. Folds without positive pixels are counted with a † (and a footnote). A
    recipe with an init note (whole-network baselines) is labelled ``"name (note)"``.
    """
    domains = [s for e in summary.values() for s in e["domains"].values()]
    buildings = any("building" in s["pooled"] for s in domains)
    xview = any("xview2" in s["pooled"] for s in domains)
    head = ["recipe", "target domain", "mIoU", "damage IoU", "F1", "pooled P / R / F1"]
    head += ["building F1", "pooled building P / R / F1"] if buildings else []
    head += ["xView2 (pooled)"] if xview else []
    head += ["folds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    marked = False
    for recipe, entry in summary.items():
        for target, s in sorted(entry["domains"].items()):
            worst = " **(worst)**" if target == entry["worst_domain"] and len(entry["domains"]) > 1 else ""
            cells = [_label(recipe, entry), target + worst, _fmt(s["miou"]), _fmt(s["damage_iou"]), _fmt(s["f1"])]
            cells.append(_prf(s["pooled"].get("pixel")))
            if buildings:
                cells += [_fmt(s["building_f1"]), _prf(s["pooled"].get("building"))]
            if xview:
                cells.append(_num(s["pooled"].get("xview2")))
            folds = str(s["n_folds"])
            if s["no_positive_folds"]:
                folds += f" ({s['no_positive_folds']}{NO_POSITIVES_MARK})"
                marked = True
            cells.append(folds)
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n" + (f"\n{NO_POSITIVES_NOTE}\n" if marked else "")


def experiment_notes(results: Sequence[FoldResult]) -> dict[str, list[str]]:
    """Each recipe's distinct training notes over its folds, in first-seen order."""
    notes: dict[str, list[str]] = {}
    for r in results:
        seen = notes.setdefault(r.recipe, [])
        seen += [n for n in r.notes if n not in seen]
    return {recipe: ns for recipe, ns in notes.items() if ns}


FOLD_COLUMNS = (
    "miou",
    "damage_iou",
    "precision",
    "recall",
    "f1",
    "building_precision",
    "building_recall",
    "building_f1",
    "n_buildings",
    "xview2",
)
"""Per-fold scores in results.csv / results.json (empty where a fold has no such score)."""


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
            **{m: r.scores.get(m) for m in FOLD_COLUMNS},
            "no_positives": not has_positives(r.scores),
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
