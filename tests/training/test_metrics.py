"""ConfusionMatrix scores against scikit-learn, NaN conventions, merging."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    confusion_matrix,
    f1_score,
    jaccard_score,
    precision_score,
    recall_score,
)

from damagemap.training.fit import logits_to_labels
from damagemap.training.metrics import ConfusionMatrix


@st.composite
def _cases(draw: st.DrawFn) -> tuple[int, np.ndarray, np.ndarray, tuple[int, ...]]:
    k = draw(st.integers(2, 5))
    n = draw(st.integers(1, 120))
    target = np.array(draw(st.lists(st.sampled_from([*range(k), 255]), min_size=n, max_size=n)))
    pred = np.array(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    damage = tuple(sorted(draw(st.sets(st.integers(0, k - 1), min_size=1, max_size=k))))
    return k, pred, target, damage


@settings(max_examples=100, derandomize=True, deadline=None)
@given(_cases(), st.integers(1, 4))
def test_matches_sklearn(case: tuple, chunks: int) -> None:
    k, pred, target, damage = case
    cm = ConfusionMatrix(k)
    for p, t in zip(np.array_split(pred, chunks), np.array_split(target, chunks)):
        cm.update(p, t)
    valid = target != 255
    yt, yp = target[valid], pred[valid]
    labels = list(range(k))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = cm.scores(damage)
    if not valid.any():
        assert not cm.matrix.any()
        assert all(math.isnan(v) for v in [*s["iou"], s["miou"], s["f1"], s["pixel_accuracy"]])
        return
    np.testing.assert_array_equal(cm.matrix, confusion_matrix(yt, yp, labels=labels))
    # jaccard_score has no zero_division=nan: NaN where a class is absent from both.
    iou = jaccard_score(yt, yp, labels=labels, average=None, zero_division=0)
    iou[~np.isin(labels, np.union1d(yt, yp))] = np.nan
    np.testing.assert_allclose(s["iou"], iou)
    assert s["miou"] == pytest.approx(np.nanmean(iou))
    assert s["pixel_accuracy"] == pytest.approx(np.mean(yt == yp))
    bt, bp = np.isin(yt, damage).astype(int), np.isin(yp, damage).astype(int)
    for key, fn in [("precision", precision_score), ("recall", recall_score), ("f1", f1_score)]:
        expected = fn(bt, bp, labels=[0, 1], pos_label=1, zero_division=np.nan)
        np.testing.assert_allclose(s[key], expected, err_msg=key)
    damage_iou = jaccard_score(bt, bp, labels=[0, 1], zero_division=0)
    np.testing.assert_allclose(s["damage_iou"], damage_iou if (bt | bp).any() else np.nan)


def test_binary_example_by_hand() -> None:
    target = np.array([[0, 0, 1, 1], [1, 255, 0, 1]])
    pred = np.array([[0, 1, 1, 0], [1, 1, 0, 1]])
    cm = ConfusionMatrix(2)
    cm.update(torch.from_numpy(pred), torch.from_numpy(target))  # torch input works too
    np.testing.assert_array_equal(cm.matrix, [[2, 1], [1, 3]])
    s = cm.scores()
    assert s["iou"] == pytest.approx([2 / 4, 3 / 5])
    assert s["miou"] == pytest.approx((2 / 4 + 3 / 5) / 2)  # background and damage IoU
    assert s["precision"] == pytest.approx(3 / 4)
    assert s["recall"] == pytest.approx(3 / 4)
    assert s["f1"] == pytest.approx(3 / 4)
    assert s["damage_iou"] == pytest.approx(3 / 5)
    assert s["pixel_accuracy"] == pytest.approx(5 / 7)


def test_absent_class_excluded_from_miou() -> None:
    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 0, 1]), np.array([0, 0, 1]))
    s = cm.scores()
    assert math.isnan(s["iou"][2]) and s["miou"] == 1.0


def test_no_positives_anywhere() -> None:
    cm = ConfusionMatrix(2)
    cm.update(np.zeros(5, int), np.zeros(5, int))
    s = cm.scores()
    assert all(math.isnan(s[k]) for k in ("precision", "recall", "f1", "damage_iou"))
    assert s["miou"] == 1.0


def test_missed_positives_give_zero_f1() -> None:
    cm = ConfusionMatrix(2)
    cm.update(np.zeros(3, int), np.array([0, 1, 1]))
    s = cm.scores()
    assert math.isnan(s["precision"]) and s["recall"] == 0.0 and s["f1"] == 0.0


def test_merge_sums() -> None:
    a, b = ConfusionMatrix(2), ConfusionMatrix(2)
    a.update(np.array([0, 1]), np.array([0, 0]))
    b.update(np.array([1, 1]), np.array([1, 255]))
    merged = ConfusionMatrix.merge([a, b])
    np.testing.assert_array_equal(merged.matrix, a.matrix + b.matrix)
    np.testing.assert_array_equal(a.matrix, [[1, 1], [0, 0]])  # inputs untouched
    with pytest.raises(ValueError, match="classes"):
        ConfusionMatrix.merge([a, ConfusionMatrix(3)])
    with pytest.raises(ValueError, match="at least one"):
        ConfusionMatrix.merge([])


def test_invalid_input() -> None:
    cm = ConfusionMatrix(2)
    with pytest.raises(ValueError, match="outside"):
        cm.update(np.array([2]), np.array([0]))
    with pytest.raises(ValueError, match="outside"):
        cm.update(np.array([0]), np.array([3]))
    with pytest.raises(ValueError, match="shape"):
        cm.update(np.zeros(2, int), np.zeros(3, int))
    with pytest.raises(ValueError, match="damage_classes"):
        cm.scores(damage_classes=(2,))


def test_logits_to_labels() -> None:
    binary = torch.tensor([[[[-1.0, 0.5]]]])
    assert logits_to_labels(binary, binary=True, threshold=0.5).tolist() == [[[0, 1]]]
    multi = torch.tensor([[[[0.0, 2.0]], [[1.0, 0.0]]]])
    assert logits_to_labels(multi, binary=False, threshold=0.5).tolist() == [[[1, 0]]]
