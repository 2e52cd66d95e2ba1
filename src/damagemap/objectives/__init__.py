"""Objective terms (losses) composed with weights from a recipe."""

from damagemap.objectives.base import Batch, ForwardOutput, ObjectiveTerm, WeightedSum
from damagemap.objectives.cross_entropy import CrossEntropyLoss
from damagemap.objectives.dice import DiceLoss
from damagemap.objectives.focal import BinaryFocalLoss

__all__ = [
    "Batch",
    "BinaryFocalLoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "ForwardOutput",
    "ObjectiveTerm",
    "WeightedSum",
]
