"""Hierarchical RPN (MSNet): a building RPN gates the anchors of a damage RPN.

Both are torchvision :class:`RegionProposalNetwork` s on the same FPN features. The damage RPN
(:class:`GatedRPN`) takes a per-image boolean mask over its anchors: gated-out anchors produce
no proposals (their objectness is set to -inf before top-k/NMS and dropped after) and no RPN
loss (their labels are set to -1, which the balanced sampler never draws).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork, concat_box_prediction_layers

from damagemap.video.gate import GateKind, anchor_gate


class GatedRPN(RegionProposalNetwork):
    """A torchvision RPN whose anchors can be switched off per image (``keep`` masks)."""

    def compute_loss(
        self, objectness: Tensor, pred_bbox_deltas: Tensor, labels: list[Tensor], regression_targets: list[Tensor]
    ) -> tuple[Tensor, Tensor]:
        """Torchvision's loss, but zero (not NaN) when the gate left nothing to sample."""
        if not any(bool((lab >= 0).any()) for lab in labels):
            zero = objectness.sum() * 0 + pred_bbox_deltas.sum() * 0
            return zero, zero
        return super().compute_loss(objectness, pred_bbox_deltas, labels, regression_targets)

    def forward(
        self,
        images: ImageList,
        features: dict[str, Tensor],
        targets: Optional[list[dict[str, Tensor]]] = None,
        keep: Optional[list[Tensor]] = None,
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        """As :meth:`RegionProposalNetwork.forward`, restricted to anchors where ``keep`` is True."""
        if keep is None:
            return super().forward(images, features, targets)
        feats = list(features.values())
        objectness, deltas = self.head(feats)
        anchors = self.anchor_generator(images, feats)
        per_level = [o[0].numel() for o in objectness]
        objectness, deltas = concat_box_prediction_layers(objectness, deltas)
        mask = torch.cat(keep)
        proposals = self.box_coder.decode(deltas.detach(), anchors).view(len(anchors), -1, 4)
        gated = objectness.detach().masked_fill(~mask[:, None], float("-inf"))
        boxes, scores = self.filter_proposals(proposals, gated, images.image_sizes, per_level)
        boxes = [b[s > 0] for b, s in zip(boxes, scores)]  # sigmoid(-inf) = 0: gated-out anchors
        losses: dict[str, Tensor] = {}
        if self.training:
            if targets is None:
                raise ValueError("targets should not be None when training")
            labels, matched = self.assign_targets_to_anchors(anchors, targets)
            labels = [lab.masked_fill(~k, -1.0) for lab, k in zip(labels, keep)]
            regression_targets = self.box_coder.encode(matched, anchors)
            loss_obj, loss_box = self.compute_loss(objectness, deltas, labels, regression_targets)
            losses = {"loss_objectness": loss_obj, "loss_rpn_box_reg": loss_box}
        return boxes, losses


class HierarchicalRPN(nn.Module):
    """Building RPN + gated damage RPN; returns damage proposals and both RPNs' losses.

    Training targets carry ``building_boxes`` (damaged-building boxes) next to the damage
    ``boxes``. The last gate masks and building proposals are kept on the module
    (``last_keep``, ``last_buildings``) for inspection.
    """

    def __init__(
        self,
        building: RegionProposalNetwork,
        damage: GatedRPN,
        gate: GateKind = "ii",
        threshold: float = 0.3,
        top_buildings: int = 300,
        add_gt: bool = True,
    ) -> None:
        super().__init__()
        self.building = building
        self.damage = damage
        self.gate, self.threshold = gate, threshold
        self.top_buildings, self.add_gt = top_buildings, add_gt
        self.last_keep: list[Tensor] = []
        self.last_buildings: list[Tensor] = []

    def forward(
        self, images: ImageList, features: dict[str, Tensor], targets: Optional[list[dict[str, Tensor]]] = None
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        """Damage proposals per image and ``loss_building_*`` + ``loss_damage_*`` RPN losses."""
        building_targets = None
        if self.training and targets is not None:
            building_targets = [{"boxes": t["building_boxes"]} for t in targets]
        buildings, building_losses = self.building(images, features, building_targets)
        buildings = [b[: self.top_buildings] for b in buildings]  # sorted by objectness
        if self.training and self.add_gt and building_targets is not None:
            buildings = [torch.cat([b, t["boxes"].to(b)]) for b, t in zip(buildings, building_targets)]
        anchors = self.damage.anchor_generator(images, list(features.values()))
        keep = [anchor_gate(a, b.detach(), self.gate, self.threshold) for a, b in zip(anchors, buildings)]
        self.last_keep, self.last_buildings = keep, buildings
        proposals, damage_losses = self.damage(images, features, targets, keep=keep)
        losses = {f"loss_building_{k[5:]}": v for k, v in building_losses.items()}
        losses.update({f"loss_damage_{k[5:]}": v for k, v in damage_losses.items()})
        return proposals, losses
