"""Landslide4Sense reader: both layouts, band order, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from damagemap.data.landslide4sense import RGB_BANDS, read_landslide4sense
from damagemap.data.loading import load_samples
from damagemap.data.synthetic_landslide4sense import write_landslide4sense
from damagemap.data.views import make_views, view_image
from damagemap.errors import InputError
from damagemap.recipe import DataConfig, InputConfig


def _h5(path: Path, **datasets: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for k, v in datasets.items():
            f.create_dataset(k, data=v)
    return path


def test_official_layout_reads_channels_last_as_bands_first(tmp_path: Path) -> None:
    root = write_landslide4sense(tmp_path / "TrainData", 3, seed=1, size=32)
    samples = read_landslide4sense(root)
    assert [s.id for s in samples] == ["image_1", "image_2", "image_3"]
    assert {s.domain for s in samples} == {"TrainData"}
    with h5py.File(root / "img" / "image_2.h5") as f:
        raw = f["img"][()]
    with h5py.File(root / "mask" / "mask_2.h5") as f:
        raw_mask = f["mask"][()]
    s = samples[1]
    assert s.image.shape == (14, 32, 32) and s.image.dtype == np.float32
    np.testing.assert_array_equal(s.image[11], raw[:, :, 11])  # band k = img[..., k]
    np.testing.assert_array_equal(s.mask, raw_mask)
    assert s.meta["mask_path"].endswith("mask_2.h5")


def test_single_folder_layout_and_split_subfolders_as_domains(tmp_path: Path) -> None:
    write_landslide4sense(tmp_path / "data" / "a", 2, seed=2, size=32, layout="single")
    write_landslide4sense(tmp_path / "data" / "b", 1, seed=3, size=32)
    samples = load_samples(tmp_path / "data", DataConfig(format="landslide4sense"))
    assert [s.key for s in samples] == ["a/image_1", "a/image_2", "b/image_1"]
    assert all(set(np.unique(s.mask)) <= {0, 1} for s in samples)
    assert [s.key for s in load_samples(tmp_path / "data", DataConfig(format="landslide4sense"), domains=["b"])] == [
        "b/image_1"
    ]


def test_rgb_band_selection_picks_b4_b3_b2(tmp_path: Path) -> None:
    img = np.zeros((32, 32, 14), np.float32)
    img[..., :] = np.arange(14, dtype=np.float32) / 20  # band k has value k/20
    _h5(tmp_path / "p" / "image_1.h5", img=img, mask=np.zeros((32, 32), np.uint8))
    (s,) = read_landslide4sense(tmp_path / "p")
    cfg = InputConfig(size=32, bands=list(RGB_BANDS))
    x = view_image(s, make_views([s], cfg)[0], cfg)
    assert RGB_BANDS == (3, 2, 1)
    np.testing.assert_allclose(x[:, 0, 0].numpy(), [0.15, 0.10, 0.05])


def test_h5_without_img_names_file_and_keys(tmp_path: Path) -> None:
    bad = _h5(tmp_path / "p" / "image_1.h5", data=np.zeros((32, 32, 14)), mask=np.zeros((32, 32)))
    with pytest.raises(InputError, match=r"no dataset 'img'.*keys found: data, mask") as err:
        read_landslide4sense(tmp_path / "p")
    assert err.value.path == bad


@pytest.mark.parametrize("shape", [(32, 32), (32, 32, 13), (14, 32, 32)])
def test_wrong_image_shape_is_an_error(tmp_path: Path, shape: tuple[int, ...]) -> None:
    _h5(tmp_path / "p" / "image_1.h5", img=np.zeros(shape, np.float32), mask=np.zeros((32, 32)))
    with pytest.raises(InputError, match=r"'img' has shape .*expected \[H, W, 14\]"):
        read_landslide4sense(tmp_path / "p")


def test_nan_values_name_the_band(tmp_path: Path) -> None:
    img = np.ones((32, 32, 14), np.float32)
    img[3, 4, 13] = np.nan
    _h5(tmp_path / "p" / "image_1.h5", img=img, mask=np.zeros((32, 32)))
    with pytest.raises(InputError, match=r"NaN or inf values \(bands \[13\]\)"):
        read_landslide4sense(tmp_path / "p")


def test_missing_mask_file_is_named(tmp_path: Path) -> None:
    root = write_landslide4sense(tmp_path / "s", 2, size=32)
    (root / "mask" / "mask_2.h5").unlink()
    with pytest.raises(InputError, match=r"no mask for this image: expected .*mask_2\.h5") as err:
        read_landslide4sense(root)
    assert err.value.path == root / "img" / "image_2.h5"


def test_mask_size_and_values_are_checked(tmp_path: Path) -> None:
    img = np.ones((32, 32, 14), np.float32)
    _h5(tmp_path / "a" / "image_1.h5", img=img, mask=np.zeros((16, 32)))
    with pytest.raises(InputError, match=r"'mask' has shape \[16, 32\], expected \[32, 32\]"):
        read_landslide4sense(tmp_path / "a")
    _h5(tmp_path / "b" / "image_1.h5", img=img, mask=np.full((32, 32), 7))
    with pytest.raises(InputError, match=r"mask values \[7\]"):
        read_landslide4sense(tmp_path / "b")


def test_band_index_out_of_range_names_index_and_band_count(tmp_path: Path) -> None:
    (s,) = read_landslide4sense(write_landslide4sense(tmp_path / "s", 1, size=32))
    cfg = InputConfig(size=32, bands=[3, 2, 14])
    with pytest.raises(InputError, match=r"band index \[14\] out of range for an image with 14 bands"):
        view_image(s, make_views([s], cfg)[0], cfg)


def test_not_hdf5_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "image_1.h5").write_bytes(b"not hdf5")
    with pytest.raises(InputError, match="cannot read as HDF5"):
        read_landslide4sense(tmp_path / "p")
