"""damagemap's streaming ``map_scene`` beside TerraTorch's ``tiled_inference``: time and peak RSS.

    pip install -e ".[bench]"          # TerraTorch (heavy: lightning, torchgeo, ...)
    python -m benchmarks.peer_tiled [--sizes 25,100] [--crop 256] [--batch 16]

Both map the same generated uint8 RGB GeoTIFF with the same model, a seeded 1×1 convolution
3 → 2 classes followed by a softmax (so the cost is the tiling, reading, blending and writing,
not a network), the same crop, overlap and batch. TerraTorch is used as its documentation shows:
the scene is read into one tensor, ``tiled_inference`` returns the stitched class scores, the
class map is written as a GeoTIFF. damagemap streams the scene block by block
(``map_scene``, no vectors, no grid statistics). Each run is its own process, so each peak RSS
is its own. Without TerraTorch installed its column says so.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine_header, peak_rss_mb, print_table
from benchmarks.mapping_scale import class_agreement, write_scene

OVERLAP = 16
DELTA = 8


class ConvPredictor:
    """A seeded 1×1 convolution 3 → 2 and a softmax, as a damagemap tile predictor."""

    in_bands, num_outputs = 3, 2
    fingerprint = "peer-1x1-conv-seed0"

    def __init__(self) -> None:
        import torch

        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 2, 1).eval().requires_grad_(False)

    def forward(self, x):  # noqa: ANN001, ANN201 - torch in, torch out
        """Class probabilities of a float batch in [0, 1]."""
        return self.conv(x).softmax(1)

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        """Probabilities ``[B, 2, T, T]`` of float tiles ``[B, 3, T, T]``."""
        import torch

        with torch.no_grad():
            return self.forward(torch.from_numpy(tiles)).numpy()


def _damagemap(scene: Path, out: Path, crop: int, batch: int) -> None:
    from damagemap.mapping import MapOptions, map_scene

    options = MapOptions(tile=crop, overlap=OVERLAP, batch=batch, workers=0, grid_m=None, vectorize=False)
    map_scene(ConvPredictor(), scene, out, options)


def _terratorch(scene: Path, out: Path, crop: int, batch: int) -> None:
    import rasterio
    import torch
    from terratorch.tasks.tiled_inference import tiled_inference

    model = ConvPredictor()
    with rasterio.open(scene) as src:
        profile = src.profile
        x = torch.from_numpy(src.read()).float().div_(255)[None]
    with torch.no_grad():
        # TerraTorch drops a border of ``delta`` px of every chip (delta=0 returns an empty map in
        # 1.2.13): overlap = crop - stride - 2·delta, so the stride gives the same 16 px overlap
        scores = tiled_inference(
            model.forward, x, crop=crop, stride=crop - OVERLAP - 2 * DELTA, delta=DELTA, batch_size=batch
        )
    if scores.shape[-2:] != x.shape[-2:]:
        raise RuntimeError(f"tiled_inference returned {tuple(scores.shape)} for a {tuple(x.shape)} scene")
    labels = scores.argmax(1)[0].to(torch.uint8).numpy()
    profile.update(count=1, dtype="uint8", compress="deflate", tiled=True)
    out.mkdir(parents=True, exist_ok=True)
    with rasterio.open(out / "damage_class.tif", "w", **profile) as dst:
        dst.write(labels, 1)


def _child(args: argparse.Namespace) -> None:
    run = {"damagemap": _damagemap, "terratorch": _terratorch}[args.child]
    t = time.perf_counter()
    run(args.scene, args.out, args.crop, args.batch)
    seconds = time.perf_counter() - t
    print(json.dumps({"seconds": seconds, "rss_mb": peak_rss_mb()}))


def _run(tool: str, scene: Path, out: Path, args: argparse.Namespace) -> dict | str:
    cmd = [sys.executable, "-m", "benchmarks.peer_tiled", "--child", tool, "--scene", str(scene), "--out", str(out)]
    cmd += ["--crop", str(args.crop), "--batch", str(args.batch)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        return "not installed" if "No module named 'terratorch" in last else f"failed: {last[:60]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="25,100", help="scene sizes in megapixels")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--child", choices=["damagemap", "terratorch"], help=argparse.SUPPRESS)
    ap.add_argument("--scene", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args)
        return
    print(machine_header())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mp in (float(s) for s in args.sizes.split(",")):
            scene = Path(tmp) / f"scene_{mp:g}.tif"
            write_scene(scene, mp)
            ours = _run("damagemap", scene, Path(tmp) / f"dm_{mp:g}", args)
            peer = _run("terratorch", scene, Path(tmp) / f"tt_{mp:g}", args)
            assert isinstance(ours, dict), ours
            cells = [f"{mp:g}", ours["seconds"], ours["rss_mb"]]
            if isinstance(peer, dict):
                ratio = f"{peer['rss_mb'] / ours['rss_mb']:.1f}x / {peer['seconds'] / ours['seconds']:.2f}x"
                same = class_agreement(
                    Path(tmp) / f"dm_{mp:g}" / "damage_class.tif", Path(tmp) / f"tt_{mp:g}" / "damage_class.tif"
                )
                cells += [peer["seconds"], peer["rss_mb"], ratio, f"{same:.4%}"]
            else:
                cells += [peer, "-", "-", "-"]
            rows.append(cells)
    print_table(
        f"1x1-conv model, crop {args.crop}, overlap {OVERLAP}, batch {args.batch}, one process each",
        [
            "MP",
            "damagemap s",
            "damagemap peak RSS MB",
            "TerraTorch s",
            "TerraTorch peak RSS MB",
            "TerraTorch / damagemap RSS, time",
            "class maps agree",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
