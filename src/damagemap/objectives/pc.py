"""PC — Pixel-wise Clustering: prototype-level global alignment (Smart Transfer, docs/methods.md §1).

Before training, frozen encoder features of the source-domain training images are projected by
a fixed random 1×1 conv, sampled per class and clustered into damaged / undamaged prototypes.
During training each pixel takes the class of its nearest prototype (``y_proto``) and the head
is pushed towards ``y_proto`` on the pixels where it agrees with the ground truth.

Masks are binary: class 1 = damaged, any other labelled value = not damaged, 255 = ignore.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import MiniBatchKMeans
from torch import nn

from damagemap.errors import ConfigError
from damagemap.objectives.base import Batch, ForwardOutput, ObjectiveContext, ObjectiveTerm
from damagemap.types import IGNORE_INDEX

DAMAGED = 1


class RandomProjection(nn.Module):
    """A fixed random 1×1 conv ``C → out_channels`` (no bias, no gradient).

    Weights are drawn from N(0, 1/C) with a seeded :class:`torch.Generator`, so the same
    ``(in_channels, out_channels, seed)`` always gives the same projection.
    """

    weight: torch.Tensor

    def __init__(self, in_channels: int, out_channels: int = 50, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        weight = torch.randn(out_channels, in_channels, 1, 1, generator=gen) / math.sqrt(in_channels)
        self.register_buffer("weight", weight)

    @property
    def in_channels(self) -> int:
        """Encoder channels C."""
        return int(self.weight.shape[1])

    @property
    def out_channels(self) -> int:
        """Projected channels (50 by default)."""
        return int(self.weight.shape[0])

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project ``[B, C, h, w]`` → ``[B, out_channels, h, w]``."""
        return F.conv2d(x.to(self.weight.dtype), self.weight)

    def to_dict(self) -> dict[str, torch.Tensor]:
        """Plain tensor dict (for safetensors)."""
        return {"weight": self.weight.detach().cpu().contiguous()}

    @classmethod
    def from_dict(cls, tensors: dict[str, torch.Tensor]) -> RandomProjection:
        """Inverse of :meth:`to_dict`; ``weight`` must be ``[out, in, 1, 1]``."""
        weight = tensors.get("weight")
        if weight is None or weight.ndim != 4 or weight.shape[2:] != (1, 1):
            shape = None if weight is None else tuple(weight.shape)
            raise ConfigError(f"PC projection: expected a 'weight' tensor [out, in, 1, 1], got {shape}")
        proj = cls(int(weight.shape[1]), int(weight.shape[0]))
        proj.weight.copy_(weight.float())
        return proj


@dataclass
class Prototypes:
    """Cluster centres ``centers [K, D]`` (unit length) and their classes ``labels [K]`` (0/1)."""

    centers: torch.Tensor
    labels: torch.Tensor

    def to_dict(self) -> dict[str, torch.Tensor]:
        """Plain tensor dict (for safetensors)."""
        return {"centers": self.centers.cpu().contiguous(), "labels": self.labels.cpu().contiguous()}

    @classmethod
    def from_dict(cls, tensors: dict[str, torch.Tensor]) -> Prototypes:
        """Inverse of :meth:`to_dict`."""
        centers, labels = tensors.get("centers"), tensors.get("labels")
        if centers is None or labels is None or centers.ndim != 2 or labels.shape != centers.shape[:1]:
            raise ConfigError("PC prototypes: expected 'centers' [K, D] and 'labels' [K] tensors")
        return cls(centers.float(), labels.long())


def _sample_pixels(
    mask: torch.Tensor, n: int, damaged_share: float, rng: np.random.Generator, top_up: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Flat pixel indices of at most ``n`` damaged / undamaged pixels of one image.

    As the reference (``extract_pixel_features_from_subset`` of ai4city-hkust/SmartTransfer): at
    most ``int(n · damaged_share)`` damaged and ``n −`` that many undamaged pixels, each class
    taking all its pixels when it has fewer. With ``top_up`` (not the reference) a class that runs
    short is made up from the other, so ``n`` pixels are drawn whenever the image has them.
    """
    flat = mask.reshape(-1).cpu().numpy()
    damaged = np.flatnonzero(flat == DAMAGED)
    undamaged = np.flatnonzero((flat != DAMAGED) & (flat != IGNORE_INDEX))
    cap_d = int(n * damaged_share)
    n_d, n_u = min(len(damaged), cap_d), min(len(undamaged), n - cap_d)
    if top_up:
        n_u = min(len(undamaged), n - n_d)
        n_d = min(len(damaged), n - n_u)
    return rng.choice(damaged, n_d, replace=False), rng.choice(undamaged, n_u, replace=False)


@functools.lru_cache(maxsize=8)  # every image of a source set usually has the same sizes
def _nearest_cells(source: tuple[int, int], target: tuple[int, int]) -> torch.Tensor:
    """For each pixel of a ``target``-sized map (flat), the flat ``source`` cell that nearest upsampling copies."""
    cells = torch.arange(source[0] * source[1], dtype=torch.float64).reshape(1, 1, *source)
    return F.interpolate(cells, size=target, mode="nearest").flatten().long()


def _distinct_rows(x: np.ndarray, enough: int) -> int:
    """The number of distinct rows of ``x``, or any number ≥ ``enough`` once that many are found.

    Sorting every row (``np.unique(axis=0)``) is most of the clustering setup's time; a prefix
    usually has ``enough`` distinct rows already.
    """
    prefix = len(np.unique(x[: 4 * enough], axis=0))
    return prefix if prefix >= enough or len(x) <= 4 * enough else len(np.unique(x, axis=0))


def build_prototypes(
    feature_maps: Iterable[tuple[torch.Tensor, torch.Tensor]],
    projection: RandomProjection,
    n_per_class: int = 32,
    pixels_per_image: int = 1024,
    damaged_share: float = 0.5,
    seed: int = 0,
    top_up: bool = False,
) -> Prototypes:
    """Cluster projected source-domain pixels into damaged and undamaged prototypes.

    Args:
        feature_maps: ``(encoder map [C, h, w], mask [H, W])`` per training image.
        projection: the fixed random projection (saved with the model).
        n_per_class: clusters per class; fewer if a class has fewer distinct pixel vectors.
        pixels_per_image: at most this many pixels per image, at most ``damaged_share`` of them
            damaged (the reference: 1024, half damaged; see :func:`_sample_pixels`).
        seed: seeds pixel sampling and MiniBatchKMeans.
        top_up: make a class that runs short up from the other (not the reference).

    Returns:
        Prototypes with undamaged (label 0) centres first, then damaged (label 1).

    Raises:
        ConfigError: if no image has any damaged (or any undamaged) pixel — PC cannot work then.
    """
    rng = np.random.default_rng(seed)
    per_class: dict[int, list[torch.Tensor]] = {0: [], 1: []}
    n_images = 0
    for feats, mask in feature_maps:
        n_images += 1
        proj = projection(feats[None].to(projection.weight))[0].flatten(1).T.cpu()  # [h*w, D]
        # the feature cell each mask pixel takes under nearest upsampling: only the sampled
        # pixels' vectors are normalised, not the whole upsampled map
        cell = _nearest_cells((feats.shape[-2], feats.shape[-1]), (mask.shape[-2], mask.shape[-1]))
        idx_d, idx_u = _sample_pixels(mask, pixels_per_image, damaged_share, rng, top_up)
        per_class[1].append(F.normalize(proj[cell[torch.from_numpy(idx_d)]], dim=1))
        per_class[0].append(F.normalize(proj[cell[torch.from_numpy(idx_u)]], dim=1))
    centers, labels = [], []
    for label, name in ((0, "undamaged"), (1, "damaged")):
        x = torch.cat(per_class[label]).numpy() if per_class[label] else np.zeros((0, 0))
        if len(x) == 0:
            raise ConfigError(
                f"PC (pixel-wise clustering) needs {name} pixels in the source-domain training "
                f"images, but none of the {n_images} images has any; disable PC for this source "
                "set (objectives.pc.weight: 0 in the recipe, or the 'plain'/'dpt' variants)."
            )
        k = min(n_per_class, _distinct_rows(x, n_per_class))
        km = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3).fit(x)
        centers.append(F.normalize(torch.from_numpy(km.cluster_centers_).float(), dim=1))
        labels.append(torch.full((k,), label, dtype=torch.long))
    return Prototypes(torch.cat(centers), torch.cat(labels))


class PixelClusteringLoss(ObjectiveTerm):
    """L_pc = BCE-with-logits(logits, y_proto) averaged over pixels where y_proto == ground truth.

    ``y_proto`` is the label of the nearest prototype (cosine similarity) to the L2-normalised
    projection of ``output.features[feature_index]``. Returns 0 (graph kept) if no pixel agrees.
    """

    centers: torch.Tensor
    labels: torch.Tensor

    def __init__(self, projection: RandomProjection, prototypes: Prototypes, feature_index: int = -1) -> None:
        super().__init__()
        if prototypes.centers.shape[1] != projection.out_channels:
            raise ConfigError(
                f"PC: prototypes have dimension {prototypes.centers.shape[1]}, "
                f"projection outputs {projection.out_channels}"
            )
        self.projection = projection
        self.feature_index = feature_index
        self.register_buffer("centers", F.normalize(prototypes.centers.float(), dim=1))
        self.register_buffer("labels", prototypes.labels.long())

    @torch.no_grad()
    def prototype_labels(self, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``y_proto`` ``[B, H, W]`` (float 0/1) for encoder features ``[B, C, h, w]``."""
        # Projection (1×1 conv), normalisation and nearest-prototype search are all per pixel, so
        # assigning at feature resolution and upsampling the labels nearest is exactly the same as
        # upsampling the features first — at (H·W)/(h·w) less memory.
        proj = F.normalize(self.projection(features), dim=1)
        nearest = torch.einsum("bdhw,kd->bkhw", proj, self.centers).argmax(dim=1)
        y = self.labels[nearest].float()[:, None]
        return F.interpolate(y, size=size, mode="nearest")[:, 0]

    def forward(self, output: ForwardOutput, batch: Batch) -> torch.Tensor:
        """BCE towards the prototype labels on the pixels where they agree with the ground truth."""
        logits = output.logits[:, 0]
        h, w = logits.shape[-2:]
        y_proto = self.prototype_labels(output.features[self.feature_index], (h, w))
        mask = batch["mask"]
        agree = (mask != IGNORE_INDEX) & ((mask == DAMAGED) == y_proto.bool())
        n_agree = agree.sum()
        if not bool(n_agree):
            return logits.sum() * 0.0
        # the mean over the agreeing pixels, as a weighted sum: no gather of those pixels
        loss = F.binary_cross_entropy_with_logits(logits, y_proto, weight=agree.to(logits.dtype), reduction="sum")
        return loss / n_agree


PROJECTION_PREFIX, PROTOTYPES_PREFIX = "pc.projection.", "pc.prototypes."
"""Keys of the PC tensors in a model's ``state`` (``state.safetensors``)."""


def _stored(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def build_pc(ctx: ObjectiveContext, options: dict) -> ObjectiveTerm | None:
    """Recipe term ``pc`` (binary recipes only).

    Prototypes come from the *source* training items in ``ctx`` (the fold's training split), so
    target-domain data never shapes them; the projection and prototypes go to ``ctx.state``
    (saved with the model). If ``ctx.state`` already holds them (a trained model being adapted,
    e.g. few-shot LoRA), the term is rebuilt from them — never re-clustered on target shots.
    When the source items hold no damaged pixel, PC is skipped and the reason noted.
    """
    if not ctx.recipe.binary:
        raise ConfigError("objective 'pc' supports binary recipes only (damaged vs not damaged)")
    opts = dict(options)
    # as an index into the encoder's levels: pair recipes' items carry the post levels first and
    # then the pre levels, and PC clusters the post-event image's features
    feature_index = range(len(ctx.encoder_channels))[int(opts.pop("feature_index", -1))]
    dim = int(opts.pop("projection_dim", 50))
    seed = int(opts.pop("seed", ctx.recipe.train.seed))
    stored_projection, stored_prototypes = _stored(ctx.state, PROJECTION_PREFIX), _stored(ctx.state, PROTOTYPES_PREFIX)
    if stored_projection and stored_prototypes:
        return PixelClusteringLoss(
            RandomProjection.from_dict(stored_projection), Prototypes.from_dict(stored_prototypes), feature_index
        )
    projection = RandomProjection(ctx.encoder_channels[feature_index], dim, seed=seed)
    if not any(bool((it.mask == DAMAGED).any()) for it in ctx.train_items):
        # Documented fallback: without damaged source pixels there are no damaged prototypes;
        # train without PC rather than abort a whole protocol run.
        ctx.notes.append("pc skipped: the source training images have no damaged pixels")
        return None
    prototypes = build_prototypes(
        ((it.features[feature_index].float(), it.mask) for it in ctx.train_items),
        projection,
        seed=seed,
        **opts,
    )
    ctx.state.update({PROJECTION_PREFIX + k: v for k, v in projection.to_dict().items()})
    ctx.state.update({PROTOTYPES_PREFIX + k: v for k, v in prototypes.to_dict().items()})
    return PixelClusteringLoss(projection, prototypes, feature_index=feature_index)
