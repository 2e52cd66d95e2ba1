"""The severity score on constructed class / depth maps with known answers."""

import math

import numpy as np
import pytest

from damagemap.severity.config import SeverityConfig
from damagemap.severity.score import UNDEFINED, band_of, severity_score

CLASSES = ["background", "undamaged", "damaged", "debris"]
CFG = SeverityConfig()


def _score(labels, depth=None):
    return severity_score(
        np.asarray(labels), None if depth is None else np.asarray(depth, float), CLASSES, CFG.degrees, CFG.bands, "test"
    )


def test_equal_pixel_counts_at_different_depths_weigh_by_depth_squared() -> None:
    # one row of undamaged at depth 1, one row of debris at depth 3: pixel score 1/2,
    # area score 9 / (1 + 9)
    labels = [[1, 1, 1, 1], [3, 3, 3, 3]]
    depth = [[1.0] * 4, [3.0] * 4]
    s = _score(labels, depth)
    assert s.pixel_score == pytest.approx(0.5)
    assert s.score == pytest.approx(9 / 10)
    assert s.area_shares == pytest.approx({"undamaged": 0.1, "damaged": 0.0, "debris": 0.9})
    assert s.depth_source == "test"


def test_global_depth_scale_cancels() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, (16, 16))
    depth = rng.uniform(1, 50, (16, 16))
    assert _score(labels, depth).score == pytest.approx(_score(labels, depth * 37.5).score)


def test_all_undamaged_is_zero_and_all_debris_is_one() -> None:
    depth = np.linspace(1, 20, 64).reshape(8, 8)
    none = _score(np.full((8, 8), 1), depth)
    full = _score(np.full((8, 8), 3), depth)
    assert (none.score, none.band) == (0.0, "none")
    assert (full.score, full.band) == (1.0, "destroyed")


def test_background_does_not_dilute_the_score() -> None:
    labels = np.zeros((10, 10), int)
    labels[:, :2] = 2  # damaged (0.5) is the only structure
    s = _score(labels, np.ones((10, 10)))
    assert s.score == pytest.approx(0.5) and s.band == "severe"
    assert s.structure_fraction == pytest.approx(0.2)
    assert s.pixel_shares["background"] == pytest.approx(0.8)


def test_no_structure_is_undefined_not_zero() -> None:
    s = _score(np.zeros((6, 6), int), np.ones((6, 6)))
    assert s.score is None and s.pixel_score is None
    assert s.band == UNDEFINED and s.pixel_band == UNDEFINED


def test_without_depth_the_score_is_the_pixel_score() -> None:
    s = _score([[1, 2], [3, 0]])
    assert s.score == s.pixel_score == pytest.approx((0 + 0.5 + 1) / 3)


@pytest.mark.parametrize(
    "value, band",
    [
        (0.0, "none"),
        (0.049, "none"),
        (0.05, "light"),
        (0.3, "moderate"),
        (0.5, "severe"),
        (0.99, "destroyed"),
        (math.nan, UNDEFINED),
        (None, UNDEFINED),
    ],
)
def test_bands(value, band) -> None:
    assert band_of(value, CFG.bands) == band


def test_bad_depth_and_unknown_classes_are_errors() -> None:
    with pytest.raises(ValueError, match="depth"):
        _score([[1, 1]], [[1.0, 0.0]])
    with pytest.raises(ValueError, match="differ in size"):
        _score([[1, 1]], [[1.0]])
    with pytest.raises(ValueError, match="rubble"):
        severity_score(np.ones((2, 2), int), None, CLASSES, {"rubble": 1.0}, CFG.bands)


def test_config_rejects_bad_bands_and_weights() -> None:
    with pytest.raises(ValueError, match="band thresholds"):
        SeverityConfig(bands={"none": 0.1, "all": 0.5})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        SeverityConfig(degrees={"debris": 2.0})


def test_recipe_sections_must_name_its_classes() -> None:
    from pydantic import ValidationError

    from damagemap.recipe import Recipe

    base = {"name": "r", "classes": CLASSES, "damage_classes": [2, 3]}
    with pytest.raises(ValidationError, match="rubble"):
        Recipe.model_validate(base | {"severity": {"degrees": {"rubble": 1.0}}})
    with pytest.raises(ValidationError, match="Smoke"):
        Recipe.model_validate(base | {"data": {"format": "cvat", "labels": {"Smoke": "smoke"}}})
    r = Recipe.model_validate(base | {"data": {"format": "cvat", "labels": {"Debris": "debris", "Sky": "ignore"}}})
    assert r.data.labels == {"Debris": 3, "Sky": 255}
    assert Recipe.model_validate(r.model_dump(mode="json")).data.labels == r.data.labels
