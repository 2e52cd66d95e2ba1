"""Scored points aggregated per metric grid cell (local UTM) and per zone."""

import geopandas as gpd
import pytest
from pyproj import Transformer
from shapely.geometry import box

from damagemap.severity.geo import grid_aggregate, points_frame, zone_aggregate

TO_WGS84 = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)


def _rows():
    # UTM 33N metres → lat/lon; the first two share the 1 km cell (500, 4000), the third is next door
    spots = [
        (500_100, 4_000_100, 0.2),
        (500_900, 4_000_700, 0.6),
        (501_500, 4_000_500, None),
        (501_600, 4_000_400, 1.0),
    ]
    rows = []
    for i, (x, y, score) in enumerate(spots):
        lon, lat = TO_WGS84.transform(x, y)
        rows.append({"photo": f"p{i}.jpg", "score": score, "pixel_score": score, "lat": lat, "lon": lon})
    rows.append({"photo": "nogps.jpg", "score": 0.5, "pixel_score": 0.5, "lat": None, "lon": None})
    return rows


def test_grid_cells_in_local_utm() -> None:
    points = points_frame(_rows())
    assert len(points) == 4  # the photo without GPS is not a point
    cells = grid_aggregate(points, 1000.0)
    assert cells.crs.to_epsg() == 32633
    by_cell = {c.cell: c for c in cells.itertuples()}
    first, second = by_cell["500_4000"], by_cell["501_4000"]
    assert (first.count, first.n_undefined) == (2, 0)
    assert first.mean == pytest.approx(0.4) and first.max == pytest.approx(0.6)
    assert first.geometry.equals_exact(box(500_000, 4_000_000, 501_000, 4_001_000), 1e-6)
    # the undefined photo is counted apart, never averaged as 0
    assert (second.count, second.n_undefined, second.mean) == (1, 1, 1.0)


def test_zones_keep_every_zone(tmp_path) -> None:
    zones = gpd.GeoDataFrame(
        {"name": ["west", "east", "empty"]},
        crs="EPSG:32633",
        geometry=[
            box(500_000, 4_000_000, 501_000, 4_001_000),
            box(501_000, 4_000_000, 502_000, 4_001_000),
            box(600_000, 4_000_000, 601_000, 4_001_000),
        ],
    )
    zones.to_file(tmp_path / "z.gpkg", driver="GPKG")
    out = zone_aggregate(points_frame(_rows()), tmp_path / "z.gpkg").set_index("name")
    assert out.loc["west", "count"] == 2 and out.loc["west", "mean"] == pytest.approx(0.4)
    assert out.loc["east", "n_undefined"] == 1 and out.loc["empty", "count"] == 0
