"""``damagemap video``: train, evaluate, run and compare (cross-scene) MSNet / Mask R-CNN on drone frames and video."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from rich.table import Table

from damagemap.cli.common import (
    DeviceOpt,
    Names,
    QuietOpt,
    clean_errors,
    console,
    names_list,
    out,
    parse_datetime,
    parse_plain_names,
    print_json,
    run_on,
)

app = typer.Typer(
    help="Drone-video damage instances (MSNet: hierarchical RPN + score refinement).", no_args_is_help=True
)


@app.callback()
def _group(quiet: QuietOpt = False) -> None:
    if quiet:  # `damagemap video --quiet …` (same as `damagemap --quiet video …`, which this must not undo)
        from damagemap.progress import set_quiet

        set_quiet(True)


SetOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--set", help="Override a recipe value, e.g. --set train.iterations=50 --set model.gate=iou (repeatable)."
    ),
]


@app.command()
@clean_errors
def convert_xbd(
    root: Annotated[Path, typer.Argument(help="xBD folder with images/ and labels/.")],
    out_json: Annotated[Path, typer.Option("--out", help="COCO JSON to write.")],
    tiles: Annotated[
        Optional[Names],
        typer.Option(parser=parse_plain_names, metavar="T,T", help="Comma-separated tile names (default: all)."),
    ] = None,
) -> None:
    """Convert xBD post-disaster labels to an ISBDA-like COCO file (minor→Slight, major→Severe, destroyed→Debris)."""
    from damagemap.video.xbd_convert import xbd_to_coco

    doc = xbd_to_coco(root, out_json, names_list(tiles))
    console.print(
        f"{len(doc['images'])} images, {len(doc['buildings'])} buildings, "
        f"{len(doc['annotations'])} damage instances → {out_json}"
    )


@app.command()
@clean_errors
def train(
    recipe: Annotated[
        Path, typer.Argument(help="Video recipe YAML (recipes/video/msnet.yaml, recipes/video/maskrcnn_baseline.yaml).")
    ],
    data: Annotated[Path, typer.Option("--data", help="COCO instances JSON (ISBDA layout).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Model directory to write.")],
    images: Annotated[Optional[Path], typer.Option(help="Image folder (default: the JSON's folder).")] = None,
    videos: Annotated[
        Optional[list[Path]], typer.Option("--video", help="Video or frame folder to train the SRN on (repeatable).")
    ] = None,
    checkpoint: Annotated[
        Optional[Path], typer.Option(help="Backbone checkpoint (torchvision resnet50 or maskrcnn state dict).")
    ] = None,
    overrides: SetOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Train the detector on COCO instances (and the SRN on video-frame triplets) and save it.

    SRN frames are sampled densely enough for positives within srn.positive_s (stride from the
    video's frame rate, see the recipe's srn section); when a video gives no triplet (e.g. a
    folder of frames at 1 fps has no positive pair) this says so and the model's metrics record it.
    """
    import torch

    from damagemap.artifact import check_model_out, model_out_lock
    from damagemap.progress import make_progress
    from damagemap.video.artifact import save_video_model
    from damagemap.video.coco import CocoDamageDataset
    from damagemap.video.config import apply_video_overrides, load_video_recipe
    from damagemap.video.model import build_msnet
    from damagemap.video.train import train_detector, train_srn_on_videos

    check_model_out(out_dir)  # before any work
    with model_out_lock(out_dir):  # a second run on this --out is refused now, not after training
        run_device = run_on(device)
        r = apply_video_overrides(load_video_recipe(recipe), overrides)
        if checkpoint is not None:
            r.model.backbone_checkpoint = str(checkpoint)
        dataset = CocoDamageDataset(data, r.classes, images)
        torch.manual_seed(r.train.seed)
        model = build_msnet(r).to(run_device)
        metrics: dict = {"train_images": len(dataset)}
        with make_progress() as progress:
            history = train_detector(model, dataset, r.train, progress)
            metrics["final_loss"] = history[-1]
            srn = train_srn_on_videos(model, videos or [], r.srn, r.video, r.train.seed, progress)
        metrics["srn"] = srn
        warn_srn(srn, r.refine.enabled)
        save_video_model(model, r, out_dir, metrics)
    console.print(
        f"trained {r.name} ({r.model.rpn} RPN) on {len(dataset)} images, {r.train.iterations} "
        f"iterations, final loss {history[-1]['loss']:.3f}; SRN steps {srn['steps']} → {out_dir}"
    )


def warn_srn(srn: dict, refine: bool) -> None:
    """Warn on stderr about each video the SRN could not train on, and when it stays random."""
    for run in srn["videos"]:
        if run["problem"]:
            console.print(f"[yellow]warning:[/] SRN not trained on {run['video']}: {run['problem']}", highlight=False)
    if not srn["trained"] and refine:
        why = "no --video given" if not srn["videos"] else "no video gave a triplet"
        console.print(
            f"[yellow]warning:[/] the SRN stays untrained (random weights; {why}): score refinement will "
            "compare random embeddings",
            highlight=False,
        )


@app.command()
@clean_errors
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="Model directory written by `damagemap video train`.")],
    data: Annotated[Path, typer.Option("--data", help="COCO instances JSON with ground truth.")],
    images: Annotated[Optional[Path], typer.Option(help="Image folder (default: the JSON's folder).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    device: DeviceOpt = "auto",
) -> None:
    """COCO mask and box AP, AP@0.25 and AP@0.5 per class, without and with score refinement.

    Refinement runs across adjacent frames: images ordered by video_id + frame_id, else by a
    time/timestamp field or a time in the file name (damagemap.video.sequence); images without
    an order are evaluated without refinement, and the output says how many.
    """
    from damagemap.progress import make_progress
    from damagemap.video.artifact import load_video_model
    from damagemap.video.coco import CocoDamageDataset
    from damagemap.video.evaluate import evaluate_detector

    run_device = run_on(device)
    model, recipe, manifest = load_video_model(model_dir)
    model.to(run_device)
    dataset = CocoDamageDataset(data, recipe.classes, images)
    with make_progress() as progress:
        scores = evaluate_detector(model, dataset, recipe.refine, progress)
    srn_note = untrained_srn_note(manifest.get("metrics", {}))
    if recipe.refine.enabled and srn_note:
        scores["refinement"]["notes"].append(srn_note)
    if as_json:
        print_json(scores)
        return
    for kind, label in (("segm", "mask"), ("bbox", "box")):
        raw, refined = scores["raw"][kind], scores["refined"][kind]
        title = f"{recipe.name} {label} AP on {data.name}"
        caption = "raw = without, refined = with score refinement"
        table = Table("class", "scores", "AP", "AP@0.25", "AP@0.5", title=title, caption=caption)
        for name in ["all", *raw["per_class"]]:
            for variant, s in (("raw", raw), ("refined", refined)):
                row = s if name == "all" else s["per_class"][name]
                table.add_row(
                    name if variant == "raw" else "", variant, *(f"{row[k]:.4f}" for k in ("AP", "AP25", "AP50"))
                )
        out.print(table)
    r = scores["refinement"]
    out.print(
        f"refinement: {r['images_refined']} of {scores['n_images']} images in {r['videos']} videos "
        f"(c0={r['c0']}, c1={r['c1']}), {r['scores_changed']} scores changed",
        highlight=False,
    )
    for note in r["notes"]:
        out.print(f"note: {note}", highlight=False)


def untrained_srn_note(metrics: dict) -> str | None:
    """A warning when a model's metrics say its SRN was never trained (random embeddings)."""
    srn = metrics.get("srn")
    trained = srn.get("trained") if isinstance(srn, dict) else metrics.get("srn_loss") is not None
    if trained:
        return None
    why = srn.get("problem") if isinstance(srn, dict) else None
    return "the model's SRN was never trained" + (f" ({why})" if why else "") + ": refinement used random embeddings"


@app.command()
@clean_errors
def experiment(
    recipes: Annotated[list[Path], typer.Argument(help="One or more video recipe YAML files to compare.")],
    data: Annotated[Path, typer.Option("--data", help="COCO instances JSON holding every scene.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Experiment folder (resumable).")],
    splits: Annotated[int, typer.Option("--splits", help="Random scene splits.")] = 3,
    test_share: Annotated[float, typer.Option("--test-share", help="Share of the scenes tested on per split.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the scene splits.")] = 42,
    scene: Annotated[
        Literal["auto", "video_id", "event", "tile"],
        typer.Option(help="Scene of an image: video_id, xBD event or xBD tile (auto: video_id, else event)."),
    ] = "auto",
    images: Annotated[Optional[Path], typer.Option(help="Image folder (default: the JSON's folder).")] = None,
    videos: Annotated[
        Optional[Path],
        typer.Option(
            "--videos", help="Folder of SRN training videos named after the scenes (<scene>.mp4 or a <scene>/ folder)."
        ),
    ] = None,
    overrides: SetOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Cross-scene protocol: train and evaluate each recipe on random scene splits; mean ± std.

    Mask and box AP, AP@0.25 and AP@0.5 without and with score refinement, written to
    OUT/results.json and OUT/results.md. Finished splits are kept in OUT/splits/ and reused
    when the same command runs again.
    """
    from damagemap.progress import make_progress
    from damagemap.video.coco import load_coco
    from damagemap.video.config import apply_video_overrides, load_video_recipe
    from damagemap.video.experiment import (
        image_scenes,
        run_video_experiment,
        scene_splits,
        scene_videos,
        summarise,
        write_results,
    )

    run_device = run_on(device)
    loaded = [apply_video_overrides(load_video_recipe(p), overrides) for p in recipes]
    key, scene_of = image_scenes(load_coco(data)["images"], scene, data)
    split_list = scene_splits(scene_of, splits, test_share, seed, data, key)
    found = scene_videos(videos, sorted(set(scene_of.values()))) if videos is not None else {}
    refining = [r.name for r in loaded if r.refine.enabled]
    if refining and not found:
        why = "no --videos given" if videos is None else f"no video in {videos} is named after a scene"
        console.print(
            f"[yellow]warning:[/] {why}: the SRN of {', '.join(refining)} stays random, so 'with refinement' "
            "compares random embeddings",
            highlight=False,
        )
    with make_progress() as progress:
        records, computed = run_video_experiment(loaded, data, split_list, out_dir, images, found, progress, run_device)
    summary = summarise(records)
    title = f"cross-scene: {splits} splits by {key}, test share {test_share}, seed {seed}, on {data.name}"
    protocol = {"data": str(data), "splits": splits, "test_share": test_share, "seed": seed, "scene": key}
    write_results(summary, records, out_dir, title, protocol)
    typer.echo((Path(out_dir) / "results.md").read_text())
    console.print(
        f"results → {out_dir}/results.{{json,md}} ({computed} splits computed, {len(records) - computed} reused)"
    )


@app.command()
@clean_errors
def predict(
    model_dir: Annotated[Path, typer.Argument(help="Model directory.")],
    video: Annotated[Path, typer.Argument(help="Video file (any format FFmpeg decodes) or folder of frames.")],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for detections.json, damage_points.gpkg, heatmap.png.")
    ],
    track: Annotated[Optional[Path], typer.Option("--gps", help="GPS track: .gpx or .csv (time,lat,lon).")] = None,
    every: Annotated[
        Optional[int], typer.Option(min=1, help="Use every k-th frame (default: the recipe's video.every).")
    ] = None,
    video_start: Annotated[
        Optional[datetime],
        typer.Option(
            parser=parse_datetime,
            metavar="ISO-8601",
            help="ISO date-time of the first frame, for tracks with absolute times (default: the video's "
            "creation_time tag, else the first track point).",
        ),
    ] = None,
    no_refine: Annotated[bool, typer.Option("--no-refine", help="Keep the raw confidences.")] = False,
    device: DeviceOpt = "auto",
) -> None:
    """Detect damage on a flight, refine scores across adjacent frames, map them along the GPS track."""
    from damagemap.progress import make_progress
    from damagemap.video.artifact import load_video_model
    from damagemap.video.frames import video_start_time
    from damagemap.video.predict import predict_video

    run_device = run_on(device)
    model, recipe, _ = load_video_model(model_dir)
    model.to(run_device)
    recipe.refine.enabled = recipe.refine.enabled and not no_refine
    start = video_start
    if start is None and track is not None:
        start = video_start_time(video)
    with make_progress() as progress:
        summary = predict_video(model, recipe, video, out_dir, track, every, start, progress)
    console.print(
        f"{summary['frames']} frames, {summary['detections']} detections "
        f"({summary['refined']} scores refined) → {out_dir}"
    )
