"""Encoder throughput: images/s and achieved GFLOP/s against this machine's matmul peak (fp32 and bf16).

    python -m benchmarks.encoder_throughput [--size 256] [--batch 8] [--compile]

Each encoder as built ("as built"), then as the mapper runs it: BatchNorm folded into the
convolutions and channels_last (``damagemap.fusion``), in fp32 and under bf16 autocast. The
peaks are square matmuls timed in the same run. Random weights are fine for speed; the default
encoder uses its real embedded weights. ``--compile`` also times ``torch.compile`` of the folded
encoder (Inductor; needs a C++ compiler) and prints its compile time and the largest difference
of its feature maps from the uncompiled ones.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from benchmarks.common import count_flops, machine_header, matmul_peak_gflops, print_table, timeit
from damagemap.device import cpu_has_native_bf16
from damagemap.encoders import build_encoder
from damagemap.fusion import prepare_for_inference

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
    ap.add_argument("--encoders", default=",".join(ENCODERS), help="comma-separated registry names")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of the folded encoder")
    args = ap.parse_args()
    print(machine_header())
    peak = matmul_peak_gflops()
    native_bf16 = cpu_has_native_bf16()  # emulated bf16 is many times slower: not worth timing
    peak_bf16 = matmul_peak_gflops(dtype=torch.bfloat16) if native_bf16 else float("nan")
    rows, compiled_rows = [], []
    x = torch.rand(args.batch, 3, args.size, args.size)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    for name in args.encoders.split(","):
        enc = build_encoder(name, **ENCODERS.get(name, {})).eval()
        fast = copy.deepcopy(enc)
        prepare_for_inference(fast)
        with torch.inference_mode():
            flops = count_flops(lambda enc=enc: enc(x))
            plain = timeit(lambda enc=enc: enc(x), repeat=3)
            fused = timeit(lambda fast=fast: fast(x_cl), repeat=3)
            bf16 = float("nan")
            if native_bf16:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    bf16 = timeit(lambda fast=fast: fast(x_cl), repeat=3)
        if args.compile:
            compiled_rows.append([name, *_compiled(fast, x_cl, fused, args.batch)])
        gflops = [flops / s / 1e9 for s in (plain, fused, bf16)]
        bf16_cells = (
            [args.batch / bf16, f"{100 * gflops[2] / peak_bf16:.1f}%", f"{plain / bf16:.2f}x"]
            if native_bf16
            else ["-", "-", "-"]
        )
        rows.append(
            [
                name,
                flops / args.batch / 1e9,
                args.batch / plain,
                f"{100 * gflops[0] / peak:.1f}%",
                args.batch / fused,
                f"{100 * gflops[1] / peak:.1f}%",
                *bf16_cells,
            ]
        )
    print_table(
        f"encoder throughput at {args.size}px, batch {args.batch}: matmul peak fp32 {peak:.0f} GFLOP/s, "
        + (f"bf16 {peak_bf16:.0f} GFLOP/s" if native_bf16 else "bf16 skipped: no native bf16 (AVX-512 BF16 or AMX)"),
        [
            "encoder",
            "GFLOP/image",
            "images/s as built",
            "of fp32 peak",
            "images/s folded+CL",
            "of fp32 peak",
            "images/s bf16 folded+CL",
            "of bf16 peak",
            "bf16 folded / as built",
        ],
        rows,
    )
    if compiled_rows:
        print_table(
            "torch.compile of the folded encoder (fp32)",
            ["encoder", "compile s", "images/s compiled", "vs folded+CL", "max |diff| of feature maps"],
            compiled_rows,
        )


def _compiled(fast: torch.nn.Module, x: torch.Tensor, fused_s: float, batch: int) -> list:
    """Compile time, images/s, speed-up over ``fused_s`` and output difference; or why it failed."""
    try:
        compiled = torch.compile(fast)
        with torch.inference_mode():
            t = time.perf_counter()
            got = compiled(x)
            compile_s = time.perf_counter() - t
            want = fast(x)
            seconds = timeit(lambda: compiled(x), repeat=3)
    except Exception as exc:  # no compiler, unsupported op, …: a row saying so, not a crash
        return [f"unavailable: {type(exc).__name__}", "-", "-", "-"]
    diff = max(float((a - b).abs().max()) for a, b in zip(got, want, strict=True))
    return [compile_s, batch / seconds, f"{fused_s / seconds:.2f}x", f"{diff:.2e}"]


if __name__ == "__main__":
    main()
