"""A trained damage model: frozen encoder + trained head + the recipe that made them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from damagemap.data.views import make_views, select_bands, view_image
from damagemap.device import autocast, check_precision, module_device
from damagemap.encoders.base import Encoder
from damagemap.errors import ConfigError, InputError
from damagemap.heads.base import Head
from damagemap.recipe import Recipe
from damagemap.tta import averaged, tta_transforms
from damagemap.types import Sample


@dataclass
class DamageModel:
    """Everything needed to predict: ``encoder`` (frozen), ``head``, ``recipe``.

    ``state`` holds extra tensors saved with the model (e.g. the PC random projection);
    ``metrics`` the evaluation results recorded at training time. ``adapter`` holds the tensors
    of the encoder's trained adapters (ATL, extra-band stem, LoRA; ``None`` for a plain
    encoder) and ``adapter_config`` how to re-apply them (see :mod:`damagemap.adapters`).
    """

    recipe: Recipe
    encoder: Encoder
    head: Head
    state: dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    adapter: dict[str, torch.Tensor] | None = None
    adapter_config: dict | None = None
    precision: str = "fp32"
    """Autocast precision of predictions (``fp32``, ``bf16``, ``fp16``; see :mod:`damagemap.device`)."""

    @property
    def threshold(self) -> float:
        """Damage probability threshold of binary models (the recipe's ``train.threshold``)."""
        return self.recipe.train.threshold

    def check_bands(self, image: np.ndarray, where: str) -> np.ndarray:
        """Select the recipe's bands; refuse images whose band count doesn't fit the encoder."""
        bands = self.recipe.input.bands
        try:
            image = select_bands(image, bands, where)
        except ValueError as exc:
            raise InputError(where, str(exc).split(": ", 1)[-1]) from None
        if image.shape[0] != self.encoder.in_chans:
            raise InputError(
                where,
                f"has {image.shape[0]} band(s) but the model expects {self.encoder.in_chans} "
                f"(encoder {self.encoder.name}, bands {bands or 'all'})",
            )
        return image

    @property
    def device(self) -> torch.device:
        """Where the model runs (see :meth:`to`)."""
        return module_device(self.head)

    def to(self, device: torch.device | str, precision: str | None = None) -> DamageModel:
        """Move encoder and head to ``device`` (in place), optionally predicting in ``precision``; returns the model."""
        self.encoder.to(device)
        self.head.to(device)
        if precision is not None:
            self.precision = check_precision(precision, torch.device(device))
        return self

    @property
    def pair(self) -> bool:
        """Whether the model takes a pre-event image beside the post-event one (``input.pair``)."""
        return self.recipe.input.pair

    def check_pre(self, given: bool, where: str) -> None:
        """A pair model needs the pre-event image and a post-only model refuses one (clear errors)."""
        if self.pair and not given:
            raise ConfigError(
                f"{where}: model {self.recipe.name} is a pre/post pair model (input.pair) and needs the "
                "pre-event image too (--pre)"
            )
        if given and not self.pair:
            raise ConfigError(
                f"{where}: model {self.recipe.name} takes the post-event image only; a pre-event image "
                "was given (train a pair recipe, input.pair: true, to use it)"
            )

    @torch.no_grad()
    def logits(
        self, batch: torch.Tensor, precision: str | None = None, pre: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits ``[B, K, S, S]`` (float32, on the model's device) for encoder-sized [0, 1] inputs ``[B, C, S, S]``.

        Pair models take the pre-event inputs ``pre`` (same shape) too.
        """
        self.check_pre(pre is not None, "logits")
        self.head.eval()
        device = self.device
        images = [batch] if pre is None else [batch, pre]
        with autocast(device, precision or self.precision):
            maps = [m for x in images for m in self.encoder(x.to(device))]
            return self.head(maps, tuple(batch.shape[-2:])).float()

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Binary: damage probability ``[B, 1, …]``; multi-class: softmax ``[B, K, …]``."""
        return torch.sigmoid(logits) if self.recipe.binary else torch.softmax(logits, 1)

    @torch.no_grad()
    def proba_batch(self, batch: torch.Tensor, pre: torch.Tensor | None = None, tta: str | None = None) -> torch.Tensor:
        """Probabilities ``[B, K, S, S]`` of encoder-sized inputs, averaged over flips when ``tta`` is ``flip``.

        ``tta`` defaults to the recipe's ``eval.tta`` (see :mod:`damagemap.tta`).
        """
        transforms = tta_transforms(self.recipe.eval.tta if tta is None else tta)
        images = [batch] if pre is None else [batch, pre]
        return averaged(
            lambda xs: self.probabilities(self.logits(xs[0], pre=xs[1] if len(xs) > 1 else None)), images, transforms
        )

    @torch.no_grad()
    def predict_proba(
        self, image: np.ndarray, where: str = "image", batch_size: int = 8, pre: np.ndarray | None = None
    ) -> np.ndarray:
        """Probabilities ``[K, H, W]`` for a float32 ``[C, H, W]`` image in [0, 1] of any size.

        Resize recipes predict on the resized image and upsample; tile recipes predict tile by
        tile at native resolution (edge tiles overlap their neighbours; overlaps are averaged).
        ``eval.tta: flip`` averages each view's probabilities over its four flips.
        Pair models need the pre-event image ``pre`` on the same pixel grid.
        """
        return self.predict_proba_many([image], [where], batch_size, None if pre is None else [pre])[0]

    @torch.no_grad()
    def predict_proba_many(
        self,
        images: Sequence[np.ndarray],
        wheres: Sequence[str],
        batch_size: int = 8,
        pres: Sequence[np.ndarray] | None = None,
    ) -> list[np.ndarray]:
        """:meth:`predict_proba` of several images, ``batch_size`` views per model call across images.

        A view is one model input: a tile (tile recipes) or a whole resized image (resize recipes).
        ``pres``: the pre-event images of a pair model, one per image.
        """
        checked = [self.check_bands(image, where) for image, where in zip(images, wheres)]
        self.check_pre(pres is not None, wheres[0] if wheres else "predict")
        checked_pre = [None] * len(checked) if pres is None else [self.check_bands(p, w) for p, w in zip(pres, wheres)]
        for image, pre, where in zip(checked, checked_pre, wheres):
            if pre is not None and pre.shape != image.shape:
                raise InputError(where, f"pre-event image has shape {pre.shape}, the post-event image {image.shape}")
        cfg = self.recipe.input.model_copy(update={"bands": None})
        samples = [
            Sample(image=image, mask=None, domain="", id=where, pre=pre)
            for image, pre, where in zip(checked, checked_pre, wheres)
        ]
        views = make_views(samples, cfg)
        k = self.recipe.num_outputs
        acc = [torch.zeros(k, *image.shape[1:]) for image in checked]
        hits = [torch.zeros(1, *image.shape[1:]) for image in checked]
        for start in range(0, len(views), batch_size):
            chunk = views[start : start + batch_size]
            batch = torch.stack([view_image(samples[v.sample_index], v, cfg) for v in chunk])
            pre_batch = (
                torch.stack([view_image(samples[v.sample_index], v, cfg, pre=True) for v in chunk]) if pres else None
            )
            for v, p in zip(chunk, self.proba_batch(batch, pre=pre_batch).cpu()):
                y0, x0, vh, vw = v.window
                if cfg.mode == "resize":
                    p = F.interpolate(p[None], size=(vh, vw), mode="bilinear", align_corners=False)[0]
                acc[v.sample_index][:, y0 : y0 + vh, x0 : x0 + vw] += p[:, :vh, :vw]
                hits[v.sample_index][:, y0 : y0 + vh, x0 : x0 + vw] += 1
        return [(a / n).numpy() for a, n in zip(acc, hits)]

    def labels_from_proba(self, proba: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """Class map ``[H, W]`` (uint8) from :meth:`predict_proba` output.

        Binary models: damaged where the probability exceeds ``threshold`` (default: the model's).
        """
        if self.recipe.binary:
            return (proba[0] > (self.threshold if threshold is None else threshold)).astype(np.uint8)
        return proba.argmax(0).astype(np.uint8)
