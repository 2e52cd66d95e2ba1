"""A small synthetic event mapped once, for the page tests (report and viewer)."""

from __future__ import annotations

from pathlib import Path

from damagemap.data.synthetic_geo import SyntheticEvent, write_synthetic_event
from damagemap.mapping import BrightnessPredictor, MapOptions, map_scene
from damagemap.mapping.result import MappingResult


def map_synthetic_event(root: Path, seed: int) -> tuple[SyntheticEvent, MappingResult]:
    """Write a 320×256 synthetic event under ``root/event`` and map it into ``root/map``."""
    event = write_synthetic_event(root / "event", height=256, width=320, seed=seed)
    result = map_scene(
        BrightnessPredictor(in_bands=3),
        event.scene,
        root / "map",
        MapOptions(tile=128, overlap=16, footprints=event.footprints, grid_m=40.0),
    )
    return event, result
