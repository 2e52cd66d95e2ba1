"""Building-level damage scores from pixel predictions, and the xView2 score.

Pixels carry a building instance id (``Sample.building_ids``, 0 = no building). Per building:

- its true class is the most frequent labelled class of its pixels (ignored pixels, 255, do
  not count; a building with no labelled pixel, e.g. xBD "un-classified", is left out);
- its predicted class follows a *rule*:

  ``majority`` (default)  binary models: damaged if at least half of its pixels are predicted
                          damaged; K-class models: its most frequent predicted class (ties go
                          to the higher, more severe class index).
  ``mean``                binary models: damaged if its mean P(damage) exceeds the model's
                          threshold; K-class models: the argmax of its mean class probabilities.

The buildings then fill a :class:`~damagemap.training.metrics.ConfusionMatrix` (one count per
building), whose damage precision / recall / F1 are the building scores for "damaged".

The xView2 score (:func:`xview2_score`) is computed as the xView2 challenge scorer does, on
pixels: 0.3 · localisation F1 (building = any class above 0) + 0.7 · harmonic mean of the
per-grade F1 over the pixels inside true buildings. It needs class 0 to be background.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from damagemap.training.metrics import ConfusionMatrix
from damagemap.types import IGNORE_INDEX

BuildingRule = Literal["majority", "mean"]
BUILDING_RULES: tuple[str, ...] = ("majority", "mean")


class BuildingTally:
    """Per-building pixel counts accumulated over views, keyed by (sample key, building id).

    Args:
        num_classes: classes of the model (2 for a binary head).
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = int(num_classes)
        self._target: dict[str, np.ndarray] = {}  # [n_ids, K] labelled-pixel counts per true class
        self._pred: dict[str, np.ndarray] = {}  # [n_ids, K] pixel counts per predicted class
        self._prob: dict[str, np.ndarray] = {}  # [n_ids, K] summed class probabilities
        self._n: dict[str, np.ndarray] = {}  # [n_ids] pixels seen

    def add(self, sample: str, ids: np.ndarray, target: np.ndarray, pred: np.ndarray, prob: np.ndarray) -> None:
        """Add one view: ``ids``, ``target``, ``pred`` ``[H, W]`` and class probabilities ``prob`` ``[K, H, W]``."""
        k = self.num_classes
        ids = np.asarray(ids, dtype=np.int64).ravel()
        inside = ids > 0
        if not inside.any():
            return
        ids, t = ids[inside], np.asarray(target, dtype=np.int64).ravel()[inside]
        p = np.asarray(pred, dtype=np.int64).ravel()[inside]
        q = np.asarray(prob, dtype=np.float64).reshape(k, -1)[:, inside]
        size = int(ids.max()) + 1
        self._grow(sample, size)
        labelled = t != IGNORE_INDEX
        self._target[sample][:size] += np.bincount(ids[labelled] * k + t[labelled], minlength=size * k).reshape(size, k)
        self._pred[sample][:size] += np.bincount(ids * k + p, minlength=size * k).reshape(size, k)
        for c in range(k):
            self._prob[sample][:size, c] += np.bincount(ids, weights=q[c], minlength=size)
        self._n[sample][:size] += np.bincount(ids, minlength=size)

    def _grow(self, sample: str, size: int) -> None:
        k = self.num_classes
        have = len(self._n.get(sample, ()))
        if have >= size:
            return
        pad = size - have
        if sample not in self._n:
            self._target[sample] = np.zeros((0, k), np.int64)
            self._pred[sample] = np.zeros((0, k), np.int64)
            self._prob[sample] = np.zeros((0, k), np.float64)
            self._n[sample] = np.zeros(0, np.int64)
        self._target[sample] = np.vstack([self._target[sample], np.zeros((pad, k), np.int64)])
        self._pred[sample] = np.vstack([self._pred[sample], np.zeros((pad, k), np.int64)])
        self._prob[sample] = np.vstack([self._prob[sample], np.zeros((pad, k), np.float64)])
        self._n[sample] = np.concatenate([self._n[sample], np.zeros(pad, np.int64)])

    def classes(self, rule: BuildingRule = "majority", threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        """``(true, predicted)`` class per scored building (see the module docstring for the rules)."""
        if rule not in BUILDING_RULES:
            raise ValueError(f"building rule must be one of {BUILDING_RULES}, got {rule!r}")
        true_all: list[np.ndarray] = []
        pred_all: list[np.ndarray] = []
        for sample, n in self._n.items():
            target = self._target[sample]
            keep = (n > 0) & (target.sum(1) > 0)
            keep[0] = False
            true_all.append(target[keep].argmax(1))
            pred_all.append(
                predicted_classes(self._pred[sample][keep], self._prob[sample][keep], n[keep], rule, threshold)
            )
        if not true_all:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(true_all), np.concatenate(pred_all)

    def confusion(self, rule: BuildingRule = "majority", threshold: float = 0.5) -> ConfusionMatrix:
        """One count per building: ``matrix[true class, predicted class]``."""
        true, pred = self.classes(rule, threshold)
        cm = ConfusionMatrix(self.num_classes)
        cm.update(pred, true)
        return cm


def predicted_classes(
    pred_counts: np.ndarray, prob_sums: np.ndarray, n: np.ndarray, rule: BuildingRule, threshold: float = 0.5
) -> np.ndarray:
    """Predicted class per building from its pixel counts ``[B, K]`` or summed probabilities ``[B, K]``."""
    k = pred_counts.shape[1]
    if rule == "mean":
        mean = prob_sums / np.maximum(n, 1)[:, None]
        if k == 2:
            return (mean[:, 1] > threshold).astype(np.int64)
        return mean.argmax(1)
    # majority; ties go to the highest class index (binary: half or more damaged pixels → damaged)
    return (k - 1 - pred_counts[:, ::-1].argmax(1)).astype(np.int64)


def building_scores(cm: ConfusionMatrix, damage_classes: Sequence[int]) -> dict[str, float | int]:
    """``building_precision``, ``building_recall``, ``building_f1`` of "damaged" and ``n_buildings``."""
    s = cm.scores(tuple(damage_classes))
    return {
        "building_precision": s["precision"],
        "building_recall": s["recall"],
        "building_f1": s["f1"],
        "n_buildings": int(cm.matrix.sum()),
    }


def _f1(tp: float, fp: float, fn: float) -> float:
    den = 2 * tp + fp + fn
    return 2 * tp / den if den > 0 else float("nan")


def xview2_score(matrix: np.ndarray) -> dict[str, float]:
    """xView2 score of a pixel confusion matrix (class 0 = background, 1.. = damage grades).

    Returns ``{"xview2", "localization_f1", "damage_f1"}``; ``damage_f1`` is the harmonic mean of
    the per-grade F1 over the true-building pixels (0 if any grade's F1 is 0, NaN if a grade is
    undefined: absent from both truth and prediction inside buildings).
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 3:
        raise ValueError(f"the xView2 score needs a K×K matrix with K >= 3 (background + grades), got {m.shape}")
    loc = _f1(m[1:, 1:].sum(), m[0, 1:].sum(), m[1:, 0].sum())
    inside = m[1:, :]  # true-building pixels: rows 1.., every predicted class (0 = missed)
    f1s = []
    for c in range(1, m.shape[0]):
        tp = inside[c - 1, c]
        f1s.append(_f1(tp, inside[:, c].sum() - tp, inside[c - 1].sum() - tp))
    if any(np.isnan(f) for f in f1s):
        damage = float("nan")
    elif any(f == 0 for f in f1s):
        damage = 0.0
    else:
        damage = len(f1s) / sum(1.0 / f for f in f1s)
    return {"xview2": 0.3 * loc + 0.7 * damage, "localization_f1": loc, "damage_f1": damage}
