"""Pre/post pair models on real xBD events: post-only vs pair, and what a misregistered pre image costs.

    python -m benchmarks.pair_misregistration --target joplin-tornado [--shifts 0,2,4,8]

Trains the post-only recipe and the pair recipe on every xBD event of the shared data except
``--target`` (epochs chosen on a seeded hold-out of the sources), then scores the target event:
post-only once, the pair model with its pre-event image as delivered and shifted by each of
``--shifts`` pixels (right and down; the uncovered border is nodata-zero, as a misregistered
pre image is). Pixel scores of the damaged class (``data.damage``, default major + destroyed).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace

import numpy as np

from benchmarks.common import machine_header, print_table, xbd_samples
from damagemap.recipe import apply_overrides, load_recipe
from damagemap.training.pipeline import encoder_for, evaluate_model, train_model
from damagemap.types import Sample


def shifted(samples: list[Sample], by: int) -> list[Sample]:
    """Copies whose pre image is moved ``by`` pixels right and down (zeros where it uncovers)."""
    if by == 0:
        return samples
    out = []
    for s in samples:
        assert s.pre is not None
        pre = np.zeros_like(s.pre)
        pre[:, by:, by:] = s.pre[:, :-by, :-by]
        out.append(replace(s, pre=pre))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="joplin-tornado")
    ap.add_argument("--post", default="recipes/xbd_lite.yaml")
    ap.add_argument("--pair", default="recipes/xbd_pair_lite.yaml")
    ap.add_argument("--shifts", default="0,2,4,8")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    print(machine_header())
    post_recipe = apply_overrides(load_recipe(args.post), args.overrides)
    pair_recipe = apply_overrides(load_recipe(args.pair), args.overrides)
    samples = xbd_samples(pair_recipe, pre=True)
    events = sorted({s.domain for s in samples})
    if args.target not in events:
        raise SystemExit(f"--target {args.target!r}: not an xBD event here; events: {', '.join(events)}")
    source = [s for s in samples if s.domain != args.target]
    target = [s for s in samples if s.domain == args.target]
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        encoder = encoder_for(pair_recipe)
        for recipe in (post_recipe, pair_recipe):
            t0 = time.perf_counter()
            model, _ = train_model(recipe, source, encoder=encoder, cache_dir=cache)
            seconds = time.perf_counter() - t0
            shifts = [int(v) for v in args.shifts.split(",")] if recipe.input.pair else [0]
            for by in shifts:
                s = evaluate_model(model, shifted(target, by), cache)["all"]
                label = f"{recipe.name}" + (f", pre shifted {by} px" if recipe.input.pair else "")
                rows.append([label, f"{s['f1']:.3f}", f"{s['damage_iou']:.3f}", f"{s['miou']:.3f}", f"{seconds:.0f}"])
    damaged = sum(int((s.mask == 1).sum()) for s in target)
    labelled = sum(int((s.mask != 255).sum()) for s in target)
    print_table(
        f"xBD leave-one-event-out, target {args.target} ({len(target)} chips, {damaged / labelled:.2%} damaged "
        f"pixels), sources {', '.join(e for e in events if e != args.target)}",
        ["model", "damage F1", "damage IoU", "mIoU", "train s"],
        rows,
    )


if __name__ == "__main__":
    main()
