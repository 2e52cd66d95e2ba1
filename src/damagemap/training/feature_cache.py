"""On-disk cache of frozen-encoder features, so training epochs never run the encoder.

Each view's feature maps are stored in one safetensors file under
``<root>/<encoder fingerprint>/<preprocess key>/<hash>.safetensors`` where the hash covers the
view key and the bytes of the encoder input. A changed encoder (new fingerprint), a changed
transform, or a changed image (new input bytes) therefore misses the cache; the files survive
restarts. Writes are atomic (temporary name + rename).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from damagemap.data.views import content_hash
from damagemap.device import module_device
from damagemap.encoders.base import Encoder
from damagemap.fusion import frozen_inference_copy
from damagemap.io_atomic import atomic_path

Features = list[torch.Tensor]


def default_cache_dir() -> Path:
    """``$DAMAGEMAP_CACHE`` or ``~/.cache/damagemap/features``."""
    env = os.environ.get("DAMAGEMAP_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "damagemap" / "features"


class FeatureCache:
    """Features of views for one encoder + preprocessing, persisted on disk.

    Args:
        encoder: the frozen encoder (its fingerprint keys the cache).
        preprocess_key: identifies the image → input transform.
        root: cache directory; ``None`` keeps features in memory only.
        dtype: storage dtype (float16 halves disk and RAM; values are used as float32).
    """

    def __init__(
        self,
        encoder: Encoder,
        preprocess_key: str,
        root: str | Path | None = None,
        dtype: torch.dtype = torch.float16,
    ) -> None:
        self.encoder = encoder
        self.dtype = dtype
        self.dir = None if root is None else Path(root) / encoder.fingerprint / preprocess_key
        self.hits = 0
        self.misses = 0
        self.encoder_calls = 0
        self._runner: torch.nn.Module | None = None

    def _path(self, view_key: str, input_hash: str) -> Path | None:
        if self.dir is None:
            return None
        digest = hashlib.sha256(f"{view_key}|{input_hash}".encode()).hexdigest()[:24]
        return self.dir / digest[:2] / f"{digest}.safetensors"

    def _load(self, path: Path | None) -> Features | None:
        if path is None or not path.is_file():
            return None
        try:
            data = load_file(str(path))
        except (SafetensorError, OSError, ValueError):
            path.unlink(missing_ok=True)  # a corrupt entry is simply recomputed
            return None
        return [data[f"f{i}"] for i in range(len(data))]

    def _store(self, path: Path | None, feats: Features) -> None:
        if path is None:
            return
        with atomic_path(path) as tmp:
            save_file({f"f{i}": f.contiguous() for i, f in enumerate(feats)}, str(tmp))

    @torch.no_grad()
    def features(
        self,
        keys: Sequence[str],
        inputs: Callable[[int], torch.Tensor],
        batch_size: int = 8,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[Features]:
        """Features for every view, running the encoder only on cache misses (in batches).

        Args:
            keys: view keys.
            inputs: ``inputs(i)`` returns view i's encoder input ``[C, S, S]``; its bytes are
                hashed into the cache key, so a changed image is a miss.
            batch_size: encoder batch size for the misses.
            on_progress: called with the number of views just resolved.
        """
        out: list[Features | None] = [None] * len(keys)
        pending: list[tuple[int, torch.Tensor, Path | None]] = []

        def flush() -> None:
            device = module_device(self.encoder)
            if self._runner is None:  # built at the first miss: a warm cache never copies the encoder
                self._runner = frozen_inference_copy(self.encoder)
            with torch.no_grad():
                maps = self._runner(torch.stack([x for _, x, _ in pending]).to(device))
            self.encoder_calls += 1
            for j, (i, _, path) in enumerate(pending):
                feats = [m[j].to("cpu", self.dtype).clone() for m in maps]  # the cache lives on the CPU
                self._store(path, feats)
                out[i] = feats
            self.misses += len(pending)
            if on_progress:
                on_progress(len(pending))
            pending.clear()

        for i, key in enumerate(keys):
            x = inputs(i)
            path = self._path(key, content_hash(x))
            cached = self._load(path)
            if cached is not None:
                out[i] = cached
                self.hits += 1
                if on_progress:
                    on_progress(1)
                continue
            pending.append((i, x, path))
            if len(pending) == batch_size:
                flush()
        if pending:
            flush()
        return out  # type: ignore[return-value]
