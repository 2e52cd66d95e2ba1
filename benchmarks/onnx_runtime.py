"""ONNX Runtime beside torch for the mapper's model: tile-MP/s and agreement of the probabilities.

    python -m benchmarks.onnx_runtime [--model MODEL_DIR] [--tile 256] [--batch 4] [--tiles 64]

Needs ``pip install -e ".[bench]"`` (onnxruntime, onnx, onnxscript; not damagemap dependencies). The model is the
one the mapper runs — encoder and head with BatchNorm folded (``ModelTilePredictor``) — exported
with ``torch.onnx.export`` and run by ONNX Runtime on the CPU with this process's thread count.
Without ``--model`` a small lite model is trained on synthetic tiles first. Prints both
throughputs (best of three passes) and the largest probability difference and class agreement.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import machine_header, print_table


class _Probabilities(torch.nn.Module):
    """Normalised tiles → probabilities, as the predictor computes them (no TTA)."""

    def __init__(self, model) -> None:
        super().__init__()
        self.m = model
        self.encoder, self.head = model.encoder, model.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.encoder(x)
        return self.m.probabilities(self.head(maps, tuple(x.shape[-2:])))


def _best(fn, passes: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(passes):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--tiles", type=int, default=64, help="tiles per timed pass")
    args = ap.parse_args()
    try:
        import onnxruntime as ort
    except ImportError:
        raise SystemExit("onnxruntime is not installed: pip install onnxruntime onnx onnxscript") from None
    from damagemap.tile_predictor import ModelTilePredictor

    print(machine_header())
    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None:
            from benchmarks.mapping_scale import _quick_model

            args.model = _quick_model(Path(tmp))
        predictor = ModelTilePredictor(args.model)
        net = _Probabilities(predictor.model).eval()
        x = torch.from_numpy(np.random.default_rng(0).random((args.batch, 3, args.tile, args.tile), dtype=np.float32))
        x_cl = x.contiguous(memory_format=torch.channels_last)
        path = Path(tmp) / "model.onnx"
        t = time.perf_counter()
        with torch.inference_mode():
            torch.onnx.export(net, (x,), str(path), input_names=["x"], output_names=["p"], dynamo=True)
        export_s = time.perf_counter() - t
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {"x": x.numpy()}
        steps = max(1, args.tiles // args.batch)
        with torch.inference_mode():
            want = net(x_cl).numpy()
            torch_s = _best(lambda: [net(x_cl) for _ in range(steps)])
        got = session.run(None, feed)[0]
        ort_s = _best(lambda: [session.run(None, feed) for _ in range(steps)])
    mp = steps * args.batch * args.tile * args.tile / 1e6
    same = (
        float(((want >= 0.5) == (got >= 0.5)).mean())
        if want.shape[1] == 1
        else float((want.argmax(1) == got.argmax(1)).mean())
    )
    print_table(
        f"mapper model, {args.tile}px tiles, batch {args.batch}, {torch.get_num_threads()} threads",
        ["measure", "value"],
        [
            ["torch (folded, channels_last) tile-MP/s", mp / torch_s],
            ["ONNX Runtime tile-MP/s", mp / ort_s],
            ["ONNX Runtime / torch", f"{torch_s / ort_s:.2f}x"],
            ["export seconds", export_s],
            ["max |probability difference|", f"{float(np.abs(want - got).max()):.2e}"],
            ["class agreement", f"{same:.4%}"],
        ],
    )


if __name__ == "__main__":
    main()
