"""``results.png`` of an experiment: mIoU beside damage F1 (and building F1) per target domain."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from damagemap.io_atomic import atomic_path

PANELS = (("miou", "mIoU", None), ("f1", "damaged-pixel F1", "pixel"), ("building_f1", "building F1", "building"))
"""(summary metric, axis label, pooled section whose ``f1``/``miou`` is drawn as a dot)."""


def _pooled_value(stats: dict, section: str | None) -> float:
    pooled = stats.get("pooled", {})
    if section is None:
        return float(pooled.get("pixel", {}).get("miou", math.nan))
    return float(pooled.get(section, {}).get("f1", math.nan))


def plot_summary(summary: dict, path: Path, title: str = "") -> None:
    """Grouped bars per target domain, one bar per recipe: mean ± std over folds, a dot at the pooled score.

    Panels: mIoU and damaged-pixel F1, plus building F1 when any fold scored buildings. Targets
    whose folds hold no positive pixel get a † after their name.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recipes = list(summary)
    domains = sorted({d for e in summary.values() for d in e["domains"]})
    panels = [
        p
        for p in PANELS
        if p[0] != "building_f1"
        or any("building" in s.get("pooled", {}) for e in summary.values() for s in e["domains"].values())
    ]
    width = 0.8 / max(len(recipes), 1)
    panel_w = max(4.5, 1.4 * len(domains) * max(1, len(recipes) / 3))
    fig, axes = plt.subplots(1, len(panels), figsize=(panel_w * len(panels), 3.8), squeeze=False)
    labels = []
    for d in domains:
        clean = any(
            not e["domains"].get(d, {"has_positives": True}).get("has_positives", True) for e in summary.values()
        )
        labels.append(f"{d} †" if clean else d)
    x = np.arange(len(domains))
    for ax, (metric, name, section) in zip(axes[0], panels):
        for i, recipe in enumerate(recipes):
            stats = [summary[recipe]["domains"].get(d, {}) for d in domains]
            means = [s.get(metric, {}).get("mean", np.nan) for s in stats]
            stds = [s.get(metric, {}).get("std", np.nan) for s in stats]
            offset = x + i * width - 0.4 + width / 2
            ax.bar(offset, means, width, yerr=np.nan_to_num(stds), capsize=3, label=recipe)
            pooled = [_pooled_value(s, section) for s in stats]
            ax.plot(offset, pooled, "o", color="black", markersize=4, label="pooled" if i == 0 else None)
        ax.set_xticks(x, labels, rotation=20, ha="right")
        ax.set_ylabel(f"{name} (mean ± std over folds)")
        ax.set_ylim(0, 1)
        ax.set_title(name)
    axes[0][0].legend(fontsize=8, loc="upper right")
    fig.suptitle(title or "recipes per target domain")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
