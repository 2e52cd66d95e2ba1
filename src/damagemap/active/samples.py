"""Uncertainty and pooled features of labelled-or-not samples (dataset tiles rather than a scene).

The same two quantities :func:`damagemap.active.scene.suggest_tiles` computes on a scene, for
samples read from a dataset folder: used to rank a pool of tiles for labelling (e.g. by
``benchmarks/label_efficiency.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from damagemap.data.views import make_views, view_image
from damagemap.mapping.encoding import normalised_entropy
from damagemap.model import DamageModel
from damagemap.types import Sample


@torch.no_grad()
def sample_scores(model: DamageModel, samples: Sequence[Sample], batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """``(uncertainty [N], features [N, D])`` of ``samples``.

    Uncertainty: the mean normalised predictive entropy over all its pixels (pair models: from the
    post- and pre-event images); features: the mean over its views of the encoder's deepest map of
    the post-event image, averaged over space.
    """
    uncertainty = np.array(
        [
            float(
                normalised_entropy(
                    model.predict_proba(s.image, s.key, batch_size, s.pre if model.pair else None)
                ).mean()
            )
            for s in samples
        ]
    )
    cfg = model.recipe.input
    views = make_views(list(samples), cfg)
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    for start in range(0, len(views), batch_size):
        chunk = views[start : start + batch_size]
        x = torch.stack([view_image(samples[v.sample_index], v, cfg) for v in chunk])
        pooled = model.encoder(x.to(model.device))[-1].float().mean(dim=(-2, -1)).cpu().numpy()
        for v, f in zip(chunk, pooled):
            sums[v.sample_index] = sums.get(v.sample_index, 0) + f
            counts[v.sample_index] = counts.get(v.sample_index, 0) + 1
    features = np.stack([sums[i] / counts[i] for i in range(len(samples))])
    return uncertainty, features
