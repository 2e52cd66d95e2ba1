"""Geography at the edges: scene sources, scene reading (rasters), vectors in the scene CRS, areas, input specs.

Where a scene comes from (local file, URL, GDAL ``/vsi…`` path, STAC item) is resolved in one
place, :func:`damagemap.geo.sources.resolve_scene`.

Used by data readers (training on a scene) and by the mapper alike; depends on neither.
"""
