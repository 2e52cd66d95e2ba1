"""Scene mapping at scale: wall time, megapixels/s and peak RSS as the scene grows.

    python -m benchmarks.mapping_scale --model MODEL_DIR [--sizes 25,100,400] [--workers 0,2]
        [--repeats 3] [--no-compare]

Without ``--model`` a small lite model is trained on synthetic tiles first (about a minute).
Each mapping runs in its own process so its peak RSS is its own. Scenes are written block by
block from one generated 1024² event, so even the 400 MP scene never sits in memory. Also
prints the encoder+head throughput on as many tiles as the map ran, outside the pipeline (run
right before and right after mapping the smallest scene again, so a shared machine's drift
hits both alike; the median of ``--repeats`` such triples), fp32 vs bf16
autocast (time and pixel agreement of the class maps; CPUs with native bf16 only) and, when
onnxruntime is installed, the map with ``--runtime onnx``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine_header, peak_rss_mb, print_table


def write_scene(path: Path, megapixels: float, seed: int = 0) -> int:
    """A uint8 RGB GeoTIFF of about ``megapixels`` MP tiled from one generated event."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from damagemap.data.synthetic import generate_scene

    side = int(math.sqrt(megapixels * 1e6)) // 256 * 256
    block = (generate_scene(1024, 1024, seed=seed).image * 255).astype(np.uint8)
    profile = {
        "driver": "GTiff",
        "width": side,
        "height": side,
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:32616",
        "transform": from_origin(500000, 4000000, 0.5, 0.5),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
    }
    with rasterio.open(path, "w", **profile) as dst:
        for y in range(0, side, 1024):
            for x in range(0, side, 1024):
                h, w = min(1024, side - y), min(1024, side - x)
                dst.write(block[:, :h, :w], window=Window(x, y, w, h))
    return side


def _child(args: argparse.Namespace) -> None:
    """Map one scene in this process and print a JSON line with time and peak RSS."""
    from damagemap.batch_size import default_batch
    from damagemap.mapping import MapOptions, map_scene
    from damagemap.tile_predictor import ModelTilePredictor

    predictor = ModelTilePredictor(args.model, precision=args.precision, runtime=args.runtime)
    predictor(np.zeros((1, 3, predictor.native_tile, predictor.native_tile), np.float32))  # model loaded
    loaded_mb = peak_rss_mb()
    t = time.perf_counter()
    options = MapOptions(
        tile=predictor.native_tile,
        overlap=args.overlap,
        batch=default_batch(args.precision),  # as `damagemap map` without --batch
        workers=args.n_workers,
        grid_m=None,
        vectorize=False,
    )
    result = map_scene(predictor, args.scene, args.out, options)
    seconds = time.perf_counter() - t
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rss_mb": peak_rss_mb(),
                "loaded_mb": loaded_mb,
                "pixels": result.stats["width"] * result.stats["height"],
                "tiles": result.stats["tiles"],
                # tiles the model ran (this scene has no nodata): one crossing a band boundary runs once per band
                "predicted": result.stats["tiles_predicted"],
            }
        )
    )


def _run_child(
    model: Path,
    scene: Path,
    out: Path,
    workers: int,
    precision: str = "fp32",
    overlap: int | None = None,
    runtime: str = "torch",
) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.mapping_scale",
        "--child",
        "--model",
        str(model),
        "--scene",
        str(scene),
        "--out",
        str(out),
        "--n-workers",
        str(workers),
        "--precision",
        precision,
        "--runtime",
        runtime,
        *(["--overlap", str(overlap)] if overlap is not None else []),
    ]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _quick_model(workdir: Path) -> Path:
    from damagemap.artifact import save_model
    from damagemap.data.synthetic import synthetic_tiles
    from damagemap.recipe import load_recipe
    from damagemap.training.pipeline import train_model

    recipe = load_recipe("recipes/smart_transfer_lite.yaml")
    recipe.input.mode, recipe.train.epochs = "tile", 5
    model, _ = train_model(recipe, synthetic_tiles("north", 16, size=256, seed=3), cache_dir=None)
    return save_model(model, workdir / "model")


def class_agreement(a: Path, b: Path) -> float:
    """Share of pixels where two single-band rasters of one grid hold the same value."""
    import rasterio

    with rasterio.open(a) as x, rasterio.open(b) as y:
        same = total = 0
        for _, window in x.block_windows(1):
            u, v = x.read(1, window=window), y.read(1, window=window)
            same += int((u == v).sum())
            total += u.size
    return same / total


def _model_throughput(model: Path, tile: int, n: int = 64, precision: str = "fp32", passes: int = 3) -> float:
    """Megapixels/s of the predictor alone (encoder + head) on random tiles: no reading, blending or writing.

    Runs in its own process like the mappings, in batches of the map's default size for
    ``precision``, best of ``passes`` passes over ``n`` tiles.
    """
    from damagemap.batch_size import default_batch

    b = default_batch(precision)
    code = (
        "import json, sys, time, numpy as np\n"
        "from damagemap.tile_predictor import ModelTilePredictor\n"
        f"p = ModelTilePredictor({str(model)!r}, precision={precision!r})\n"
        f"x = np.random.default_rng(0).random(({b}, 3, {tile}, {tile}), dtype=np.float32)\n"
        "p(x)\n"
        "best = float('inf')\n"
        f"for _ in range({passes}):\n"
        "    t = time.perf_counter()\n"
        f"    for _ in range({max(1, n // b)}):\n"
        "        p(x)\n"
        "    best = min(best, time.perf_counter() - t)\n"
        f"print(json.dumps({{'mp_s': {max(1, n // b) * b * tile * tile} / best / 1e6}}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["mp_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path)
    ap.add_argument("--sizes", default="25,100,400", help="scene sizes in megapixels")
    ap.add_argument("--workers", default="0,2", help="dask worker counts compared on the smallest scene")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--scene", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--n-workers", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    ap.add_argument("--runtime", default="torch", help=argparse.SUPPRESS)
    ap.add_argument("--overlap", type=int, default=None, help="tile overlap (default: map's default)")
    ap.add_argument(
        "--repeats", type=int, default=3, help="model-alone / map / model-alone triples behind the pipeline ratio"
    )
    ap.add_argument(
        "--no-compare",
        action="store_true",
        help="skip the model-alone / bf16 / overlap-32 table (it maps the smallest scene twice more)",
    )
    args = ap.parse_args()
    if args.child:
        _child(args)
        return
    if args.overlap is None:
        from damagemap.mapping import MapOptions

        args.overlap = MapOptions().overlap
    print(machine_header())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = args.model or _quick_model(work)
        sizes = [float(s) for s in args.sizes.split(",")]
        rows, scenes, tiles_seen = [], {}, 0
        for mp in sizes:
            scene = work / f"scene_{mp:g}mp.tif"
            side = write_scene(scene, mp)
            scenes[mp] = scene
            r = _run_child(model, scene, work / f"out_{mp:g}", 0, overlap=args.overlap)
            tiles_seen = tiles_seen if rows else r["predicted"]  # of the smallest (first) scene
            rows.append(
                [
                    f"{side}x{side}",
                    r["pixels"] / 1e6,
                    0,
                    r["seconds"],
                    r["pixels"] / 1e6 / r["seconds"],
                    r["rss_mb"],
                    r["loaded_mb"],
                ]
            )
        smallest = scenes[sizes[0]]
        for n in [int(w) for w in args.workers.split(",") if int(w) > 0]:
            r = _run_child(model, smallest, work / f"out_w{n}", n, overlap=args.overlap)
            rows.append(
                [
                    f"{sizes[0]:g} MP",
                    r["pixels"] / 1e6,
                    n,
                    r["seconds"],
                    r["pixels"] / 1e6 / r["seconds"],
                    r["rss_mb"],
                    r["loaded_mb"],
                ]
            )
        print_table(
            f"mapping (lite model, overlap {args.overlap}, one process unless workers > 0)",
            [
                "scene",
                "MP",
                "dask workers",
                "seconds",
                "MP/s",
                "peak RSS MB (main process)",
                "of which imports + model (MB)",
            ],
            rows,
        )
        if not args.no_compare:
            _throughput_table(args, model, work, sizes[0], smallest, rows[0], tiles_seen)


def _throughput_table(args, model: Path, work: Path, mp: float, scene: Path, first: list, tiles: int) -> None:
    """Model alone vs pipeline on the same tiles (overlap cost apart), and fp32 vs bf16."""
    from damagemap.batch_size import default_batch
    from damagemap.device import cpu_has_native_bf16
    from damagemap.tile_predictor import ModelTilePredictor

    tile = ModelTilePredictor(model).native_tile
    alone = _model_throughput(model, tile)
    seconds, scene_mp = first[3], first[1]
    tile_mp = tiles * tile * tile / 1e6
    # the model alone on as many tiles as the map ran, right before and right after mapping the
    # scene again: on a shared machine, adjacent runs of the same length see the same conditions;
    # the median of --repeats such triples
    triples = []
    for _ in range(args.repeats):
        before = tile_mp / _model_throughput(model, tile, n=tiles, passes=1)
        again = _run_child(model, scene, work / "out_again", 0, overlap=args.overlap)["seconds"]
        after = tile_mp / _model_throughput(model, tile, n=tiles, passes=1)
        triples.append(((before + after) / 2 / again, before, again, after))
    triples.sort()
    ratio, before, again, after = triples[len(triples) // 2]
    model_s = (before + after) / 2
    spread = ", ".join(f"{t[0]:.0%}" for t in triples)
    wide = _run_child(model, scene, work / "out_o32", 0, overlap=32)
    t = time.perf_counter()  # the whole command a responder runs: vectors, zones, report and viewer too
    cli = [sys.executable, "-m", "damagemap", "--quiet", "map", str(model), str(scene), "--out", str(work / "out_cli")]
    subprocess.run([*cli, "--overlap", str(args.overlap)], check=True, capture_output=True)
    command_s = time.perf_counter() - t
    base = work / f"out_{mp:g}" / "damage_class.tif"
    rows = [
        ["model alone, encoder + head (tile MP/s, best of 3 short passes)", alone],
        ["tiles the map ran / scene pixels (overlap)", f"{tile_mp / scene_mp:.3f}x (target <= 1.15x)"],
        [f"model alone on the map's {tiles} tiles, before / after the map (s)", f"{before:.1f} / {after:.1f}"],
        ["pipeline, the same map again between them (s)", again],
        [
            f"pipeline / model on the same tiles (median of {len(triples)}: {spread})",
            f"{ratio:.0%} (target >= 85 %)",
        ],
        ["pipeline overhead (read, blend, write, overviews)", f"{again - model_s:.1f} s"],
        ["pipeline / model from the short passes' rate (first map)", f"{tile_mp / alone / seconds:.0%}"],
        ["scene MP/s", scene_mp / again],
        ["`damagemap map` whole command, with vectors, zones, report, viewer (s)", command_s],
    ]
    if cpu_has_native_bf16():
        alone_bf16 = _model_throughput(model, tile, precision="bf16")
        bf16 = _run_child(model, scene, work / "out_bf16", 0, "bf16", overlap=args.overlap)
        rows += [
            [
                f"model alone bf16 / fp32 speed-up (head included; batch {default_batch('bf16')} / "
                f"{default_batch('fp32')}, the map's defaults)",
                f"{alone_bf16 / alone:.2f}x (target >= 1.8x)",
            ],
            ["map fp32 seconds / bf16 seconds", f"{seconds:.1f} / {bf16['seconds']:.1f}"],
            ["map fp32 / bf16 peak RSS MB", f"{first[5]:.0f} / {bf16['rss_mb']:.0f}"],
            [
                "class-map pixel agreement fp32 vs bf16",
                f"{class_agreement(base, work / 'out_bf16' / 'damage_class.tif'):.4%}",
            ],
        ]
    else:  # emulated bf16 is many times slower than fp32: nothing to learn from timing it
        rows.append(["bf16", "skipped: this CPU has no native bf16 (AVX-512 BF16 or AMX)"])
    if importlib.util.find_spec("onnxruntime") is not None:
        onnx = _run_child(model, scene, work / "out_onnx", 0, overlap=args.overlap, runtime="onnx")
        rows += [
            [
                "map --runtime onnx seconds (export included) / peak RSS MB",
                f"{onnx['seconds']:.1f} / {onnx['rss_mb']:.0f}",
            ],
            [
                "class-map agreement torch vs onnx",
                f"{class_agreement(base, work / 'out_onnx' / 'damage_class.tif'):.4%}",
            ],
        ]
    rows.append(
        [
            f"class-map agreement overlap {args.overlap} vs 32 (32: {wide['seconds']:.1f} s)",
            f"{class_agreement(base, work / 'out_o32' / 'damage_class.tif'):.4%}",
        ]
    )
    print_table("throughput, overlap and precision (smallest scene)", ["measure", "value"], rows)


if __name__ == "__main__":
    main()
