"""Reading checkpoint files and loading them strictly, with errors that name file and keys.

Every encoder family goes through these helpers, so a missing, corrupt or mismatching
checkpoint always fails the same way: a :class:`~damagemap.errors.CheckpointError` naming the
file and the missing / unexpected / wrongly-shaped keys. Torch files are read with
``weights_only=True`` (no unpickling of arbitrary objects).
"""

from __future__ import annotations

import hashlib
import pickle
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from damagemap.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from timm.models import FeatureInfo

StateDict = dict[str, torch.Tensor]

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
SAFETENSORS_SUFFIXES = (".safetensors",)
_CONTAINER_KEYS = ("state_dict", "model", "model_state_dict", "module", "teacher", "model_ema")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _unwrap(obj: object, path: Path) -> StateDict:
    """Find the tensor dict inside common containers ({'model': ...}, {'state_dict': ...})."""
    for _ in range(4):  # containers nest at most a few levels deep
        if not isinstance(obj, Mapping):
            break
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return {str(k): v for k, v in obj.items()}
        inner = next((obj[k] for k in _CONTAINER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
            if tensors:  # e.g. {'epoch': 3, 'w': tensor, ...}: keep the tensors
                return tensors
            break
        obj = inner
    raise CheckpointError(path, "no state dict (mapping of parameter name → tensor) in file")


NOT_PLAIN = (
    "not a plain tensor checkpoint (cannot read it without unpickling Python objects, which damagemap never "
    "does); save the weights as a state dict of tensors: torch.save(model.state_dict(), path) or .safetensors"
)
"""Why a torch file with anything but tensors and plain containers is refused."""


def torch_load_tensors(path: Path) -> object:
    """``torch.load`` restricted to tensors and plain containers (``weights_only=True``).

    Raises:
        CheckpointError: the file holds other pickled objects (:data:`NOT_PLAIN`) or is not a
            readable torch file. The message never repeats torch's hint to load with
            ``weights_only`` turned off: that would run the file's code.
    """
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of such files
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # refused objects, or a corrupt zip / truncated file / not a torch file
        if isinstance(exc, pickle.UnpicklingError) and "weights only" in str(exc).lower() and _is_pickle(path):
            raise CheckpointError(path, NOT_PLAIN) from None
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        detail = type(exc).__name__ if not first or "weights_only" in first else first
        raise CheckpointError(path, f"cannot read torch checkpoint ({detail})") from None


def _is_pickle(path: Path) -> bool:
    """Whether the file looks like a torch zip archive or a raw pickle (not arbitrary bytes)."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint file for ``path``; a Hugging Face model folder gives its weights file."""
    path = Path(path)
    if path.is_dir():
        for name in ("model.safetensors", "pytorch_model.bin"):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(path, "folder holds no model.safetensors or pytorch_model.bin")
    return path


def load_state_dict(path: str | Path) -> StateDict:
    """Read a checkpoint file into a flat ``{name: tensor}`` dict on the CPU.

    Supports ``.pth/.pt/.bin/.ckpt`` (``torch.load(weights_only=True)``) and ``.safetensors``;
    unwraps containers such as ``{'model': ...}``, ``{'state_dict': ...}``, ``{'teacher': ...}``
    and strips a ``module.`` prefix left by DataParallel.

    Raises:
        CheckpointError: the file is missing, unreadable, corrupt or holds no state dict.
    """
    path = resolve_checkpoint(path)
    if not path.is_file():
        raise CheckpointError(path, "checkpoint file not found")
    suffix = path.suffix.lower()
    if suffix not in SAFETENSORS_SUFFIXES:
        return _strip_module(_unwrap(torch_load_tensors(path), path))
    from safetensors.torch import load_file

    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:  # corrupt header or data
        msg = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(path, f"cannot read safetensors checkpoint ({msg})") from exc
    return _strip_module(_unwrap(state, path))


def _strip_module(state: StateDict) -> StateDict:
    """Drop the ``module.`` prefix DataParallel leaves on every key."""
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def strip_prefix(state: StateDict, prefixes: Iterable[str]) -> StateDict:
    """Remove the first of ``prefixes`` that every key starts with (e.g. ``'model.'``)."""
    for prefix in prefixes:
        if state and all(k.startswith(prefix) for k in state):
            return {k[len(prefix) :]: v for k, v in state.items()}
    return state


def adapt_in_chans(state: StateDict, key: str, in_chans: int) -> StateDict:
    """Adapt the first conv weight ``state[key]`` from 3 bands to ``in_chans`` bands.

    Uses timm's ``adapt_input_conv``: for more than 3 bands the RGB filters are repeated
    cyclically over the new bands (R, G, B, R, …) and all are scaled by ``3 / in_chans`` so the
    response to a grey image is unchanged; for 1 band the RGB filters are summed.
    """
    weight = state.get(key)
    if weight is not None and weight.ndim == 4 and weight.shape[1] == 3 and in_chans != 3:
        from timm.models._manipulate import adapt_input_conv  # timm is heavy to import: only when needed

        state = dict(state)
        state[key] = adapt_input_conv(in_chans, weight)
    return state


def extend_stats(values: tuple[float, ...], in_chans: int) -> tuple[float, ...]:
    """Per-band normalisation statistics for ``in_chans`` bands.

    RGB statistics are kept for the first three bands; extra bands get the mean of the RGB
    values; a single band gets the mean of the three.
    """
    if in_chans == len(values):
        return tuple(values)
    avg = sum(values) / len(values)
    if in_chans < len(values):
        return (avg,) * in_chans if in_chans == 1 else tuple(values[:in_chans])
    return tuple(values) + (avg,) * (in_chans - len(values))


def load_into(model: nn.Module, state: Mapping[str, torch.Tensor], path: str | Path | None) -> None:
    """Load ``state`` into ``model`` strictly.

    Raises:
        CheckpointError: naming ``path`` and listing missing keys, unexpected keys and keys
            whose shapes differ (``key: checkpoint (a, b) vs model (c, d)``).
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state]  # keys in model order
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        arch = type(model).__name__
        problem = f"checkpoint does not match the {arch} architecture"
        if mismatched:
            shown = "; ".join(mismatched[:8]) + (" …" if len(mismatched) > 8 else "")
            problem += f"\n  shape mismatches ({len(mismatched)}): {shown}"
        raise CheckpointError(path, problem, missing=missing, unexpected=unexpected)
    try:
        model.load_state_dict(dict(state), strict=True)
    except RuntimeError as exc:  # dtype or other failures not caught above
        raise CheckpointError(path, f"cannot load checkpoint: {exc}") from exc


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub (timm's weight host) answers within ``timeout`` seconds."""
    import os
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"):
        return True  # offline mode: let timm read its local cache
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host or "huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def timm_feature_info(model: nn.Module) -> FeatureInfo:
    """``model.feature_info`` of a timm ``features_only`` model.

    A plain attribute, which torch's typing of unknown module attributes (``Tensor | Module``)
    cannot see.
    """
    return cast("FeatureInfo", model.feature_info)


def hub_create(name: str, arch: str, **kwargs: Any) -> nn.Module:
    """``timm.create_model(arch, pretrained=True, **kwargs)``, failing fast when offline.

    Raises:
        CheckpointError: the model hub is unreachable or the download failed; the message
            tells the user to pass ``checkpoint=PATH``.
    """
    import timm

    hint = (
        f"{name}: cannot download pretrained weights for timm model {arch!r} ({{why}}); "
        "pass checkpoint=PATH to a local checkpoint in an official layout, "
        "or pretrained=False for random weights"
    )
    if not _hub_reachable():
        raise CheckpointError(None, hint.format(why="model hub unreachable"))
    try:
        return timm.create_model(arch, pretrained=True, **kwargs)
    except Exception as exc:  # network / hub errors come in many types
        raise CheckpointError(None, hint.format(why=f"{type(exc).__name__}: {exc}"[:300])) from exc


DEFAULT_LEVELS = (2, 3, 4, 5)
"""Feature levels of the timm CNN encoders by default: log2 of strides 4, 8, 16, 32."""


def level_indices(levels: Sequence[int] | None) -> tuple[int, ...]:
    """Timm ``out_indices`` of feature ``levels`` (log2 of the stride) for a 5-stage CNN.

    timm's EfficientNet and ResNet feature maps 0…4 have strides 2…32, so level ``l`` is index
    ``l - 1``. Raises :class:`ConfigError` for levels outside 1…5 or not increasing.
    """
    chosen = tuple(DEFAULT_LEVELS if levels is None else (int(lvl) for lvl in levels))
    if not chosen or list(chosen) != sorted(set(chosen)) or not all(1 <= lvl <= 5 for lvl in chosen):
        raise ConfigError(f"encoder.levels must be increasing values in 1..5 (log2 of the stride), got {list(chosen)}")
    return tuple(lvl - 1 for lvl in chosen)
