"""Intermediate GeoTIFFs: cheap ZSTD compression, DEFLATE where GDAL lacks ZSTD."""

from __future__ import annotations

import rasterio

from damagemap.mapping import BrightnessPredictor, MapOptions, map_scene, writer


def test_intermediate_layers_are_zstd_compressed(scene, tmp_path, monkeypatch):
    seen: dict[str, str | None] = {}
    to_cog = writer.to_cog

    def recording(src, dst, layer, width, height):
        with rasterio.open(src) as ds:
            seen[layer] = ds.compression.value if ds.compression else None
        to_cog(src, dst, layer, width, height)

    monkeypatch.setattr("damagemap.mapping.products.to_cog", recording)
    map_scene(BrightnessPredictor(), scene, tmp_path / "out", MapOptions(tile=64, overlap=16, block=64, grid_m=None))
    assert len(seen) == 3 and set(seen.values()) == {"ZSTD"}


def test_without_zstd_the_intermediate_falls_back_to_deflate(monkeypatch):
    writer.assembly_compression.cache_clear()
    monkeypatch.setattr(writer, "ASSEMBLY_ZSTD", {"compress": "no-such-codec"})
    try:
        assert writer.assembly_compression() == writer.ASSEMBLY_FALLBACK
    finally:
        monkeypatch.undo()
        writer.assembly_compression.cache_clear()
    assert writer.assembly_compression()["compress"] == "zstd"
