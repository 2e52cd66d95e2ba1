"""Dihedral augmentation (flips, 90° rotations) applied identically to features and labels.

Applying the transform to cached feature maps instead of re-encoding the transformed image is
what lets every epoch after the first skip the encoder; for the (approximately) equivariant
encoders used here it is the standard cheap substitute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Dihedral:
    """``rot`` quarter turns (counter-clockwise) after an optional horizontal/vertical flip."""

    hflip: bool = False
    vflip: bool = False
    rot: int = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Transform the last two (spatial) dimensions of ``x``."""
        if self.hflip:
            x = x.flip(-1)
        if self.vflip:
            x = x.flip(-2)
        if self.rot % 4:
            x = torch.rot90(x, self.rot % 4, dims=(-2, -1))
        return x


def random_dihedral(generator: torch.Generator, allowed: Sequence[str]) -> Dihedral:
    """Draw a transform using only the ``allowed`` parts (``hflip``, ``vflip``, ``rot90``)."""
    draws = torch.randint(0, 4, (3,), generator=generator).tolist()
    return Dihedral(
        hflip="hflip" in allowed and draws[0] % 2 == 1,
        vflip="vflip" in allowed and draws[1] % 2 == 1,
        rot=draws[2] if "rot90" in allowed else 0,
    )
