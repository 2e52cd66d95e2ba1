"""Defect 13: a truncated fold record is an unfinished fold: recomputed, said so, same result."""

from __future__ import annotations

import json

import pytest

from tests.robustness.conftest import read_json, run_cli


def _without_seconds(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "seconds"}


def test_truncated_fold_json_is_recomputed(ws, tmp_path):
    out = tmp_path / "exp"
    args = ["experiment", ws.recipe, "--data", ws.data, "--domains", "north", "--protocol", "kfold", "-k", "2"]
    first = run_cli([*args, "--out", out, "--no-cache"])
    assert first.exit_code == 0, first.output
    folds = sorted((out / "folds").rglob("*.json"))
    assert len(folds) == 2
    expected = {p: read_json(p) for p in folds}
    results = {n: (out / n).read_bytes() for n in ("results.json", "results.csv", "results.md")}
    broken = folds[1]
    broken.write_text(broken.read_text()[:150])  # a half-written record (e.g. a full disk)
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken.read_text())

    again = run_cli([*args, "--out", out, "--no-cache"])
    assert again.exit_code == 0, again.output
    text = " ".join(again.output.split())
    assert f"{broken}: unreadable fold record (truncated?); computing the fold again" in text
    assert "Traceback" not in again.output
    for path, record in expected.items():
        assert _without_seconds(read_json(path)) == _without_seconds(record), path
    assert {n: (out / n).read_bytes() for n in results} == results
