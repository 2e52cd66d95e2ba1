"""``damagemap severity``: score a folder of street photos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from damagemap.cli.common import (
    EXIT_PARTIAL,
    Degrees,
    DeviceOpt,
    JsonOpt,
    PrecisionOpt,
    clean_errors,
    console,
    parse_degrees,
    print_json,
    run_on,
)

app = typer.Typer()


@app.command()
@clean_errors
def severity(
    model_dir: Annotated[
        Path, typer.Argument(help="Segmentation model directory (e.g. trained with recipes/severity_lite.yaml).")
    ],
    photos: Annotated[Path, typer.Argument(help="Folder of photos (JPEG/PNG/…; EXIF GPS is used when present).")],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Output folder: scores.csv/json, overlays/, severity.gpkg, *.geojson.")
    ],
    depth_model: Annotated[
        Optional[Path],
        typer.Option(
            "--depth-model",
            help="Local Hugging Face depth-estimation folder (Depth Anything, DPT). Default: flat ground-plane depth.",
        ),
    ] = None,
    grid_m: Annotated[
        float,
        typer.Option(
            "--grid-m", help="Aggregate scored points per square cell of this many metres (local UTM); 0 = no grid."
        ),
    ] = 250.0,
    zones: Annotated[
        Optional[Path],
        typer.Option("--zones", help="Polygons (GPKG/GeoJSON/SHP, any CRS) to aggregate over instead of a grid."),
    ] = None,
    degrees: Annotated[
        Optional[Degrees],
        typer.Option(
            "--degrees",
            parser=parse_degrees,
            metavar="CLASS=W,…",
            help="Degree of damage per structure class, e.g. undamaged=0,damaged=0.5,debris=1 "
            "(default: the model recipe's severity section).",
        ),
    ] = None,
    as_json: JsonOpt = False,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
) -> None:
    """Severity of every photo in PHOTOS: depth-weighted damage score in [0, 1], band, pixel score.

    Unreadable files are listed with status 'error' and make the command exit with code 1 after
    all other photos are scored; photos with no structure pixels get the band 'undefined'.
    With --json, stdout gets the counts, the output files and one row per photo (as scores.json).
    """
    from damagemap.artifact import load_model
    from damagemap.progress import make_progress
    from damagemap.severity.batch import score_folder
    from damagemap.severity.depth import DepthModel

    run_device = run_on(device, precision)
    model = load_model(model_dir, device=run_device, precision=precision)
    depth = DepthModel.from_pretrained(depth_model).to(run_device) if depth_model else None
    with make_progress() as progress:
        result = score_folder(
            model,
            photos,
            out_dir,
            depth_model=depth,
            degrees=dict(degrees) if degrees else None,
            grid_m=None if zones else (grid_m or None),
            zones=zones,
            progress=progress,
        )
    ok = [r for r in result.rows if r["status"] == "ok"]
    located = sum(r["lat"] is not None for r in ok)
    undefined = sum(r["score"] is None for r in ok)
    if as_json:
        print_json(
            {
                "photos": len(result.rows),
                "scored": len(ok),
                "with_gps": located,
                "undefined": undefined,
                "errors": result.n_errors,
                "out_dir": str(out_dir),
                "files": [str(p) for p in result.written if p.parent == Path(out_dir)],
                "overlays": str(Path(out_dir) / "overlays"),
                "rows": result.rows,
            }
        )
    console.print(f"scored {len(ok)} photos ({located} with GPS, {undefined} undefined: no structure) → {out_dir}")
    for r in result.rows:
        if r["status"] != "ok":
            message = escape(f"{Path(photos) / r['photo']}: {r['error']}")
            console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    if result.n_errors:
        raise typer.Exit(EXIT_PARTIAL)
