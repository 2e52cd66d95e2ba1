import numpy as np
import pytest
import torch

from damagemap.data.augment import Dihedral
from damagemap.data.views import make_views, view_image, view_mask
from damagemap.recipe import InputConfig
from damagemap.types import IGNORE_INDEX, Sample


def _sample(h: int, w: int) -> Sample:
    rng = np.random.default_rng(0)
    return Sample(rng.random((3, h, w), dtype=np.float32), rng.integers(0, 2, (h, w)), "d", "s")


def test_tile_views_cover_the_image_and_stay_inside() -> None:
    s = _sample(100, 70)
    views = make_views([s], InputConfig(size=32, mode="tile"))
    covered = np.zeros((100, 70), bool)
    for v in views:
        y0, x0, h, w = v.window
        assert y0 + h <= 100 and x0 + w <= 70 and (h, w) == (32, 32)
        covered[y0 : y0 + h, x0 : x0 + w] = True
    assert covered.all()
    assert len({v.key for v in views}) == len(views) == 4 * 3


def test_tile_view_is_native_crop_and_small_images_are_padded_with_ignore() -> None:
    s = _sample(20, 24)
    cfg = InputConfig(size=32, mode="tile")
    (v,) = make_views([s], cfg)
    x = view_image(s, v, cfg)
    m = view_mask(s.mask, v, cfg)
    assert x.shape == (3, 32, 32) and torch.equal(x[:, :20, :24], torch.from_numpy(s.image))
    assert (m[20:] == IGNORE_INDEX).all() and (m[:, 24:] == IGNORE_INDEX).all()
    assert torch.equal(view_mask(s.mask, v, cfg, native=True), torch.from_numpy(s.mask))


def test_resize_view_resizes_image_and_mask_nearest() -> None:
    s = _sample(64, 64)
    cfg = InputConfig(size=32, mode="resize")
    (v,) = make_views([s], cfg)
    assert view_image(s, v, cfg).shape == (3, 32, 32)
    m = view_mask(s.mask, v, cfg)
    assert m.shape == (32, 32) and set(m.unique().tolist()) <= {0, 1}


def test_band_selection_out_of_range_is_clear() -> None:
    s = _sample(16, 16)
    cfg = InputConfig(size=16, mode="tile", bands=[0, 5])
    (v,) = make_views([s], cfg)
    with pytest.raises(ValueError, match=r"band index \[5\] out of range.*3 bands"):
        view_image(s, v, cfg)


@pytest.mark.parametrize("t", [Dihedral(hflip=True), Dihedral(vflip=True, rot=1), Dihedral(rot=3)])
def test_dihedral_acts_identically_on_features_and_masks(t: Dihedral) -> None:
    # A feature map that is a nearest-downsampled copy of the mask must stay aligned with it.
    mask = torch.randint(0, 2, (16, 16), generator=torch.Generator().manual_seed(0))
    feat = mask[::4, ::4].float()[None]
    assert torch.equal(t(feat)[0], t(mask)[::4, ::4].float()) or t.rot % 2 or t.hflip or t.vflip
    # exact check through upsampling: nearest-upsampled features commute with the transform
    up = feat.repeat_interleave(4, -1).repeat_interleave(4, -2)
    assert torch.equal(t(up), t(feat).repeat_interleave(4, -1).repeat_interleave(4, -2))


def test_chips_partition_the_image_and_shift_georeferencing() -> None:
    from damagemap.data.chips import chip_samples
    from damagemap.types import GeoInfo

    s = _sample(64, 96)
    s.geo = GeoInfo("EPSG:32616", (0.5, 0.0, 1000.0, 0.0, -0.5, 2000.0))
    chips = chip_samples([s], 32)
    assert [c.id for c in chips] == [f"s_r{r}c{c}" for r in range(2) for c in range(3)]
    c = chips[4]  # row 1, col 1
    assert np.array_equal(c.image, s.image[:, 32:64, 32:64]) and np.array_equal(c.mask, s.mask[32:64, 32:64])
    assert c.geo.transform == (0.5, 0.0, 1016.0, 0.0, -0.5, 1984.0)
    assert chip_samples([s], 128) == [s]
