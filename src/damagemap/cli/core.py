"""The core commands: encoders, train, evaluate, predict, experiment, map, demo."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, Optional

import typer
from rich.table import Table

from damagemap.batch_size import resolve_batch
from damagemap.cli.common import (
    DTYPE_SCALE,
    BandsOpt,
    BatchOpt,
    CacheOpt,
    DataListOpt,
    DataOpt,
    DeviceOpt,
    FootprintsListOpt,
    Ints,
    JsonOpt,
    LabelFieldOpt,
    LabelsOpt,
    Names,
    NoCacheOpt,
    PrecisionOpt,
    PreListOpt,
    PreOpt,
    ReplicateOpt,
    ScaleOpt,
    SceneOpt,
    SetOpt,
    ThresholdOpt,
    cache_dir,
    clean_errors,
    console,
    labelled_inputs,
    names_list,
    out,
    parse_ints,
    parse_plain_names,
    parse_variants,
    print_json,
    run_on,
)
from damagemap.errors import ConfigError

if TYPE_CHECKING:
    from damagemap.data.inputs import Inputs
    from damagemap.recipe import Recipe

app = typer.Typer()

DEFAULT_SHOTS = Ints((0, 1, 3, 5, 10))  # 0 = the source-only model, reported beside each n

DomainsOpt = Annotated[
    Optional[Names],
    typer.Option(parser=parse_plain_names, metavar="A,B", help="Comma-separated domains (default: all)."),
]


@app.command()
@clean_errors
def encoders(as_json: JsonOpt = False) -> None:
    """List the registered encoders."""
    from damagemap.encoders import DEFAULT_ENCODER, list_encoders

    if as_json:
        print_json(
            [
                {
                    "name": spec.name,
                    "default": spec.name == DEFAULT_ENCODER,
                    "family": spec.family,
                    "offline_weights": spec.offline_weights,
                    "description": spec.description,
                }
                for spec in list_encoders()
            ]
        )
        return
    table = Table("default", "family", "weights offline", "description")
    table.add_column("name", no_wrap=True, min_width=18)
    table.columns.insert(0, table.columns.pop())
    for spec in list_encoders():
        table.add_row(
            spec.name,
            "*" if spec.name == DEFAULT_ENCODER else "",
            spec.family,
            "yes" if spec.offline_weights else "checkpoint=PATH",
            spec.description,
        )
    out.print(table)


@app.command()
@clean_errors
def train(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML (see recipes/).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Model directory to write.")],
    data: DataOpt = None,
    domains: DomainsOpt = None,
    val_domains: Annotated[
        Optional[Names],
        typer.Option(parser=parse_plain_names, metavar="A,B", help="Domains used only for epoch selection."),
    ] = None,
    scenes: SceneOpt = None,
    labels: LabelsOpt = None,
    footprints: FootprintsListOpt = None,
    pre_scenes: PreListOpt = None,
    label_field: LabelFieldOpt = "damage",
    bands: BandsOpt = None,
    scale: ScaleOpt = DTYPE_SCALE,
    replicate_single_band: ReplicateOpt = False,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Override the recipe's epoch count.")] = None,
    overrides: SetOpt = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
) -> None:
    """Train a model (frozen encoder + head) and write its artifact directory.

    Train on a dataset folder (--data) or on the event's own scenes with the polygons drawn over
    them (--scene post.tif --labels polygons.gpkg, repeatable: each pair is a domain). Unlabelled
    scene area is ignored; a background-class polygon over the checked area makes its unlabelled
    pixels background.
    """
    from damagemap.artifact import check_model_out, model_out_lock, save_model
    from damagemap.data.inputs import load_labelled
    from damagemap.progress import make_progress
    from damagemap.recipe import apply_overrides, load_recipe
    from damagemap.training.pipeline import evaluate_model, train_model

    check_model_out(out_dir)  # before any work: training may take hours
    with model_out_lock(out_dir):  # a second run on this --out is refused now, not after training
        run_device = run_on(device, precision)
        r = apply_overrides(load_recipe(recipe), overrides)
        if epochs is not None:
            r.train.epochs = epochs
        inputs = labelled_inputs(
            data, domains, scenes, labels, footprints, label_field, bands, scale, replicate_single_band, pre_scenes
        )
        if val_domains and inputs.scenes:
            raise ConfigError("--val-domains selects dataset folders; with --scene, epochs are chosen on a hold-out")
        samples = load_labelled(r, inputs)
        val = load_labelled(r, replace(inputs, domains=tuple(val_domains))) if val_domains else None
        cache_root = cache_dir(cache, no_cache)
        with make_progress() as progress:
            model, result = train_model(
                r, samples, val, cache_dir=cache_root, progress=progress, device=run_device, precision=precision
            )
            if val:
                model.metrics["validation"] = evaluate_model(model, val, cache_root, progress)
        for note in model.metrics.get("notes", []):
            console.print(f"note: {note}", highlight=False)
        save_model(model, out_dir)
    console.print(
        f"trained {r.name} on {len(samples)} samples; best epoch {result.best_epoch} "
        f"(val score {result.best_score:.3f}) → {out_dir}"
    )
    if counts := model.metrics.get("parameters"):
        console.print(
            f"trainable parameters: {counts['trainable']:,} of {counts['total']:,} "
            f"({100 * counts['share']:.2f} %; encoder-side {counts['encoder_trainable']:,})"
        )


@app.command()
@clean_errors
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="Model directory written by `damagemap train`.")],
    data: DataListOpt = None,
    domains: DomainsOpt = None,
    scenes: SceneOpt = None,
    labels: LabelsOpt = None,
    footprints: FootprintsListOpt = None,
    pre_scenes: PreListOpt = None,
    label_field: LabelFieldOpt = "damage",
    bands: BandsOpt = None,
    scale: ScaleOpt = DTYPE_SCALE,
    replicate_single_band: ReplicateOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    building_rule: Annotated[
        Optional[Literal["majority", "mean"]],
        typer.Option(
            "--building-rule",
            help="Per-building damage from pixels: majority (half or more pixels damaged) or mean "
            "(mean P(damage) above the threshold). Default: the recipe's scoring.building_rule (majority).",
        ),
    ] = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
) -> None:
    """Evaluate a model on labelled data (--data, or --scene/--labels pairs): one row per domain plus the total.

    With building footprints (xBD polygons, a buildings/ folder, or --footprints) it adds building-level
    precision, recall and F1 of "damaged" (and the xView2 score for multi-grade recipes).
    """
    from damagemap.artifact import load_model
    from damagemap.data.inputs import load_labelled
    from damagemap.progress import make_progress
    from damagemap.training.pipeline import evaluate_model

    model = load_model(model_dir, device=run_on(device, precision), precision=precision)
    inputs = labelled_inputs(
        data, domains, scenes, labels, footprints, label_field, bands, scale, replicate_single_band, pre_scenes
    )
    samples = load_labelled(model.recipe, inputs)
    with make_progress() as progress:
        scores = evaluate_model(model, samples, cache_dir(cache, no_cache), progress, building_rule=building_rule)
    if as_json:
        print_json(scores)
        return
    keys = ["miou", "damage_iou", "f1", "precision", "recall"]
    heads = ["mIoU", "damage IoU", "F1", "precision", "recall"]
    if any("building_f1" in s for s in scores.values()):
        keys += ["n_buildings", "building_precision", "building_recall", "building_f1"]
        heads += ["buildings", "bldg precision", "bldg recall", "bldg F1"]
    if any("xview2" in s for s in scores.values()):
        keys, heads = [*keys, "xview2"], [*heads, "xView2"]
    title = f"{model.recipe.name} on {', '.join(map(str, data or [])) or 'the scenes'}"
    table = Table("domain", "samples", *heads, title=title)
    for domain, s in scores.items():
        table.add_row(domain, str(s["n_samples"]), *(_cell(s.get(k)) for k in keys))
    out.print(table)


def _cell(value: float | int | None) -> str:
    """A table cell: counts as integers, scores with 3 decimals, missing or NaN as n/a."""
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    return str(value) if isinstance(value, int) else f"{value:.3f}"


@app.command()
@clean_errors
def predict(
    model_dir: Annotated[Path, typer.Argument(help="Model directory.")],
    images: Annotated[list[Path], typer.Argument(help="Image files (PNG, JPEG, TIFF; Landslide4Sense .h5).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for <id>_mask.png and <id>_prob.png.")],
    threshold: ThresholdOpt = None,
    batch: BatchOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
    pre_images: Annotated[
        Optional[list[Path]],
        typer.Option("--pre", help="Pair models: the pre-event image of each image, in the same order (repeat)."),
    ] = None,
) -> None:
    """Predict damage masks and probability images for individual image files."""
    from damagemap.artifact import load_model
    from damagemap.data.landslide4sense import read_image_or_h5 as read_image
    from damagemap.io_atomic import check_output_folder
    from damagemap.predict import predict_files
    from damagemap.progress import make_progress

    check_output_folder(out_dir)
    model = load_model(model_dir, device=run_on(device, precision), precision=precision)
    batch = resolve_batch(batch, precision)
    with make_progress() as progress:
        written = predict_files(
            model, images, out_dir, read_image, progress, threshold=threshold, batch=batch, pre_paths=pre_images
        )
    console.print(f"wrote {len(written)} masks to {out_dir}")


@app.command()
@clean_errors
def experiment(
    recipes: Annotated[list[Path], typer.Argument(help="One or more recipe YAML files to compare.")],
    data: DataListOpt = None,
    scenes: SceneOpt = None,
    labels: LabelsOpt = None,
    footprints: FootprintsListOpt = None,
    pre_scenes: PreListOpt = None,
    label_field: LabelFieldOpt = "damage",
    bands: BandsOpt = None,
    scale: ScaleOpt = DTYPE_SCALE,
    replicate_single_band: ReplicateOpt = False,
    protocol: Annotated[
        Literal["lodo", "ssdc", "kfold", "fewshot"], typer.Option(help="lodo | ssdc | kfold | fewshot")
    ] = "lodo",
    out_dir: Annotated[Path, typer.Option("--out", help="Experiment folder (resumable).")] = Path("experiment"),
    sources: Annotated[
        Optional[Names],
        typer.Option(parser=parse_plain_names, metavar="A,B", help="SSDC source domains, comma-separated."),
    ] = None,
    shots: Annotated[
        Ints, typer.Option(parser=parse_ints, metavar="N,N", help="Few-shot sizes, comma-separated (0 = source-only).")
    ] = DEFAULT_SHOTS,
    targets: Annotated[
        Optional[Names],
        typer.Option(parser=parse_plain_names, metavar="A,B", help="Target domains (default: every domain)."),
    ] = None,
    variants: Annotated[
        Optional[Names],
        typer.Option(
            parser=parse_variants,
            metavar="V,V",
            help="Run every recipe as each of these variants: plain,pc,dpt,pc+dpt[,dpt-adjacency,…] (missing "
            "terms at the paper's weights), atl-prompt,atl-prompt-nores,atl-block,atl-block-nores[,atl-off] "
            "(ViT recipes), or recipe keys key=value (e.g. eval.tta=flip, encoder.levels=[1,2,3,4,5], "
            "plain+train.sampler=balanced: a named variant first, then overrides joined by +); a variant "
            "that cannot apply to a recipe is refused.",
        ),
    ] = None,
    folds: Annotated[int, typer.Option("--folds", "-k", min=2, help="Folds per domain.")] = 5,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Override every recipe's epoch count.")] = None,
    domains: Annotated[
        Optional[Names], typer.Option(parser=parse_plain_names, metavar="A,B", help="Only read these domains.")
    ] = None,
    overrides: SetOpt = None,
    report_only: Annotated[
        bool, typer.Option("--report-only", help="Train nothing: rebuild the reports from the folds finished so far.")
    ] = False,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
) -> None:
    """Train and evaluate recipes under a protocol; write results.{json,csv,md,png}.

    Finished folds are kept in OUT/folds/ and reused when the same command is run again.
    """
    from damagemap.data.inputs import load_labelled
    from damagemap.io_atomic import check_output_folder
    from damagemap.progress import make_progress
    from damagemap.protocols.report import markdown_table, write_reports
    from damagemap.protocols.runner import make_folds, run_experiment
    from damagemap.protocols.splits import scarce_domains, scarce_note
    from damagemap.protocols.variants import expand_variants
    from damagemap.recipe import apply_overrides, load_recipe

    check_output_folder(out_dir)
    run_device = run_on(device, precision)
    loaded = [apply_overrides(load_recipe(p), overrides) for p in recipes]
    if epochs is not None:
        for r in loaded:
            r.train.epochs = epochs
    if variants:  # every recipe as every variant; one that cannot apply is refused before loading data
        loaded = expand_variants(loaded, list(variants))
    first = loaded[0]
    inputs = labelled_inputs(
        data, domains, scenes, labels, footprints, label_field, bands, scale, replicate_single_band, pre_scenes
    )
    scarce = _scarce_before_reading(first, inputs, folds, protocol, targets, sources)
    if scarce:
        console.print(f"note: {scarce_note(scarce, folds)}", highlight=False)
    samples = load_labelled(first, inputs, pre=any(r.input.pair for r in loaded))
    if scarce is None and (scarce := scarce_domains(Counter(s.domain for s in samples), folds)):
        console.print(f"note: {scarce_note(scarce, folds)}", highlight=False)  # a format without a listing
    fold_list = make_folds(
        samples,
        protocol,
        tuple(first.damage_classes),
        folds,
        names_list(sources),
        list(shots),
        names_list(targets),
        first.train.seed,
        first.fewshot,
        first.train.val_fraction,
    )
    with make_progress() as progress:
        results = run_experiment(
            loaded,
            samples,
            fold_list,
            out_dir,
            cache_dir(cache, no_cache),
            progress,
            compute=not report_only,
            device=run_device,
            precision=precision,
        )
    summary = write_reports(
        results,
        out_dir,
        f"{protocol} on {', '.join(map(str, data or [])) or ', '.join(p.scene for p in inputs.scenes)}",
    )
    from damagemap.protocols.report import experiment_notes

    by_note: dict[str, list[str]] = {}
    for recipe_name, recipe_notes in experiment_notes(results).items():
        for note in recipe_notes:
            by_note.setdefault(note, []).append(recipe_name)
    for note, names in by_note.items():  # each note once per run, not once per fold or recipe
        console.print(f"note ({', '.join(names)}): {note}", highlight=False)
    typer.echo(markdown_table(summary))
    console.print(f"results → {out_dir}/results.{{json,csv,md,png}}")


def _scarce_before_reading(
    recipe: Recipe, inputs: Inputs, k: int, protocol: str, targets: Names | None, sources: Names | None
) -> dict[str, int] | None:
    """Scarce domains from a listing of the data folders (no image read); None without a listing.

    Refuses, before any loading, a protocol that would have to test on a scarce domain.
    """
    from damagemap.data.inputs import data_roots
    from damagemap.data.listing import count_samples
    from damagemap.protocols.splits import check_scarce_targets

    if inputs.data is None:
        return None
    counts = count_samples(data_roots(inputs), recipe.data, inputs.domains)
    if not counts:
        return None
    named = names_list(targets) if protocol != "ssdc" else None
    return check_scarce_targets(counts, k, protocol, named, names_list(sources) if protocol == "ssdc" else None)


@app.command("map")
@clean_errors
def map_command(
    model_dir: Annotated[Path, typer.Argument(help="Model directory.")],
    scene: Annotated[
        str,
        typer.Argument(
            help="Post-event GeoTIFF / COG of any size: a local file; a URL (https://…, s3://…, gs://…, az://…); "
            "a GDAL path (/vsicurl/https://…, /vsis3/bucket/key.tif, /vsizip/…); or a STAC item (local or "
            "http(s) .json: its --asset, default 'visual', else the first GeoTIFF/COG asset).",
            show_default=False,
        ),
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Local output folder (COGs, GeoPackage, CSV).")],
    asset: Annotated[
        Optional[str], typer.Option(help="STAC item only: the asset to map (default: visual, else the first COG).")
    ] = None,
    pre: PreOpt = None,
    footprints: Annotated[Optional[Path], typer.Option(help="Building footprints (GeoJSON/GPKG/SHP, any CRS).")] = None,
    id_column: Annotated[
        Optional[str],
        typer.Option(
            "--id-column",
            help="Footprint id column of --footprints (default: the 1-based row number, equal to the "
            "GeoPackage fid of the buildings layer).",
        ),
    ] = None,
    zones: Annotated[Optional[Path], typer.Option(help="Zone polygons for statistics (instead of a grid).")] = None,
    grid_m: Annotated[
        float, typer.Option("--grid-m", min=0, help="Statistics grid cell size in metres (0 = none).")
    ] = 250.0,
    workers: Annotated[int, typer.Option(min=0, help="Dask workers on this machine (0 = in process).")] = 0,
    scheduler: Annotated[Optional[str], typer.Option(help="Address of an existing Dask scheduler.")] = None,
    scheduler_timeout: Annotated[
        float, typer.Option("--scheduler-timeout", min=0.1, help="Seconds to wait for --scheduler to answer.")
    ] = 30.0,
    dashboard: Annotated[
        bool, typer.Option("--dashboard", help="With --workers: serve Dask's dashboard on 127.0.0.1 (off by default).")
    ] = False,
    tile: Annotated[
        Optional[int], typer.Option(min=16, help="Tile size in scene pixels (default: as trained).")
    ] = None,
    overlap: Annotated[
        int,
        typer.Option(
            min=0,
            help="Overlap between tiles in pixels, blended with a cosine ramp (8 at 256 px tiles: the model "
            "sees ~1.07-1.11x the scene's pixels; 16: ~1.14-1.22x, smoother seams).",
        ),
    ] = 8,
    batch: BatchOpt = None,
    bands: BandsOpt = None,
    scale: ScaleOpt = DTYPE_SCALE,
    replicate_single_band: ReplicateOpt = False,
    threshold: ThresholdOpt = None,
    tta: Annotated[
        bool,
        typer.Option(
            "--tta",
            help="Flip test-time augmentation: average each tile's probabilities over its 4 flips "
            "(4x the encoder work; default: the recipe's eval.tta).",
        ),
    ] = False,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
    runtime: Annotated[
        Literal["torch", "onnx"],
        typer.Option(
            help="torch, or onnx: the model exported to ONNX Runtime (~2 s; CPU, fp32; about 1.6-2x faster "
            "per tile here; needs pip install 'damagemap[onnx]')."
        ),
    ] = "torch",
    report: Annotated[
        bool, typer.Option("--report/--no-report", help="Write OUT/report.html (self-contained, printable).")
    ] = True,
    viewer: Annotated[
        bool, typer.Option("--viewer/--no-viewer", help="Write OUT/viewer.html (offline interactive map).")
    ] = True,
    basemap: Annotated[
        Optional[str],
        typer.Option(help="XYZ tile URL template ({z}/{x}/{y}) for a base map under the viewer (needs network)."),
    ] = None,
    suggestions: Annotated[
        Optional[Path], typer.Option(help="A `damagemap suggest` GeoPackage to show on the report and viewer.")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace all outputs of an earlier run with other parameters in OUT.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Map a scene into damage rasters, polygons, per-building damage and zonal statistics.

    Also writes QGIS styles (.qml, and layer_styles in damage.gpkg), report.html and viewer.html.
    Mapping into a folder holding outputs of other parameters is refused unless --overwrite.

    Remote scenes are read window by window (never downloaded whole) with short HTTP timeouts
    (GDAL_HTTP_TIMEOUT=20 s unless set); credentials come from GDAL's usual options (AWS_*, …).
    """
    from damagemap.artifact import read_manifest
    from damagemap.geo.sources import resolve_scene
    from damagemap.io_atomic import check_output_folder
    from damagemap.mapping import MapOptions, map_scene
    from damagemap.progress import make_progress
    from damagemap.tile_predictor import ModelTilePredictor

    check_output_folder(out_dir)
    run_device = run_on(device, precision)  # clear errors before anything else
    batch = resolve_batch(batch, precision)
    read_manifest(model_dir)
    source = resolve_scene(scene, asset)  # a STAC item's JSON is read (and its asset picked) here
    if source.href is not None:
        console.print(f"scene: {source.name} → {source.href}", highlight=False)
    predictor = ModelTilePredictor(
        model_dir, precision=precision, device=str(run_device), tta="flip" if tta else None, runtime=runtime
    )
    spec = predictor.scene_spec(bands, tuple(scale) if scale else "dtype", replicate_single_band)
    options = MapOptions(
        tile=tile or predictor.native_tile,
        overlap=overlap,
        batch=batch,
        spec=spec,
        threshold=predictor.model.threshold if threshold is None else threshold,
        workers=workers,
        scheduler=scheduler,
        scheduler_timeout=scheduler_timeout,
        dashboard=dashboard,
        footprints=footprints,
        id_column=id_column,
        zones=zones,
        grid_m=grid_m or None,
        pre=resolve_scene(pre) if pre is not None else None,
        overwrite=overwrite,
    )
    if suggestions is not None and not suggestions.is_file():
        raise ConfigError(f"--suggestions {suggestions}: file not found (a GeoPackage from `damagemap suggest`)")
    with make_progress() as progress:
        result = map_scene(predictor, source, out_dir, options, progress)
    if report:
        from damagemap.report.html import write_html_report

        write_html_report(out_dir, result, source, f"damagemap: {source.name}", suggestions=suggestions)
    if viewer:
        from damagemap.report.viewer import write_viewer

        write_viewer(out_dir, result, title=f"damagemap: {source.stem}", suggestions=suggestions, basemap=basemap)
    st = result.stats
    if as_json:
        print_json({**json.loads(result.summary.read_text()), "seconds": st["seconds"], "files": result.paths()})
    console.print(
        f"mapped {st['width']}x{st['height']} px in {st['seconds']:.1f} s: damaged area "
        f"{st['damaged_area_m2']:.0f} m², {st.get('damaged_buildings', 0)} damaged buildings → {out_dir}"
    )


@app.command()
@clean_errors
def suggest(
    model_dir: Annotated[Path, typer.Argument(help="Model directory.")],
    scene: Annotated[str, typer.Argument(help="The event's scene: as for `damagemap map` (file, URL, STAC item).")],
    out_path: Annotated[
        Path, typer.Option("--out", help="GeoPackage of the suggested tiles (a PNG is written beside it).")
    ],
    asset: Annotated[Optional[str], typer.Option(help="STAC item only: the asset to read (as for `map`).")] = None,
    pre: PreOpt = None,
    n: Annotated[int, typer.Option("--n", min=1, help="How many tiles to suggest.")] = 20,
    labels: Annotated[
        Optional[str], typer.Option("--labels", help="Polygons already drawn: their tiles are not suggested again.")
    ] = None,
    map_dir: Annotated[
        Optional[Path], typer.Option("--map-dir", help="An existing `damagemap map` output of this scene to reuse.")
    ] = None,
    tile: Annotated[
        Optional[int], typer.Option(min=16, help="Candidate tile size in scene pixels (default: as trained).")
    ] = None,
    batch: BatchOpt = None,
    bands: BandsOpt = None,
    scale: ScaleOpt = DTYPE_SCALE,
    replicate_single_band: ReplicateOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the suggestions as JSON on stdout.")] = False,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
) -> None:
    """Which tiles to label next: the most uncertain tiles that are unlike what is already labelled.

    Scores candidate tiles by the model's predictive entropy and by their distance, in encoder
    feature space, to the labelled tiles and to each other (greedy k-center), and writes them as
    polygons (rank, score, uncertainty, distance) in the scene CRS plus a PNG overview. Draw
    polygons over the top-ranked tiles, add them to --labels, train again.
    """
    from damagemap.active import SuggestOptions, suggest_tiles, write_suggestions
    from damagemap.artifact import read_manifest
    from damagemap.geo.sources import resolve_scene
    from damagemap.progress import make_progress
    from damagemap.tile_predictor import ModelTilePredictor

    run_device = run_on(device, precision)
    batch = resolve_batch(batch, precision)
    read_manifest(model_dir)
    source = resolve_scene(scene, asset)
    predictor = ModelTilePredictor(model_dir, precision=precision, device=str(run_device))
    options = SuggestOptions(
        n=n,
        tile=tile,
        batch=batch,
        spec=predictor.scene_spec(bands, tuple(scale) if scale else "dtype", replicate_single_band),
        labels=labels,
        map_dir=map_dir,
        pre=resolve_scene(pre) if pre is not None else None,
    )
    with make_progress() as progress:
        tiles = suggest_tiles(predictor, source, options, progress)
    written = write_suggestions(tiles, out_path, source)
    if as_json:
        rows = tiles.drop(columns="geometry").to_dict(orient="records")
        out.print_json(json.dumps({"scene": scene, "outputs": [str(p) for p in written], "tiles": rows}, default=float))
    console.print(
        f"{len(tiles)} tiles to label next of {tiles.attrs['candidates']} candidates "
        f"({tiles.attrs['labelled_tiles']} already labelled) → {written[0]} and {written[1].name}"
    )


@app.command()
@clean_errors
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder (event/, model/, map/, report.html).")] = Path(
        "demo-out"
    ),
    size: Annotated[int, typer.Option(min=256, help="Scene width and height in pixels (0.5 m pixels).")] = 1024,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Training epochs (default: the demo recipe's).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated event.")] = 0,
) -> None:
    """End-to-end demo, offline, on a generated event.

    Generate a georeferenced post-event scene with footprints and a responder's label polygons on
    its west part, adapt the embedded model on them, map the whole scene (COGs, damage.gpkg,
    per-building and 100 m grid tables), check the held-out east buildings against the
    generator's truth and write OUT/report.html.
    """
    from damagemap.demo import DEMO_EPOCHS, run_demo

    run_demo(out_dir, size=size, epochs=epochs or DEMO_EPOCHS, seed=seed)
