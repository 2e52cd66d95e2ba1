import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from damagemap.errors import ConfigError
from damagemap.objectives.base import ForwardOutput
from damagemap.objectives.pc import (
    PixelClusteringLoss,
    Prototypes,
    RandomProjection,
    _distinct_rows,
    _sample_pixels,
    build_prototypes,
)


def identity_projection(c: int = 2) -> RandomProjection:
    return RandomProjection.from_dict({"weight": torch.eye(c)[:, :, None, None]})


def axis_prototypes() -> Prototypes:
    # prototype 0: undamaged along x; prototype 1: damaged along y
    return Prototypes(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1]))


def feature_map() -> torch.Tensor:
    # pixel vectors (x, y): (1, .1) → x; (.2, 1) → y; (-1, .5) → y; (3, 2) → x
    x = torch.tensor([[1.0, 0.2], [-1.0, 3.0]])
    y = torch.tensor([[0.1, 1.0], [0.5, 2.0]])
    return torch.stack([x, y])[None]  # [1, 2, 2, 2]


def test_random_projection_is_seeded_frozen_and_exportable(tmp_path):
    a, b, c = (RandomProjection(8, 50, seed=s) for s in (0, 0, 1))
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, c.weight)
    assert list(a.parameters()) == []
    x = torch.randn(2, 8, 3, 5, requires_grad=True)
    y = a(x)
    assert y.shape == (2, 50, 3, 5) and not y.requires_grad
    save_file(a.to_dict(), tmp_path / "p.safetensors")
    back = RandomProjection.from_dict(load_file(tmp_path / "p.safetensors"))
    assert torch.equal(back(x), y)
    with pytest.raises(ConfigError):
        RandomProjection.from_dict({"weight": torch.zeros(3, 4)})


def test_prototype_labels_hand_computed():
    loss = PixelClusteringLoss(identity_projection(), axis_prototypes())
    y = loss.prototype_labels(feature_map(), (2, 2))
    assert y.tolist() == [[[0.0, 1.0], [1.0, 0.0]]]


def test_loss_averages_bce_over_agreeing_pixels_only():
    loss = PixelClusteringLoss(identity_projection(), axis_prototypes())
    logits = torch.tensor([[[[2.0, -1.0], [5.0, 7.0]]]], requires_grad=True)
    mask = torch.tensor([[[0, 1], [0, 255]]])  # (1,0) disagrees with y_proto, (1,1) ignored
    out = ForwardOutput(logits=logits, embedding=torch.zeros(1, 1, 2, 2), features=[feature_map()])
    value = loss(out, {"mask": mask})
    # BCE(2, target 0) = log(1 + e^2); BCE(-1, target 1) = log(1 + e^1)
    assert value.item() == pytest.approx((math.log(1 + math.e**2) + math.log(1 + math.e)) / 2, abs=1e-6)
    value.backward()
    assert logits.grad[0, 0, 1, 0] == 0 and logits.grad[0, 0, 1, 1] == 0
    assert logits.grad[0, 0, 0, 0] != 0


def test_no_agreeing_pixel_gives_zero_with_graph():
    loss = PixelClusteringLoss(identity_projection(), axis_prototypes())
    logits = torch.zeros(1, 1, 2, 2, requires_grad=True)
    mask = torch.tensor([[[1, 0], [255, 1]]])  # opposite of y_proto everywhere labelled
    out = ForwardOutput(logits=logits, embedding=torch.zeros(1, 1, 2, 2), features=[feature_map()])
    value = loss(out, {"mask": mask})
    assert value.item() == 0.0 and value.requires_grad
    value.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_assignment_at_feature_resolution_equals_upsampling_first():
    torch.manual_seed(0)
    proj = RandomProjection(6, 5, seed=3)
    protos = Prototypes(torch.randn(7, 5), torch.tensor([0, 1, 0, 1, 1, 0, 1]))
    loss = PixelClusteringLoss(proj, protos)
    feats = torch.randn(2, 6, 4, 4)
    up = F.normalize(proj(F.interpolate(feats, size=(16, 16), mode="nearest")), dim=1)
    naive = protos.labels[torch.einsum("bdhw,kd->bkhw", up, F.normalize(protos.centers, dim=1)).argmax(1)]
    assert torch.equal(loss.prototype_labels(feats, (16, 16)), naive.float())


def test_sample_pixels_share_cap_and_ignore():
    mask = torch.zeros(10, 10, dtype=torch.long)
    mask.view(-1)[:5] = 1
    mask.view(-1)[5:30] = 255
    d, u = _sample_pixels(mask, 20, 0.5, np.random.default_rng(0))
    assert len(d) == 5 and len(u) == 10  # as the reference: at most 10 per class, no top-up
    flat = mask.view(-1).numpy()
    assert (flat[d] == 1).all() and (flat[u] == 0).all()
    d, u = _sample_pixels(mask, 20, 0.5, np.random.default_rng(0), top_up=True)
    assert len(d) == 5 and len(u) == 15  # option: damaged short → topped up with undamaged
    d, u = _sample_pixels(mask, 1000, 0.5, np.random.default_rng(0))
    assert len(d) == 5 and len(u) == 70  # fewer pixels than requested: take all labelled


def images(n: int = 4, c: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    for i in range(n):
        mask = torch.zeros(16, 16, dtype=torch.long)
        mask[: 4 + i] = 1
        mask[-2:] = 255
        yield torch.randn(c, 8, 8, generator=g), mask


def test_build_prototypes_counts_labels_and_determinism(tmp_path):
    proj = RandomProjection(8, 50, seed=0)
    a = build_prototypes(images(), proj, n_per_class=32, pixels_per_image=128, seed=0)
    b = build_prototypes(images(), proj, n_per_class=32, pixels_per_image=128, seed=0)
    assert a.centers.shape == (64, 50) and a.labels.tolist() == [0] * 32 + [1] * 32
    assert torch.equal(a.centers, b.centers)
    assert torch.allclose(a.centers.norm(dim=1), torch.ones(64), atol=1e-5)
    save_file(a.to_dict(), tmp_path / "protos.safetensors")
    back = Prototypes.from_dict(load_file(tmp_path / "protos.safetensors"))
    assert torch.equal(back.centers, a.centers) and torch.equal(back.labels, a.labels)


def test_fewer_distinct_pixels_than_clusters_uses_fewer_clusters():
    # a 1×1 feature map upsampled nearest gives one vector per image → 2 distinct per class
    maps = [(torch.randn(8, 1, 1), torch.tensor([[0, 1], [1, 0]])) for _ in range(2)]
    protos = build_prototypes(maps, RandomProjection(8, 50), n_per_class=32)
    assert protos.labels.tolist() == [0, 0, 1, 1]


def test_distinct_rows_looks_past_a_repetitive_prefix():
    rows = np.concatenate([np.zeros((500, 3), np.float32), np.arange(120, dtype=np.float32).reshape(40, 3)])
    assert _distinct_rows(rows, 32) == 41  # the prefix alone has one distinct row
    assert _distinct_rows(rows[::-1].copy(), 32) >= 32
    assert _distinct_rows(rows[:10], 32) == 1


def test_no_damaged_pixels_is_a_clear_config_error():
    maps = [(torch.randn(8, 4, 4), torch.zeros(8, 8, dtype=torch.long)) for _ in range(3)]
    with pytest.raises(ConfigError, match=r"damaged pixels.*objectives.pc.weight: 0"):
        build_prototypes(maps, RandomProjection(8, 50))


def test_dimension_mismatch_is_rejected():
    with pytest.raises(ConfigError, match="dimension"):
        PixelClusteringLoss(RandomProjection(8, 50), axis_prototypes())


def test_damaged_prototypes_come_from_damaged_pixels_and_label_them_damaged():
    """Swapping the damaged and undamaged pools must fail here: two clearly separated feature
    clusters, one under the damaged mask, one under the undamaged mask."""
    g = torch.Generator().manual_seed(3)
    damaged_dir, intact_dir = torch.zeros(8), torch.zeros(8)
    damaged_dir[0], intact_dir[1] = 1.0, 1.0
    maps = []
    for _ in range(4):
        mask = torch.zeros(8, 8, dtype=torch.long)
        mask[:, :3] = 1  # left columns damaged
        feats = intact_dir[:, None, None].repeat(1, 8, 8) + 0.05 * torch.randn(8, 8, 8, generator=g)
        feats[:, :, :3] = damaged_dir[:, None, None] + 0.05 * torch.randn(8, 8, 3, generator=g)
        maps.append((feats, mask))
    proj = identity_projection(8)
    protos = build_prototypes(maps, proj, n_per_class=2, pixels_per_image=32, seed=0)
    damaged_centres = protos.centers[protos.labels == 1]
    intact_centres = protos.centers[protos.labels == 0]
    assert (damaged_centres @ damaged_dir > 0.9).all() and (intact_centres @ intact_dir > 0.9).all()
    loss = PixelClusteringLoss(proj, protos)
    y = loss.prototype_labels(maps[0][0][None], (8, 8))[0]
    assert torch.equal(y.long(), maps[0][1])  # y_proto reproduces the mask: damaged → 1


def test_sampled_pixels_take_the_vectors_of_the_upsampled_map():
    from damagemap.objectives.pc import _nearest_cells

    g = torch.Generator().manual_seed(2)
    feats = torch.randn(1, 6, 5, 7, generator=g)
    upsampled = F.interpolate(feats, size=(23, 31), mode="nearest")[0].flatten(1).T  # [23*31, 6]
    cells = _nearest_cells((5, 7), (23, 31))
    assert torch.equal(feats[0].flatten(1).T[cells], upsampled)
