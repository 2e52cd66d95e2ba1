"""Intermediate GeoTIFFs: the class map ZSTD (DEFLATE where GDAL lacks ZSTD), the noisy layers uncompressed."""

from __future__ import annotations

import rasterio

from damagemap.mapping import BrightnessPredictor, MapOptions, map_scene, writer


def test_intermediate_class_map_is_zstd_compressed_the_noisy_layers_not(scene, tmp_path, monkeypatch):
    seen: dict[str, str | None] = {}
    to_cog = writer.to_cog

    def recording(src, dst, layer, width, height, **kwargs):
        with rasterio.open(src.with_suffix(".tif")) as ds:  # the assembly behind the VRT
            seen[layer] = ds.compression.value if ds.compression else None
        to_cog(src, dst, layer, width, height, **kwargs)

    monkeypatch.setattr(writer, "to_cog", recording)
    map_scene(BrightnessPredictor(), scene, tmp_path / "out", MapOptions(tile=64, overlap=16, block=64, grid_m=None))
    assert seen == {"damage_class": "ZSTD", "damage_probability": None, "uncertainty": None}


def test_without_zstd_the_intermediate_falls_back_to_deflate(monkeypatch):
    writer.assembly_compression.cache_clear()
    monkeypatch.setattr(writer, "ASSEMBLY_ZSTD", {"compress": "no-such-codec"})
    try:
        assert writer.assembly_compression() == writer.ASSEMBLY_FALLBACK
    finally:
        monkeypatch.undo()
        writer.assembly_compression.cache_clear()
    assert writer.assembly_compression()["compress"] == "zstd"
