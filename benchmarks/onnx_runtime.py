"""ONNX Runtime beside torch for the mapper's model: tile-MP/s and agreement of the probabilities.

    python -m benchmarks.onnx_runtime [--model MODEL_DIR] [--tile 256] [--batch 4] [--tiles 64]

Needs ``pip install -e ".[onnx]"``. Both runtimes run what ``map`` runs: ``ModelTilePredictor``
with BatchNorm folded, once with ``runtime="torch"`` and once with ``runtime="onnx"`` (the
export, timed separately, happens on the first call). Without ``--model`` a small lite model is
trained on synthetic tiles first. Prints both throughputs (best of three passes), the largest
probability difference and the class agreement.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine_header, print_table, timeit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--tiles", type=int, default=64, help="tiles per timed pass")
    args = ap.parse_args()
    if importlib.util.find_spec("onnxruntime") is None:
        raise SystemExit('onnxruntime is not installed: pip install -e ".[onnx]"')
    import torch

    from damagemap.tile_predictor import ModelTilePredictor

    print(machine_header())
    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None:
            from benchmarks.mapping_scale import _quick_model

            args.model = _quick_model(Path(tmp))
        x = np.random.default_rng(0).random((args.batch, 3, args.tile, args.tile), dtype=np.float32)
        torch_p = ModelTilePredictor(args.model)
        onnx_p = ModelTilePredictor(args.model, runtime="onnx")
        want = torch_p(x)
        t = time.perf_counter()
        got = onnx_p(x)  # exports on the first call
        export_s = time.perf_counter() - t
        steps = max(1, args.tiles // args.batch)
        torch_s = timeit(lambda: [torch_p(x) for _ in range(steps)])
        onnx_s = timeit(lambda: [onnx_p(x) for _ in range(steps)])
    mp = steps * args.batch * args.tile * args.tile / 1e6
    if want.shape[1] == 1:
        same = float(((want >= 0.5) == (got >= 0.5)).mean())
    else:
        same = float((want.argmax(1) == got.argmax(1)).mean())
    print_table(
        f"mapper model, {args.tile}px tiles, batch {args.batch}, {torch.get_num_threads()} threads",
        ["measure", "value"],
        [
            ["torch (folded, channels_last) tile-MP/s", mp / torch_s],
            ["ONNX Runtime tile-MP/s", mp / onnx_s],
            ["ONNX Runtime / torch", f"{torch_s / onnx_s:.2f}x"],
            ["export + first call seconds", export_s],
            ["max |probability difference|", f"{float(np.abs(want - got).max()):.2e}"],
            ["class agreement", f"{same:.4%}"],
        ],
    )


if __name__ == "__main__":
    main()
