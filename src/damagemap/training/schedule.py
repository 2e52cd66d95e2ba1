"""Learning-rate schedules of :class:`~damagemap.recipe.TrainConfig` (stepped once per epoch)."""

from __future__ import annotations

import torch

from damagemap.recipe import TrainConfig


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The learning-rate schedule of ``cfg.scheduler``.

    ``cosine``: :class:`~torch.optim.lr_scheduler.CosineAnnealingLR` from ``cfg.lr`` to
    ``cfg.min_lr`` over ``cfg.epochs`` epochs; ``none``: no scheduler (constant ``cfg.lr``).
    """
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=cfg.min_lr)
    return None
