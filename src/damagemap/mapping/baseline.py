"""A model-free stand-in predictor: damage probability = normalised brightness of one band.

Deterministic and picklable, so it exercises the whole mapping pipeline (including Dask workers)
without a trained model — for tests, demos and measuring the pipeline's own throughput.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class BrightnessPredictor:
    """``p = clip((x[band] - lo) / (hi - lo), 0, 1)`` per pixel.

    With ``num_outputs > 1`` the damage mass ``p`` is spread over classes 1..K-1 (class k gets
    ``p`` where ``p`` falls in the k-th of K-1 equal intervals) and class 0 gets ``1 - p``.
    """

    in_bands: int = 1
    num_outputs: int = 1
    band: int = 0
    lo: float = 0.0
    hi: float = 1.0
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if not self.fingerprint:
            self.fingerprint = f"brightness:{self.in_bands}:{self.num_outputs}:{self.band}:{self.lo}:{self.hi}"

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        """Damage probabilities ``[B, K, T, T]`` from tile brightness."""
        p = np.clip((tiles[:, self.band] - self.lo) / (self.hi - self.lo), 0.0, 1.0).astype(np.float32)
        if self.num_outputs == 1:
            return p[:, None]
        k = self.num_outputs
        out = np.zeros((p.shape[0], k, *p.shape[1:]), dtype=np.float32)
        out[:, 0] = 1.0 - p
        which = np.minimum((p * (k - 1)).astype(np.int64), k - 2) + 1
        for c in range(1, k):
            out[:, c] = np.where(which == c, p, 0.0)
        return out
