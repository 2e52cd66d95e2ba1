"""Suggesting tiles on a scene: candidates, labelled tiles, map-folder reuse, outputs."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from damagemap.active import SuggestOptions, suggest_tiles, write_suggestions
from damagemap.active.scene import candidate_origins
from damagemap.artifact import save_model
from damagemap.data.geo_labels import read_geotiff_labels
from damagemap.data.synthetic_geo import write_synthetic_event
from damagemap.demo import demo_recipe
from damagemap.errors import ConfigError, InputError
from damagemap.mapping import MapOptions, map_scene
from damagemap.tile_predictor import ModelTilePredictor
from damagemap.training.pipeline import train_model


@pytest.fixture(scope="module")
def event_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("suggest")
    event = write_synthetic_event(root / "event", height=384, width=384, seed=3)
    samples = read_geotiff_labels(event.scene, event.labels, tile=128, buildings_path=event.footprints)
    model, _ = train_model(demo_recipe(128, epochs=1), samples, cache_dir=None)
    return root, event, save_model(model, root / "model")


def test_candidates_tile_the_scene_without_gaps():
    origins = candidate_origins(300, 200, 128)
    assert origins[0] == (0, 0) and origins[-1] == (200 - 128, 300 - 128)
    covered = np.zeros((200, 300), bool)
    for r, c in origins:
        covered[r : r + 128, c : c + 128] = True
    assert covered.all() and len(origins) == 2 * 3


def test_labelled_tiles_are_excluded_and_outputs_are_written(event_model, tmp_path):
    root, event, model_dir = event_model
    predictor = ModelTilePredictor(model_dir)
    tiles = suggest_tiles(predictor, event.scene, SuggestOptions(n=4, labels=event.labels))
    labels = gpd.read_file(event.labels).to_crs(tiles.crs)
    # 3 x 3 candidates, the west ones under the drawn polygons: only the 3 east tiles are left
    assert tiles.attrs["candidates"] == 3 and len(tiles) == 3 and tiles["rank"].tolist() == [1, 2, 3]
    assert not tiles.intersects(labels.union_all()).any()
    assert tiles.attrs["labelled_tiles"] > 0 and np.isfinite(tiles["distance_to_labelled"]).all()
    assert ((tiles["uncertainty"] >= 0) & (tiles["uncertainty"] <= 1)).all()
    gpkg, png = write_suggestions(tiles, tmp_path / "next.gpkg", event.scene)
    back = gpd.read_file(gpkg, layer="suggested_tiles")
    assert back["rank"].tolist() == [1, 2, 3] and back.crs == tiles.crs and png.stat().st_size > 1000
    with pytest.raises(ConfigError, match=r"\.gpkg"):
        write_suggestions(tiles, tmp_path / "next.shp", event.scene)


def test_an_existing_map_folder_gives_the_uncertainty(event_model, tmp_path):
    root, event, model_dir = event_model
    predictor = ModelTilePredictor(model_dir)
    mapped = map_scene(predictor, event.scene, tmp_path / "map", MapOptions(tile=128, overlap=32, grid_m=None))
    tiles = suggest_tiles(predictor, event.scene, SuggestOptions(n=3, map_dir=tmp_path / "map"))
    with rasterio.open(mapped.uncertainty) as src:
        for t in tiles.itertuples():
            layer = src.read(1, window=Window(t.col, t.row, 128, 128))
            assert t.uncertainty == pytest.approx(layer[layer != 255].mean() / 254)
    other = write_synthetic_event(tmp_path / "other", height=256, width=256, seed=4)
    with pytest.raises(InputError, match="mapped from another scene"):
        suggest_tiles(predictor, other.scene, SuggestOptions(n=3, map_dir=tmp_path / "map"))
