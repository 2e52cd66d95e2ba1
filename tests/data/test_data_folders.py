"""Tests for damagemap.data.folders.read_image_mask_folders."""

from __future__ import annotations

import numpy as np
import pytest

from damagemap.data import read_image_mask_folders
from damagemap.errors import InputError


def test_reads_domains_sorted(make_domain):
    make_domain("b", n=2)
    root = make_domain("a", n=3)
    samples = read_image_mask_folders(root)
    assert [s.key for s in samples] == ["a/tile0", "a/tile1", "a/tile2", "b/tile0", "b/tile1"]
    s = samples[0]
    assert s.image.shape == (3, 16, 24) and s.image.dtype == np.float32
    assert s.mask.shape == (16, 24) and s.mask.dtype == np.int64
    assert set(np.unique(s.mask)) <= {0, 1}
    assert s.meta["image_path"].endswith("a/images/tile0.png")
    assert s.meta["mask_path"].endswith("a/masks/tile0.png")


def test_select_domains_and_root_as_domain(make_domain):
    make_domain("a")
    root = make_domain("b")
    assert {s.domain for s in read_image_mask_folders(root, domains=["b"])} == {"b"}
    assert {s.domain for s in read_image_mask_folders(root / "a")} == {"a"}
    with pytest.raises(InputError, match="not found: zzz"):
        read_image_mask_folders(root, domains=["zzz"])


def test_root_missing(tmp_path):
    with pytest.raises(InputError, match="nowhere: dataset folder not found"):
        read_image_mask_folders(tmp_path / "nowhere")


def test_no_domains(tmp_path):
    (tmp_path / "empty" / "somefolder").mkdir(parents=True)
    with pytest.raises(InputError, match="empty: no domain folders"):
        read_image_mask_folders(tmp_path / "empty")


def test_domain_without_images(make_domain):
    root = make_domain("a")
    (root / "b" / "images").mkdir(parents=True)
    with pytest.raises(InputError, match=r"b[/\\]images: no images found"):
        read_image_mask_folders(root)


def test_image_without_mask_names_both(make_domain):
    root = make_domain("a", n=2)
    (root / "a" / "masks" / "tile1.png").unlink()
    with pytest.raises(InputError, match=r"tile1.png: no mask .*masks[/\\]tile1.png"):
        read_image_mask_folders(root)


def test_mask_size_mismatch_names_both(make_domain, png, rng):
    root = make_domain("a", n=1, size=(16, 24))
    png(root / "a" / "masks" / "tile0.png", np.zeros((10, 12), np.uint8))
    with pytest.raises(InputError) as err:
        read_image_mask_folders(root)
    msg = str(err.value)
    assert "masks/tile0.png" in msg and "images/tile0.png" in msg
    assert "10x12" in msg and "16x24" in msg


def test_truncated_image_in_folder(make_domain, truncate):
    root = make_domain("a", n=2, size=(64, 64))
    truncate(root / "a" / "images" / "tile1.png")
    with pytest.raises(InputError, match=r"images[/\\]tile1.png: cannot decode image"):
        read_image_mask_folders(root)


def test_num_classes(make_domain):
    root = make_domain("a", n=1, values=(0, 1, 7, 9, 255))
    with pytest.raises(InputError, match=r"tile0.png: mask values \[7, 9\] .*num_classes=5"):
        read_image_mask_folders(root, num_classes=5)
    assert read_image_mask_folders(root, num_classes=10)  # 255 (ignore) is allowed


def test_mask_values_remap(make_domain):
    root = make_domain("a", n=1, values=(0, 128, 255))
    (s,) = read_image_mask_folders(root, mask_values={0: 0, 128: 1, 255: 255})
    assert set(np.unique(s.mask)) == {0, 1, 255}
    with pytest.raises(InputError, match=r"unexpected mask values \[128\]"):
        read_image_mask_folders(root, mask_values={0: 0, 255: 1})


def test_duplicate_ids_rejected(make_domain, png):
    root = make_domain("a", n=1)
    png(root / "a" / "images" / "tile0.tif", np.zeros((16, 24, 3), np.uint8))
    with pytest.raises(InputError, match="two files share the id 'tile0'"):
        read_image_mask_folders(root)


# --- real data ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def landslide(shared_data):
    root = shared_data / "landslide"
    if not root.is_dir():
        pytest.skip(f"{root} not present")
    return read_image_mask_folders(root, num_classes=2)


def test_real_landslide(landslide):
    by_domain = {d: [s for s in landslide if s.domain == d] for d in ("nepal", "sichuan")}
    assert {s.domain for s in landslide} == {"nepal", "sichuan"}
    assert [len(v) for v in by_domain.values()] == [36, 36]
    assert len({s.key for s in landslide}) == 72
    for s in landslide:
        assert s.image.shape == (3, 512, 512) and s.image.dtype == np.float32
        assert s.image.min() >= 0.0 and s.image.max() <= 1.0
        assert set(np.unique(s.mask).tolist()) <= {0, 1}
    # Nepal targets are tiny (~0.7 % of pixels), Sichuan ones large (~19 %)
    nepal = np.mean([s.damaged_fraction() for s in by_domain["nepal"]])
    sichuan = np.mean([s.damaged_fraction() for s in by_domain["sichuan"]])
    assert nepal < 0.02 < 0.1 < sichuan


def test_real_hrcds(shared_data):
    root = shared_data / "concrete_damage"
    if not (root / "hrcds").is_dir():
        pytest.skip(f"{root / 'hrcds'} not present")
    samples = read_image_mask_folders(root, num_classes=5)
    assert len(samples) == 36 and {s.domain for s in samples} == {"hrcds"}
    assert all(s.image.shape == (3, 480, 720) for s in samples)
    values = set(np.unique(np.concatenate([np.unique(s.mask) for s in samples])).tolist())
    assert values == {0, 1, 2, 3, 4}


def test_buildings_folder_gives_building_masks(make_domain, png):
    root = make_domain("a", n=2)
    for i in range(2):
        fp = np.zeros((16, 24), np.uint8)
        fp[2:6, 3 + i : 9] = 255  # 0/255 masks: any non-zero value is a building
        png(root / "a" / "buildings" / f"tile{i}.png", fp)
    samples = read_image_mask_folders(root)
    assert all(s.buildings is not None and s.buildings.dtype == np.uint8 for s in samples)
    assert samples[0].buildings.sum() == 4 * 6 and set(np.unique(samples[1].buildings)) == {0, 1}
    (root / "a" / "buildings" / "tile1.png").unlink()
    with pytest.raises(InputError, match=r"tile1.png: no building mask for this image"):
        read_image_mask_folders(root)


def test_footprint_vectors_are_rasterised_on_georeferenced_tiles(tmp_path):
    import geopandas as gpd
    import rasterio
    from rasterio.transform import from_origin
    from shapely.geometry import box

    from damagemap.data.smart_transfer import read_smart_transfer

    region = tmp_path / "root" / "city"
    (region / "images").mkdir(parents=True)
    (region / "labels").mkdir()
    transform = from_origin(500000.0, 4000032.0, 1.0, 1.0)  # 1 m pixels, EPSG:32616
    for name, x0 in (("t0", 0.0), ("t1", 16.0)):  # two side-by-side 16x32 tiles
        t = from_origin(500000.0 + x0, 4000032.0, 1.0, 1.0)
        with rasterio.open(
            region / "images" / f"{name}.tif",
            "w",
            driver="GTiff",
            width=16,
            height=32,
            count=3,
            dtype="uint8",
            crs="EPSG:32616",
            transform=t,
        ) as dst:
            dst.write(np.full((3, 32, 16), 100, np.uint8))
        with rasterio.open(
            region / "labels" / f"{name}.tif", "w", driver="GTiff", width=16, height=32, count=1, dtype="uint8"
        ) as dst:
            dst.write(np.zeros((1, 32, 16), np.uint8))
    # one building straddling both tiles (x 10..20 m, y 4..8 m below the top), given in WGS84
    footprint = gpd.GeoDataFrame(geometry=[box(500010.0, 4000024.0, 500020.0, 4000028.0)], crs="EPSG:32616")
    footprint.to_crs("EPSG:4326").to_file(region / "footprints.geojson")
    samples = {s.id: s for s in read_smart_transfer(tmp_path / "root")}
    assert samples["t0"].buildings[4:8, 10:16].all() and samples["t0"].buildings[:, :9].sum() == 0
    assert samples["t1"].buildings[4:8, 0:4].all() and samples["t1"].buildings[:, 5:].sum() == 0
    assert samples["t0"].geo is not None and transform.c == samples["t0"].geo.transform[2]


def test_footprint_vectors_need_georeferenced_images(make_domain, tmp_path):
    import geopandas as gpd
    from shapely.geometry import box

    root = make_domain("a", n=1)
    gpd.GeoDataFrame(geometry=[box(0, 0, 1, 1)], crs="EPSG:4326").to_file(root / "a" / "footprints.geojson")
    with pytest.raises(
        InputError, match=r"tile0.png: .*footprints.geojson gives footprints in map coordinates.*no CRS"
    ):
        read_image_mask_folders(root)


def test_pre_event_images_come_from_a_pre_folder(make_domain, png, rng):
    from damagemap.data.loading import load_samples
    from damagemap.recipe import DataConfig

    root = make_domain("a", n=2)
    pres = [png(root / "a" / "pre" / f"tile{i}.png", rng.integers(0, 255, (16, 24, 3), dtype=np.uint8)) for i in (0, 1)]
    samples = read_image_mask_folders(root, pre=True)
    assert all(s.pre is not None and s.pre.shape == s.image.shape for s in samples)
    np.testing.assert_allclose(
        samples[1].pre * 255, np.asarray(__import__("PIL.Image").Image.open(pres[1])).transpose(2, 0, 1), atol=0.5
    )
    assert samples[0].meta["pre_image_path"] == str(pres[0])
    assert read_image_mask_folders(root)[0].pre is None  # only read when asked
    pres[1].unlink()
    with pytest.raises(InputError, match=r"tile1.png: no pre-event image for this image: expected .*a/pre/tile1.png"):
        read_image_mask_folders(root, pre=True)
    png(pres[1], rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    with pytest.raises(InputError, match="pre-event image has shape"):
        read_image_mask_folders(root, pre=True)
    import shutil

    shutil.copytree(root / "a" / "masks", root / "a" / "labels")  # the smart_transfer layout: no pre images
    with pytest.raises(InputError, match="data format 'smart_transfer' has no pre-event images"):
        load_samples(root, DataConfig(format="smart_transfer"), pre=True)
