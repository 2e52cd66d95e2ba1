"""Experiment reports from hand-made fold results: pooled scores, n/a std, † folds, the worst target."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from damagemap.protocols.report import markdown_table, summarise, write_reports
from damagemap.protocols.runner import FoldResult
from damagemap.training.building_scores import building_scores
from damagemap.training.metrics import ConfusionMatrix


def _scores(matrix: list[list[int]], buildings: list[list[int]] | None = None) -> dict:
    cm = ConfusionMatrix(len(matrix))
    cm.matrix = np.array(matrix)
    out = cm.scores((1,)) | {"confusion": matrix, "damage_classes": [1]}
    if buildings is not None:
        bcm = ConfusionMatrix(len(buildings))
        bcm.matrix = np.array(buildings)
        out |= building_scores(bcm, (1,)) | {"building_confusion": buildings}
    return out


def _fold(target: str, f: int, matrix: list[list[int]], buildings: list[list[int]] | None = None) -> FoldResult:
    return FoldResult("r", f"lodo/{target}/f{f}", target, _scores(matrix, buildings), {"fold": f})


RESULTS = [
    # A: TP 5 FP 10 FN 5, then TP 5 FP 0 FN 5 → pooled TP 10 FP 10 FN 10: P = R = F1 = 0.5
    _fold("A", 0, [[80, 10], [5, 5]], [[3, 1], [0, 2]]),
    _fold("A", 1, [[90, 0], [5, 5]], [[4, 0], [1, 1]]),
    # B: no damaged pixel in either test fold, a few false alarms → F1 0 and mIoU < 0.5 per fold
    _fold("B", 0, [[95, 5], [0, 0]]),
    _fold("B", 1, [[98, 2], [0, 0]]),
    # C: one fold only, TP 20 FP 10 FN 20 → F1 40/70
    _fold("C", 0, [[50, 10], [20, 20]]),
]


def test_pooled_scores_and_single_fold_std() -> None:
    s = summarise(RESULTS)["r"]
    a = s["domains"]["A"]
    assert a["pooled"]["pixel"]["f1"] == pytest.approx(0.5)
    assert a["pooled"]["pixel"]["precision"] == pytest.approx(0.5)
    # buildings pooled [[7, 1], [1, 3]]: P = R = F1 = 3/4
    assert a["pooled"]["building"]["f1"] == pytest.approx(0.75) and a["pooled"]["building"]["n"] == 12
    assert a["f1"]["mean"] == pytest.approx((10 / 25 + 10 / 15) / 2)  # per-fold F1 0.4 and 0.667
    c = s["domains"]["C"]
    assert c["pooled"]["pixel"]["f1"] == pytest.approx(40 / 70)
    assert c["f1"]["mean"] == pytest.approx(40 / 70) and math.isnan(c["f1"]["std"])


def test_clean_target_is_marked_and_never_worst() -> None:
    s = summarise(RESULTS)["r"]
    b = s["domains"]["B"]
    assert b["no_positive_folds"] == 2 and not b["has_positives"]
    assert b["miou"]["mean"] < s["domains"]["A"]["miou"]["mean"]  # by mean mIoU B would look worst
    assert s["worst_domain"] == "A"  # lowest pooled F1 among targets with positives (0.5 < 0.571)
    md = markdown_table(summarise(RESULTS))
    row_b = next(line for line in md.splitlines() if line.startswith("| r | B"))
    row_c = next(line for line in md.splitlines() if line.startswith("| r | C"))
    assert row_b.rstrip(" |").endswith("2 (2†)") and "worst" not in row_b
    assert "0.571 ± n/a" in row_c
    assert "| r | A **(worst)**" in md and "† folds whose test set holds no positive" in md
    assert "0.750 / 0.750 / 0.750" in md  # pooled building P / R / F1 of A


def test_older_fold_records_without_confusions_still_report() -> None:
    old = [
        FoldResult("r", f.fold, f.target_domain, {k: v for k, v in f.scores.items() if "confusion" not in k}, {})
        for f in RESULTS
    ]
    s = summarise(old)["r"]
    assert s["domains"]["A"]["pooled"] == {}
    assert s["domains"]["B"]["no_positive_folds"] == 2  # from the NaN recall
    assert s["worst_domain"] in {"A", "C"}


def test_written_reports_keep_the_new_columns(tmp_path) -> None:
    write_reports(RESULTS, tmp_path, "lodo")
    with (tmp_path / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["no_positives"] for r in rows] == ["False", "False", "True", "True", "False"]
    assert float(rows[0]["building_f1"]) == pytest.approx(0.8)  # fold A0 buildings: TP 2 FP 1 FN 0
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["summary"]["r"]["domains"]["A"]["pooled"]["pixel"]["f1"] == pytest.approx(0.5)
    assert (tmp_path / "results.png").stat().st_size > 0
