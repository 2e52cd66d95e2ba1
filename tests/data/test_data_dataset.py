"""Tests for damagemap.data.dataset."""

from __future__ import annotations

import numpy as np

from damagemap.data import damaged_fractions
from damagemap.types import Sample


def test_damaged_fractions():
    image = np.zeros((3, 2, 2), np.float32)
    samples = [
        Sample(image, np.array([[0, 1], [1, 1]]), "d", "a"),
        Sample(image, np.array([[0, 2], [255, 3]]), "d", "b"),
        Sample(image, None, "d", "c"),
    ]
    np.testing.assert_allclose(damaged_fractions(samples), [0.75, 0.0, 0.0])
    np.testing.assert_allclose(damaged_fractions(samples, (2, 3)), [0.0, 2 / 3, 0.0])
    assert damaged_fractions([]).shape == (0,)
