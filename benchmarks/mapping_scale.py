"""Scene mapping at scale: wall time, megapixels/s and peak RSS as the scene grows.

    python -m benchmarks.mapping_scale --model MODEL_DIR [--sizes 25,100,400] [--workers 0,2]

Without ``--model`` a small lite model is trained on synthetic tiles first (about a minute).
Each mapping runs in its own process so its peak RSS is its own. Scenes are written block by
block from one generated 1024² event, so even the 400 MP scene never sits in memory. Also
prints the encoder+head throughput on the same tiles outside the pipeline, and fp32 vs bf16
autocast (time and pixel agreement of the class maps).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import print_table


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
    import resource

    from damagemap.mapping import MapOptions, map_scene
    from damagemap.tile_predictor import ModelTilePredictor

    predictor = ModelTilePredictor(args.model, precision=args.precision)
    t = time.perf_counter()
    options = MapOptions(tile=predictor.native_tile, batch=8, workers=args.n_workers, grid_m=None, vectorize=False)
    result = map_scene(predictor, args.scene, args.out, options)
    seconds = time.perf_counter() - t
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "pixels": result.stats["width"] * result.stats["height"],
                "tiles": result.stats["tiles"],
            }
        )
    )


def _run_child(model: Path, scene: Path, out: Path, workers: int, precision: str = "fp32") -> dict:
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


def _agreement(a: Path, b: Path) -> float:
    import rasterio

    with rasterio.open(a) as x, rasterio.open(b) as y:
        same = total = 0
        for _, window in x.block_windows(1):
            u, v = x.read(1, window=window), y.read(1, window=window)
            same += int((u == v).sum())
            total += u.size
    return same / total


def _encoder_throughput(model: Path, tile: int, n: int = 64) -> float:
    """Megapixels/s of the predictor alone on random tiles (no reading, blending or writing)."""
    from damagemap.tile_predictor import ModelTilePredictor

    predictor = ModelTilePredictor(model)
    tiles = np.random.default_rng(0).random((8, 3, tile, tile), dtype=np.float32)
    predictor(tiles)
    t = time.perf_counter()
    for _ in range(n // 8):
        predictor(tiles)
    return n * tile * tile / (time.perf_counter() - t) / 1e6


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
    args = ap.parse_args()
    if args.child:
        _child(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = args.model or _quick_model(work)
        sizes = [float(s) for s in args.sizes.split(",")]
        rows, scenes = [], {}
        for mp in sizes:
            scene = work / f"scene_{mp:g}mp.tif"
            side = write_scene(scene, mp)
            scenes[mp] = scene
            r = _run_child(model, scene, work / f"out_{mp:g}", 0)
            rows.append(
                [f"{side}x{side}", r["pixels"] / 1e6, 0, r["seconds"], r["pixels"] / 1e6 / r["seconds"], r["rss_mb"]]
            )
        smallest = scenes[sizes[0]]
        for n in [int(w) for w in args.workers.split(",") if int(w) > 0]:
            r = _run_child(model, smallest, work / f"out_w{n}", n)
            rows.append(
                [f"{sizes[0]:g} MP", r["pixels"] / 1e6, n, r["seconds"], r["pixels"] / 1e6 / r["seconds"], r["rss_mb"]]
            )
        print_table(
            "mapping (lite model, one process unless workers > 0)",
            ["scene", "MP", "dask workers", "seconds", "MP/s", "peak RSS MB (main process)"],
            rows,
        )
        from damagemap.tile_predictor import ModelTilePredictor

        tile = ModelTilePredictor(model).native_tile
        alone = _encoder_throughput(model, tile)
        pipeline = rows[0][4]
        bf16 = _run_child(model, smallest, work / "out_bf16", 0, "bf16")
        agree = _agreement(work / f"out_{sizes[0]:g}" / "damage_class.tif", work / "out_bf16" / "damage_class.tif")
        print_table(
            "throughput and precision",
            ["measure", "value"],
            [
                ["model alone on the same tiles (MP/s)", alone],
                ["pipeline (MP/s)", pipeline],
                ["pipeline / model alone", f"{pipeline / alone:.0%} (target >= 70 %)"],
                ["fp32 seconds / bf16 seconds", f"{rows[0][3]:.1f} / {bf16['seconds']:.1f}"],
                ["class-map pixel agreement fp32 vs bf16", f"{agree:.4%}"],
            ],
        )


if __name__ == "__main__":
    main()
