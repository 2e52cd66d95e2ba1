"""Segmentation metrics, all derived from one confusion matrix.

Conventions (no warnings are ever emitted; undefined ratios are NaN):

- ``matrix[t, p]`` counts pixels of true class ``t`` predicted as ``p`` (scikit-learn's
  ``confusion_matrix`` layout). Pixels whose target is 255 are skipped.
- IoU of a class = TP / (TP + FP + FN); NaN if the class is absent from both target and
  prediction. mIoU = mean IoU over the classes that are present in the target or the prediction
  (NaN classes excluded). For a binary damaged / not damaged task where both classes occur this
  is Smart Transfer's mIoU = (background IoU + damage IoU) / 2.
- Damage scores collapse ``damage_classes`` into one positive class against all others:
  precision = TP / (TP + FP) (NaN without predicted positives), recall = TP / (TP + FN) (NaN
  without true positives), F1 = 2TP / (2TP + FP + FN) and damage IoU = TP / (TP + FP + FN)
  (both NaN only when neither target nor prediction has a positive pixel; F1 is 0 when positives
  exist but none is found). These match scikit-learn with ``zero_division=np.nan``.
- Pixel accuracy = trace / total; NaN for an empty matrix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from damagemap.types import IGNORE_INDEX


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else float("nan")


def _as_integers(a: Any) -> np.ndarray:
    """``a`` as a numpy integer array, keeping its integer dtype (uint8 masks stay one byte per pixel)."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    return a if a.dtype.kind in "iu" else a.astype(np.int64)


class ConfusionMatrix:
    """Accumulates a ``[num_classes, num_classes]`` confusion matrix over batches.

    Args:
        num_classes: number of classes (2 for a binary head).
    """

    def __init__(self, num_classes: int) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, pred: Any, target: Any) -> None:
        """Add integer predictions and targets (numpy or torch, same shape; target 255 = ignore).

        Raises:
            ValueError: shape mismatch or a class index outside ``[0, num_classes)``.
        """
        p, t = _as_integers(pred), _as_integers(target)
        if p.shape != t.shape:
            raise ValueError(f"pred shape {p.shape} != target shape {t.shape}")
        k = self.num_classes
        keep = t != IGNORE_INDEX
        t = np.where(keep, t, 0)
        for name, a in (("pred", p), ("target", t)):
            if a.size and (a.min() < 0 or a.max() >= k):  # cheap test first; the gather names the class
                bad = a[keep & ((a < 0) | (a >= k))]
                if bad.size:
                    raise ValueError(f"{name} has class {int(bad[0])} outside [0, {k})")
        # cell t*k + p in int32 (inputs keep their small dtypes); ignored pixels go to an extra bin k*k
        cells = np.multiply(t, k, dtype=np.int32)
        np.add(cells, p, out=cells, casting="unsafe")
        cells[~keep] = k * k
        self.matrix += np.bincount(cells.ravel(), minlength=k * k + 1)[: k * k].reshape(k, k)

    @classmethod
    def merge(cls, matrices: Iterable[ConfusionMatrix]) -> ConfusionMatrix:
        """A new matrix that is the sum of ``matrices`` (e.g. over folds or domains)."""
        matrices = list(matrices)
        if not matrices:
            raise ValueError("merge needs at least one ConfusionMatrix")
        k = matrices[0].num_classes
        if any(m.num_classes != k for m in matrices):
            sizes = sorted({m.num_classes for m in matrices})
            raise ValueError(f"cannot merge matrices of {sizes} classes")
        merged = cls(k)
        merged.matrix = np.sum([m.matrix for m in matrices], axis=0, dtype=np.int64)
        return merged

    def scores(self, damage_classes: Sequence[int] = (1,)) -> dict[str, Any]:
        """Metrics (see the module docstring for definitions and NaN rules).

        Returns:
            ``{"iou": [per-class IoU], "miou", "pixel_accuracy", "precision", "recall", "f1",
            "damage_iou"}`` as Python floats.
        """
        m = self.matrix
        tp_k = np.diag(m)
        union = m.sum(0) + m.sum(1) - tp_k
        iou = [_ratio(tp_k[i], union[i]) for i in range(self.num_classes)]
        present = [v for v in iou if not np.isnan(v)]
        if not damage_classes or not all(0 <= c < self.num_classes for c in damage_classes):
            raise ValueError(f"damage_classes {tuple(damage_classes)} not in [0, {self.num_classes})")
        damage = np.zeros(self.num_classes, dtype=bool)
        damage[list(damage_classes)] = True
        tp = m[np.ix_(damage, damage)].sum()
        fp = m[np.ix_(~damage, damage)].sum()
        fn = m[np.ix_(damage, ~damage)].sum()
        return {
            "iou": iou,
            "miou": float(np.mean(present)) if present else float("nan"),
            "pixel_accuracy": _ratio(tp_k.sum(), m.sum()),
            "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn),
            "damage_iou": _ratio(tp, tp + fp + fn),
        }
