"""One LODO fold of the lite recipe: wall time and how much of it is encoder work.

    python benchmarks/lodo_fold.py [--tiles 100] [--size 512] [--recipe recipes/smart_transfer_lite.yaml]

Target: adapting to a new region (one fold, 10 epochs, 100 tiles of 512 px) within 2 minutes
on a 2-core CPU with the default encoder. Tiles are generated (two synthetic regions) so the
benchmark runs anywhere; the cache starts cold, as for a new event.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from benchmarks.common import peak_rss_mb, print_table
from damagemap.data.synthetic import synthetic_tiles
from damagemap.recipe import load_recipe
from damagemap.training.items import cached_items
from damagemap.training.pipeline import encoder_for, evaluate_model, split_validation, train_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", type=int, default=100)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--recipe", default="recipes/smart_transfer_lite.yaml")
    args = ap.parse_args()
    recipe = load_recipe(args.recipe)
    source = synthetic_tiles("north", args.tiles, size=args.size, seed=11)
    target = synthetic_tiles("south", max(10, args.tiles // 5), size=args.size, seed=12)
    encoder = encoder_for(recipe)
    train, val = split_validation(source, recipe.train.val_fraction, recipe.train.seed)
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        cached_items(train + val, recipe.input, encoder, cache)  # the fold's encoder work (cold cache)
        t1 = time.perf_counter()
        model, result = train_model(recipe, train, val, encoder=encoder, cache_dir=cache)
        t2 = time.perf_counter()
        scores = evaluate_model(model, target, cache)  # includes encoding the target tiles
        t3 = time.perf_counter()
    total = t3 - t0
    print_table(
        f"one LODO fold: {recipe.name}, {len(train)} train + {len(val)} val tiles of {args.size}px "
        f"(input {recipe.input.mode} {recipe.input.size}), {recipe.train.epochs} epochs; "
        f"test {len(target)} tiles of a new region",
        ["step", "seconds", "share"],
        [
            ["encode source tiles (encoder)", t1 - t0, f"{(t1 - t0) / total:.0%}"],
            ["train head on cached features (+PC/DPT setup)", t2 - t1, f"{(t2 - t1) / total:.0%}"],
            ["encode + score target tiles", t3 - t2, f"{(t3 - t2) / total:.0%}"],
            ["total", total, "100%"],
            ["adaptation (encode + train), target ≤ 120 s", t2 - t0, ""],
            ["peak RSS (MB)", peak_rss_mb(), ""],
            ["target mIoU / damage IoU", f"{scores['all']['miou']:.3f} / {scores['all']['damage_iou']:.3f}", ""],
        ],
    )


if __name__ == "__main__":
    main()
