"""Per-class IoU (mean ± std over folds) of a finished `damagemap experiment` folder.

The experiment report shows mIoU / damage IoU / F1; multi-class recipes (e.g. the HRCDS
concrete-damage check of the severity segmentation) also need each class. Run after the
experiment, from the repository root:

    python -m benchmarks.class_iou runs/hrcds_kfold [RECIPE_YAML]

Class names come from the recipe file if given, else the classes are numbered.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.common import print_table


def class_iou_table(exp_dir: Path, classes: list[str] | None = None) -> tuple[list[str], list[list[object]]]:
    """Rows ``[recipe, class, mean, std, folds]`` from ``exp_dir/folds/<recipe>/*.json``."""
    rows: list[list[object]] = []
    for recipe_dir in sorted((exp_dir / "folds").iterdir()):
        folds = [json.loads(p.read_text()) for p in sorted(recipe_dir.glob("*.json"))]
        iou = np.array([f["scores"]["iou"] for f in folds], dtype=float)
        miou = np.array([f["scores"]["miou"] for f in folds], dtype=float)
        names = classes or [f"class {i}" for i in range(iou.shape[1])]
        for k, name in enumerate(names):
            col = iou[:, k][~np.isnan(iou[:, k])]
            rows.append([recipe_dir.name, name, f"{col.mean():.3f} ± {col.std():.3f}" if col.size else "n/a", len(col)])
        rows.append(
            [recipe_dir.name, "mIoU", f"{np.nanmean(miou):.3f} ± {np.nanstd(miou):.3f}", int((~np.isnan(miou)).sum())]
        )
    return ["recipe", "class", "IoU (mean ± std over folds)", "folds"], rows


def main(argv: list[str]) -> None:
    exp_dir = Path(argv[0])
    classes = None
    if len(argv) > 1:
        from damagemap.recipe import load_recipe

        classes = load_recipe(argv[1]).classes
    columns, rows = class_iou_table(exp_dir, classes)
    print_table(f"per-class IoU: {exp_dir}", columns, rows)


if __name__ == "__main__":
    main(sys.argv[1:])
