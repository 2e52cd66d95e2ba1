"""The prediction loop's memory housekeeping."""

from __future__ import annotations

from damagemap.mapping import BrightnessPredictor, MapOptions, map_scene, writer


def test_mapping_releases_the_heap_before_the_cog_conversion(scene, tmp_path, monkeypatch):
    events: list[str] = []
    monkeypatch.setattr("damagemap.mapping.stream.release_free_heap", lambda: events.append("trim") or True)
    to_cog = writer.to_cog

    def recording(*args, **kwargs):
        events.append("cog")
        to_cog(*args, **kwargs)

    monkeypatch.setattr(writer, "to_cog", recording)
    map_scene(BrightnessPredictor(), scene, tmp_path / "out", MapOptions(tile=64, overlap=16, block=64, grid_m=None))
    assert events[0] == "trim" and events.count("cog") == 3
