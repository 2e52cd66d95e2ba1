"""The prediction loop's memory housekeeping."""

from __future__ import annotations

from damagemap.mapping import BrightnessPredictor, MapOptions, map_scene, products


def test_mapping_releases_the_heap_before_the_cog_conversion(scene, tmp_path, monkeypatch):
    events: list[str] = []
    monkeypatch.setattr("damagemap.mapping.stream.release_free_heap", lambda: events.append("trim") or True)
    to_cog = products.to_cog

    def recording(*args):
        events.append("cog")
        to_cog(*args)

    monkeypatch.setattr(products, "to_cog", recording)
    map_scene(BrightnessPredictor(), scene, tmp_path / "out", MapOptions(tile=64, overlap=16, block=64, grid_m=None))
    assert events[0] == "trim" and events.count("cog") == 3
