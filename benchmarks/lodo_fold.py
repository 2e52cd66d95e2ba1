"""One LODO fold of the lite recipe: wall time and how much of it is encoder work.

    python -m benchmarks.lodo_fold [--tiles 100] [--size 512] [--recipe recipes/smart_transfer_lite.yaml] [--pair]
        [--bf16] [--vits16]

Target: adapting to a new region (one fold, 10 epochs, 100 tiles of 512 px) within 10 seconds
on a 2-core CPU with the default encoder. ``--vits16`` runs the same fold with the published
Smart Transfer recipe on ``dinov3-vits16`` (random weights: the hub is not needed, the compute is
that of the real checkpoint) and prints it beside; ``--bf16`` trains the default fold's head
under bf16 autocast (the model is then saved for bf16 inference). Tiles are generated (two synthetic regions) so the
benchmark runs anywhere; the cache starts cold, as for a new event. With ``--pair`` the same
fold also runs as a pre/post pair recipe (``input.pair: true``; the pre images are other
generated tiles — their content does not change the cost) and both are printed side by side.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace

from benchmarks.common import machine_header, peak_rss_mb, print_table
from damagemap.data.synthetic import synthetic_tiles
from damagemap.encoders.base import Encoder
from damagemap.recipe import Recipe, apply_overrides, load_recipe
from damagemap.training.items import cached_items
from damagemap.training.pipeline import encoder_for, evaluate_model, split_validation, train_model
from damagemap.types import Sample


def with_pre(samples: list[Sample], seed: int, size: int) -> list[Sample]:
    """The samples with generated pre-event images of the same size."""
    pres = synthetic_tiles("north", len(samples), size=size, seed=seed)
    return [replace(s, pre=p.image) for s, p in zip(samples, pres)]


def run_fold(
    recipe: Recipe, source: list[Sample], target: list[Sample], encoder: Encoder, precision: str = "fp32"
) -> dict[str, float | str]:
    """Timings of one fold from a cold feature cache."""
    train, val = split_validation(source, recipe.train.val_fraction, recipe.train.seed)
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        cached_items(train + val, recipe.input, encoder, cache)  # the fold's encoder work (cold cache)
        t1 = time.perf_counter()
        model, _ = train_model(recipe, train, val, encoder=encoder, cache_dir=cache, precision=precision)
        t2 = time.perf_counter()
        scores = evaluate_model(model, target, cache)  # includes encoding the target tiles
        t3 = time.perf_counter()
    return {
        "encode": t1 - t0,
        "train": t2 - t1,
        "score": t3 - t2,
        "total": t3 - t0,
        "adapt": t2 - t0,
        "scores": f"{scores['all']['miou']:.3f} / {scores['all']['damage_iou']:.3f}",
        "n_train": len(train),
        "n_val": len(val),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", type=int, default=100)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--recipe", default="recipes/smart_transfer_lite.yaml")
    ap.add_argument("--pair", action="store_true", help="also run the fold as a pre/post pair recipe")
    ap.add_argument("--bf16", action="store_true", help="also train the head under bf16 autocast")
    ap.add_argument("--vits16", action="store_true", help="also run recipes/smart_transfer.yaml on dinov3-vits16")
    args = ap.parse_args()
    print(machine_header())
    recipe = load_recipe(args.recipe)
    source = synthetic_tiles("north", args.tiles, size=args.size, seed=11)
    target = synthetic_tiles("south", max(10, args.tiles // 5), size=args.size, seed=12)
    encoder = encoder_for(recipe)
    runs = {"post-only": run_fold(recipe, source, target, encoder)}
    if args.pair:
        pair = apply_overrides(recipe, ["input.pair=true"])
        runs["pair"] = run_fold(pair, with_pre(source, 21, args.size), with_pre(target, 22, args.size), encoder)
    if args.bf16:
        runs["post-only, bf16 training"] = run_fold(recipe, source, target, encoder, precision="bf16")
    if args.vits16:
        vit = apply_overrides(
            load_recipe("recipes/smart_transfer.yaml"),
            [
                "encoder.name=dinov3-vits16",
                "encoder.pretrained=false",
                "encoder.checkpoint=null",
                "fewshot.enabled=false",
            ],
        )
        runs["dinov3-vits16 (smart_transfer)"] = run_fold(vit, source, target, encoder_for(vit))
    first = runs["post-only"]
    names = list(runs)
    rows = [
        ["encode source tiles (encoder)", *(r["encode"] for r in runs.values())],
        ["train head on cached features (+PC/DPT setup)", *(r["train"] for r in runs.values())],
        ["encode + score target tiles", *(r["score"] for r in runs.values())],
        ["total", *(r["total"] for r in runs.values())],
        ["adaptation (encode + train), target ≤ 10 s", *(r["adapt"] for r in runs.values())],
        ["target mIoU / damage IoU", *(r["scores"] for r in runs.values())],
    ]
    print_table(
        f"one LODO fold: {recipe.name}, {first['n_train']} train + {first['n_val']} val tiles of {args.size}px "
        f"(input {recipe.input.mode} {recipe.input.size}), {recipe.train.epochs} epochs; "
        f"test {len(target)} tiles of a new region (seconds)",
        ["step", *names],
        rows,
    )
    print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
