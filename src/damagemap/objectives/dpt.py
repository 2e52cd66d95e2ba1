"""DPT — Distance-Penalized Triplet loss: patch-level spatial autocorrelation (docs/methods.md §1).

The head's last feature map is mean-pooled over a ``grid × grid`` grid of patches and
L2-normalised. Patches are labelled from the ground truth (and building footprints): undamaged
(0), damaged (1), non-building (2) or ignore (−1). Triplets (anchor, positive of the same label,
negative of another label) are drawn per image and penalised with a spatial term built from the
distances between patch centres, in one of two forms (see :func:`triplet_loss`).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from damagemap.errors import ConfigError
from damagemap.objectives.base import Batch, ForwardOutput, ObjectiveContext, ObjectiveTerm
from damagemap.types import IGNORE_INDEX

Form = Literal["reference", "adjacency"]
UNDAMAGED, DAMAGED, NON_BUILDING, IGNORE = 0, 1, 2, -1


def _cell_bounds(n: int, grid: int) -> list[tuple[int, int]]:
    """Cell extents along one axis, identical to ``adaptive_avg_pool2d``'s."""
    return [((i * n) // grid, -((-(i + 1) * n) // grid)) for i in range(grid)]


def _cell_sums(x: torch.Tensor, grid: int, area: torch.Tensor) -> torch.Tensor:
    """Exact per-cell counts ``[B, K, grid, grid]`` of a boolean ``[B, K, H, W]``.

    Equal cells (sides divisible by ``grid``) are summed as integers directly. Otherwise
    ``adaptive_avg_pool2d`` sums the 0/1 values exactly in float64 and divides by the cell
    ``area``; multiplying back and rounding gives the integer count.
    """
    h, w = x.shape[-2:]
    if h % grid == 0 and w % grid == 0:
        # int32 partial sums: a quarter of the memory traffic of int64 (exact up to 2**31 pixels)
        rows = x.unflatten(-1, (grid, w // grid)).sum(-1, dtype=torch.int32)  # [B, K, H, grid]
        return rows.unflatten(-2, (grid, h // grid)).sum(-2, dtype=torch.int64)
    return (F.adaptive_avg_pool2d(x.double(), grid) * area).round().long()


def patch_labels(
    mask: torch.Tensor,
    buildings: torch.Tensor | None = None,
    grid: int = 4,
    building_min: float = 0.02,
    undamaged_max: float = 0.02,
    damaged_min: float = 0.10,
) -> torch.Tensor:
    """Label each of the ``grid*grid`` patches (row-major) of one image ``[H, W]`` or a batch ``[B, H, W]``.

    With footprints: non-building (2) if building px / patch px < ``building_min``; otherwise
    r_d = damaged building px / labelled building px gives undamaged (0) if r_d ≤ ``undamaged_max``,
    damaged (1) if r_d ≥ ``damaged_min`` and ignore (−1) in between (or with no labelled building px).

    Without footprints (``buildings=None``, e.g. landslides) every labelled pixel counts as
    "building": r_d = damaged px / labelled px with the same thresholds, and a patch with a
    labelled fraction below ``building_min`` is ignored (−1) — there is no class 2.
    Counts are exact integers and the ratios float64 divisions of them, as with Python ints.
    """
    single = mask.dim() == 2
    masks = mask[None] if single else mask
    valid = masks != IGNORE_INDEX
    region = valid if buildings is None else (buildings[None] if single else buildings) > 0
    rows, cols = _cell_bounds(masks.shape[-2], grid), _cell_bounds(masks.shape[-1], grid)
    area = torch.tensor([[(r1 - r0) * (c1 - c0) for c0, c1 in cols] for r0, r1 in rows], dtype=torch.float64)
    counts = _cell_sums(torch.stack([region, region & valid, region & (masks == DAMAGED)], 1), grid, area)
    inside, labelled, damaged = counts.unbind(1)
    r_d = damaged.double() / labelled.clamp(min=1).double()
    labels = torch.where(r_d <= undamaged_max, UNDAMAGED, torch.where(r_d >= damaged_min, DAMAGED, IGNORE))
    labels = torch.where(labelled == 0, IGNORE, labels)
    labels = torch.where(inside.double() / area < building_min, IGNORE if buildings is None else NON_BUILDING, labels)
    labels = labels.flatten(1).long()
    return labels[0] if single else labels


def pool_patches(embedding: torch.Tensor, grid: int = 4) -> torch.Tensor:
    """Mean-pool ``[B, E, H, W]`` over a grid and L2-normalise → ``[B, grid*grid, E]`` (row-major)."""
    pooled = F.adaptive_avg_pool2d(embedding, grid).flatten(2).transpose(1, 2)
    return F.normalize(pooled, dim=-1)


def patch_centres(grid: int = 4) -> torch.Tensor:
    """Centres ``[grid*grid, 2]`` as (x, y) in [0, 1]: cell (i, j) → ((j+0.5)/grid, (i+0.5)/grid)."""
    ii, jj = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    return torch.stack([(jj.flatten() + 0.5) / grid, (ii.flatten() + 0.5) / grid], dim=1)


def _draw_one(candidates: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per row of a boolean ``[T, P]``, the column of one uniformly drawn ``True``."""
    counts = candidates.sum(1)
    k = (torch.rand(len(counts), generator=generator) * counts).long().clamp(max=counts - 1)
    return ((candidates.cumsum(1) == (k + 1)[:, None]) & candidates).int().argmax(1)


def sample_triplets(labels: torch.Tensor, max_anchors: int, generator: torch.Generator) -> torch.Tensor:
    """Draw ``[T, 3]`` patch indices (anchor, positive, negative), T ≤ ``max_anchors``.

    Anchors come from patches of class 0/1 that have both a positive (another patch with the
    same label) and a negative (a patch with any other label except −1); each anchor is used at
    most once. Positives and negatives are drawn uniformly.
    """
    labels = labels.cpu()
    n = len(labels)
    same = labels[:, None] == labels[None, :]
    positive = same & ~torch.eye(n, dtype=torch.bool)
    negative = ~same & (labels != IGNORE)[None, :]
    anchor_class = (labels == UNDAMAGED) | (labels == DAMAGED)
    usable = torch.nonzero(anchor_class & positive.any(1) & negative.any(1)).flatten()
    anchors = usable[torch.randperm(len(usable), generator=generator)[:max_anchors]]
    if len(anchors) == 0:
        return torch.zeros((0, 3), dtype=torch.long)
    p = _draw_one(positive[anchors], generator)
    q = _draw_one(negative[anchors], generator)
    return torch.stack([anchors, p, q], dim=1)


def triplet_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    q_ap: torch.Tensor,
    q_an: torch.Tensor,
    q_pn: torch.Tensor,
    form: Form = "reference",
    margin: float = 0.2,
    beta: float = 1.0,
    tau: float = 0.25,
) -> torch.Tensor:
    """Mean distance-penalised triplet loss over ``[T, E]`` embeddings.

    ``reference`` (the reference code):
        L = mean ReLU(‖a−p‖² − ‖a−n‖² + P + margin),  P = (q_ap + q_an − q_pn) / √2.
    ``adjacency`` (ours, the paper's stated intent):
        L = mean ReLU(‖a−p‖² − ‖a−n‖² + margin · (1 + β · exp(−q_an / τ))).

    q are Euclidean distances between patch centres in [0, 1] coordinates. P is ≥ 0 by the
    triangle inequality and vanishes when n lies on the segment a–p, so it does not single out
    negatives *next to* the anchor. Under spatial autocorrelation, a neighbouring patch with a
    different label is the hard, informative negative (it sits on a damage boundary), so the
    adjacency form demands a larger separation — up to ``margin·(1+β)`` as q_an → 0, decaying to
    ``margin`` over a length scale τ (τ = 0.25 = one cell of a 4×4 grid).
    """
    d_ap = (anchor - positive).pow(2).sum(-1)
    d_an = (anchor - negative).pow(2).sum(-1)
    if form == "reference":
        penalty = (q_ap + q_an - q_pn) / math.sqrt(2.0) + margin
    elif form == "adjacency":
        penalty = margin * (1.0 + beta * torch.exp(-q_an / tau))
    else:
        raise ValueError(f"unknown DPT form {form!r}; expected 'reference' or 'adjacency'")
    return F.relu(d_ap - d_an + penalty).mean()


class DistancePenalizedTripletLoss(ObjectiveTerm):
    """DPT on ``output.embedding`` with labels from ``batch["mask"]`` and optional ``batch["buildings"]``.

    Triplet sampling uses an internal generator seeded with ``seed``, so a run is reproducible.
    Returns 0 (graph kept) when the batch has no valid triplet.
    """

    centres: torch.Tensor

    def __init__(
        self,
        form: Form = "reference",
        grid: int = 4,
        max_anchors: int = 16,
        margin: float = 0.2,
        beta: float = 1.0,
        tau: float = 0.25,
        building_min: float = 0.02,
        undamaged_max: float = 0.02,
        damaged_min: float = 0.10,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if form not in ("reference", "adjacency"):
            raise ValueError(f"unknown DPT form {form!r}; expected 'reference' or 'adjacency'")
        self.form: Form = form
        self.grid, self.max_anchors = grid, max_anchors
        self.margin, self.beta, self.tau = margin, beta, tau
        self.thresholds = {"building_min": building_min, "undamaged_max": undamaged_max, "damaged_min": damaged_min}
        self.generator = torch.Generator().manual_seed(seed)
        self.register_buffer("centres", patch_centres(grid), persistent=False)

    def forward(self, output: ForwardOutput, batch: Batch) -> torch.Tensor:
        """Mean triplet loss over the triplets drawn from every image of the batch."""
        patches = pool_patches(output.embedding, self.grid)  # [B, P, E]
        buildings = batch.get("buildings")
        fp = None if buildings is None else buildings.cpu()
        labels = patch_labels(batch["mask"].cpu(), fp, self.grid, **self.thresholds)
        rows, cols = [], []
        for b in range(patches.shape[0]):
            trip = sample_triplets(labels[b], self.max_anchors, self.generator)
            rows.append(torch.full_like(trip, b))
            cols.append(trip)
        rows_t, cols_t = torch.cat(rows).to(patches.device), torch.cat(cols).to(patches.device)
        if len(cols_t) == 0:
            return output.embedding.sum() * 0.0
        a, p, n = (patches[rows_t[:, i], cols_t[:, i]] for i in range(3))
        c = self.centres
        ca, cp, cn = c[cols_t[:, 0]], c[cols_t[:, 1]], c[cols_t[:, 2]]
        return triplet_loss(
            a,
            p,
            n,
            (ca - cp).norm(dim=-1),
            (ca - cn).norm(dim=-1),
            (cp - cn).norm(dim=-1),
            self.form,
            self.margin,
            self.beta,
            self.tau,
        )


NO_BUILDINGS_NOTE = (
    "dpt: the training data has no building footprints, so patch labels count every labelled pixel as "
    "'building' (background patches become 'undamaged', none is 'non-building'); give footprints "
    "(a buildings/ folder, xBD polygons or --footprints) for the published patch labels"
)


def build_dpt(ctx: ObjectiveContext, options: dict) -> ObjectiveTerm | None:
    """Recipe term ``dpt`` (binary recipes only); triplets are seeded by ``train.seed`` by default.

    DPT's patch labels need building footprints (non-building patches are class 2). Without
    them (``ctx.has_buildings`` false) the term says so in ``ctx.notes`` and either labels patches
    from all labelled pixels (``without_buildings: labelled``, the default; see
    :func:`patch_labels`) or is skipped (``without_buildings: skip``).
    """
    if not ctx.recipe.binary:
        raise ConfigError("objective 'dpt' supports binary recipes only (damaged vs not damaged)")
    opts = {"seed": ctx.recipe.train.seed, **options}
    without = opts.pop("without_buildings", "labelled")
    if without not in ("labelled", "skip"):
        raise ConfigError(f"objective 'dpt': without_buildings must be 'labelled' or 'skip', got {without!r}")
    if ctx.has_buildings is False:
        if without == "skip":
            ctx.notes.append("dpt skipped: the training data has no building footprints")
            return None
        ctx.notes.append(NO_BUILDINGS_NOTE)
    return DistancePenalizedTripletLoss(**opts)
