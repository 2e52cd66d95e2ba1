"""MSNet: torchvision Mask R-CNN ResNet-50-FPN with a hierarchical RPN and an SRN.

Nothing is downloaded: the network is built with ``weights=None``; backbone weights come from
a local checkpoint (a torchvision ``resnet50`` state dict or a Mask R-CNN state dict) when the
recipe names one, and are random otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch import Tensor, nn
from torchvision.models import resnet50
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN, _resnet_fpn_extractor
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes
from torchvision.ops import misc as misc_nn_ops

from damagemap.device import module_device
from damagemap.encoders.checkpoints import torch_load_tensors
from damagemap.errors import CheckpointError
from damagemap.video.config import ModelConfig, VideoRecipe
from damagemap.video.rpn import GatedRPN, HierarchicalRPN
from damagemap.video.srn import ScoreRefinementNetwork


class BuildingBoxTransform(GeneralizedRCNNTransform):
    """torchvision's transform, also resizing the targets' ``building_boxes``."""

    def resize(self, image: Tensor, target: Optional[dict[str, Tensor]] = None):
        """Torchvision's resize, skipped when the image already has the target size."""
        size = image.shape[-2:]
        image, target = super().resize(image, target)
        if target is not None and "building_boxes" in target:
            target["building_boxes"] = resize_boxes(target["building_boxes"], size, image.shape[-2:])
        return image, target


class MSNet(MaskRCNN):
    """Mask R-CNN whose RPN is hierarchical (``cfg.rpn == "hierarchical"``) or torchvision's own.

    ``forward`` is torchvision's: losses in training, detections in eval. :meth:`detect` also
    returns the FPN features and the boxes in network-input coordinates for score refinement.
    """

    transform: GeneralizedRCNNTransform  # set by MaskRCNN, replaced in __init__
    rpn: nn.Module  # torchvision's RegionProposalNetwork or a HierarchicalRPN

    def __init__(
        self, backbone: BackboneWithFPN, num_classes: int, cfg: ModelConfig, srn_cfg: dict | None = None
    ) -> None:
        sizes = tuple((s,) for s in cfg.anchor_sizes)
        anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
        rpn_args = dict(
            rpn_pre_nms_top_n_train=cfg.rpn_pre_nms_top_n_train,
            rpn_pre_nms_top_n_test=cfg.rpn_pre_nms_top_n_test,
            rpn_post_nms_top_n_train=cfg.rpn_post_nms_top_n_train,
            rpn_post_nms_top_n_test=cfg.rpn_post_nms_top_n_test,
            rpn_batch_size_per_image=cfg.rpn_batch_size_per_image,
        )
        super().__init__(
            backbone,
            num_classes=num_classes,
            min_size=cfg.min_size,
            max_size=cfg.max_size,
            rpn_anchor_generator=anchors,
            box_batch_size_per_image=cfg.box_batch_size_per_image,
            box_score_thresh=cfg.box_score_thresh,
            box_detections_per_img=cfg.box_detections_per_img,
            **rpn_args,
        )
        t = self.transform
        self.transform = BuildingBoxTransform(t.min_size, t.max_size, t.image_mean, t.image_std)
        if cfg.rpn == "hierarchical":
            damage = self.rpn
            self.rpn = HierarchicalRPN(
                _rpn_like(damage, RegionProposalNetwork),
                _rpn_like(damage, GatedRPN),
                cfg.gate,
                cfg.gate_threshold,
                cfg.gate_proposals,
                cfg.gate_add_gt,
            )
        self.srn = ScoreRefinementNetwork(backbone.out_channels, **(srn_cfg or {}))

    @torch.no_grad()
    def detect(self, images: list[Tensor]) -> tuple[list[dict[str, Tensor]], dict[str, Tensor], list[Tensor]]:
        """Eval-mode detections, the FPN features, and the boxes in network-input (resized) coordinates."""
        original = [tuple(img.shape[-2:]) for img in images]
        device = module_device(self)
        image_list, _ = self.transform([img.to(device) for img in images])
        features = self.backbone(image_list.tensors)
        proposals, _ = self.rpn(image_list, features)
        detections, _ = self.roi_heads(features, proposals, image_list.image_sizes)
        input_boxes = [d["boxes"].clone() for d in detections]
        detections = self.transform.postprocess(detections, image_list.image_sizes, original)
        # detections go back to the CPU (outputs, COCO evaluation); features and boxes stay for the SRN
        return [{k: v.cpu() for k, v in d.items()} for d in detections], features, input_boxes


def _rpn_like(template: RegionProposalNetwork, cls: type) -> RegionProposalNetwork:
    """A fresh RPN of class ``cls`` with ``template``'s anchors, head shape and settings."""
    head = template.head
    return cls(
        template.anchor_generator,
        RPNHead(head.conv[0][0].in_channels, head.cls_logits.out_channels),
        template.proposal_matcher.high_threshold,
        template.proposal_matcher.low_threshold,
        template.fg_bg_sampler.batch_size_per_image,
        template.fg_bg_sampler.positive_fraction,
        dict(template._pre_nms_top_n),
        dict(template._post_nms_top_n),
        template.nms_thresh,
        template.score_thresh,
    )


def build_msnet(recipe: VideoRecipe, checkpoint: str | Path | None = None, frozen_bn: bool = False) -> MSNet:
    """Build the recipe's network.

    ``checkpoint`` (or ``recipe.model.backbone_checkpoint``) loads backbone weights, freezes
    BatchNorm and trains only the top ``trainable_backbone_layers``; without it everything is
    random-initialised and trainable (plain BatchNorm), as torchvision does for an untrained
    backbone. ``frozen_bn`` builds the checkpoint variant's layers without weights (to load a
    saved artifact into).
    """
    cfg = recipe.model
    ckpt = checkpoint if checkpoint is not None else cfg.backbone_checkpoint
    frozen = bool(ckpt) or frozen_bn
    norm = misc_nn_ops.FrozenBatchNorm2d if frozen else nn.BatchNorm2d
    body = resnet50(weights=None, norm_layer=norm)
    ckpt_path = Path(ckpt) if ckpt else None
    state = _read_checkpoint(ckpt_path) if ckpt_path is not None else None
    if ckpt_path is not None and state is not None and not any(k.startswith("backbone.") for k in state):
        _load(body, {k: v for k, v in state.items() if not k.startswith("fc.")}, ckpt_path, "resnet50")
    backbone = _resnet_fpn_extractor(body, cfg.trainable_backbone_layers if frozen else 5)
    if ckpt_path is not None and state is not None and any(k.startswith("backbone.") for k in state):
        sub = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
        _load(backbone, sub, ckpt_path, "Mask R-CNN backbone")
    srn = recipe.srn
    return MSNet(backbone, len(recipe.classes) + 1, cfg, {"hidden": srn.hidden, "channels": srn.channels})


def _read_checkpoint(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise CheckpointError(path, "backbone checkpoint not found")
    state = torch_load_tensors(path)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(path, "expected a state dict of tensors (torchvision resnet50 or maskrcnn layout)")
    return state


def _load(module: nn.Module, state: dict[str, Tensor], path: Path, layout: str) -> None:
    """Load strictly except for the classifier (``fc``), which the detector never uses."""
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise CheckpointError(path, f"tensor shapes do not match a {layout} ({str(exc).splitlines()[0]})") from None
    missing = [k for k in result.missing_keys if not k.startswith("fc.")]
    if missing or result.unexpected_keys:
        raise CheckpointError(
            path, f"keys do not match the torchvision {layout} layout", missing, result.unexpected_keys
        )
