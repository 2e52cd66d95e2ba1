"""Label efficiency of `damagemap suggest` vs random picks, on real data from outside the project.

    python -m benchmarks.label_efficiency --dataset landslide --target sichuan
    python -m benchmarks.label_efficiency --dataset xbd --target hurricane-michael

A responder's loop, simulated on labelled tiles: the target domain (a region / an event the
model has not seen) is split into a fixed test set and a pool (by whole image: the chips of one
xBD tile are all test or all pool). The model starts from the source
domains plus ``--start`` labelled target tiles; every round adds ``--per-round`` pool tiles,
picked either by damagemap's selection (uncertainty × feature-space diversity, the code behind
`damagemap suggest`) or at random, and is retrained (same seed, same source data; epochs
chosen on a source validation split). After each round the table shows the target test score,
mean ± std over ``--seeds`` seeds (each seed draws its own starting tiles and random picks).
The selection is worth shipping only if it reaches random's final score with clearly fewer
labels; the table reports whatever it shows.
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np

from benchmarks.common import machine_header, print_table, shared, xbd_samples
from damagemap.active.samples import sample_scores
from damagemap.active.select import select_tiles
from damagemap.data.loading import load_samples
from damagemap.recipe import apply_overrides, load_recipe
from damagemap.training.pipeline import encoder_for, evaluate_model, split_validation, train_model
from damagemap.types import Sample


def load(dataset: str, recipe_path: str, overrides: list[str]) -> tuple[list[Sample], object]:
    recipe = load_recipe(recipe_path)
    if dataset == "landslide":
        return load_samples(shared("landslide"), recipe.data, len(recipe.classes)), recipe
    recipe = apply_overrides(recipe, ["data.format=xbd", "data.chip=512", *overrides])
    return xbd_samples(recipe, pre=recipe.input.pair), recipe


def run(samples, recipe, target, start, per_round, rounds, seed, method, encoder, cache, test_share):
    rng = np.random.default_rng([seed, 7])
    tgt = sorted((s for s in samples if s.domain == target), key=lambda s: s.key)
    # test tiles are whole scenes: chips of one xBD tile are either all test or all pool
    parents = sorted({s.meta.get("parent", s.id) for s in tgt})
    order = rng.permutation(len(parents))
    test_parents = {parents[i] for i in order[: max(1, round(test_share * len(parents)))]}
    test = [s for s in tgt if s.meta.get("parent", s.id) in test_parents]
    pool = [s for s in tgt if s.meta.get("parent", s.id) not in test_parents]
    source = [s for s in samples if s.domain != target]
    src_train, src_val = split_validation(source, recipe.train.val_fraction, recipe.train.seed)
    labelled = [pool.pop(int(i)) for i in sorted(rng.choice(len(pool), start, replace=False), reverse=True)]
    curve = []
    for r in range(rounds + 1):
        model, _ = train_model(recipe, src_train + labelled, src_val, encoder=encoder, cache_dir=cache)
        scores = evaluate_model(model, test, cache)["all"]
        curve.append((len(labelled), scores["f1"], scores["miou"]))
        if r == rounds or not pool:
            break
        k = min(per_round, len(pool))
        if method == "random":
            picks = rng.choice(len(pool), k, replace=False)
        else:
            u, f = sample_scores(model, pool)
            _, f_lab = sample_scores(model, labelled)
            picks = select_tiles(u, f, k, labelled=f_lab).index
        for i in sorted((int(p) for p in picks), reverse=True):
            labelled.append(pool.pop(i))
    return curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=["landslide", "xbd"], default="landslide")
    ap.add_argument("--target", default="sichuan")
    ap.add_argument("--recipe", default="recipes/smart_transfer_lite.yaml")
    ap.add_argument("--start", type=int, default=2)
    ap.add_argument("--per-round", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--test-share", type=float, default=0.4)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    print(machine_header())
    samples, recipe = load(args.dataset, args.recipe, args.overrides)
    recipe = apply_overrides(recipe, args.overrides) if args.dataset == "landslide" else recipe
    domains = sorted({s.domain for s in samples})
    if args.target not in domains:
        raise SystemExit(f"--target {args.target!r}: not a domain of {args.dataset}; domains: {', '.join(domains)}")
    encoder = encoder_for(recipe)
    curves: dict[str, list[list[tuple[int, float, float]]]] = {"random": [], "suggest": []}
    with tempfile.TemporaryDirectory() as cache:
        for seed in range(args.seeds):
            for method in curves:
                curves[method].append(
                    run(
                        samples,
                        recipe,
                        args.target,
                        args.start,
                        args.per_round,
                        args.rounds,
                        seed,
                        method,
                        encoder,
                        cache,
                        args.test_share,
                    )
                )
    rows = []
    for r in range(min(len(c) for cs in curves.values() for c in cs)):
        n = curves["random"][0][r][0]
        row: list[object] = [n]
        for method in ("random", "suggest"):
            f1 = np.array([c[r][1] for c in curves[method]])
            miou = np.array([c[r][2] for c in curves[method]])
            row += [f"{np.nanmean(f1):.3f} ± {np.nanstd(f1):.3f}", f"{np.nanmean(miou):.3f} ± {np.nanstd(miou):.3f}"]
        rows.append(row)
    n_target = sum(s.domain == args.target for s in samples)
    print_table(
        f"{recipe.name} on {args.dataset}, target {args.target} ({n_target} tiles, {args.test_share:.0%} test), "
        f"sources {', '.join(d for d in domains if d != args.target)}; {args.seeds} seeds",
        ["target tiles labelled", "random F1", "random mIoU", "suggest F1", "suggest mIoU"],
        rows,
    )
    final = np.nanmean([c[-1][1] for c in curves["random"]])
    reach = next(
        (row[0] for r, row in enumerate(rows) if np.nanmean([c[r][1] for c in curves["suggest"]]) >= final), None
    )
    print(
        f"random's final F1 {final:.3f} at {rows[-1][0]} labelled tiles; "
        + (f"suggest reaches it at {reach}" if reach is not None else "suggest does not reach it")
    )


if __name__ == "__main__":
    main()
