"""What the mapper needs from a model: :class:`TilePredictor`.

The mapping engine is model-agnostic: anything with ``in_bands``, ``num_outputs`` and a
``__call__`` from float tiles to per-pixel probabilities can map a scene. (How the scene's
pixels become model input is :class:`damagemap.geo.spec.SceneInputSpec`.)
"""

from __future__ import annotations

import hashlib
import pickle
from typing import Protocol, runtime_checkable

import numpy as np

from damagemap.errors import ConfigError


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
    (a string identifying the weights), used in the resume ledger key, and ``device`` (``"cpu"``
    when absent): a predictor on an accelerator runs in a thread behind the mapper, one on the
    CPU between its blending and writing (:class:`~damagemap.mapping.execution.LocalExecutor`).
    """

    in_bands: int
    num_outputs: int

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        """Probabilities ``[B, num_outputs, T, T]`` of float tiles ``[B, in_bands, T, T]``."""
        ...


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


def on_accelerator(predictor: object) -> bool:
    """Whether the predictor's ``device`` (``"cpu"`` when it has none) is an accelerator."""
    return str(getattr(predictor, "device", "cpu")).split(":")[0] != "cpu"


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
