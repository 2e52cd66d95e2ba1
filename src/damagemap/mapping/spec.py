"""What the mapper needs from a model (:class:`TilePredictor`) and from a scene (:class:`SceneInputSpec`).

The mapping engine is model-agnostic: anything with ``in_bands``, ``num_outputs`` and a
``__call__`` from float tiles to per-pixel probabilities can map a scene.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from damagemap.errors import ConfigError

Scale = str | float | tuple[float, float] | Sequence[tuple[float, float]]


@runtime_checkable
class TilePredictor(Protocol):
    """A model as the mapper sees it.

    Attributes:
        in_bands: number of bands the model expects, in model order.
        num_outputs: 1 = binary damage probability; K > 1 = class probabilities (softmax over K
            classes, class 0 = no damage).

    Calling it maps ``[B, in_bands, T, T]`` float32 tiles in [0, 1] to ``[B, num_outputs, T, T]``
    float32 probabilities. It must be deterministic (same tile → same output) for resumed runs
    to be byte-identical, and picklable to run on Dask workers. It may define ``fingerprint``
    (a string identifying the weights), used in the resume ledger key.
    """

    in_bands: int
    num_outputs: int

    def __call__(self, tiles: np.ndarray) -> np.ndarray: ...


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
            pairs = [(float(scale[0]), float(scale[1]))] * n_bands
        else:
            pairs = [(float(a), float(b)) for a, b in scale]
            if len(pairs) != n_bands:
                raise ConfigError(
                    f"SceneInputSpec.scale gives {len(pairs)} (min, max) ranges for {n_bands} bands"
                )
        if any(hi <= lo for lo, hi in pairs):
            raise ConfigError(f"SceneInputSpec.scale: every range needs max > min, got {pairs}")
        lo_arr, hi_arr = (np.array(v, dtype=np.float64) for v in zip(*pairs))
        return lo_arr, hi_arr


def predictor_fingerprint(predictor: object) -> str:
    """A string identifying a predictor for the resume ledger.

    ``predictor.fingerprint`` when defined (the real models expose the hash of their weights);
    else the sha256 of the pickled predictor; else its class name (then two differently
    trained instances of one unpicklable class look alike — give them a ``fingerprint``).
    """
    fp = getattr(predictor, "fingerprint", None)
    if isinstance(fp, str) and fp:
        return fp
    cls = type(predictor)
    name = f"{cls.__module__}.{cls.__qualname__}"
    try:
        return name + ":" + hashlib.sha256(pickle.dumps(predictor)).hexdigest()
    except Exception:  # noqa: BLE001 - unpicklable predictors are fine single-process
        return name


def check_predictor(predictor: object) -> tuple[int, int]:
    """Return ``(in_bands, num_outputs)`` after checking the predictor looks like one."""
    try:
        in_bands, num_outputs = int(predictor.in_bands), int(predictor.num_outputs)  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"predictor {type(predictor).__name__} needs integer attributes in_bands and num_outputs"
        ) from exc
    if not callable(predictor) or in_bands < 1 or num_outputs < 1:
        raise ConfigError(
            f"predictor {type(predictor).__name__}: must be callable with in_bands >= 1 and "
            f"num_outputs >= 1 (got {in_bands}, {num_outputs})"
        )
    return in_bands, num_outputs
