"""Street-photo damage severity: segmentation + depth-weighted severity score (docs/methods.md §3).

Modules: :mod:`.config` (recipe section), :mod:`.score` (the formula), :mod:`.depth` (depth
models and the ground-plane fallback), :mod:`.exif` (GPS from photos), :mod:`.batch` (scoring a
folder of photos), :mod:`.geo` (points, grid / zone aggregates).
"""
