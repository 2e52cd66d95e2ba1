"""Evaluation protocols as train / val / test key lists (docs/methods.md §1).

Every domain is split into ``k`` folds stratified on its damaged-pixel fraction. For fold f of a
domain, test = fold f, val = fold (f+1) % k, train = the rest. Source domains in cross-domain
protocols contribute everything except their fold-f val split to training and that val split to
model selection, so model selection never sees the target domain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold

from damagemap.errors import ConfigError
from damagemap.types import Sample

DEFAULT_BINS = (0.0, 0.01, 0.05, 0.2)


@dataclass
class Fold:
    """One train / evaluate unit of a protocol; lists hold ``Sample.key`` values."""

    name: str
    train: list[str]
    val: list[str]
    test: list[str]
    target_domain: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _by_domain(samples: Sequence[Sample]) -> dict[str, list[Sample]]:
    """Samples grouped by domain, domains and samples sorted by key (input order is irrelevant)."""
    groups: dict[str, list[Sample]] = {}
    for s in sorted(samples, key=lambda s: s.key):
        groups.setdefault(s.domain, []).append(s)
    keys = [s.key for s in samples]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise ConfigError(f"duplicate sample keys: {dup[:5]}")
    return dict(sorted(groups.items()))


def _merge_small_strata(strata: np.ndarray, k: int) -> np.ndarray:
    """Merge strata with fewer than k members into a neighbour until every stratum has ≥ k.

    Repeatedly the smallest stratum (ties: the lowest bin) is merged into its smaller adjacent
    stratum (ties: the lower one). Strata are ordered by damage, so merges join similar bins.
    """
    strata = strata.copy()
    while True:
        values, counts = np.unique(strata, return_counts=True)
        if len(values) == 1 or counts.min() >= k:
            return strata
        i = int(np.argmin(counts))
        neighbours = [j for j in (i - 1, i + 1) if 0 <= j < len(values)]
        j = min(neighbours, key=lambda j: (counts[j], j))
        strata[strata == values[i]] = values[j]


def stratified_kfold(
    samples: Sequence[Sample],
    k: int = 5,
    bins: Sequence[float] = DEFAULT_BINS,
    seed: int = 42,
    damage_classes: tuple[int, ...] = (1,),
) -> dict[str, list[list[str]]]:
    """Per domain, ``k`` test-key lists stratified on ``np.digitize(damaged_fraction, bins)``.

    Bins with fewer than ``k`` samples are merged with a neighbour (see :func:`_merge_small_strata`).

    Raises:
        ConfigError: if ``k < 2`` or a domain has fewer than ``k`` samples.
    """
    if k < 2:
        raise ConfigError(f"k-fold needs k >= 2, got k={k}")
    folds: dict[str, list[list[str]]] = {}
    for domain, items in _by_domain(samples).items():
        if len(items) < k:
            raise ConfigError(f"domain {domain!r} has {len(items)} samples, fewer than k={k} folds")
        fractions = np.array([s.damaged_fraction(damage_classes) for s in items])
        strata = _merge_small_strata(np.digitize(fractions, bins), k)
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        folds[domain] = [[items[i].key for i in test] for _, test in splitter.split(fractions, strata)]
    return folds


def _split(folds: list[list[str]], f: int) -> tuple[list[str], list[str], list[str]]:
    """(train, val, test) of fold f: test = f, val = (f+1) % k, train = the rest."""
    v = (f + 1) % len(folds)
    train = [key for i, part in enumerate(folds) if i not in (f, v) for key in part]
    return train, folds[v], folds[f]


def _sources(folds: dict[str, list[list[str]]], domains: Sequence[str], f: int) -> tuple[list[str], list[str]]:
    """(train, val) pooled over source ``domains``: everything but their fold-f val split / that split."""
    train: list[str] = []
    val: list[str] = []
    for d in domains:
        t, v, test = _split(folds[d], f)
        train += t + test
        val += v
    return train, val


def _check_domains(names: Sequence[str], known: Sequence[str], role: str) -> None:
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown {role} domain(s) {unknown}; known domains: {list(known)}")


def kfold_folds(samples: Sequence[Sample], k: int = 5, val_fraction: float = 0.2, **kw: Any) -> list[Fold]:
    """Full supervision inside each domain: test on fold f, train on the other k − 1 folds.

    As the reference (``build_kfold_loaders`` of ai4city-hkust/SmartTransfer) the model learns
    from the other (k − 1)/k of the domain; the epoch is chosen on a seeded ``val_fraction``
    hold-out of that training part (at least one sample), never on the test fold.
    ``kw`` go to :func:`stratified_kfold`.
    """
    if k < 2:
        raise ConfigError(f"within-domain k-fold needs k >= 2, got k={k}")
    seed = int(kw.get("seed", 42))
    out = []
    for domain, folds in stratified_kfold(samples, k, **kw).items():
        for f in range(k):
            rest = sorted(key for i, part in enumerate(folds) if i != f for key in part)
            order = [rest[i] for i in np.random.default_rng([seed, f]).permutation(len(rest))]
            n_val = max(1, round(val_fraction * len(rest))) if val_fraction > 0 and len(rest) > 1 else 0
            val, train = sorted(order[:n_val]), sorted(order[n_val:])
            meta = {"protocol": "kfold", "fold": f}
            out.append(Fold(f"kfold/{domain}/f{f}", train, val, folds[f], domain, meta))
    return out


def lodo_folds(samples: Sequence[Sample], k: int = 5, targets: Sequence[str] | None = None, **kw: Any) -> list[Fold]:
    """Leave one domain out.

    For each target D and fold f, train / val on the other domains (their fold-f val split is
    the val set), test on D's fold-f test split.
    """
    folds = stratified_kfold(samples, k, **kw)
    domains = list(folds)
    if len(domains) < 2:
        raise ConfigError(f"LODO needs at least 2 domains, got {domains}")
    targets = domains if targets is None else list(targets)
    _check_domains(targets, domains, "target")
    out = []
    for target in targets:
        sources = [d for d in domains if d != target]
        for f in range(k):
            train, val = _sources(folds, sources, f)
            meta = {"protocol": "lodo", "fold": f, "sources": sources}
            out.append(Fold(f"lodo/{target}/f{f}", train, val, folds[target][f], target, meta))
    return out


def ssdc_folds(samples: Sequence[Sample], sources: Sequence[str], k: int = 5, **kw: Any) -> list[Fold]:
    """Specific source domain combination.

    Train / val on ``sources`` (as in LODO), test on fold f of every other domain.
    """
    folds = stratified_kfold(samples, k, **kw)
    domains = list(folds)
    sources = list(sources)
    if not sources:
        raise ConfigError(f"SSDC needs at least one source domain; known domains: {domains}")
    _check_domains(sources, domains, "source")
    targets = [d for d in domains if d not in sources]
    if not targets:
        raise ConfigError(f"SSDC sources {sources} cover every domain; nothing is left to test on")
    tag = "+".join(sources)
    out = []
    for target in targets:
        for f in range(k):
            train, val = _sources(folds, sources, f)
            meta = {"protocol": "ssdc", "fold": f, "sources": sources}
            out.append(Fold(f"ssdc/{tag}/{target}/f{f}", train, val, folds[target][f], target, meta))
    return out


FEWSHOT_DRAWS = ("random", "damaged-first")
FEWSHOT_DECODERS = ("sources", "sources+shots")


def fewshot_folds(
    samples: Sequence[Sample],
    target: str,
    shots: Sequence[int] = (0, 1, 3, 5, 10),
    k: int = 5,
    seed: int = 42,
    damage_classes: tuple[int, ...] = (1,),
    draw: str = "random",
    decoder: str = "sources",
    shot_seed: int = 0,
    **kw: Any,
) -> list[Fold]:
    """Few-shot: LODO source train / val, n labelled target samples, test on the target's fold f.

    Shots come from the target samples outside fold f's test split. ``draw="random"`` (the
    paper; as the reference tester: ``RandomState(shot_seed + f).choice``) takes a seeded random
    order; ``"damaged-first"`` puts the samples with damaged pixels first (a responder labels
    tiles that show damage). n shots are the first n of that order, so smaller shot sets are
    subsets of larger ones. ``decoder="sources"`` (the paper): ``fold.train`` holds the sources
    only — the decoder is trained on them and the shots only adapt the encoder (LoRA);
    ``"sources+shots"`` also trains the decoder on the shots. n = 0 is the source-only model.
    The shot keys are in ``fold.meta["shots"]``.
    """
    if draw not in FEWSHOT_DRAWS or decoder not in FEWSHOT_DECODERS:
        raise ConfigError(
            f"few-shot: draw must be one of {FEWSHOT_DRAWS} and decoder one of {FEWSHOT_DECODERS}, "
            f"got {draw!r}, {decoder!r}"
        )
    if any(n < 0 for n in shots):
        raise ConfigError(f"few-shot: shot counts must be >= 0, got {list(shots)}")
    folds = stratified_kfold(samples, k, seed=seed, damage_classes=damage_classes, **kw)
    domains = list(folds)
    _check_domains([target], domains, "target")
    sources = [d for d in domains if d != target]
    if not sources:
        raise ConfigError(f"few-shot needs at least one source domain besides {target!r}")
    damaged = {s.key for s in samples if s.domain == target and s.damaged_fraction(damage_classes) > 0}
    out = []
    for f in range(k):
        test = folds[target][f]
        pool = sorted(key for i, part in enumerate(folds[target]) if i != f for key in part)
        order = [pool[i] for i in np.random.RandomState(shot_seed + f).permutation(len(pool))]
        if draw == "damaged-first":
            order = [key for key in order if key in damaged] + [key for key in order if key not in damaged]
        train, val = _sources(folds, sources, f)
        for n in shots:
            if n > len(order):
                raise ConfigError(
                    f"few-shot: {n} shots requested but target {target!r} has only {len(order)} "
                    f"samples outside the fold-{f} test split"
                )
            meta = {
                "protocol": "fewshot",
                "fold": f,
                "sources": sources,
                "n_shots": n,
                "shots": order[:n],
                "draw": draw,
                "decoder": decoder,
            }
            fold_train = train + order[:n] if decoder == "sources+shots" else list(train)
            out.append(Fold(f"fewshot/{target}/{n}shot/f{f}", fold_train, val, test, target, meta))
    return out
