"""Flip test-time augmentation (``eval.tta: flip``): average probabilities over image flips.

The four flips {none, left-right, up-down, both} form a group and each is its own inverse, so
the average of ``t(predict(t(x)))`` over them is exactly flip-equivariant: the TTA prediction of
a flipped image is the flipped TTA prediction. CNN features are not, which is why TTA encodes
the flipped images instead of flipping cached feature maps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from damagemap.data.augment import Dihedral

IDENTITY = Dihedral()
FLIPS = (IDENTITY, Dihedral(hflip=True), Dihedral(vflip=True), Dihedral(hflip=True, vflip=True))
"""The flip group averaged over by ``eval.tta: flip`` (identity first)."""


def tta_transforms(mode: str) -> tuple[Dihedral, ...]:
    """The transforms of a ``eval.tta`` mode: all four flips for ``flip``, the identity for ``none``."""
    return FLIPS if mode == "flip" else (IDENTITY,)


def transform_key(t: Dihedral) -> str:
    """Suffix naming a flipped view in the feature cache (empty for the identity)."""
    return ("#" + ("h" if t.hflip else "") + ("v" if t.vflip else "")) if (t.hflip or t.vflip) else ""


def averaged(
    predict: Callable[[list[torch.Tensor]], torch.Tensor],
    images: Sequence[torch.Tensor],
    transforms: Sequence[Dihedral] = FLIPS,
) -> torch.Tensor:
    """Mean over ``transforms`` of ``t(predict([t(x) for x in images]))``.

    ``images``: batches ``[B, C, H, W]`` that go through the model together (post, and pre for
    pair models); ``predict`` returns probabilities ``[B, K, H, W]`` on the same grid.
    """
    total: torch.Tensor | None = None
    for t in transforms:
        p = t(predict([t(x) for x in images]))
        total = p if total is None else total + p
    assert total is not None, "no transforms"
    return total / len(transforms)
