"""Tests for damagemap.data.listing and pooling several --data roots (data.inputs.load_roots)."""

from __future__ import annotations

import shutil

import pytest

from damagemap.data.inputs import Inputs, data_roots, load_roots
from damagemap.data.listing import chips_of, count_samples, list_domains
from damagemap.errors import ConfigError, InputError
from damagemap.recipe import DataConfig, Recipe


def test_chips_of_matches_the_chipper_grid():
    assert chips_of((16, 24), None) == 1
    assert chips_of((16, 24), 16) == 1  # 24 wide: one 16-px column, the remainder is dropped
    assert chips_of((32, 48), 16) == 2 * 3
    assert chips_of((10, 10), 16) == 1  # smaller than a chip: kept whole


def test_counts_from_the_listing(make_domain):
    make_domain("a", n=3, size=(32, 48))
    root = make_domain("b", n=1, size=(32, 48))
    assert list_domains(root, DataConfig()) == {"a", "b"}
    assert count_samples([root], DataConfig()) == {"a": 3, "b": 1}
    assert count_samples([root], DataConfig(chip=16)) == {"a": 18, "b": 6}
    assert count_samples([root], DataConfig(), domains=["b"]) == {"b": 1}
    assert count_samples([root], DataConfig(format="cvat")) is None  # no listing: caller counts samples


def test_roots_are_pooled_and_duplicates_refused(make_domain, tmp_path):
    root = make_domain("a", n=2)
    make_domain("b", n=1)
    other = tmp_path / "other"
    shutil.copytree(root / "b", other / "c")
    recipe = Recipe(name="r")
    samples = load_roots([root, other], recipe, None, pre=False)
    assert sorted(s.key for s in samples) == ["a/tile0", "a/tile1", "b/tile0", "c/tile0"]
    assert {s.domain for s in load_roots([root, other], recipe, ["c"], pre=False)} == {"c"}
    with pytest.raises(InputError, match="domains \\['zzz'\\] not found"):
        load_roots([root, other], recipe, ["zzz"], pre=False)
    shutil.copytree(root / "a", other / "a")
    with pytest.raises(InputError, match="sample a/tile0 is also in"):
        load_roots([root, other], recipe, None, pre=False)
    with pytest.raises(ConfigError, match="given twice"):
        data_roots(Inputs((root, root)))
    with pytest.raises(InputError, match="does not exist"):
        data_roots(Inputs((root, tmp_path / "nowhere")))
