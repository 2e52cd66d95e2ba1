"""The experiment runner: every fold trained and scored, resumable after an interruption."""

import csv
import json
import shutil

import numpy as np
import pytest

from damagemap.data.synthetic import synthetic_tiles
from damagemap.errors import ConfigError
from damagemap.protocols import runner as runner_mod
from damagemap.protocols.report import write_reports
from damagemap.protocols.runner import make_folds, run_experiment
from damagemap.recipe import Recipe


def _recipe(name: str, **objectives) -> Recipe:
    return Recipe.model_validate(
        {
            "name": name,
            "input": {"size": 64},
            "head": {"kind": "fpn", "options": {"fpn_channels": 8, "embed_channels": 8}},
            "objectives": {"focal": {}, **objectives},
            "train": {"epochs": 2, "batch_size": 4, "lr": 3e-3},
        }
    )


@pytest.fixture(scope="module")
def samples():
    return synthetic_tiles("north", 6, size=64, seed=1, damaged_share=0.9) + synthetic_tiles(
        "south", 6, size=64, seed=2, damaged_share=0.9
    )


def test_lodo_folds_cover_every_domain(samples) -> None:
    folds = make_folds(samples, "lodo", (1,), k=3)
    assert sorted({f.target_domain for f in folds}) == ["north", "south"] and len(folds) == 6
    with pytest.raises(ConfigError, match="unknown protocol"):
        make_folds(samples, "loocv", (1,))
    with pytest.raises(ConfigError, match="known domains"):
        make_folds(samples, "ssdc", (1,), k=3, sources=["east"])


def test_interrupted_experiment_resumes_without_recomputing(samples, tmp_path, monkeypatch) -> None:
    recipes = [_recipe("plain"), _recipe("pc", pc={"weight": 0.01})]
    folds = make_folds(samples, "lodo", (1,), k=3)
    full = run_experiment(recipes, samples, folds, tmp_path / "full", cache_dir=tmp_path / "cache")

    real_run_fold = runner_mod.run_fold
    calls = []
    crash_after = [5]

    def crashing(*args, **kwargs):
        if len(calls) == crash_after[0]:
            raise RuntimeError("simulated kill")
        calls.append(args[1].name)
        return real_run_fold(*args, **kwargs)

    monkeypatch.setattr(runner_mod, "run_fold", crashing)
    with pytest.raises(RuntimeError, match="simulated kill"):
        run_experiment(recipes, samples, folds, tmp_path / "resumed", cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "resumed" / "folds").rglob("*.json"))) == 5
    calls.clear()
    crash_after[0] = -1
    resumed = run_experiment(recipes, samples, folds, tmp_path / "resumed", cache_dir=tmp_path / "cache")
    assert len(calls) == 2 * len(folds) - 5  # only the unfinished folds ran

    # compared as JSON text: an undefined score (building precision with no predicted positive) is NaN != NaN
    def as_text(results):
        return [json.dumps([r.recipe, r.fold, r.scores], sort_keys=True) for r in results]

    assert as_text(resumed) == as_text(full)


def test_a_bf16_run_does_not_reuse_fp32_folds(samples, tmp_path, monkeypatch) -> None:
    recipes = [_recipe("plain")]
    folds = make_folds(samples, "lodo", (1,), k=3)[:1]
    run_experiment(recipes, samples, folds, tmp_path, cache_dir=None)
    ran = []
    real_run_fold = runner_mod.run_fold
    monkeypatch.setattr(runner_mod, "run_fold", lambda *a, **k: ran.append(a[7]) or real_run_fold(*a, **k))
    run_experiment(recipes, samples, folds, tmp_path, cache_dir=None, device="cpu")  # same precision: reused
    assert ran == []
    run_experiment(recipes, samples, folds, tmp_path, cache_dir=None, device="cpu", precision="bf16")
    assert ran == ["bf16"]  # recomputed, in bf16


def test_reports_have_mean_std_per_domain_and_worst(samples, tmp_path) -> None:
    folds = make_folds(samples, "lodo", (1,), k=3)
    results = run_experiment([_recipe("plain")], samples, folds, tmp_path, cache_dir=tmp_path / "cache")
    summary = write_reports(results, tmp_path, "lodo")
    for name in ("results.json", "results.csv", "results.md", "results.png"):
        assert (tmp_path / name).stat().st_size > 0
    north = [r.scores["miou"] for r in results if r.target_domain == "north"]
    stats = summary["plain"]["domains"]["north"]["miou"]
    assert stats["mean"] == pytest.approx(sum(north) / 3) and stats["n"] == 3
    domains = summary["plain"]["domains"]
    worst = min(domains, key=lambda d: (domains[d]["pooled"]["pixel"]["f1"], domains[d]["pooled"]["pixel"]["miou"]))
    assert summary["plain"]["worst_domain"] == worst
    pooled = np.sum([r.scores["confusion"] for r in results if r.target_domain == "north"], axis=0)
    assert domains["north"]["pooled"]["pixel"]["f1"] == pytest.approx(
        2 * pooled[1, 1] / (2 * pooled[1, 1] + pooled[0, 1] + pooled[1, 0])
    )
    md = (tmp_path / "results.md").read_text()
    assert "| plain | north" in md and "±" in md
    assert len(json.loads((tmp_path / "results.json").read_text())["folds"]) == 6


def test_pc_without_damaged_source_pixels_falls_back_and_says_so(tmp_path) -> None:
    from damagemap.training.pipeline import train_model

    undamaged = synthetic_tiles("north", 4, size=64, seed=3, damaged_share=0.0)
    model, _ = train_model(_recipe("pc", pc={"weight": 0.01}), undamaged, cache_dir=None)
    assert model.metrics["notes"] == ["pc skipped: the source training images have no damaged pixels"]
    assert not any(k.startswith("pc.") for k in model.state)


def test_report_only_returns_finished_folds_without_training(samples, tmp_path, monkeypatch) -> None:
    folds = make_folds(samples, "lodo", (1,), k=3)
    run_experiment([_recipe("plain")], samples, folds[:2], tmp_path, cache_dir=tmp_path / "cache")
    monkeypatch.setattr(runner_mod, "run_fold", lambda *a, **k: pytest.fail("report-only must not train"))
    done = run_experiment([_recipe("plain")], samples, folds, tmp_path, compute=False)
    assert [r.fold for r in done] == [f.name for f in folds[:2]]


def _baseline(name: str, kind: str, options: dict) -> Recipe:
    """A tiny whole-network baseline on the pixels encoder, no checkpoint (offline: random init)."""
    return Recipe.model_validate(
        {
            "name": name,
            "encoder": {"name": "pixels"},
            "input": {"size": 32},
            "head": {"kind": kind, "options": options},
            "objectives": {"focal": {"options": {"alpha": 0.7, "gamma": 2.0}}},
            "train": {"epochs": 1, "batch_size": 4, "augment": []},
        }
    )


BASELINES = {
    "tiny_unet": ("unet", {"encoder_name": "resnet18", "decoder_channels": [16, 16, 8, 8, 8]}),
    "tiny_yolo": ("yolo_fpn", {"width": 4, "depths": [1, 1, 1, 1], "embed_channels": 8}),
}


@pytest.fixture(scope="module")
def baseline_experiment(samples, tmp_path_factory):
    """Two random-init baselines and a frozen-encoder recipe, one fold per target domain."""
    out = tmp_path_factory.mktemp("baselines")
    recipes = [_baseline(name, kind, options) for name, (kind, options) in BASELINES.items()] + [_recipe("plain")]
    folds = [f for f in make_folds(samples, "lodo", (1,), k=2) if f.name.endswith("/f0")]
    results = run_experiment(recipes, samples, folds, out / "exp", cache_dir=out / "cache")
    return out, recipes, folds, results


def test_every_report_row_of_a_random_init_baseline_says_so(baseline_experiment) -> None:
    out, _, folds, results = baseline_experiment
    exp = out / "exp"
    for name in [*BASELINES, "plain"]:
        records = [json.loads(p.read_text()) for p in sorted((exp / "folds" / name).glob("*.json"))]
        assert len(records) == len(folds) == 2
        assert all(r["init"] == ("random init" if name in BASELINES else None) for r in records), name
    summary = write_reports(results, exp, "lodo")

    md_rows = [line for line in (exp / "results.md").read_text().splitlines() if line.startswith("| tiny_")]
    md_rows += [line for line in (exp / "results.md").read_text().splitlines() if line.startswith("| plain")]
    assert len(md_rows) == 3 * 2  # one row per recipe and target domain
    for line in md_rows:
        label = line.split("|")[1].strip()
        if label.startswith("tiny_"):
            assert label in {f"{name} (random init)" for name in BASELINES}, line
        else:
            assert label == "plain" and "init" not in line, line

    with (exp / "results.csv").open() as fh:
        csv_rows = list(csv.DictReader(fh))
    payload = json.loads((exp / "results.json").read_text())
    for rows in (csv_rows, payload["folds"]):
        assert len(rows) == 3 * 2
        for row in rows:
            expected = "random init" if row["recipe"] in BASELINES else ("" if rows is csv_rows else None)
            assert row["init"] == expected, row
    for name in BASELINES:
        assert summary[name]["init"] == payload["summary"][name]["init"] == "random init"
    assert summary["plain"]["init"] is None and payload["summary"]["plain"]["init"] is None


def test_baseline_folds_recorded_without_init_are_recomputed(
    samples, baseline_experiment, tmp_path, monkeypatch
) -> None:
    out, recipes, folds, _ = baseline_experiment
    exp = shutil.copytree(out / "exp", tmp_path / "exp")
    for name in ("tiny_yolo", "plain"):  # as written before fold records carried the init note
        path = sorted((exp / "folds" / name).glob("*.json"))[0]
        record = json.loads(path.read_text())
        del record["init"]
        path.write_text(json.dumps(record))
    # report-only: a baseline fold of unknown init is left out rather than shown without its note
    done = run_experiment(recipes, samples, folds, exp, compute=False)
    assert sorted((r.recipe, r.fold) for r in done if r.recipe == "tiny_yolo") == [("tiny_yolo", folds[1].name)]
    assert len([r for r in done if r.recipe == "plain"]) == 2  # frozen-encoder folds stay valid
    calls = []
    real_run_fold = runner_mod.run_fold

    def counting(*args, **kwargs):
        calls.append(args[0].name)
        return real_run_fold(*args, **kwargs)

    monkeypatch.setattr(runner_mod, "run_fold", counting)
    again = run_experiment(recipes, samples, folds, exp, cache_dir=out / "cache")
    assert calls == ["tiny_yolo"]  # only the baseline fold without an init note ran again
    assert all(r.init == "random init" for r in again if r.recipe in BASELINES)


def test_each_view_is_encoded_once_across_folds_and_variants(samples, tmp_path, monkeypatch) -> None:
    import damagemap.training.feature_cache as fc

    encoded = []
    real_copy = fc.frozen_inference_copy

    def counting_copy(encoder):
        runner = real_copy(encoder)
        return lambda x: (encoded.append(len(x)), runner(x))[1]

    monkeypatch.setattr(fc, "frozen_inference_copy", counting_copy)
    recipes = [_recipe("plain"), _recipe("pc", pc={"weight": 0.01})]
    folds = make_folds(samples, "lodo", (1,), k=3)  # 2 domains x 3 folds, each view in several folds
    run_experiment(recipes, samples, folds, tmp_path / "exp", cache_dir=tmp_path / "cache")
    assert sum(encoded) == len(samples)  # 12 tiles of 64 px = 12 views: one encoder pass each
