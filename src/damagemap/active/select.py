"""Which candidate tiles to label next: model uncertainty combined with feature-space diversity.

Greedy selection over the candidates' uncertainty ``u`` (mean normalised predictive entropy of
the tile, 0 = certain, 1 = maximally uncertain) and their pooled encoder features ``f``
(L2-normalised). Each step picks the candidate maximising

    score = u^α · (d / d_max)^β

where ``d`` is its Euclidean distance to the nearest *already labelled or already picked* tile
in feature space (greedy k-center, Sener & Savarese 2018) and ``d_max`` the largest such
distance among the candidates left, so both factors lie in [0, 1]. Uncertainty alone picks
near-duplicates of one confusing patch; distance alone picks outliers the model is sure about;
the product asks for tiles that are both informative and unlike what is labelled. With no
labelled tile the first pick is the most uncertain one. Distances come from scikit-learn's
``pairwise_distances``; candidates are updated incrementally (``O(n · k)`` for k picks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import pairwise_distances

from damagemap.errors import ConfigError


@dataclass(frozen=True)
class Selection:
    """The picked candidates, best first.

    Attributes:
        index: candidate indexes in pick order.
        score: the score each had when picked.
        uncertainty: its uncertainty.
        distance: its feature distance to the nearest labelled or earlier-picked tile
            (``nan`` for a first pick without labelled tiles).
        distance_to_labelled: its feature distance to the nearest labelled tile (``nan``
            without labelled tiles).
    """

    index: np.ndarray
    score: np.ndarray
    uncertainty: np.ndarray
    distance: np.ndarray
    distance_to_labelled: np.ndarray


def _unit(features: np.ndarray) -> np.ndarray:
    f = np.asarray(features, dtype=np.float64)
    norm = np.linalg.norm(f, axis=1, keepdims=True)
    return np.divide(f, norm, out=np.zeros_like(f), where=norm > 0)


def select_tiles(
    uncertainty: np.ndarray,
    features: np.ndarray,
    n: int,
    labelled: np.ndarray | None = None,
    alpha: float = 1.0,
    beta: float = 1.0,
) -> Selection:
    """Pick ``n`` of the candidates (see the module docstring).

    Args:
        uncertainty: ``[N]`` values in [0, 1].
        features: ``[N, D]`` pooled encoder features of the candidates.
        n: how many to pick (at most N).
        labelled: ``[M, D]`` features of the tiles already labelled (None or empty: none).
        alpha, beta: exponents of uncertainty and distance (0 turns a factor off).
    """
    u = np.asarray(uncertainty, dtype=np.float64)
    if u.ndim != 1 or len(u) != len(features):
        raise ConfigError(f"select_tiles: {len(u)} uncertainties for {len(features)} feature rows")
    if n < 1:
        raise ConfigError(f"the number of tiles to suggest must be >= 1, got {n}")
    f = _unit(features)
    n = min(n, len(u))
    has_labelled = labelled is not None and len(labelled) > 0
    if has_labelled:
        assert labelled is not None
        nearest = pairwise_distances(f, _unit(labelled)).min(axis=1)
        to_labelled = nearest.copy()
    else:
        nearest = np.full(len(u), np.inf)
        to_labelled = np.full(len(u), np.nan)
    left = np.ones(len(u), dtype=bool)
    picked, scores, dists = [], [], []
    for _ in range(n):
        finite = np.isfinite(nearest) & left
        if finite.any():
            d_max = nearest[finite].max()
            d = np.where(np.isfinite(nearest), nearest, d_max) / (d_max if d_max > 0 else 1.0)
        else:
            d = np.ones(len(u))
        score = np.power(np.clip(u, 0.0, 1.0), alpha) * np.power(np.clip(d, 0.0, 1.0), beta)
        score = np.where(left, score, -np.inf)
        i = int(np.argmax(score))
        picked.append(i)
        scores.append(float(score[i]))
        dists.append(float(nearest[i]) if np.isfinite(nearest[i]) else float("nan"))
        left[i] = False
        nearest = np.minimum(nearest, pairwise_distances(f, f[i : i + 1])[:, 0])
    index = np.array(picked, dtype=np.int64)
    return Selection(index, np.array(scores), u[index], np.array(dists), to_labelled[index])
