"""Adapter: a trained model artifact as the mapper's :class:`TilePredictor`.

It pickles as its model directory only, so Dask workers load the artifact themselves instead
of receiving a pickled network; its ``fingerprint`` hashes the manifest and head weights.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from damagemap.artifact import HEAD_FILE, MANIFEST, load_model
from damagemap.data.views import standardize
from damagemap.model import DamageModel


class ModelTilePredictor:
    """Predict damage probabilities for mapper tiles with a saved model.

    Tiles arrive at native resolution; ``resize`` models see them resized to the model's input
    size (and the probabilities are resized back), ``tile`` models see them as they are.
    """

    def __init__(self, model_dir: str | Path, model: DamageModel | None = None, precision: str = "fp32") -> None:
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        self.model_dir = Path(model_dir)
        self._model = model
        self.precision = precision
        digest = hashlib.sha256(precision.encode())
        for name in (MANIFEST, HEAD_FILE):
            digest.update((self.model_dir / name).read_bytes())
        self.fingerprint = digest.hexdigest()[:16]
        m = self.model
        self.in_bands = m.encoder.in_chans
        self.num_outputs = m.recipe.num_outputs

    @property
    def model(self) -> DamageModel:
        """The loaded model (loaded on first use, e.g. on a Dask worker)."""
        if self._model is None:
            self._model = load_model(self.model_dir)
        return self._model

    def __getstate__(self) -> dict:
        return {
            "model_dir": self.model_dir,
            "fingerprint": self.fingerprint,
            "precision": self.precision,
            "in_bands": self.in_bands,
            "num_outputs": self.num_outputs,
            "_model": None,
        }

    @torch.inference_mode()
    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        """Probabilities ``[B, K, T, T]`` of native-resolution tiles ``[B, C, T, T]``."""
        m = self.model
        cfg = m.recipe.input
        if cfg.standardize != "none":  # the same per-image / stored training-split statistics as training
            tiles = np.stack([standardize(t, cfg, "mapping tile") for t in tiles])
        x = torch.from_numpy(np.ascontiguousarray(tiles, dtype=np.float32))
        size = tuple(x.shape[-2:])
        if size != (cfg.size, cfg.size):
            if cfg.mode == "tile" and size[0] <= cfg.size and size[1] <= cfg.size:
                x = F.pad(x, (0, cfg.size - size[1], 0, cfg.size - size[0]))
            else:
                x = F.interpolate(x, size=(cfg.size, cfg.size), mode="bilinear", align_corners=False, antialias=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            probs = m.probabilities(m.logits(x).float())
        if tuple(probs.shape[-2:]) != size:
            if cfg.mode == "tile" and size[0] <= cfg.size and size[1] <= cfg.size:
                probs = probs[..., : size[0], : size[1]]
            else:
                probs = F.interpolate(probs, size=size, mode="bilinear", align_corners=False)
        return probs.float().numpy()

    @property
    def native_tile(self) -> int:
        """The tile size (native pixels) matching what the model saw in training."""
        return int(self.model.metrics.get("native_view_size") or self.model.recipe.input.size)
