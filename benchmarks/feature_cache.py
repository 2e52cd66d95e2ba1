"""Training-epoch wall time with and without the feature cache, on the real landslide data.

    python benchmarks/feature_cache.py [--domain sichuan] [--epochs 3]

"without cache" = what a pipeline that runs the frozen encoder every epoch pays per epoch
(encode all training views + one pass of head training); "with cache" = an epoch over cached
features (the encoder never runs). Target: cached epochs at least 10x faster.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from benchmarks.common import machine_header, print_table, shared
from damagemap.data.loading import load_samples
from damagemap.heads import build_head
from damagemap.objectives import ObjectiveContext, WeightedSum, build_objective
from damagemap.recipe import load_recipe
from damagemap.training.fit import FitSpec, fit
from damagemap.training.items import cached_items
from damagemap.training.pipeline import encoder_for


def _epoch(recipe, items, encoder) -> float:
    head = build_head(recipe.head.kind, tuple(encoder.channels), recipe.num_outputs, **recipe.head.options)
    objective: WeightedSum = build_objective(ObjectiveContext(recipe, items, encoder.channels))
    spec = FitSpec.for_recipe(recipe, train=recipe.train.model_copy(update={"epochs": 1}))
    t = time.perf_counter()
    fit(head, objective, items, [], spec)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--domain", default="sichuan")
    ap.add_argument("--recipe", default="recipes/smart_transfer_lite.yaml")
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    recipe = load_recipe(args.recipe)
    print(machine_header())
    samples = load_samples(shared("landslide"), recipe.data, domains=[args.domain])
    encoder = encoder_for(recipe)
    with tempfile.TemporaryDirectory() as cache:
        t = time.perf_counter()
        items = cached_items(samples, recipe.input, encoder, cache)  # cold: runs the encoder, fills the cache
        encode_s = time.perf_counter() - t
        t = time.perf_counter()
        items = cached_items(samples, recipe.input, encoder, cache)  # warm: reads the disk cache
        load_s = time.perf_counter() - t
        train_s = min(_epoch(recipe, items, encoder) for _ in range(args.epochs))
    no_cache = encode_s + train_s
    print_table(
        f"{recipe.name} on landslide/{args.domain}: {len(items)} views at {recipe.input.size}px, "
        f"batch {recipe.train.batch_size}",
        ["", "seconds"],
        [
            ["encode all views (cold cache)", encode_s],
            ["read cached features from disk (restart)", load_s],
            ["head training, one epoch", train_s],
            ["epoch WITHOUT cache (encode + train)", no_cache],
            ["epoch WITH cache (train only)", train_s],
            ["speed-up", f"{no_cache / train_s:.1f}x"],
        ],
    )


if __name__ == "__main__":
    main()
