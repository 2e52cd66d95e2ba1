"""Reruns never mix: an output folder holds the outputs of one set of parameters.

``summary.json`` records the run (:func:`run_record`: scene identity, model fingerprint and
every option that changes an output). Mapping into a folder that already holds outputs is
allowed when the record is the same (the outputs are replaced); otherwise it is refused,
naming each differing option, unless ``overwrite`` — then every damagemap output of the old
run is replaced or removed (files of other names are never touched).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from damagemap.errors import ConfigError

OPTION_NAMES = {
    "scene": "the scene (SCENE: another file, or the file changed)",
    "pre": "the pre-event scene (--pre)",
    "predictor": "the model (MODEL_DIR, or its --device/--precision)",
    "in_bands": "the model's input bands",
    "num_outputs": "the model's classes",
    "tile": "--tile",
    "overlap": "--overlap",
    "batch": "--batch",
    "block": "the output block size",
    "band_px": "the band width (set by the scene width and this version of damagemap)",
    "spec": "--bands/--scale/--replicate-single-band",
    "threshold": "--threshold",
    "footprints": "--footprints",
    "zones": "--zones",
    "grid_m": "--grid-m",
    "building_threshold": "the building threshold",
    "id_column": "--id-column",
    "vectorize": "the damaged_regions layer (vectorize)",
}


def run_record(params: dict[str, Any], **options: Any) -> dict[str, Any]:
    """What identifies a run's outputs: the pixel parameters plus the vector/table options."""
    return json.loads(json.dumps({**params, **options}, sort_keys=True, default=str))


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def check_rerun(out: Path, record: dict[str, Any], outputs: tuple[str, ...], *, overwrite: bool) -> None:
    """Refuse to map into ``out`` if it holds outputs of another run (unless ``overwrite``)."""
    present = sorted(name for name in outputs if (out / name).exists())
    if not present or overwrite:
        return
    summary = out / "summary.json"
    try:
        previous = json.loads(summary.read_text())["run"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(
            f"--out {out}: holds outputs ({', '.join(present[:4])}) of a run whose parameters are not recorded "
            "(no readable summary.json run record); use another --out or --overwrite to replace them"
        ) from None
    differ = sorted(k for k in set(previous) | set(record) if previous.get(k) != record.get(k))
    if not differ:
        return
    details = "; ".join(
        f"{OPTION_NAMES.get(k, k)}: was {_show(previous.get(k))}, now {_show(record.get(k))}"
        if k not in ("scene", "pre", "predictor")
        else OPTION_NAMES.get(k, k)
        for k in differ
    )
    raise ConfigError(
        f"--out {out}: holds outputs of a run with other parameters ({details}); "
        "use another --out, or --overwrite to replace all of them"
    )
