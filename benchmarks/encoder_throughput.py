"""Encoder throughput: images/s and achieved GFLOP/s against this machine's matmul peak.

    python benchmarks/encoder_throughput.py [--size 256] [--batch 8]

Random weights are fine for speed; the default encoder uses its real embedded weights.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.common import count_flops, matmul_peak_gflops, print_table, timeit
from damagemap.encoders import build_encoder

ENCODERS = {
    "efficientnet-lite0": {},
    "efficientnet-lite2": {},
    "dinov3-vits16": {"pretrained": False},
    "resnet18": {"pretrained": False},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    peak = matmul_peak_gflops()
    rows = []
    x = torch.rand(args.batch, 3, args.size, args.size)
    for name, kw in ENCODERS.items():
        enc = build_encoder(name, **kw)
        with torch.inference_mode():
            flops = count_flops(lambda enc=enc: enc(x))
            sec = timeit(lambda enc=enc: enc(x), repeat=3)
            x_cl = x.contiguous(memory_format=torch.channels_last)
            enc_cl = enc.to(memory_format=torch.channels_last)
            sec_cl = timeit(lambda enc_cl=enc_cl, x_cl=x_cl: enc_cl(x_cl), repeat=3)
        gflops = flops / sec / 1e9
        rows.append(
            [
                name,
                f"{args.size}px",
                args.batch / sec,
                flops / args.batch / 1e9,
                gflops,
                f"{100 * gflops / peak:.0f}%",
                args.batch / sec_cl,
            ]
        )
    print_table(
        f"encoder throughput, {torch.get_num_threads()} threads, fp32 matmul peak {peak:.1f} GFLOP/s",
        ["encoder", "input", "images/s", "GFLOP/image", "achieved GFLOP/s", "of peak", "images/s channels_last"],
        rows,
    )


if __name__ == "__main__":
    main()
