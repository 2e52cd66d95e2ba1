"""The item bank: a batch gathered from stacked items equals the items transformed one by one."""

from __future__ import annotations

import pytest
import torch

from damagemap.data.augment import Dihedral
from damagemap.training.items import Item
from damagemap.training.sources import FeatureSource, ItemBank, collate

ALL = [Dihedral(h, v, r) for h in (False, True) for v in (False, True) for r in range(4)]


def _items(n: int, seed: int = 0, buildings: bool = True) -> list[Item]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        mask = torch.randint(0, 3, (8, 8), generator=g)
        out.append(
            Item(
                features=[torch.randn(4, 8, 8, generator=g).half(), torch.randn(6, 4, 4, generator=g).half()],
                mask=mask,
                eval_mask=mask,
                buildings=torch.randint(0, 2, (8, 8), generator=g) if buildings else None,
            )
        )
    return out


def _one_by_one(items: list[Item], indices: list[int], transforms: list[Dihedral]):
    feats = [torch.stack([t(items[i].features[lvl].float()) for i, t in zip(indices, transforms)]) for lvl in (0, 1)]
    masks = torch.stack([t(items[i].mask) for i, t in zip(indices, transforms)])
    blds = torch.stack([t(items[i].buildings) for i, t in zip(indices, transforms)])
    return feats, masks, blds


def test_batch_equals_each_item_through_its_own_transform() -> None:
    items = _items(12)
    g = torch.Generator().manual_seed(1)
    indices = torch.randint(0, 12, (10,), generator=g).tolist()
    transforms = [ALL[int(k)] for k in torch.randint(0, 8, (10,), generator=g)]
    feats, batch = ItemBank(items).batch(indices, transforms)
    want_feats, want_masks, want_blds = _one_by_one(items, indices, transforms)
    for got, want in zip(feats, want_feats, strict=True):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert torch.equal(batch["mask"], want_masks) and torch.equal(batch["buildings"], want_blds)


def test_a_batch_never_changes_the_bank() -> None:
    items = _items(4)
    bank = ItemBank(items)
    before = [x.clone() for x in bank.levels]
    bank.batch([0, 1, 2, 3], [Dihedral(hflip=True)] * 4)
    assert all(torch.equal(a, b) for a, b in zip(before, bank.levels, strict=True))
    again, _ = bank.batch([0], None)
    torch.testing.assert_close(again[0][0], items[0].features[0].float())


def test_buildings_only_when_every_item_has_them() -> None:
    items = _items(3) + _items(1, seed=5, buildings=False)
    _, batch = collate(items)
    assert set(batch) == {"mask"}


def test_feature_source_gathers_the_prepared_items() -> None:
    items = _items(5)
    source = FeatureSource()
    source.prepare(items)
    feats, batch = source.step_inputs([4, 2], [Dihedral(rot=1), Dihedral()])
    torch.testing.assert_close(feats[1][0], torch.rot90(items[4].features[1].float(), 1, dims=(-2, -1)))
    assert torch.equal(batch["mask"][1], items[2].mask)


def test_empty_bank_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one item"):
        ItemBank([])
