"""What every command group shares: consoles, the one-line error wrapper, option parsers and types.

Option values are parsed by typer (``parser=``), so a malformed value (``--bands 1,x,3``) is a
usage error naming the option, before any command body runs.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import numbers
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from damagemap.errors import ConfigError, DamagemapError

if TYPE_CHECKING:
    import torch

    from damagemap.data.inputs import Inputs
    from damagemap.training.items import CacheDir

console = Console(stderr=True)
"""Messages and errors (stderr)."""
out = Console()
"""Results: tables and JSON (stdout)."""

F = TypeVar("F", bound=Callable[..., Any])


# -- exit codes -------------------------------------------------------------------------------------
EXIT_OK = 0
"""Success."""
EXIT_PARTIAL = 1
"""Partial failure (e.g. ``severity``: some photos unreadable) or an unexpected internal error."""
EXIT_USAGE = 2
"""Usage error: unknown option, bad option value, missing argument (click's own code)."""
EXIT_INPUT = 3
"""Input error: a data file or checkpoint is missing, unreadable or inconsistent."""
EXIT_CONFIG = 4
"""Configuration error: a recipe, manifest or option combination is invalid."""

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_PARTIAL: "partial failure (some inputs failed) or an unexpected internal error",
    EXIT_USAGE: "usage error: unknown option, bad option value, missing argument",
    EXIT_INPUT: "input error: a data file or checkpoint is missing, unreadable or inconsistent",
    EXIT_CONFIG: "configuration error: invalid recipe, manifest or option combination",
}
"""What each exit code means (shown in ``damagemap --help`` and the README)."""


def exit_code_of(exc: DamagemapError) -> int:
    """The exit code of an error: 4 for a :class:`ConfigError`, else 3 (bad input or checkpoint)."""
    return EXIT_CONFIG if isinstance(exc, ConfigError) else EXIT_INPUT


class _WarningLines(logging.Handler):
    """damagemap's logged warnings as ``warning: …`` lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        console.print(f"[yellow]warning:[/] {escape(record.getMessage())}", highlight=False, soft_wrap=True)


def show_warnings() -> None:
    """Route warnings logged by damagemap's modules to stderr, once per process."""
    logger = logging.getLogger("damagemap")
    if not any(isinstance(h, _WarningLines) for h in logger.handlers):
        handler = _WarningLines(logging.WARNING)
        logger.addHandler(handler)
        logger.setLevel(min(logger.level or logging.WARNING, logging.WARNING))
        logger.propagate = False


def clean_errors(fn: F) -> F:
    """Print a damagemap error as one clear line and exit with its code (3 input, 4 configuration).

    Warnings logged by damagemap print as ``warning:`` lines. Anything else propagates: a
    traceback and exit code 1 (an internal error, worth a bug report).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        show_warnings()
        try:
            return fn(*args, **kwargs)
        except DamagemapError as exc:
            console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exit_code_of(exc)) from None

    return wrapper  # type: ignore[return-value]


# -- option value types (parsed by typer; a bad value is a usage error naming the option) -------
class Names(tuple):
    """Comma-separated names, e.g. ``north,south``."""


class Ints(tuple):
    """Comma-separated integers, e.g. ``1,3,5``."""


class ScaleArg(tuple):
    """``dtype`` (empty) or ``(MIN, MAX)`` of the raw scene values."""


class Degrees(dict):
    """``class=weight`` pairs, e.g. ``undamaged=0,damaged=0.5,debris=1``."""


def _items(value: str) -> list[str]:
    return [v.strip() for v in str(value).split(",") if v.strip()]


def parse_names(value: str | Names) -> Names:
    """``a,b`` → ``("a", "b")``."""
    return value if isinstance(value, Names) else Names(_items(value))


def parse_plain_names(value: str | Names) -> Names:
    """``a,b`` → ``("a", "b")``, each a plain name (:func:`damagemap.safepath.check_name`): they become paths."""
    from damagemap.safepath import check_name

    names = parse_names(value)
    try:
        return Names(check_name(n, "name") for n in names)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def parse_variants(value: str | Names) -> Names:
    """``plain,eval.tta=flip,encoder.levels=[1,2,3,4,5]`` → names (commas in brackets do not split)."""
    from damagemap.protocols.variants import split_variants

    return value if isinstance(value, Names) else Names(split_variants(str(value)))


def parse_ints(value: str | Ints) -> Ints:
    """``1,3,5`` → ``(1, 3, 5)``; anything else is a usage error."""
    if isinstance(value, Ints):
        return value
    try:
        return Ints(int(v) for v in _items(value))
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers such as 1,3,5, got {value!r}") from None


def parse_bands(value: str | Ints) -> Ints:
    """1-based band indexes ``3,2,1``; zero, negative or non-integer values are usage errors."""
    bands = parse_ints(value)
    if not bands or min(bands) < 1:
        raise typer.BadParameter(f"expected 1-based band numbers such as 3,2,1, got {value!r}")
    return bands


def parse_scale(value: str | ScaleArg) -> ScaleArg:
    """``dtype`` → ``()``; ``MIN,MAX`` → ``(min, max)`` with ``max > min``."""
    if isinstance(value, ScaleArg):
        return value
    if str(value).strip() == "dtype":
        return ScaleArg()
    try:
        lo, hi = (float(v) for v in _items(value))
    except ValueError:
        raise typer.BadParameter(f"expected 'dtype' or MIN,MAX such as 0,10000, got {value!r}") from None
    if hi <= lo:
        raise typer.BadParameter(f"MAX must be larger than MIN, got {value!r}")
    return ScaleArg((lo, hi))


def parse_degrees(value: str | Degrees) -> Degrees:
    """``undamaged=0,damaged=0.5`` → ``{"undamaged": 0.0, "damaged": 0.5}``."""
    if isinstance(value, Degrees):
        return value
    try:
        pairs = [item.split("=") for item in _items(value)]
        return Degrees({k.strip(): float(v) for k, v in pairs})
    except ValueError:
        raise typer.BadParameter(
            f"expected class=weight pairs such as undamaged=0,damaged=0.5,debris=1, got {value!r}"
        ) from None


def parse_datetime(value: str | datetime) -> datetime:
    """An ISO 8601 date-time (``Z`` accepted for UTC)."""
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"expected an ISO 8601 date-time such as 2023-02-06T10:15:00Z, got {value!r}"
        ) from None


def names_list(value: Names | None) -> list[str] | None:
    """A parsed :class:`Names` option as a list (``None`` when not given or empty)."""
    return list(value) if value else None


# -- options shared by several commands ------------------------------------------------------------
CacheOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--cache-dir", help="Feature cache folder (default: $DAMAGEMAP_CACHE or ~/.cache/damagemap/features)."
    ),
]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Keep encoder features in memory only.")]
QuietOpt = Annotated[
    bool,
    typer.Option(
        "--quiet",
        "-q",
        help="No progress bars or progress lines on stderr (errors and results still print). "
        "Also: DAMAGEMAP_NO_PROGRESS=1.",
    ),
]
ThresholdOpt = Annotated[
    Optional[float],
    typer.Option(
        "--threshold",
        min=0.0,
        max=1.0,
        help="Damage probability threshold of binary models (default: the model's).",
    ),
]
BatchOpt = Annotated[
    Optional[int],
    typer.Option(
        "--batch",
        min=1,
        help="Model inputs (tiles, or resized images) per model call; more is faster and needs more memory "
        "(default: 4, or 8 with --precision bf16/fp16, whose activations take half the memory).",
    ),
]
PreOpt = Annotated[
    Optional[str],
    typer.Option(
        "--pre",
        help="Pre-event scene of a pair model (any CRS/resolution: warped onto the post scene's grid; "
        "file, URL or STAC item as for the scene).",
    ),
]
DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device",
        metavar="auto|cpu|cuda|cuda:N|mps",
        help="Where models run: auto (the first CUDA GPU if torch sees one, else the CPU), cpu, cuda, cuda:N, mps.",
    ),
]
PrecisionOpt = Annotated[
    Literal["fp32", "bf16", "fp16"],
    typer.Option(
        "--precision",
        help="fp32 (exact); bf16 autocast (recent GPUs, CPUs with AVX-512 BF16/AMX); fp16 autocast (GPU only).",
    ),
]


def run_on(device: str, precision: str = "fp32") -> torch.device:
    """The ``--device`` as a torch device, checked with ``--precision`` before any work starts."""
    from damagemap.device import check_precision, resolve_device

    resolved = resolve_device(device)
    check_precision(precision, resolved)
    return resolved


JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print a machine-readable JSON summary on stdout (and nothing else there).")
]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--set", help="Override a recipe value, e.g. --set data.format=xbd --set train.epochs=5 (repeatable)."
    ),
]


def print_json(data: Any) -> None:
    """``data`` as strict JSON on stdout: paths and other objects as strings, NaN and infinities as null."""
    out.print_json(json.dumps(_jsonable(data), allow_nan=False), highlight=False)


def _jsonable(value: Any) -> Any:
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # numpy scalars → Python numbers
        value = value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    return str(value)


def cache_dir(path: Optional[Path], no_cache: bool) -> CacheDir:
    """The feature-cache folder of ``--cache-dir`` / ``--no-cache`` (``None``: in memory only)."""
    from damagemap.training.items import DEFAULT_CACHE  # imports torch: only when a command runs

    return None if no_cache else (path if path is not None else DEFAULT_CACHE)


# -- labelled inputs: a dataset folder, or scenes with polygons drawn over them ---------------------
DataOpt = Annotated[
    Optional[Path], typer.Option("--data", help="Dataset folder in the recipe's data format (or use --scene/--labels).")
]
DataListOpt = Annotated[
    Optional[list[Path]],
    typer.Option(
        "--data",
        help="Dataset folder in the recipe's data format; repeat to pool several (e.g. --data xbd --data "
        "xbd_events). Or use --scene/--labels.",
    ),
]
SceneOpt = Annotated[
    Optional[list[str]],
    typer.Option("--scene", help="A labelled scene (GeoTIFF/COG, any CRS); repeat with --labels, one domain each."),
]
LabelsOpt = Annotated[
    Optional[list[str]],
    typer.Option("--labels", help="Polygons drawn over the --scene before it (any vector format GDAL reads, any CRS)."),
]
PreListOpt = Annotated[
    Optional[list[str]],
    typer.Option("--pre", help="Pair recipes: the pre-event scene of each --scene (any CRS/resolution), in order."),
]
FootprintsListOpt = Annotated[
    Optional[list[str]],
    typer.Option("--footprints", help="Building footprints: one file for all scenes, or one per --scene."),
]
LabelFieldOpt = Annotated[
    str, typer.Option("--label-field", help="The polygons' class attribute: recipe class names or indexes.")
]
BandsOpt = Annotated[
    Optional[Ints],
    typer.Option(parser=parse_bands, metavar="N,N,N", help="1-based scene bands in model order, e.g. 3,2,1."),
]
ScaleOpt = Annotated[
    ScaleArg,
    typer.Option(
        parser=parse_scale,
        metavar="dtype|MIN,MAX",
        help="'dtype' (uint8/255, uint16/65535) or MIN,MAX of the raw values.",
    ),
]
ReplicateOpt = Annotated[bool, typer.Option(help="Repeat a 1-band scene for an RGB model.")]
DTYPE_SCALE = ScaleArg()  # scale by the data type's range


def labelled_inputs(
    data: Optional[Path] | Optional[list[Path]],
    domains: Optional[Names],
    scenes: Optional[list[str]],
    labels: Optional[list[str]],
    footprints: Optional[list[str]],
    label_field: str,
    bands: Optional[Ints],
    scale: ScaleArg,
    replicate_single_band: bool,
    pres: Optional[list[str]] = None,
) -> Inputs:
    """The command's labelled inputs (see :class:`damagemap.data.inputs.Inputs`)."""
    from damagemap.data.inputs import Inputs, SceneOptions, pair_scenes

    if pres and not scenes:
        raise ConfigError("--pre pairs with --scene; a dataset folder brings its own pre-event images")
    pairs = pair_scenes(scenes or [], labels or [], footprints or [], pres or []) if scenes or labels else []
    options = SceneOptions(
        label_field, tuple(bands) if bands else None, tuple(scale) if scale else "dtype", replicate_single_band
    )
    roots = tuple(data) if isinstance(data, list) else ((data,) if data is not None else ())
    return Inputs(roots or None, names_list(domains), pairs, options)
