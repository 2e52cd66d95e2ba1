"""The model artifact: a directory with ``manifest.json`` and safetensors weights.

Loading never unpickles: weights are safetensors, configuration is JSON. A manifest made with
a different encoder (other name, weights or band count) than the one being loaded is refused.
A model whose encoder carries trained adapters (ATL, extra-band stem weights, few-shot LoRA;
:mod:`damagemap.adapters`) also has ``adapter.safetensors``: the manifest names the *base*
encoder (its fingerprint is what a given or rebuilt encoder is checked against), records the
adapter kinds with their options and the adapted encoder's fingerprint, and :func:`load_model`
re-applies them to the base encoder through the adapter registry.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from damagemap import __version__
from damagemap.adapters import apply_saved_adapter
from damagemap.device import resolve_device
from damagemap.encoders import build_encoder, encoder_options
from damagemap.encoders.base import Encoder
from damagemap.errors import CheckpointError, ConfigError, OutputError
from damagemap.heads import build_head
from damagemap.io_atomic import check_output_folder, write_dir_atomic
from damagemap.locks import OutputLock, output_lock, sibling_lock
from damagemap.model import DamageModel
from damagemap.recipe import Recipe

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
HEAD_FILE = "head.safetensors"
STATE_FILE = "state.safetensors"
ADAPTER_FILE = "adapter.safetensors"


def _manifest(model: DamageModel) -> dict:
    enc = model.encoder
    r = model.recipe
    adapter = model.adapter_config if model.adapter else None
    return {
        "schema_version": SCHEMA_VERSION,
        "damagemap_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "encoder": {
            "name": enc.name,
            "checkpoint": r.encoder.checkpoint,
            "checkpoint_sha256": enc.checkpoint_sha256,
            "fingerprint": adapter["base_fingerprint"] if adapter else enc.fingerprint,
            "adapted_fingerprint": adapter["adapted_fingerprint"] if adapter else None,
            "options": encoder_options(r.encoder.name, r.encoder.options, r.encoder.levels),
            "in_chans": enc.in_chans,
            # bands of the base encoder rebuilt at load time (a band adapter then widens it)
            "base_in_chans": getattr(enc, "base_in_chans", enc.in_chans) if adapter else enc.in_chans,
            "channels": list(enc.channels),
            "strides": list(enc.strides),
        },
        "bands": r.input.bands,
        "normalisation": {"mean": list(enc.mean), "std": list(enc.std)},
        "input": {"size": r.input.size, "mode": r.input.mode},
        "classes": r.classes,
        "damage_classes": r.damage_classes,
        "threshold": r.train.threshold,
        "head": model.head.config,
        "adapter": adapter,
        "parameters": model.metrics.get("parameters"),
        "metrics": model.metrics,
        "recipe": r.model_dump(mode="json"),
    }


def write_model_dir(out_dir: str | Path, write: Callable[[Path], None]) -> Path:
    """Atomically create the model directory ``out_dir``, holding its lock meanwhile.

    ``write(tmp)`` fills a temporary sibling directory (weights and ``manifest.json``); the
    manifest then gets the sha256 of every other file (``files``, verified on load) and the
    directory replaces ``out_dir``. On any failure (also a kill) nothing appears under ``out_dir``.

    Raises:
        OutputError: ``out_dir`` is a file, a folder that is not a model directory, not writable,
            or being written by another run.
    """
    out_dir = Path(out_dir)
    check_output_folder(out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file():
        raise OutputError(
            out_dir, "--out exists and is not a model directory (no manifest.json); refusing to replace it"
        )

    def write_and_hash(tmp: Path) -> None:
        write(tmp)
        manifest = json.loads((tmp / MANIFEST).read_text())
        manifest["files"] = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.name != MANIFEST}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")

    with model_out_lock(out_dir):
        return write_dir_atomic(out_dir, write_and_hash)


def model_out_lock(out_dir: str | Path) -> OutputLock:
    """The lock of a model directory being written (``.NAME.lock`` beside it), for a ``with`` statement.

    ``train`` holds it from before training until the directory is written, so a second run
    on the same ``--out`` is refused at once rather than after its training.
    """
    return output_lock(sibling_lock(out_dir), str(out_dir))


def check_model_out(out_dir: str | Path) -> Path:
    """Refuse a model ``--out`` that cannot be written or would replace a folder that is not a model.

    Raises:
        OutputError: naming the folder.
    """
    out_dir = check_output_folder(out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file():
        raise OutputError(
            out_dir, "--out exists and is not a model directory (no manifest.json); refusing to replace it"
        )
    return out_dir


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes (read in 1 MB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_files(model_dir: str | Path, manifest: dict, required: tuple[str, ...] = (HEAD_FILE,)) -> None:
    """Check that every weight file of the manifest exists and has its recorded sha256.

    Older manifests without ``files`` are only checked for the ``required`` files' presence.

    Raises:
        CheckpointError: naming the missing or differing file.
    """
    model_dir = Path(model_dir)
    recorded = manifest.get("files") or {}
    for name in sorted(set(recorded) | set(required)):
        path = model_dir / name
        if not path.is_file():
            raise CheckpointError(path, "missing from the model directory (the model is incomplete)")
        if name in recorded and sha256_file(path) != recorded[name]:
            raise CheckpointError(
                path, f"sha256 differs from the one recorded in {MANIFEST}: the file is corrupt or was changed"
            )


def save_model(model: DamageModel, out_dir: str | Path) -> Path:
    """Write the artifact atomically: a temporary sibling directory renamed when complete."""

    def write(tmp: Path) -> None:
        save_file({k: v.contiguous() for k, v in model.head.state_dict().items()}, str(tmp / HEAD_FILE))
        if model.state:
            save_file({k: v.contiguous() for k, v in model.state.items()}, str(tmp / STATE_FILE))
        if model.adapter:
            save_file({k: v.contiguous() for k, v in model.adapter.items()}, str(tmp / ADAPTER_FILE))
        (tmp / MANIFEST).write_text(json.dumps(_manifest(model), indent=2) + "\n")

    return write_model_dir(out_dir, write)


def read_manifest(model_dir: str | Path, kind: str | None = None, what: str = "model") -> dict:
    """Parse and sanity-check ``manifest.json``; clear errors for a missing or foreign file.

    ``kind``: the manifest's ``kind`` must equal it (MSNet models say ``"msnet"``; segmentation
    models carry no kind).
    """
    path = Path(model_dir) / MANIFEST
    if not path.is_file():
        raise ConfigError(f"{model_dir}: not a damagemap {what} directory (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: corrupt manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != kind:
        found = manifest.get("kind") if isinstance(manifest, dict) else None
        raise ConfigError(f"{path}: not a {what} manifest (kind {found!r}, expected {kind!r})")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ConfigError(
            f"{path}: manifest schema {manifest.get('schema_version')!r} is not supported "
            f"(this damagemap reads schema {SCHEMA_VERSION})"
        )
    return manifest


def check_encoder_matches(manifest: dict, encoder: Encoder, where: str | Path) -> None:
    """Refuse an encoder other than the one the head was trained on."""
    m = manifest["encoder"]
    problems = []
    if m["name"] != encoder.name:
        problems.append(f"encoder {encoder.name!r} (model was trained on {m['name']!r})")
    if m.get("base_in_chans", m["in_chans"]) != encoder.in_chans:
        problems.append(f"{encoder.in_chans} input bands (model expects {m.get('base_in_chans', m['in_chans'])})")
    if not problems and m["fingerprint"] != encoder.fingerprint:
        problems.append(
            f"encoder weights with fingerprint {encoder.fingerprint} (model was trained with "
            f"{m['fingerprint']}, checkpoint sha256 {m.get('checkpoint_sha256')})"
        )
    if problems:
        raise ConfigError(f"{where}: cannot use this model with " + "; ".join(problems))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A model directory's safetensors file; unreadable → :class:`CheckpointError` naming it."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(path, f"cannot read weights ({exc})") from None


def load_module_weights(module: torch.nn.Module, path: Path, what: str) -> None:
    """Load ``path`` into ``module``; missing or unexpected keys are a :class:`CheckpointError`."""
    result = module.load_state_dict(load_tensors(path), strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            path, f"{what} weights do not match the manifest", result.missing_keys, result.unexpected_keys
        )


def load_model(
    model_dir: str | Path,
    encoder: Encoder | None = None,
    checkpoint: str | Path | None = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
) -> DamageModel:
    """Load an artifact. The encoder is rebuilt from the manifest unless one is given.

    Args:
        model_dir: the artifact directory.
        encoder: an already-built base encoder to reuse (checked against the manifest). If
            the model has adapters, they are applied to a copy; ``encoder`` is not modified.
        checkpoint: encoder checkpoint path overriding the one recorded in the manifest.
        device: where to put the model (``auto``, ``cpu``, ``cuda``…; default: the CPU).
        precision: autocast precision of its predictions (``fp32``, ``bf16``, ``fp16``).
    """
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    recipe = Recipe.model_validate(manifest["recipe"])
    verify_files(model_dir, manifest, (HEAD_FILE, ADAPTER_FILE) if manifest.get("adapter") else (HEAD_FILE,))
    m = manifest["encoder"]
    given = encoder is not None
    if encoder is None:
        ckpt = checkpoint if checkpoint is not None else m.get("checkpoint")
        if ckpt is None and not recipe.encoder.pretrained:
            torch.manual_seed(recipe.train.seed)  # random-init encoder: same seed as training used
        try:
            encoder = build_encoder(
                m["name"],
                checkpoint=ckpt,
                pretrained=ckpt is not None or recipe.encoder.pretrained,
                **m.get("options", {}),
            )
        except (CheckpointError, ConfigError) as exc:
            why = f"{model_dir}: this model was trained with encoder {m['name']!r}, which cannot be built here: {exc}"
            raise (ConfigError(why) if isinstance(exc, ConfigError) else CheckpointError(None, why)) from None
    check_encoder_matches(manifest, encoder, model_dir)
    adapter, adapter_config = None, manifest.get("adapter")
    if adapter_config:  # trainable encoder parts (ATL, extra-band stem, LoRA): damagemap.adapters
        adapter = load_tensors(model_dir / ADAPTER_FILE)
        try:
            encoder = apply_saved_adapter(copy.deepcopy(encoder) if given else encoder, adapter, adapter_config)
        except CheckpointError as exc:
            raise CheckpointError(model_dir / ADAPTER_FILE, exc.problem, exc.missing, exc.unexpected) from None
    if encoder.in_chans != m["in_chans"]:
        raise ConfigError(
            f"{model_dir / MANIFEST}: encoder.in_chans is {m['in_chans']}, but the model's encoder takes "
            f"{encoder.in_chans} bands (the manifest was edited or is corrupt)"
        )
    head = build_head(**manifest["head"])
    load_module_weights(head, model_dir / HEAD_FILE, "head")
    head.eval()
    state_path = model_dir / STATE_FILE
    state = load_tensors(state_path) if state_path.is_file() else {}
    model = DamageModel(recipe, encoder, head, state, manifest.get("metrics", {}), adapter, adapter_config)
    return model.to(resolve_device(device) if device is not None else torch.device("cpu"), precision)
