"""Helpers over lists of :class:`~damagemap.types.Sample`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from damagemap.types import Sample


def damaged_fractions(samples: Sequence[Sample], damage_classes: Sequence[int] = (1,)) -> np.ndarray:
    """Damaged-pixel fraction of each sample (for stratified splits).

    Args:
        samples: labelled samples; unlabelled ones count as 0.
        damage_classes: class indices that count as damaged, e.g. ``(2, 3, 4)`` for xBD grades.

    Returns:
        float64 array of shape ``[len(samples)]`` with values in [0, 1].
    """
    classes = tuple(int(c) for c in damage_classes)
    return np.array([s.damaged_fraction(classes) for s in samples], dtype=np.float64)
