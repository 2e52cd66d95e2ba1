"""The CLI end to end on a small generated dataset with the real default encoder."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from damagemap.cli import app
from damagemap.data.synthetic import synthetic_tiles

runner = CliRunner()

RECIPE = """
name: tiny_lite
encoder: {name: efficientnet-lite0}
input: {size: 64, mode: resize}
head: {kind: fpn, options: {fpn_channels: 16, embed_channels: 16}}
train: {epochs: 3, batch_size: 8, lr: 0.003}
"""


def _write_domain(root: Path, domain: str, n: int, seed: int) -> None:
    for sub in ("images", "masks"):
        (root / domain / sub).mkdir(parents=True, exist_ok=True)
    for s in synthetic_tiles(domain, n, size=64, seed=seed):
        Image.fromarray((s.image.transpose(1, 2, 0) * 255).astype(np.uint8)).save(
            root / domain / "images" / f"{s.id}.png"
        )
        Image.fromarray(s.mask.astype(np.uint8)).save(root / domain / "masks" / f"{s.id}.png")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    _write_domain(root / "data", "north", 10, 1)
    _write_domain(root / "data", "south", 6, 2)
    (root / "tiny.yaml").write_text(RECIPE)
    result = runner.invoke(
        app,
        [
            "train",
            str(root / "tiny.yaml"),
            "--data",
            str(root / "data"),
            "--domains",
            "north",
            "--out",
            str(root / "model"),
            "--cache-dir",
            str(root / "cache"),
        ],
    )
    assert result.exit_code == 0, result.output
    return root


def test_train_writes_a_complete_artifact(workspace) -> None:
    manifest = json.loads((workspace / "model" / "manifest.json").read_text())
    assert manifest["encoder"]["name"] == "efficientnet-lite0"
    assert manifest["classes"] == ["background", "damaged"]
    assert manifest["head"]["kind"] == "fpn"
    assert len(manifest["metrics"]["history"]) == 3
    assert (workspace / "model" / "head.safetensors").stat().st_size > 0


def test_evaluate_json_has_every_domain(workspace) -> None:
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(workspace / "model"),
            "--data",
            str(workspace / "data"),
            "--json",
            "--cache-dir",
            str(workspace / "cache"),
        ],
    )
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert set(scores) == {"north", "south", "all"}
    assert scores["south"]["n_samples"] == 6 and 0 <= scores["all"]["miou"] <= 1


def test_predict_writes_mask_and_probability_pngs(workspace, tmp_path) -> None:
    img = workspace / "data" / "south" / "images" / "south_000.png"
    result = runner.invoke(app, ["predict", str(workspace / "model"), str(img), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    mask = np.array(Image.open(tmp_path / "south_000_mask.png"))
    prob = np.array(Image.open(tmp_path / "south_000_prob.png"))
    assert mask.shape == prob.shape == (64, 64)
    assert set(np.unique(mask)) <= {0, 1}
    assert np.array_equal(mask == 1, prob > 127) or np.abs((mask == 1) ^ (prob > 127)).sum() < 5


def test_predict_truncated_png_is_a_clear_error_and_writes_nothing(workspace, tmp_path) -> None:
    good = workspace / "data" / "south" / "images" / "south_001.png"
    bad = tmp_path / "broken.png"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    out = tmp_path / "out"
    result = runner.invoke(app, ["predict", str(workspace / "model"), str(good), str(bad), "--out", str(out)])
    assert result.exit_code == 3  # input error
    assert "broken.png" in result.output and "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())


def test_bad_recipe_and_missing_data_are_one_line_errors(workspace, tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nhead: {kind: fpn, colour: red}\n")
    result = runner.invoke(app, ["train", str(bad), "--data", str(workspace / "data"), "--out", str(tmp_path / "m")])
    assert result.exit_code == 4 and "head.colour" in result.output  # configuration error
    result = runner.invoke(
        app, ["train", str(workspace / "tiny.yaml"), "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "m")]
    )
    assert result.exit_code == 3 and "nope" in result.output  # input error
    assert not (tmp_path / "m").exists()


def test_encoders_lists_the_default() -> None:
    result = runner.invoke(app, ["encoders"])
    assert result.exit_code == 0
    default_rows = [line for line in result.stdout.splitlines() if "*" in line]
    assert len(default_rows) == 1 and "efficientnet-lite0" in default_rows[0]
    for name in ("dinov3-vitl16-sat", "dinov2-vits14", "sam-vitb", "resnet152"):
        assert name in result.stdout


def test_map_real_geotiff_keeps_its_grid_and_lists_every_footprint(workspace, shared_data, tmp_path) -> None:
    import geopandas as gpd
    import rasterio

    scene = shared_data / "geo" / "sample_geotiff.tif"
    footprints = shared_data / "geo" / "geotiff_labels.geojson"
    if not scene.is_file():
        pytest.skip(f"real GeoTIFF not found at {scene}")
    out = tmp_path / "map"
    result = runner.invoke(
        app,
        [
            "map",
            str(workspace / "model"),
            str(scene),
            "--out",
            str(out),
            "--footprints",
            str(footprints),
            "--replicate-single-band",
            "--grid-m",
            "100",
        ],
    )
    assert result.exit_code == 0, result.output
    with rasterio.open(scene) as src:
        grid = (src.crs, src.transform, src.width, src.height)
    for name in ("damage_probability.tif", "damage_class.tif", "uncertainty.tif"):
        with rasterio.open(out / name) as dst:
            assert (dst.crs, dst.transform, dst.width, dst.height) == grid, name
    buildings = gpd.read_file(out / "damage.gpkg", layer="buildings")
    assert len(buildings) == len(gpd.read_file(footprints)) == 43


def test_map_refuses_a_scene_with_the_wrong_band_count(workspace, shared_data, tmp_path) -> None:
    scene = shared_data / "geo" / "sample_geotiff.tif"
    if not scene.is_file():
        pytest.skip(f"real GeoTIFF not found at {scene}")
    out = tmp_path / "map"
    result = runner.invoke(app, ["map", str(workspace / "model"), str(scene), "--out", str(out)])
    assert result.exit_code == 3 and "sample_geotiff.tif" in result.output and "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())


def _south_images(workspace, n: int) -> list[str]:
    return [str(workspace / "data" / "south" / "images" / f"south_{i:03d}.png") for i in range(n)]


def test_progress_lines_when_stderr_is_not_a_terminal_and_quiet_removes_them(workspace, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DAMAGEMAP_NO_PROGRESS", raising=False)
    args = ["predict", str(workspace / "model"), *_south_images(workspace, 3), "--out", str(tmp_path / "o")]
    result = runner.invoke(app, args)  # CliRunner's stderr is not a TTY
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("[damagemap] ")]
    assert lines[0] == "[damagemap] predict: 0/3 (0%) elapsed 0:00 eta -:--"
    assert re.fullmatch(r"\[damagemap\] predict: 3/3 \(100%\) elapsed \d+:\d\d eta 0:00", lines[-1])
    assert "[damagemap]" not in result.stdout
    quiet = runner.invoke(app, ["--quiet", *args])
    assert quiet.exit_code == 0, quiet.output
    assert "[damagemap]" not in quiet.output and "wrote 3 masks" in quiet.stderr  # the summary stays
    again = runner.invoke(app, args)  # --quiet of the earlier in-process run does not stick
    assert "[damagemap] predict: 3/3 (100%)" in again.stderr


def test_predict_threshold_and_batch(workspace, tmp_path) -> None:
    images = _south_images(workspace, 3)
    model = str(workspace / "model")
    one = runner.invoke(app, ["predict", model, *images, "--out", str(tmp_path / "b1"), "--batch", "1"])
    three = runner.invoke(app, ["predict", model, *images, "--out", str(tmp_path / "b3"), "--batch", "3"])
    never = runner.invoke(app, ["predict", model, *images, "--out", str(tmp_path / "t1"), "--threshold", "1"])
    assert one.exit_code == three.exit_code == never.exit_code == 0, one.output + three.output + never.output
    for i in range(3):
        name = f"south_{i:03d}"
        a = np.array(Image.open(tmp_path / "b1" / f"{name}_prob.png")).astype(int)
        b = np.array(Image.open(tmp_path / "b3" / f"{name}_prob.png")).astype(int)
        assert np.abs(a - b).max() <= 1  # batching across images changes nothing but float rounding
        assert not np.array(Image.open(tmp_path / "t1" / f"{name}_mask.png")).any()
    bad = runner.invoke(app, ["predict", model, *images, "--out", str(tmp_path / "x"), "--threshold", "1.5"])
    assert bad.exit_code == 2 and "--threshold" in bad.output


def _write_scene(tmp_path: Path) -> tuple[Path, Path]:
    import geopandas as gpd
    import rasterio
    from affine import Affine
    from shapely.geometry import box

    rgb = (np.random.default_rng(0).random((3, 96, 96)) * 255).astype(np.uint8)
    scene = tmp_path / "scene.tif"
    transform = Affine(0.5, 0, 500000, 0, -0.5, 4000000)
    with rasterio.open(
        scene, "w", driver="GTiff", width=96, height=96, count=3, dtype="uint8", crs="EPSG:32616", transform=transform
    ) as dst:
        dst.write(rgb)
    footprints = tmp_path / "footprints.geojson"
    squares = [box(500002, 3999980, 500012, 3999990), box(500020, 3999970, 500030, 3999980)]
    gpd.GeoDataFrame({"bid": ["house-a", "house-b"]}, geometry=squares, crs="EPSG:32616").to_file(footprints)
    return scene, footprints


def test_map_json_summary_and_id_column(workspace, tmp_path) -> None:
    scene, footprints = _write_scene(tmp_path)
    out = tmp_path / "map"
    base = ["map", str(workspace / "model"), str(scene), "--out", str(out), "--footprints", str(footprints)]
    options = ["--id-column", "bid", "--json", "--batch", "2", "--threshold", "0.4", "--grid-m", "0"]
    result = runner.invoke(app, [*base, *options])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # nothing but the JSON on stdout
    assert doc["scene"]["width"] == doc["scene"]["height"] == 96
    assert doc["parameters"]["batch"] == 2 and doc["parameters"]["threshold"] == 0.4
    assert doc["stats"]["buildings"] == 2 and doc["seconds"] > 0
    assert doc["files"]["summary"] == str(out / "summary.json") and doc["files"]["zones_csv"] is None
    summary = json.loads((out / "summary.json").read_text())
    assert {"scene", "parameters", "stats", "outputs", "provenance", "classes"} <= set(summary)
    assert summary == {k: doc[k] for k in summary}  # --json is summary.json plus seconds and files
    ids = Path(doc["files"]["buildings_csv"]).read_text()
    assert "house-a" in ids and "house-b" in ids
    fresh = [*base[:4], str(tmp_path / "map2"), *base[5:]]  # another --out: not refused as a rerun
    missing = runner.invoke(app, [*fresh, "--id-column", "nope"])
    assert missing.exit_code == 3 and "footprints.geojson" in missing.output and "'nope' not found" in missing.output


def test_map_default_batch_follows_precision(workspace, tmp_path) -> None:
    """Without --batch, bf16 maps 8 tiles per call (half-size activations), fp32 4; --batch wins."""
    scene, _ = _write_scene(tmp_path)
    batches = {}
    for precision, extra in (("fp32", []), ("bf16", []), ("bf16", ["--batch", "3"])):
        out = tmp_path / f"map_{precision}_{len(extra)}"
        args = ["map", str(workspace / "model"), str(scene), "--out", str(out), "--json", "--grid-m", "0"]
        result = runner.invoke(app, [*args, "--precision", precision, *extra])
        assert result.exit_code == 0, result.output
        batches[precision, bool(extra)] = json.loads(result.stdout)["parameters"]["batch"]
    assert batches == {("fp32", False): 4, ("bf16", False): 8, ("bf16", True): 3}


def test_encoders_json_is_the_list_of_specs() -> None:
    result = runner.invoke(app, ["encoders", "--json"])
    assert result.exit_code == 0, result.output
    specs = json.loads(result.stdout)
    assert [s["name"] for s in specs if s["default"]] == ["efficientnet-lite0"]
    assert {"name", "family", "offline_weights", "description"} <= set(specs[0])
    assert "dinov2-vits14" in {s["name"] for s in specs}


def test_version_module_entry_point_completion_and_exit_codes_in_help(monkeypatch) -> None:
    import subprocess
    import sys

    import damagemap

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"damagemap {damagemap.__version__}\n"
    src = str(Path(damagemap.__file__).resolve().parents[1])
    module = subprocess.run(
        [sys.executable, "-m", "damagemap", "--version"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": src},
        check=False,
    )
    assert module.returncode == 0 and module.stdout == f"damagemap {damagemap.__version__}\n", module.stderr
    # typer detects the shell from the process tree, which a detached CI job may not have
    monkeypatch.setattr("typer.completion._get_shell_name", lambda: "bash")
    completion = runner.invoke(app, ["--show-completion"], prog_name="damagemap")
    assert completion.exit_code == 0 and "_DAMAGEMAP_COMPLETE=complete_bash" in completion.stdout
    helped = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert helped.exit_code == 0
    flat = " ".join(helped.stdout.split())
    for code in ("0 success", "2 usage error", "3 input error", "4 configuration error", "--quiet", "--version"):
        assert code in flat, code


def test_evaluate_and_experiment_pool_two_data_roots_and_set_scarce_events_aside(workspace, tmp_path) -> None:
    _write_domain(tmp_path / "extra", "tiny", 1, 3)  # one sample: fewer than the 2 folds
    roots = ["--data", str(workspace / "data"), "--data", str(tmp_path / "extra")]
    cache = ["--cache-dir", str(workspace / "cache")]
    result = runner.invoke(app, ["evaluate", str(workspace / "model"), *roots, "--json", *cache])
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)) == {"north", "south", "tiny", "all"}
    twice = runner.invoke(app, ["evaluate", str(workspace / "model"), *roots[:2], *roots[:2], *cache])
    assert twice.exit_code != 0 and "given twice" in twice.output
    out = tmp_path / "run"
    args = ["experiment", str(workspace / "tiny.yaml"), *roots, "--protocol", "lodo", "--folds", "2"]
    result = runner.invoke(app, [*args, "--targets", "south", "--out", str(out), *cache])
    assert result.exit_code == 0, result.output
    assert result.output.count("used as source only") == 1 and "tiny (1)" in result.output
    assert (out / "results.json").exists() and "tiny" not in {p.name for p in (out / "folds").rglob("*")}
    refused = runner.invoke(app, [*args, "--targets", "tiny", "--out", str(tmp_path / "no"), *cache])
    assert refused.exit_code != 0 and "cannot be split into 2 folds" in refused.output
    assert not (tmp_path / "no" / "results.json").exists()


def test_map_writes_report_and_viewer_by_default_and_reruns_never_mix(workspace, tmp_path) -> None:
    scene, footprints = _write_scene(tmp_path)
    out = tmp_path / "map"
    base = ["map", str(workspace / "model"), str(scene), "--out", str(out), "--footprints", str(footprints)]
    first = runner.invoke(app, [*base, "--grid-m", "10"])
    assert first.exit_code == 0, first.output
    report, viewer = out / "report.html", out / "viewer.html"
    page = report.read_text(encoding="utf-8")
    assert "<h2>Provenance</h2>" in page and "scene.tif" in page
    assert re.search(r"src=['\"]https?://", page) is None  # self-contained
    assert "const DM=" in viewer.read_text(encoding="utf-8")
    other = runner.invoke(app, [*base, "--grid-m", "10", "--threshold", "0.3"])
    assert other.exit_code == 4 and "--threshold" in other.output and "--overwrite" in other.output
    assert report.read_text(encoding="utf-8") == page  # refused: nothing of the old run touched
    replaced = runner.invoke(app, [*base, "--threshold", "0.3", "--overwrite", "--no-report", "--no-viewer"])
    assert replaced.exit_code == 0, replaced.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parameters"]["threshold"] == 0.3
    # the earlier run's pages are gone, not left beside the new run's outputs
    assert not report.exists() and not viewer.exists()
    missing = runner.invoke(app, [*base, "--threshold", "0.3", "--suggestions", str(tmp_path / "none.gpkg")])
    assert missing.exit_code == 4 and "none.gpkg" in missing.output


def test_map_tta_averages_flips(workspace, tmp_path) -> None:
    import rasterio

    scene, _ = _write_scene(tmp_path)
    probs = {}
    for name, extra in (("plain", []), ("tta", ["--tta"])):
        out = tmp_path / name
        result = runner.invoke(
            app, ["map", str(workspace / "model"), str(scene), "--out", str(out), "--grid-m", "0", *extra]
        )
        assert result.exit_code == 0, result.output
        with rasterio.open(out / "damage_probability.tif") as src:
            probs[name] = src.read(1)
    assert probs["plain"].shape == probs["tta"].shape and (probs["plain"] != probs["tta"]).any()
    assert "--tta" in runner.invoke(app, ["map", "--help"]).output
