import math

import pytest
import torch
import torch.nn.functional as F

from damagemap.objectives.base import ForwardOutput
from damagemap.objectives.dpt import (
    DistancePenalizedTripletLoss,
    _cell_bounds,
    _cell_sums,
    patch_centres,
    patch_labels,
    pool_patches,
    sample_triplets,
    triplet_loss,
)

SQRT2 = math.sqrt(2.0)


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


# ---------------------------------------------------------------- triplet_loss (pure)


def test_reference_form_hand_computed():
    # a=(1,0) p=(0,1) n=(.6,.8): ‖a−p‖²=2, ‖a−n‖²=.8
    # centres a=(.125,.125) p=(.375,.125) n=(.125,.375)
    a, p, n = t([1.0, 0.0]), t([0.0, 1.0]), t([0.6, 0.8])
    q_ap, q_an, q_pn = torch.tensor([0.25]), torch.tensor([0.25]), torch.tensor([0.25 * SQRT2])
    value = triplet_loss(a, p, n, q_ap, q_an, q_pn, "reference", margin=0.2)
    # 2 − .8 + (.5 − .25√2)/√2 + .2 = 1.15 + .5/√2
    assert value.item() == pytest.approx(1.15 + 0.5 / SQRT2, abs=1e-6)


def test_adjacency_form_hand_computed():
    a, p, n = t([1.0, 0.0]), t([0.0, 1.0]), t([0.6, 0.8])
    q = torch.tensor([0.25])
    value = triplet_loss(a, p, n, q, q, q * SQRT2, "adjacency", margin=0.2, beta=1.0, tau=0.25)
    # 2 − .8 + .2·(1 + e^{−1})
    assert value.item() == pytest.approx(1.4 + 0.2 / math.e, abs=1e-6)


def test_mean_includes_hinged_triplets_as_zero():
    a = t([1.0, 0.0], [1.0, 0.0])
    p = t([0.0, 1.0], [0.6, 0.8])
    n = t([0.6, 0.8], [-1.0, 0.0])  # second: .8 − 4 + … < 0 → 0
    q = torch.tensor([0.25, 0.25])
    for form, first in (("reference", 1.15 + 0.5 / SQRT2), ("adjacency", 1.4 + 0.2 / math.e)):
        value = triplet_loss(a, p, n, q, q, q * SQRT2, form)
        assert value.item() == pytest.approx(first / 2, abs=1e-6)


def test_adjacency_margin_is_larger_for_adjacent_negatives():
    a, p, n = t([1.0, 0.0]), t([1.0, 0.0]), t([1.0, 0.0])  # all distances 0 → loss = margin term
    near = triplet_loss(a, p, n, torch.tensor([0.5]), torch.tensor([0.25]), torch.tensor([0.5]), "adjacency")
    far = triplet_loss(a, p, n, torch.tensor([0.5]), torch.tensor([0.75]), torch.tensor([0.5]), "adjacency")
    assert near.item() == pytest.approx(0.2 * (1 + math.exp(-1)), abs=1e-6)
    assert far.item() == pytest.approx(0.2 * (1 + math.exp(-3)), abs=1e-6)
    assert near > far


def test_unknown_form_rejected():
    with pytest.raises(ValueError, match="form"):
        triplet_loss(t([1.0]), t([1.0]), t([1.0]), *(torch.zeros(1),) * 3, form="cosine")
    with pytest.raises(ValueError, match="form"):
        DistancePenalizedTripletLoss(form="cosine")


# ---------------------------------------------------------------- patch labels


def cell(r: int, c: int):
    """Slice of cell (r, c) of a 40×40 image on a 4×4 grid (10×10 = 100 px per cell)."""
    return slice(10 * r, 10 * r + 10), slice(10 * c, 10 * c + 10)


def set_pixels(arr: torch.Tensor, where, index, value: int) -> None:
    """Set the pixels ``index`` (row-major within the cell) of cell ``where`` to ``value``."""
    block = arr[where].reshape(-1).clone()
    block[index] = value
    arr[where] = block.view(10, 10)


def set_first(arr: torch.Tensor, where, n: int, value: int) -> None:
    set_pixels(arr, where, slice(0, n), value)


def test_patch_labels_thresholds_with_buildings():
    mask = torch.zeros(40, 40, dtype=torch.long)
    bld = torch.zeros(40, 40, dtype=torch.long)
    set_first(bld, cell(0, 0), 1, 1)  # building fraction .01 < .02 → non-building
    set_first(bld, cell(0, 1), 2, 1)  # exactly .02 → building, undamaged
    for c, n_damaged in ((2, 2), (3, 3)):  # r_d = .02 exactly → 0; .03 → ignore
        bld[cell(0, c)] = 1
        set_first(mask, cell(0, c), n_damaged, 1)
    for c, n_damaged in ((0, 10), (1, 9)):  # .10 exactly → 1; .09 → ignore
        bld[cell(1, c)] = 1
        set_first(mask, cell(1, c), n_damaged, 1)
    bld[cell(1, 2)] = 1
    mask[cell(1, 2)] = 255  # building, nothing labelled → ignore
    set_first(bld, cell(1, 3), 50, 1)  # 50 building px, 1 damaged inside, 40 damaged outside
    set_pixels(mask, cell(1, 3), [0, *range(60, 100)], 1)
    bld[cell(2, 0)] = 1
    mask[cell(2, 0)] = 255
    set_first(mask, cell(2, 0), 50, 0)
    set_first(mask, cell(2, 0), 5, 1)  # 5 damaged of 50 labelled building px → .10 → 1
    labels = patch_labels(mask, bld)
    assert labels.tolist() == [2, 0, 0, -1, 1, -1, -1, 0, 1, 2, 2, 2, 2, 2, 2, 2]


def test_patch_labels_without_buildings_use_labelled_pixels():
    mask = torch.full((40, 40), 255, dtype=torch.long)
    set_first(mask, cell(0, 0), 1, 0)  # labelled fraction .01 → ignore (no class 2)
    set_first(mask, cell(0, 1), 2, 0)  # .02 → counts, undamaged
    for c, n_damaged in ((2, 2), (3, 3)):
        mask[cell(0, c)] = 0
        set_first(mask, cell(0, c), n_damaged, 1)
    for c, n_damaged in ((0, 10), (1, 9)):
        mask[cell(1, c)] = 0
        set_first(mask, cell(1, c), n_damaged, 1)
    labels = patch_labels(mask, None)
    assert labels.tolist() == [-1, 0, 0, -1, 1, -1] + [-1] * 10


def test_patch_cells_match_adaptive_pooling_on_uneven_sizes():
    g = torch.Generator().manual_seed(0)
    mask = (torch.rand(10, 13, generator=g) < 0.15).long()
    pooled = F.adaptive_avg_pool2d(mask[None, None].float(), 4).flatten()
    expected = torch.where(pooled <= 0.02, 0, torch.where(pooled >= 0.10, 1, -1))
    assert torch.equal(patch_labels(mask, None), expected)


@pytest.mark.parametrize("size", [(12, 16), (10, 13)])
def test_cell_counts_are_exact_on_even_and_uneven_cells(size):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, *size, generator=g) < 0.4
    rows, cols = _cell_bounds(size[0], 4), _cell_bounds(size[1], 4)
    area = torch.tensor([[(r1 - r0) * (c1 - c0) for c0, c1 in cols] for r0, r1 in rows], dtype=torch.float64)
    expected = torch.tensor(
        [
            [[[int(x[b, k, r0:r1, c0:c1].sum()) for c0, c1 in cols] for r0, r1 in rows] for k in range(3)]
            for b in range(2)
        ]
    )
    assert torch.equal(_cell_sums(x, 4, area), expected)


# ---------------------------------------------------------------- pooling, centres, sampling


def test_pool_patches_and_centres():
    emb = torch.zeros(1, 2, 8, 8)
    emb[0, 0, :4, :4] = 3.0  # top-left cell → (1, 0)
    emb[0, 1, 4:, 4:] = 0.5  # bottom-right cell → (0, 1)
    pooled = pool_patches(emb, grid=2)
    assert pooled.shape == (1, 4, 2)
    assert pooled[0, 0].tolist() == [1.0, 0.0] and pooled[0, 3].tolist() == [0.0, 1.0]
    centres = patch_centres(4)
    assert centres.shape == (16, 2) and centres[6].tolist() == [0.625, 0.375]  # cell (1, 2)


def test_sampling_invariants_and_determinism():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        labels = torch.randint(-1, 3, (16,), generator=g)
        trip = sample_triplets(labels, 16, g)
        assert len(trip) <= 16 and len(set(trip[:, 0].tolist())) == len(trip)
        a, p, n = labels[trip[:, 0]], labels[trip[:, 1]], labels[trip[:, 2]]
        assert (trip[:, 0] != trip[:, 1]).all() and (a == p).all()
        assert ((a == 0) | (a == 1)).all() and (n != a).all() and (n != -1).all()
    labels = torch.tensor([0, 1] * 8)
    one = sample_triplets(labels, 4, torch.Generator().manual_seed(5))
    two = sample_triplets(labels, 4, torch.Generator().manual_seed(5))
    assert len(one) == 4 and torch.equal(one, two)


def test_batched_patch_labels_are_those_of_each_image():
    g = torch.Generator().manual_seed(3)
    masks = torch.randint(0, 2, (5, 24, 20), generator=g)
    masks[masks.sum((1, 2)) % 2 == 0, :6] = 255
    blds = (torch.rand(5, 24, 20, generator=g) < 0.4).long()
    batched = patch_labels(masks, blds)
    assert batched.shape == (5, 16)
    for b in range(5):
        assert torch.equal(batched[b], patch_labels(masks[b], blds[b]))


def test_positives_and_negatives_are_drawn_uniformly():
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, -1])  # anchor 4: positives 5, 6; negatives 0..3
    g = torch.Generator().manual_seed(0)
    pos, neg = torch.zeros(8), torch.zeros(8)
    for _ in range(4000):
        trip = sample_triplets(labels, 16, g)
        row = trip[trip[:, 0] == 4]
        pos[row[0, 1]] += 1
        neg[row[0, 2]] += 1
    assert pos[[5, 6]].sum() == 4000 and (pos[[5, 6]] / 4000 - 0.5).abs().max() < 0.04
    assert neg[:4].sum() == 4000 and (neg[:4] / 4000 - 0.25).abs().max() < 0.04


def test_sampling_skips_anchors_without_positive_or_negative():
    assert sample_triplets(torch.tensor([0, 0, 0, -1]), 16, torch.Generator()).shape == (0, 3)  # no negative
    trip = sample_triplets(torch.tensor([0, 1, 1, -1]), 16, torch.Generator())  # 0 has no positive
    assert sorted(trip[:, 0].tolist()) == [1, 2] and (trip[:, 2] == 0).all()


# ---------------------------------------------------------------- the objective term


def two_by_two_case():
    """Grid 2 on a 4×4 image: cells labelled [0, 0, 1, ignore] → triplets (0,1,2) and (1,0,2)."""
    vectors = t([1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [1.0, 1.0])
    emb = vectors.T.reshape(2, 2, 2).repeat_interleave(2, 1).repeat_interleave(2, 2)[None]
    mask = torch.zeros(4, 4, dtype=torch.long)
    mask[2:, :2] = 1
    mask[2:, 2:] = 255
    return emb.requires_grad_(), mask[None]


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        # (0,1,2): 2 − .8 + (1 − .5√2)/√2 + .2 = .9 + 1/√2;  (1,0,2): 2 − .4 + .5 + .2 = 2.3
        ("reference", (0.9 + 1 / SQRT2 + 2.3) / 2),
        # (0,1,2): 1.2 + .2(1 + e^{−2});  (1,0,2): 1.6 + .2(1 + e^{−2√2})
        ("adjacency", (1.4 + 0.2 * math.exp(-2) + 1.8 + 0.2 * math.exp(-2 * SQRT2)) / 2),
    ],
)
def test_term_exact_value(form, expected):
    emb, mask = two_by_two_case()
    term = DistancePenalizedTripletLoss(form=form, grid=2)
    out = ForwardOutput(logits=torch.zeros(1, 1, 4, 4), embedding=emb, features=[])
    value = term(out, {"mask": mask})
    assert value.item() == pytest.approx(expected, abs=1e-6)
    value.backward()
    assert emb.grad is not None and emb.grad.abs().sum() > 0


def test_term_without_triplets_is_zero_with_graph_and_uses_buildings():
    emb = torch.randn(2, 8, 16, 16, requires_grad=True)
    out = ForwardOutput(logits=torch.zeros(2, 1, 16, 16), embedding=emb, features=[])
    term = DistancePenalizedTripletLoss(form="adjacency")
    value = term(out, {"mask": torch.full((2, 16, 16), 255)})
    assert value.item() == 0.0 and value.requires_grad
    value.backward()
    mask = torch.zeros(2, 16, 16, dtype=torch.long)
    mask[:, :8] = 1
    assert term(out, {"mask": mask}).item() > 0  # damaged top / undamaged bottom → triplets
    no_buildings = torch.zeros(2, 16, 16, dtype=torch.long)
    assert term(out, {"mask": mask, "buildings": no_buildings}).item() == 0.0  # all class 2


def test_without_footprints_dpt_says_so_and_can_be_skipped():
    from damagemap.objectives.base import ObjectiveContext
    from damagemap.objectives.dpt import NO_BUILDINGS_NOTE, build_dpt
    from damagemap.recipe import Recipe

    recipe = Recipe(name="r")
    ctx = ObjectiveContext(recipe, [], (8,), has_buildings=False)
    assert isinstance(build_dpt(ctx, {}), DistancePenalizedTripletLoss) and ctx.notes == [NO_BUILDINGS_NOTE]
    ctx = ObjectiveContext(recipe, [], (8,), has_buildings=False)
    assert build_dpt(ctx, {"without_buildings": "skip"}) is None and "dpt skipped" in ctx.notes[0]
    ctx = ObjectiveContext(recipe, [], (8,), has_buildings=True)
    assert isinstance(build_dpt(ctx, {}), DistancePenalizedTripletLoss) and ctx.notes == []


def test_training_without_footprints_records_the_note():
    from damagemap.data.synthetic import synthetic_tiles
    from damagemap.objectives.dpt import NO_BUILDINGS_NOTE
    from damagemap.recipe import Recipe
    from damagemap.training.pipeline import train_model

    recipe = Recipe.model_validate(
        {
            "name": "d",
            "encoder": {"pretrained": False},
            "input": {"size": 64},
            "head": {"options": {"fpn_channels": 8, "embed_channels": 8}},
            "objectives": {"focal": {}, "dpt": {"weight": 0.001}},
            "train": {"epochs": 1, "batch_size": 4},
        }
    )
    samples = synthetic_tiles("a", 4, size=64, seed=0)
    for s in samples:
        s.buildings = None
    model, _ = train_model(recipe, samples, cache_dir=None)
    assert NO_BUILDINGS_NOTE in model.metrics["notes"]
    with_fp = synthetic_tiles("a", 4, size=64, seed=0)
    for s in with_fp:
        s.buildings = (s.mask != 255).astype("uint8")
    model, _ = train_model(recipe, with_fp, cache_dir=None)
    assert NO_BUILDINGS_NOTE not in model.metrics["notes"]
