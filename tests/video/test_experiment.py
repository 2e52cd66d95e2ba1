"""Tests for damagemap.video.experiment: MSNet's cross-scene protocol (splits, runs, reuse, reports)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from damagemap.cli import app
from damagemap.errors import ConfigError, InputError
from damagemap.video.experiment import image_scenes, scene_splits, summarise
from tests.video.media import write_coco
from tests.video.tiny import tiny_recipe


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_scene_splits_are_seeded_disjoint_and_sized():
    scene_of = {i: f"v{i // 2}" for i in range(20)}  # 10 scenes of 2 frames
    splits = scene_splits(scene_of, 3, 0.3, seed=7, path="d.json")
    assert [s.name for s in splits] == ["split1", "split2", "split3"]
    for s in splits:
        assert len(s.test_scenes) == 3 and len(s.train_scenes) == 7
        assert not set(s.test_scenes) & set(s.train_scenes) and set(s.test_scenes) | set(s.train_scenes) == {
            f"v{k}" for k in range(10)
        }
        assert s.test_ids == sorted(i for i, v in scene_of.items() if v in s.test_scenes)
        assert not set(s.test_ids) & set(s.train_ids) and len(s.train_ids) + len(s.test_ids) == 20
    assert len({tuple(s.test_scenes) for s in splits}) == 3  # three different random splits
    assert [s.test_scenes for s in scene_splits(scene_of, 3, 0.3, 7, "d.json")] == [s.test_scenes for s in splits]
    assert [s.test_scenes for s in scene_splits(scene_of, 3, 0.3, 8, "d.json")] != [s.test_scenes for s in splits]
    # the paper's 80 / 20 on 10 scenes; a tiny share still tests one scene, a large one trains on one
    assert len(scene_splits(scene_of, 1, 0.2, 0, "d.json")[0].test_scenes) == 2
    assert len(scene_splits(scene_of, 1, 0.01, 0, "d.json")[0].test_scenes) == 1
    assert len(scene_splits(scene_of, 1, 0.99, 0, "d.json")[0].train_scenes) == 1


def test_scenes_from_video_id_or_xbd_event():
    videos = [{"id": 1, "video_id": 4}, {"id": 2, "video_id": 4}, {"id": 3, "video_id": "b"}]
    assert image_scenes(videos, "auto", "d.json") == ("video_id", {1: "4", 2: "4", 3: "b"})
    tiles = [{"id": 1, "tile": "joplin-tornado_00000001"}, {"id": 2, "tile": "joplin-tornado_00000002"}]
    tiles.append({"id": 3, "tile": "moore-tornado_00000004"})
    assert image_scenes(tiles, "auto", "d.json") == (
        "event",
        {1: "joplin-tornado", 2: "joplin-tornado", 3: "moore-tornado"},
    )
    assert image_scenes(tiles, "tile", "d.json")[1][2] == "joplin-tornado_00000002"
    with pytest.raises(InputError, match=r"d.json: 1 of 2 images have no video_id and 2 no xBD tile"):
        image_scenes([{"id": 1, "video_id": 3}, {"id": 2}], "auto", "d.json")
    with pytest.raises(InputError, match=r"d.json: 1 of 2 images have no video_id, .*\(--scene video_id\)"):
        image_scenes([{"id": 1, "video_id": 3}, {"id": 2}], "video_id", "d.json")
    with pytest.raises(InputError, match=r"d.json: 1 of 2 images have no xBD tile, .*\(--scene event\)"):
        image_scenes([{"id": 1, "video_id": 3}, {"id": 2, "tile": "x_1"}], "event", "d.json")
    with pytest.raises(InputError, match="d.json: no images"):
        image_scenes([], "auto", "d.json")
    with pytest.raises(InputError, match=r"d.json: cross-scene splits need at least 2 scenes, found 1 \(video_id 4\)"):
        scene_splits({1: "4", 2: "4"}, 3, 0.2, 0, "d.json", "video_id")
    with pytest.raises(InputError, match=r"found 1 \(event joplin-tornado\) \(--scene tile splits xBD tiles"):
        scene_splits({1: "joplin-tornado", 2: "joplin-tornado"}, 3, 0.2, 0, "d.json", "event")
    with pytest.raises(ConfigError, match="--test-share must be between 0 and 1"):
        scene_splits({1: "a", 2: "b"}, 3, 1.0, 0, "d.json")


def _record(recipe, split, mask_ap, refined_ap, trained=True):
    def block(ap):
        return {k: {"AP": ap, "AP25": ap + 0.2, "AP50": ap + 0.1} for k in ("segm", "bbox")}

    return {
        "recipe": recipe,
        "split": split,
        "test_scenes": ["a"],
        "n_test": 2,
        "scores": {"raw": block(mask_ap), "refined": block(refined_ap)},
        "refinement": {"enabled": True, "images_refined": 2},
        "srn": {"trained": trained},
    }


def test_summary_is_mean_and_std_over_splits():
    records = [
        _record("m", "split1", 0.1, 0.2),
        _record("m", "split2", 0.3, 0.2, False),
        _record("m", "split3", -1, 0.5),
    ]
    s = summarise(records)["m"]
    assert s["raw"]["segm"]["AP"] == {"mean": pytest.approx(0.2), "std": pytest.approx(0.1), "n": 2}  # -1 left out
    assert s["refined"]["bbox"]["AP50"]["mean"] == pytest.approx(np.mean([0.3, 0.3, 0.6]))
    assert s["refined"]["bbox"]["AP50"]["std"] == pytest.approx(np.std([0.3, 0.3, 0.6]))
    assert s["splits"] == 3 and s["srn_untrained_splits"] == 1


def _recipes(tmp_path):
    small = {"box_score_thresh": 0.0, "min_size": 64, "max_size": 64}  # the 64-px test images as they are
    msnet = tiny_recipe(**small).model_dump(mode="json", by_alias=True)
    msnet |= {"name": "tiny_msnet", "train": {"iterations": 1, "batch_size": 1, "warmup": 0}}
    msnet["refine"] |= {"c0": 0.0, "c1": 1.0}
    base = tiny_recipe(rpn="single", **small).model_dump(mode="json", by_alias=True)
    base |= {"name": "tiny_maskrcnn", "train": {"iterations": 1, "batch_size": 1, "warmup": 0}}
    base["refine"]["enabled"] = False
    paths = [tmp_path / "msnet.yaml", tmp_path / "maskrcnn.yaml"]
    for p, r in zip(paths, (msnet, base)):
        p.write_text(yaml.safe_dump(r))
    return [str(p) for p in paths]


def _three_videos(tmp_path):
    images = [
        {"id": 10 * v + f, "file_name": f"v{v}_{f}.png", "video_id": f"v{v}", "frame_id": f}
        for v in range(3)
        for f in (1, 2)
    ]
    return write_coco(tmp_path, images)  # 3 videos ("scenes") of 2 frames


def must_not_run(*a, **k):
    raise AssertionError("a finished split was recomputed")


def test_video_experiment_cli_end_to_end(tmp_path, monkeypatch):
    data, recipes, out = _three_videos(tmp_path), _recipes(tmp_path), tmp_path / "runs"
    args = ["video", "experiment", *recipes, "--data", str(data), "--splits", "1", "--test-share", "0.3"]
    args += ["--out", str(out)]
    runner = CliRunner()
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "2 splits computed, 0 reused" in _flat(first.stderr) and "no --videos given" in _flat(first.stderr)
    doc = json.loads((out / "results.json").read_text())
    assert doc["protocol"] == {"data": str(data), "splits": 1, "test_share": 0.3, "seed": 42, "scene": "video_id"}
    msnet, base = doc["splits"]
    assert (msnet["recipe"], base["recipe"]) == ("tiny_msnet", "tiny_maskrcnn")
    assert msnet["test_scenes"] == base["test_scenes"] and len(msnet["test_scenes"]) == 1  # same split, 1 of 3
    assert msnet["n_test"] == 2 and msnet["n_train"] == 4
    assert msnet["refinement"]["images_refined"] == 2 and msnet["refinement"]["scores_changed"] > 0
    assert not msnet["srn"]["trained"] and base["scores"]["refined"] == base["scores"]["raw"]
    for r in (msnet, base):
        for variant in ("raw", "refined"):
            got = doc["summary"][r["recipe"]][variant]["segm"]["AP50"]
            assert got == {"mean": r["scores"][variant]["segm"]["AP50"], "std": 0.0, "n": 1}
    md = (out / "results.md").read_text()
    for row in ("| tiny_msnet | without |", "| tiny_msnet | with |", "| tiny_maskrcnn | with |"):
        assert row in md
    assert "Note: tiny_msnet: SRN untrained in 1 of 1 splits" in md and md in first.stdout
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "results.md", "splits"]  # no temporaries
    assert len(json.loads((out / "splits" / "tiny_msnet" / "split1.json").read_text())["config_hash"]) == 16

    monkeypatch.setattr("damagemap.video.experiment.run_split", must_not_run)
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "0 splits computed, 2 reused" in _flat(again.stderr)
    assert json.loads((out / "results.json").read_text()) == doc


def test_video_experiment_mean_std_over_splits_and_reuse(tmp_path, monkeypatch):
    data, recipes, out = _three_videos(tmp_path), _recipes(tmp_path), tmp_path / "runs"
    calls = []
    ap = {"split1": 0.1, "split2": 0.2, "split3": 0.6}

    def fake(recipe, data, split, *a, **k):
        calls.append((recipe.name, split.name))
        r = _record(recipe.name, split.name, ap[split.name], ap[split.name] + 0.1)
        return {k: r[k] for k in ("scores", "refinement", "srn")}

    monkeypatch.setattr("damagemap.video.experiment.run_split", fake)
    args = ["video", "experiment", *recipes, "--data", str(data), "--out", str(out)]  # 3 splits by default
    runner = CliRunner()
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(calls) == 6 and {s for _, s in calls} == {"split1", "split2", "split3"}
    doc = json.loads((out / "results.json").read_text())
    got = doc["summary"]["tiny_msnet"]
    assert got["raw"]["segm"]["AP"]["mean"] == pytest.approx(0.3) and got["raw"]["segm"]["AP"]["n"] == 3
    assert got["raw"]["segm"]["AP"]["std"] == pytest.approx(np.std([0.1, 0.2, 0.6]))
    assert got["refined"]["bbox"]["AP25"]["mean"] == pytest.approx(0.6)  # AP + 0.1 + 0.2
    md = (out / "results.md").read_text()
    assert "| tiny_msnet | without | 0.300 ± 0.216 | 0.500 ± 0.216 | 0.400 ± 0.216 |" in md
    assert "| tiny_msnet | with | 0.400 ± 0.216 |" in md
    assert len({tuple(s["test_scenes"]) for s in doc["splits"]}) >= 2  # random splits, not one repeated

    calls.clear()
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and calls == [] and "0 splits computed, 6 reused" in _flat(again.stderr)
    changed = runner.invoke(app, [*args, "--set", "refine.c1=0.9"])
    assert changed.exit_code == 0 and len(calls) == 6  # another configuration: every split runs again
    calls.clear()
    other_seed = runner.invoke(app, [*args, "--seed", "3"])
    assert other_seed.exit_code == 0 and len(calls) > 0


def test_video_experiment_bad_input(tmp_path):
    recipes = _recipes(tmp_path)
    one = write_coco(tmp_path, [{"id": 1, "file_name": "a.png", "video_id": 1, "frame_id": 1}], name="one.json")
    runner = CliRunner()
    result = runner.invoke(app, ["video", "experiment", recipes[0], "--data", str(one), "--out", str(tmp_path / "o")])
    assert result.exit_code == 3 and "one.json: cross-scene splits need at least 2 scenes, found 1" in _flat(
        result.output
    )
    none = write_coco(tmp_path, [{"id": 1, "file_name": "a.png"}], name="none.json")
    result = runner.invoke(app, ["video", "experiment", recipes[0], "--data", str(none), "--out", str(tmp_path / "o")])
    assert result.exit_code == 3 and "none.json: 1 of 1 images have no video_id and 1 no xBD tile" in _flat(
        result.output
    )
    (tmp_path / "empty.json").write_text("{}")
    args = ["video", "experiment", recipes[0], "--data", str(tmp_path / "empty.json"), "--out", str(tmp_path / "o")]
    result = runner.invoke(app, args)
    assert result.exit_code == 3 and "empty.json: not a COCO instances file" in _flat(result.output)
    assert not (tmp_path / "o").exists()


def test_srn_videos_come_from_training_scenes_only(tmp_path, monkeypatch):
    from damagemap.video import experiment

    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "v0.mp4").write_bytes(b"x")
    (videos / "v1").mkdir()  # a folder of frames
    (videos / "v2.mp4").write_bytes(b"x")
    (videos / "notes.txt").write_text("not a scene")
    found = experiment.scene_videos(videos, ["v0", "v1", "v2", "v9"])
    assert found == {"v0": videos / "v0.mp4", "v1": videos / "v1", "v2": videos / "v2.mp4"}
    (videos / "v0.mov").write_bytes(b"x")
    with pytest.raises(InputError, match=r"scene v0: several videos \(v0.mov, v0.mp4\)"):
        experiment.scene_videos(videos, ["v0"])

    seen = {}
    monkeypatch.setattr(experiment, "build_msnet", lambda recipe: torch.nn.Module())
    monkeypatch.setattr(experiment, "train_detector", lambda *a, **k: [{"loss": 1.0}])
    monkeypatch.setattr(
        experiment, "train_srn_on_videos", lambda model, vids, *a, **k: seen.setdefault("v", vids) and {"trained": True}
    )
    fake_scores = {"raw": {}, "refined": {}, "refinement": {}, "n_detections": 0}
    monkeypatch.setattr(experiment, "evaluate_detector", lambda *a, **k: fake_scores)
    split = experiment.SceneSplit("split1", ["v0", "v1", "v3"], ["v2"], [1, 11, 31], [21])
    data = write_coco(
        tmp_path, [{"id": i, "file_name": f"{i}.png", "video_id": f"v{i // 10}"} for i in (1, 11, 21, 31)]
    )
    record = experiment.run_split(tiny_recipe(), data, split, videos=found)
    assert seen["v"] == [found["v0"], found["v1"]]  # never the test scene's video
    assert record["srn"]["scenes_without_video"] == ["v3"]


def test_video_experiment_prints_a_line_per_finished_split_unless_quiet(tmp_path, monkeypatch):
    data, recipes, out = _three_videos(tmp_path), _recipes(tmp_path), tmp_path / "runs"

    def fake(recipe, data, split, *a, **k):
        r = _record(recipe.name, split.name, 0.1, 0.2)
        return {k: r[k] for k in ("scores", "refinement", "srn")}

    monkeypatch.setattr("damagemap.video.experiment.run_split", fake)
    monkeypatch.delenv("DAMAGEMAP_NO_PROGRESS", raising=False)
    args = ["experiment", *recipes, "--data", str(data), "--out", str(out), "--splits", "2"]
    runner = CliRunner()
    result = runner.invoke(app, ["video", *args])  # stderr is not a terminal: plain lines
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("[damagemap] splits: ")]
    assert len(lines) == 1 + 4 and lines[0].startswith("[damagemap] splits: 0/4 (0%) elapsed 0:00 eta")
    assert lines[1].startswith("[damagemap] splits: 1/4 (25%) elapsed ") and lines[1].endswith(
        "| tiny_msnet split1 done"
    )
    assert lines[4].startswith("[damagemap] splits: 4/4 (100%)") and " eta 0:00 " in lines[4]
    for quiet in (["--quiet", "video"], ["video", "--quiet"]):  # root or group option
        silent = runner.invoke(app, [*quiet, *args])
        assert silent.exit_code == 0 and "[damagemap]" not in silent.output and "4 reused" in _flat(silent.stderr)
