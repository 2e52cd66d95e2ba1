"""Adapter: a trained model artifact as the mapper's :class:`TilePredictor`.

It pickles as its model directory only, so Dask workers load the artifact themselves instead
of receiving a pickled network; its ``fingerprint`` hashes the manifest and head weights.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from damagemap.artifact import HEAD_FILE, MANIFEST, load_model, read_manifest, verify_files
from damagemap.data.views import standardize
from damagemap.device import autocast, check_precision, resolve_device
from damagemap.errors import ConfigError
from damagemap.fusion import prepare_for_inference
from damagemap.geo.spec import Scale, SceneInputSpec
from damagemap.model import DamageModel
from damagemap.onnx_runtime import OnnxModel, check_runtime
from damagemap.tta import IDENTITY, averaged, tta_transforms


def _for_inference(model: DamageModel) -> DamageModel:
    """BatchNorm folded into the convolutions and channels_last weights (in place): ~2x faster on CPU."""
    prepare_for_inference(model.encoder)
    prepare_for_inference(model.head)
    return model


class ModelTilePredictor:
    """Predict damage probabilities for mapper tiles with a saved model.

    Tiles arrive at native resolution; ``resize`` models see them resized to the model's input
    size (and the probabilities are resized back), ``tile`` models see them as they are.
    """

    def __init__(
        self,
        model_dir: str | Path,
        model: DamageModel | None = None,
        precision: str = "fp32",
        device: str = "cpu",
        tta: str | None = None,
        runtime: str = "torch",
    ) -> None:
        self.device = str(resolve_device(device))
        self.precision = check_precision(precision, torch.device(self.device))
        self.runtime = check_runtime(runtime)
        if runtime == "onnx" and (torch.device(self.device).type != "cpu" or precision != "fp32"):
            raise ConfigError("--runtime onnx runs fp32 on the CPU: use --device cpu --precision fp32")
        self._onnx: OnnxModel | None = None
        self.model_dir = Path(model_dir)
        verify_files(self.model_dir, read_manifest(self.model_dir))  # before reading the head's bytes
        self._model = None if model is None else _for_inference(model.to(self.device))
        # GPU kernels round differently from the CPU's: a resumed map must not mix the two
        key = f"{precision}|{torch.device(self.device).type}|folded"
        self.tta = tta
        if tta is not None:  # flip TTA changes the probabilities: part of the map's identity
            key += f"|tta={tta}"
        if runtime != "torch":  # ONNX Runtime's kernels round differently too
            key += f"|runtime={runtime}"
        digest = hashlib.sha256(key.encode())
        for name in (MANIFEST, HEAD_FILE):
            digest.update((self.model_dir / name).read_bytes())
        self.fingerprint = digest.hexdigest()[:16]
        m = self.model
        self.in_bands = m.encoder.in_chans
        self.num_outputs = m.recipe.num_outputs
        self.pair = m.pair

    @property
    def model(self) -> DamageModel:
        """The loaded model (loaded on first use, e.g. on a Dask worker)."""
        if self._model is None:
            self._model = _for_inference(load_model(self.model_dir).to(self.device))
        return self._model

    def __getstate__(self) -> dict:
        return {
            "model_dir": self.model_dir,
            "fingerprint": self.fingerprint,
            "precision": self.precision,
            "device": self.device,
            "in_bands": self.in_bands,
            "num_outputs": self.num_outputs,
            "pair": self.pair,
            "tta": self.tta,
            "runtime": self.runtime,
            "_model": None,
            "_onnx": None,  # each process exports its own
        }

    @torch.inference_mode()
    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        """Probabilities ``[B, K, T, T]`` of native-resolution tiles ``[B, C, T, T]``."""
        probs, _ = self.predict(tiles)
        assert probs is not None
        return probs

    @torch.inference_mode()
    def predict(self, tiles: np.ndarray, head: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
        """``(probabilities [B, K, T, T] or None without head, pooled encoder features [B, D])``.

        Pair models take ``[B, 2·in_bands, T, T]``: the post-event bands, then the pre-event ones.
        The features are the global average of the encoder's deepest map (of the post-event
        image): what :mod:`damagemap.active` measures diversity with. Probabilities are averaged
        over flips when the predictor's ``tta`` (default: the recipe's ``eval.tta``) is ``flip``.
        """
        m = self.model
        if tiles.shape[1] != self.in_bands * (2 if self.pair else 1):
            raise ConfigError(
                f"tile predictor: got tiles of {tiles.shape[1]} bands; the model takes {self.in_bands}"
                + (" post-event + as many pre-event bands" if self.pair else "")
            )
        images = [tiles[:, : self.in_bands], tiles[:, self.in_bands :]] if self.pair else [tiles]
        inputs = [self._model_input(t) for t in images]
        size = inputs[0][1]
        device = torch.device(self.device)
        xs = [x.to(device).contiguous(memory_format=torch.channels_last) for x, _ in inputs]
        deepest: list[torch.Tensor] = []

        def proba(images: list[torch.Tensor]) -> torch.Tensor:
            with autocast(device, self.precision):
                per_image = [m.encoder(x) for x in images]
                if not deepest:  # the identity pass comes first: its post-event map is pooled
                    deepest.append(per_image[0][-1])
                if not head:
                    return images[0].new_zeros(())
                maps = [level for levels in per_image for level in levels]
                return m.probabilities(m.head(maps, tuple(images[0].shape[-2:])).float())

        if self.runtime == "onnx" and head:
            onnx = self._onnx_model(len(xs), xs[0].shape[1], xs[0].shape[-1])

            def proba(images: list[torch.Tensor]) -> torch.Tensor:
                probs, pooled = onnx([x.contiguous() for x in images])
                if not deepest:  # the identity pass comes first
                    deepest.append(pooled[..., None, None])
                return probs

        transforms = tta_transforms(self.tta or m.recipe.eval.tta) if head else (IDENTITY,)
        probs = averaged(proba, xs, transforms)
        pooled = deepest[0].float().mean(dim=(-2, -1)).cpu().numpy()
        if not head:
            return None, pooled
        return self._to_native(probs, size).float().cpu().numpy(), pooled

    def _onnx_model(self, n_images: int, channels: int, size: int) -> OnnxModel:
        """The model exported to ONNX Runtime (once per process, on first use)."""
        if self._onnx is None:
            self._onnx = OnnxModel(self.model, n_images, channels, size)
        return self._onnx

    def _model_input(self, tiles: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
        """Native tiles → the model's input size (standardised, padded or resized as in training)."""
        cfg = self.model.recipe.input
        self.model.head.eval()
        if cfg.standardize != "none":  # the same per-image / stored training-split statistics as training
            tiles = np.stack([standardize(t, cfg, "mapping tile") for t in tiles])
        x = torch.from_numpy(np.ascontiguousarray(tiles, dtype=np.float32))
        h, w = x.shape[-2:]
        if (h, w) != (cfg.size, cfg.size):
            if cfg.mode == "tile" and h <= cfg.size and w <= cfg.size:
                x = F.pad(x, (0, cfg.size - w, 0, cfg.size - h))
            else:
                x = F.interpolate(x, size=(cfg.size, cfg.size), mode="bilinear", align_corners=False, antialias=True)
        return x, (int(h), int(w))

    def _to_native(self, probs: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Model-size probabilities back to the tiles' native size."""
        cfg = self.model.recipe.input
        if tuple(probs.shape[-2:]) == size:
            return probs
        if cfg.mode == "tile" and size[0] <= cfg.size and size[1] <= cfg.size:
            return probs[..., : size[0], : size[1]]
        return F.interpolate(probs, size=size, mode="bilinear", align_corners=False)

    def scene_spec(
        self, bands: Sequence[int] | None = None, scale: Scale = "dtype", replicate_single_band: bool = False
    ) -> SceneInputSpec:
        """How to read a scene for this model, as ``map`` does.

        1-based ``bands`` (default: the recipe's ``input.bands`` + 1, else all), ``scale`` and
        single-band replication.
        """
        if bands is None and self.model.recipe.input.bands is not None:
            bands = [b + 1 for b in self.model.recipe.input.bands]
        return SceneInputSpec(
            bands=None if bands is None else tuple(bands), scale=scale, replicate_single_band=replicate_single_band
        )

    @property
    def native_tile(self) -> int:
        """The tile size (native pixels) matching what the model saw in training."""
        return int(self.model.metrics.get("native_view_size") or self.model.recipe.input.size)

    def provenance(self) -> dict:
        """What made this predictor's maps: model, encoder, recipe, classes, precision and device.

        Read from the manifest (no weights are loaded); used by
        :func:`damagemap.mapping.provenance.build_provenance`.
        """
        raw = (self.model_dir / MANIFEST).read_bytes()
        manifest = json.loads(raw)
        enc = manifest.get("encoder", {})
        recipe = manifest.get("recipe", {})
        return {
            "model": {
                "name": recipe.get("name"),
                "path": str(self.model_dir),
                "manifest_sha256": hashlib.sha256(raw).hexdigest(),
                "fingerprint": self.fingerprint,
                "created": manifest.get("created"),
                "trained_with": manifest.get("damagemap_version"),
            },
            "encoder": {
                "name": enc.get("name"),
                "fingerprint": enc.get("fingerprint"),
                "adapted_fingerprint": enc.get("adapted_fingerprint"),
                "checkpoint": enc.get("checkpoint"),
                "checkpoint_sha256": enc.get("checkpoint_sha256"),
            },
            "recipe": recipe.get("name"),
            "classes": list(manifest.get("classes") or []),
            "precision": self.precision,
            "device": self.device,
        }
