"""Scene mapping: stream a GeoTIFF/COG of any size through a tile predictor into damage rasters
(COGs), damaged-region polygons, per-building damage and zonal statistics — resumable, atomic,
and optionally on Dask. Entry point: :func:`map_scene`.
"""

from damagemap.mapping.baseline import BrightnessPredictor
from damagemap.mapping.engine import MappingResult, map_scene
from damagemap.mapping.spec import SceneInputSpec, TilePredictor

__all__ = ["BrightnessPredictor", "MappingResult", "SceneInputSpec", "TilePredictor", "map_scene"]
