"""Bijie reader: landslide masks 255 or 1, non-landslide samples all background."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from damagemap.data.loading import load_samples
from damagemap.errors import InputError
from damagemap.recipe import DataConfig
from tests.data.conftest import write_png


def _bijie(root: Path, rng: np.random.Generator, fg: int = 255) -> Path:
    for i, size in enumerate([(20, 24), (16, 16)]):
        write_png(root / "landslide" / "image" / f"ls{i}.png", rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        mask = np.zeros(size, np.uint8)
        mask[2:8, 3:9] = fg
        write_png(root / "landslide" / "mask" / f"ls{i}.png", mask)
    write_png(root / "non-landslide" / "image" / "n0.png", rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))
    write_png(root / "landslide" / "dem" / "ls0.png", np.zeros((20, 24), np.uint8))  # ignored
    return root


@pytest.mark.parametrize("fg", [255, 1])
def test_reads_both_folders_with_binary_masks(tmp_path: Path, rng: np.random.Generator, fg: int) -> None:
    root = _bijie(tmp_path / "Bijie", rng, fg)
    samples = load_samples(root, DataConfig(format="bijie"))
    assert [s.key for s in samples] == ["Bijie/landslide-ls0", "Bijie/landslide-ls1", "Bijie/non-landslide-n0"]
    ls0 = samples[0]
    assert ls0.image.shape == (3, 20, 24) and ls0.mask.dtype == np.int64
    assert ls0.mask.sum() == 36 and set(np.unique(ls0.mask)) == {0, 1}
    non = samples[2]
    assert non.mask.shape == (12, 10) and not non.mask.any()


def test_landslide_image_without_mask_is_an_error(tmp_path: Path, rng: np.random.Generator) -> None:
    root = _bijie(tmp_path / "Bijie", rng)
    (root / "landslide" / "mask" / "ls1.png").unlink()
    with pytest.raises(InputError, match="no mask for this image") as err:
        load_samples(root, DataConfig(format="bijie"))
    assert err.value.path.name == "ls1.png"


def test_mask_with_other_values_is_an_error(tmp_path: Path, rng: np.random.Generator) -> None:
    root = _bijie(tmp_path / "Bijie", rng)
    write_png(root / "landslide" / "mask" / "ls0.png", np.full((20, 24), 128, np.uint8))
    with pytest.raises(InputError, match=r"unexpected mask values \[128\]"):
        load_samples(root, DataConfig(format="bijie"))


def test_wrong_folder_says_what_layout_is_expected(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(InputError, match="landslide/image"):
        load_samples(tmp_path / "x", DataConfig(format="bijie"))
