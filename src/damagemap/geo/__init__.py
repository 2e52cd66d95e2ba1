"""Geography at the edges: scene reading (rasters), vectors in the scene CRS, areas, scene input specs.

Used by data readers (training on a scene) and by the mapper alike; depends on neither.
"""
