"""How a scene's pixels become model input: :class:`SceneInputSpec` (bands, scaling, replication).

Shared by the mapper (:mod:`damagemap.mapping`) and training on a scene
(:mod:`damagemap.data.geo_labels`), so both read and scale pixels the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import cast

import numpy as np

from damagemap.errors import ConfigError

Scale = str | float | tuple[float, float] | Sequence[tuple[float, float]]


@dataclass(frozen=True)
class SceneInputSpec:
    """How to turn a scene's pixels into model input.

    Attributes:
        bands: 1-based band indexes to read, in model order; ``None`` = all bands in file order.
        scale: how raw values map to [0, 1] (results are clipped to [0, 1]):
            ``"dtype"`` — integer types by their range (uint8 /255, uint16 /65535, signed
            integers from their min to their max); float scenes are assumed already in [0, 1].
            A number — divide by it. ``(min, max)`` — the same range for every band. A sequence
            of ``(min, max)`` — one range per band read.
        replicate_single_band: feed a 1-band scene (or a 1-band selection) to a model expecting
            more bands by repeating the band (e.g. a panchromatic scene into an RGB model).
            Off by default: a band mismatch is then an error rather than a silent guess.
    """

    bands: tuple[int, ...] | None = None
    scale: Scale = "dtype"
    replicate_single_band: bool = False

    def __post_init__(self) -> None:
        if self.bands is not None:
            bands = tuple(int(b) for b in self.bands)
            if not bands or min(bands) < 1:
                raise ConfigError(f"SceneInputSpec.bands must be 1-based band indexes, got {self.bands}")
            object.__setattr__(self, "bands", bands)
        if isinstance(self.scale, str) and self.scale != "dtype":
            raise ConfigError(f"SceneInputSpec.scale: unknown mode {self.scale!r} (use 'dtype')")
        if isinstance(self.scale, (list, tuple)):  # normalise lists (e.g. from YAML/JSON) to tuples
            pair = len(self.scale) == 2 and all(isinstance(v, (int, float)) for v in self.scale)
            scale = tuple(float(v) for v in self.scale) if pair else tuple(tuple(s) for s in self.scale)
            object.__setattr__(self, "scale", scale)

    def to_json(self) -> str:
        """Canonical JSON (part of the resume ledger key)."""
        return json.dumps(asdict(self), sort_keys=True, default=list)

    def ranges(self, dtype: str, n_bands: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-band ``(lo, hi)`` float64 arrays for ``n_bands`` bands of a scene of ``dtype``."""
        scale = self.scale
        if isinstance(scale, str):
            dt = np.dtype(dtype)
            if np.issubdtype(dt, np.integer):
                info = np.iinfo(dt)
                lo, hi = (0.0, float(info.max)) if info.min == 0 else (float(info.min), float(info.max))
            else:
                lo, hi = 0.0, 1.0
            pairs = [(lo, hi)] * n_bands
        elif isinstance(scale, (int, float)):
            if scale <= 0:
                raise ConfigError(f"SceneInputSpec.scale divisor must be > 0, got {scale}")
            pairs = [(0.0, float(scale))] * n_bands
        elif len(scale) == 2 and all(isinstance(v, (int, float)) for v in scale):
            rng = cast("tuple[float, float]", scale)  # just checked: two numbers
            pairs = [(float(rng[0]), float(rng[1]))] * n_bands
        else:
            pairs = [(float(a), float(b)) for a, b in cast("Sequence[tuple[float, float]]", scale)]
            if len(pairs) != n_bands:
                raise ConfigError(f"SceneInputSpec.scale gives {len(pairs)} (min, max) ranges for {n_bands} bands")
        if any(hi <= lo for lo, hi in pairs):
            raise ConfigError(f"SceneInputSpec.scale: every range needs max > min, got {pairs}")
        lo_arr, hi_arr = (np.array(v, dtype=np.float64) for v in zip(*pairs))
        return lo_arr, hi_arr
