"""Rare-class levers: train.class_weights and train.sampler: balanced, wired through the fit loop."""

import pytest
import torch

from damagemap.data.synthetic import synthetic_tiles
from damagemap.heads import build_head
from damagemap.objectives import ObjectiveContext, build_objective
from damagemap.objectives.base import ObjectiveTerm, WeightedSum
from damagemap.objectives.focal import BinaryFocalLoss
from damagemap.recipe import Recipe, TrainConfig
from damagemap.training.balance import auto_class_weights, balanced_weights, class_shares, resolve_class_weights
from damagemap.training.fit import FitSpec, fit
from damagemap.training.items import Item
from damagemap.training.pipeline import train_model
from tests.tiny import TinyEncoder


def _mask(damaged: int, size: int = 16) -> torch.Tensor:
    m = torch.zeros(size, size, dtype=torch.long)
    m.view(-1)[:damaged] = 1
    return m


def test_auto_weights_are_inverse_sqrt_share_with_unit_pixel_mean() -> None:
    masks = [_mask(0), _mask(0), _mask(0), _mask(8)]  # 8 of 1024 pixels damaged
    shares = class_shares(masks, 2)
    assert shares.tolist() == pytest.approx([1016 / 1024, 8 / 1024])
    w = auto_class_weights(shares)
    assert w[1] / w[0] == pytest.approx((1016 / 8) ** 0.5, rel=1e-4)
    assert float((shares * torch.tensor(w, dtype=torch.float64)).sum()) == pytest.approx(1.0, abs=1e-5)
    ignored = _mask(8)
    ignored.view(-1)[8:] = 255  # ignored pixels count for no class
    assert class_shares([ignored], 2).tolist() == pytest.approx([0.0, 1.0])
    recipe = Recipe(name="r", train=TrainConfig(class_weights=[1.0, 3.0]))
    assert resolve_class_weights(recipe, masks) == [1.0, 3.0]
    assert resolve_class_weights(Recipe(name="r"), masks) is None


def test_balanced_weights_favour_views_rich_in_the_rare_class() -> None:
    w = balanced_weights([_mask(0), _mask(0), _mask(128)], 2)  # damage: 128 of 768 pixels
    assert w[0] == pytest.approx(w[1]) and w[0] == pytest.approx(768 / 640)
    assert w[2] == pytest.approx(0.5 * 768 / 128 + 0.5 * 768 / 640)
    assert balanced_weights([torch.full((4, 4), 255)], 2).tolist() == [1.0]  # nothing labelled: uniform


def test_focal_class_weights_are_a_weighted_pixel_mean() -> None:
    from damagemap.objectives.base import ForwardOutput

    logits = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    mask = (torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(1)) > 0.7).long()
    out = ForwardOutput(logits=logits, embedding=logits, features=[])
    plain = BinaryFocalLoss()(out, {"mask": mask})
    torch.testing.assert_close(BinaryFocalLoss(class_weights=[2.0, 2.0])(out, {"mask": mask}), plain)
    only_pos = BinaryFocalLoss(class_weights=[0.0, 1.0])(out, {"mask": mask})
    per_pixel = BinaryFocalLoss(alpha=0.7)
    from torchvision.ops import sigmoid_focal_loss

    full = sigmoid_focal_loss(logits, mask.unsqueeze(1).float(), per_pixel.alpha, per_pixel.gamma, reduction="none")
    torch.testing.assert_close(only_pos, full[mask.unsqueeze(1) == 1].mean())


def test_recipe_class_weights_reach_focal_and_ce() -> None:
    binary = Recipe(name="b", train=TrainConfig(class_weights=[1.0, 5.0]))
    term = build_objective(ObjectiveContext(binary, [], (8,), class_weights=[1.0, 5.0])).terms["focal"]
    assert term.class_weights == (1.0, 5.0)
    multi = Recipe.model_validate(
        {"name": "m", "classes": ["a", "b", "c"], "objectives": {"ce": {}}, "train": {"class_weights": [1, 2, 3]}}
    )
    ce = build_objective(ObjectiveContext(multi, [], (8,), class_weights=[1.0, 2.0, 3.0])).terms["ce"]
    assert ce.weight.tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(Exception, match="class_weights needs 3"):
        Recipe.model_validate({"name": "m", "classes": ["a", "b", "c"], "train": {"class_weights": [1, 2]}})


def test_train_model_resolves_auto_weights_from_the_training_split(tmp_path) -> None:
    recipe = Recipe.model_validate(
        {
            "name": "tiny",
            "input": {"size": 32},
            "head": {"kind": "fpn", "options": {"fpn_channels": 8, "embed_channels": 8}},
            "objectives": {"focal": {}},
            "train": {"epochs": 1, "class_weights": "auto", "val_fraction": 0},
        }
    )
    samples = synthetic_tiles("north", 4, size=32, seed=2)
    model, _ = train_model(recipe, samples, encoder=TinyEncoder().freeze(), cache_dir=tmp_path)
    masks = [torch.from_numpy(s.mask.astype("int64")) for s in samples]
    want = auto_class_weights(class_shares(masks, 2))
    assert any(str(want) in note for note in model.metrics["notes"])


class _CountDamage(ObjectiveTerm):
    """Records the damaged pixels of every training batch; a loss that trains nothing in particular."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0

    def forward(self, output, batch) -> torch.Tensor:
        self.seen += int((batch["mask"] == 1).sum())
        return output.logits.mean() * 0 + output.logits.pow(2).mean()


@pytest.mark.parametrize("sampler", ["uniform", "balanced"])
def test_balanced_sampler_draws_the_rare_view_more_often(sampler) -> None:
    items = [
        Item(
            features=[torch.randn(8, 4, 4), torch.randn(16, 2, 2)],
            mask=_mask(128 if i == 0 else 0),
            eval_mask=_mask(128 if i == 0 else 0),
        )
        for i in range(20)
    ]
    head = build_head("fpn", in_channels=(8, 16), out_channels=1, fpn_channels=8, embed_channels=8)
    counter = _CountDamage()
    spec = FitSpec(TrainConfig(epochs=5, batch_size=4, augment=[], sampler=sampler, select_by="last"), 2, True)
    fit(head, WeightedSum({"count": (1.0, counter)}), items, [], spec)
    draws = counter.seen / 128  # how often the one damaged view was drawn in 5 epochs of 20 draws
    if sampler == "uniform":
        assert draws == 5  # a permutation per epoch: exactly once each
    else:
        assert draws > 25  # weight ≈ 16.5 vs ≈ 1.0 for each of the 19 others: about half the draws
