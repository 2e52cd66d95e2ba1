"""Greedy uncertainty × diversity selection."""

from __future__ import annotations

import numpy as np
import pytest

from damagemap.active.select import select_tiles
from damagemap.errors import ConfigError


def _cluster(centre: int, n: int, dim: int = 4, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed + centre)
    base = np.zeros(dim)
    base[centre] = 1.0
    return base + 0.01 * rng.standard_normal((n, dim))


def test_tiles_unlike_the_labelled_ones_beat_slightly_more_uncertain_near_duplicates():
    near, far = _cluster(0, 3), _cluster(1, 3)
    feats = np.vstack([near, far])
    u = np.array([0.9, 0.9, 0.9, 0.6, 0.6, 0.6])
    pick = select_tiles(u, feats, 1, labelled=_cluster(0, 2, seed=5))
    assert pick.index[0] in (3, 4, 5)  # far from the labelled cluster
    assert pick.distance_to_labelled[0] > 1.0
    only_u = select_tiles(u, feats, 1, labelled=_cluster(0, 2, seed=5), beta=0.0)
    assert only_u.index[0] in (0, 1, 2)  # uncertainty alone picks the near duplicates


def test_later_picks_are_spread_out_and_the_first_is_the_most_uncertain_without_labels():
    a, b, c = _cluster(0, 4), _cluster(1, 4), _cluster(2, 4)
    feats = np.vstack([a, b, c])
    u = np.concatenate([np.full(4, 0.95), np.full(4, 0.9), np.full(4, 0.5)])
    u[1] = 0.99
    pick = select_tiles(u, feats, 3)
    assert pick.index[0] == 1 and np.isnan(pick.distance[0])  # most uncertain first
    clusters = {int(i) // 4 for i in pick.index}
    assert clusters == {0, 1, 2}  # one tile per cluster, not three near-copies of the first
    assert np.all(np.diff(pick.index) != 0) and len(set(pick.index.tolist())) == 3
    assert np.all(pick.score[1:] <= 1.0) and np.all(pick.uncertainty == u[pick.index])


def test_asking_for_more_than_exist_returns_all_and_bad_input_is_clear():
    pick = select_tiles(np.array([0.2, 0.4]), np.eye(2), 5)
    assert sorted(pick.index.tolist()) == [0, 1]
    with pytest.raises(ConfigError, match=">= 1"):
        select_tiles(np.array([0.2]), np.eye(1), 0)
    with pytest.raises(ConfigError, match="2 uncertainties for 3 feature rows"):
        select_tiles(np.array([0.2, 0.3]), np.eye(3), 1)
