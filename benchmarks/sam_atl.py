"""SAM ViT-B + SAM mask decoder on this CPU, with and without ATL: training step, inference, memory.

    python -m benchmarks.sam_atl [--sizes 1024,512] [--batch 2] [--repeat 2] [--warmup 1]

Random weights (speed does not depend on them). Each configuration runs in its own subprocess
so its peak RSS is its own. Columns:

* ``train s/step`` — one optimiser step on a batch of ``--batch`` images. With ATL: forward
  through the frozen encoder with the ATL modules, backward to ATL + decoder (every step).
  Without ATL: encoder forward without gradients + decoder forward/backward — the cost of a
  cache-miss step; with the feature cache, later epochs only pay the decoder part
  (``decoder s/step``).
* ``infer s/img`` — encoder + decoder forward, batch 1, no gradients.
* ``peak RSS MB`` — peak resident memory of the subprocess.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import torch

from benchmarks.common import machine_header, peak_rss_mb, print_table, timeit


def _child(size: int, atl: str, batch: int, repeat: int, warmup: int) -> dict:
    from damagemap.adapters import attach_adapter, parameter_counts
    from damagemap.encoders import build_encoder
    from damagemap.heads import build_head

    torch.manual_seed(0)
    enc = build_encoder("sam-vitb", pretrained=False, img_size=1024)
    if atl != "none":
        attach_adapter(enc, "atl", {"placement": atl})
    head = build_head("sam_decoder", enc.channels, 1)
    params = [p for m in (enc, head) for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-4)
    x = torch.rand(batch, 3, size, size)
    target = (torch.rand(batch, 1, size, size) > 0.5).float()

    def step(features=None) -> None:
        feats = features if features is not None else (enc(x) if atl != "none" else _frozen(enc, x))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(feats, (size, size)), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    train = timeit(step, repeat=repeat, warmup=warmup)
    decoder = None
    if atl == "none":
        cached = _frozen(enc, x)
        decoder = timeit(lambda: step(cached), repeat=repeat, warmup=warmup)
    one = x[:1]
    with torch.inference_mode():
        infer = timeit(lambda: head(enc(one), (size, size)), repeat=repeat, warmup=warmup)
    counts = parameter_counts(enc, head)
    return {
        "train": train,
        "decoder": decoder,
        "infer": infer,
        "rss": peak_rss_mb(),
        "trainable": counts["trainable"],
        "share": counts["share"],
    }


def _frozen(enc, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        return enc(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1024,512")
    ap.add_argument("--atl", default="none,prompt,block", help="ATL placements to compare (none = without)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--child", nargs=2, metavar=("SIZE", "ATL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    print(machine_header())
    if args.child:
        out = _child(int(args.child[0]), args.child[1], args.batch, args.repeat, args.warmup)
        print(json.dumps(out))
        return
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        for atl in args.atl.split(","):
            cmd = [
                sys.executable,
                "-m",
                "benchmarks.sam_atl",
                "--child",
                str(size),
                atl,
                "--batch",
                str(args.batch),
                "--repeat",
                str(args.repeat),
                "--warmup",
                str(args.warmup),
            ]
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
            rows.append(
                [
                    size,
                    atl,
                    args.batch,
                    r["train"],
                    "-" if r["decoder"] is None else r["decoder"],
                    r["infer"],
                    r["rss"],
                    f"{r['trainable']:,} ({100 * r['share']:.2f} %)",
                ]
            )
            print(rows[-1], flush=True)
    print_table(
        f"SAM ViT-B + SAM decoder on CPU (torch threads {torch.get_num_threads()}, best of "
        f"{args.repeat} after {args.warmup} warm-up)",
        ["input", "ATL", "batch", "train s/step", "decoder s/step", "infer s/img", "peak RSS MB", "trainable params"],
        rows,
    )


if __name__ == "__main__":
    main()
