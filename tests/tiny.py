"""Tiny deterministic models for fast tests of the training machinery."""

from __future__ import annotations

import torch
from torch import nn

from damagemap.encoders.base import Encoder


class TinyEncoder(Encoder):
    """Two conv stages (strides 4 and 8) with fixed random weights; counts its calls."""

    name = "tiny-test"
    channels = (8, 16)
    strides = (4, 8)
    size_multiple = 8

    def __init__(self, seed: int = 0, in_chans: int = 3) -> None:
        super().__init__(mean=(0.5,) * in_chans, std=(0.25,) * in_chans)
        self.in_chans = in_chans
        torch.manual_seed(seed)
        self.s4 = nn.Conv2d(in_chans, 8, 4, stride=4)
        self.s8 = nn.Conv2d(8, 16, 2, stride=2)
        self.calls = 0

    def extract(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.calls += 1
        a = torch.relu(self.s4(x))
        return [a, torch.relu(self.s8(a))]
