"""Tests for damagemap.data.smart_transfer.read_smart_transfer."""

from __future__ import annotations

import numpy as np
import pytest

from damagemap.data import read_smart_transfer
from damagemap.errors import InputError


def test_labels_0_255_and_0_1_become_binary(make_domain):
    make_domain("region_a", values=(0, 255), masks_dir="labels")
    root = make_domain("region_b", values=(0, 1), masks_dir="labels")
    samples = read_smart_transfer(root)
    assert {s.domain for s in samples} == {"region_a", "region_b"}
    for s in samples:
        assert set(np.unique(s.mask).tolist()) == {0, 1}
    assert {s.domain for s in read_smart_transfer(root, regions=["region_b"])} == {"region_b"}


def test_non_binary_label_rejected(make_domain):
    root = make_domain("r", n=1, values=(0, 128), masks_dir="labels")
    with pytest.raises(InputError, match=r"labels[/\\]tile0.png: unexpected mask values \[128\]"):
        read_smart_transfer(root)


def test_uses_labels_folder(make_domain):
    root = make_domain("r", n=1, masks_dir="masks")
    with pytest.raises(InputError, match=r"no mask .*labels[/\\]tile0.png"):
        read_smart_transfer(root)
