"""Scene mapping; entry point :func:`map_scene`.

Streams a GeoTIFF/COG of any size through a tile predictor into damage rasters (COGs),
damaged-region polygons, per-building damage and zonal statistics — resumable, atomic, and
optionally on Dask.
"""

from damagemap.geo.spec import SceneInputSpec
from damagemap.mapping.baseline import BrightnessPredictor
from damagemap.mapping.engine import MapOptions, MappingResult, map_scene
from damagemap.mapping.spec import TilePredictor

__all__ = ["BrightnessPredictor", "MapOptions", "MappingResult", "SceneInputSpec", "TilePredictor", "map_scene"]
