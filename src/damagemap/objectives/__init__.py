"""Objective terms (losses) composed with weights from a recipe, and their registry."""

from damagemap.objectives.base import Batch, ForwardOutput, ObjectiveContext, ObjectiveTerm, WeightedSum
from damagemap.objectives.cross_entropy import CrossEntropyLoss
from damagemap.objectives.dice import DiceLoss
from damagemap.objectives.focal import BinaryFocalLoss
from damagemap.objectives.registry import OBJECTIVES, build_objective

__all__ = [
    "OBJECTIVES",
    "Batch",
    "BinaryFocalLoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "ForwardOutput",
    "ObjectiveContext",
    "ObjectiveTerm",
    "WeightedSum",
    "build_objective",
]
