"""Building-level scores and the xView2 score on hand-made arrays (answers computed by hand)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from damagemap.training.building_scores import BuildingTally, building_scores, predicted_classes, xview2_score

# three buildings in a 2x6 chip: building 1 (3 px, truly damaged), 2 (4 px, not damaged), 3 (2 px, ignored)
IDS = np.array([[1, 1, 1, 2, 2, 0], [0, 0, 3, 3, 2, 2]])
TARGET = np.array([[1, 1, 1, 0, 0, 0], [0, 0, 255, 255, 0, 0]])
PRED = np.array([[1, 0, 1, 1, 0, 1], [1, 1, 1, 1, 0, 1]])  # building 1: 2/3 damaged, building 2: 2/4 damaged
P_DAMAGE = np.array([[0.9, 0.2, 0.6, 0.55, 0.1, 0.9], [0.8, 0.8, 0.7, 0.7, 0.2, 0.6]])


def _tally() -> BuildingTally:
    tally = BuildingTally(2)
    tally.add("d/a", IDS, TARGET, PRED, np.stack([1 - P_DAMAGE, P_DAMAGE]))
    return tally


def test_majority_rule_counts_buildings_not_pixels() -> None:
    true, pred = _tally().classes("majority")
    # building 3 has no labelled pixel: left out; building 2 is half damaged → damaged (tie rule)
    assert true.tolist() == [1, 0]
    assert pred.tolist() == [1, 1]
    s = building_scores(_tally().confusion("majority"), (1,))
    assert s["n_buildings"] == 2
    assert s["building_precision"] == pytest.approx(0.5)  # 1 TP, 1 FP
    assert s["building_recall"] == pytest.approx(1.0)
    assert s["building_f1"] == pytest.approx(2 / 3)


def test_mean_rule_uses_mean_probability() -> None:
    # building 1: mean(0.9, 0.2, 0.6) = 0.567 > 0.5 → damaged; building 2: mean(0.55, 0.1, 0.2, 0.6) = 0.3625 → not
    true, pred = _tally().classes("mean", threshold=0.5)
    assert pred.tolist() == [1, 0]
    s = building_scores(_tally().confusion("mean"), (1,))
    assert s["building_f1"] == pytest.approx(1.0)
    # a higher threshold turns building 1 off: no predicted positive → precision NaN, F1 0
    s = building_scores(_tally().confusion("mean", threshold=0.6), (1,))
    assert math.isnan(s["building_precision"]) and s["building_f1"] == 0.0


def test_views_of_one_sample_add_up_and_samples_stay_apart() -> None:
    tally = BuildingTally(2)
    probs = np.stack([1 - P_DAMAGE, P_DAMAGE])
    # the same sample in two views (left 3 columns, right 3): building 2 spans both
    tally.add("d/a", IDS[:, :3], TARGET[:, :3], PRED[:, :3], probs[:, :, :3])
    tally.add("d/a", IDS[:, 3:], TARGET[:, 3:], PRED[:, 3:], probs[:, :, 3:])
    tally.add("d/b", IDS, TARGET, np.zeros_like(PRED), probs)  # id 1 of another sample: another building
    true, pred = tally.classes("majority")
    assert true.tolist() == [1, 0, 1, 0]
    assert pred.tolist() == [1, 1, 0, 0]


def test_multiclass_majority_ties_go_to_the_more_severe_class() -> None:
    counts = np.array([[0, 2, 2, 0], [3, 1, 0, 0], [0, 0, 1, 4]])
    assert predicted_classes(counts, np.zeros((3, 4)), np.array([4, 4, 5]), "majority").tolist() == [2, 0, 3]
    sums = np.array([[0.1, 2.0, 1.0, 0.9], [4.0, 0.0, 0.0, 0.0]])
    assert predicted_classes(counts[:2], sums, np.array([4, 4]), "mean").tolist() == [1, 0]


def test_xview2_score_by_hand() -> None:
    # classes: 0 background, 1 no-damage, 2 damaged (two grades keep the arithmetic small)
    m = np.array(
        [
            [50, 5, 5],  # background: 10 false building pixels
            [4, 20, 6],  # no-damage pixels: 4 missed, 6 called damaged
            [1, 4, 15],  # damaged pixels: 1 missed, 4 called no-damage
        ]
    )
    s = xview2_score(m)
    # localisation: TP = 20+6+4+15 = 45, FP = 10, FN = 5 → F1 = 90 / 105
    assert s["localization_f1"] == pytest.approx(90 / 105)
    # grade 1 inside buildings: TP 20, FP 4, FN 4 + 6 = 10 → 40/54; grade 2: TP 15, FP 6, FN 5 → 30/41
    f1, f2 = 40 / 54, 30 / 41
    assert s["damage_f1"] == pytest.approx(2 / (1 / f1 + 1 / f2))
    assert s["xview2"] == pytest.approx(0.3 * 90 / 105 + 0.7 * 2 / (1 / f1 + 1 / f2))


def test_xview2_zero_grade_and_shape_checks() -> None:
    m = np.array([[10, 0, 0], [0, 5, 0], [0, 3, 0]])  # grade 2 never found → its F1 is 0 → damage F1 0
    assert xview2_score(m)["damage_f1"] == 0.0
    with pytest.raises(ValueError, match="K >= 3"):
        xview2_score(np.eye(2))
