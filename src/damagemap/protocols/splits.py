"""Evaluation protocols as train / val / test key lists (docs/methods.md §1).

Every domain is split into ``k`` folds stratified on its damaged-pixel fraction. For fold f of a
domain, test = fold f, val = fold (f+1) % k, train = the rest. Source domains in cross-domain
protocols contribute everything except their fold-f val split to training and that val split to
model selection, so model selection never sees the target domain.

A domain with fewer samples than folds (a scarce event) cannot be split: the cross-domain
protocols use all of its samples for training, as a source only (never a target); k-fold skips
it. :func:`scarce_domains` finds them from counts (a listing, before any image is read) and
:func:`check_scarce_targets` refuses a protocol that would have to test on one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


def scarce_domains(counts: Mapping[str, int], k: int) -> dict[str, int]:
    """The domains of ``counts`` (samples per domain) with fewer than ``k`` samples, and their counts."""
    return {d: n for d, n in sorted(counts.items()) if n < k}


def scarce_note(scarce: Mapping[str, int], k: int) -> str:
    """The one line saying which domains are used as sources only."""
    listed = ", ".join(f"{d} ({n})" for d, n in scarce.items())
    return f"fewer samples than the {k} folds, used as source only (never a test target): {listed}"


def check_scarce_targets(
    counts: Mapping[str, int],
    k: int,
    protocol: str,
    targets: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
) -> dict[str, int]:
    """The scarce domains of ``counts``; refuses a protocol that would need one as a target.

    Raises:
        ConfigError: a named target is scarce, or no domain is left to test on.
    """
    _check_domains([*(targets or ()), *(sources or ())], list(counts), "target/source")
    scarce = scarce_domains(counts, k)
    named = [t for t in targets or () if t in scarce]
    if named:
        listed = ", ".join(f"{t} has {scarce[t]}" for t in named)
        raise ConfigError(
            f"target domain(s) cannot be split into {k} folds ({listed} samples): lower --folds or pick other targets"
        )
    testable = [d for d in counts if d not in scarce and d not in (sources or ())]
    if not testable:
        raise ConfigError(f"{protocol}: no domain has at least {k} samples to test on ({dict(counts)}); lower --folds")
    if protocol in ("lodo", "fewshot") and len(counts) < 2:
        raise ConfigError(f"{protocol} needs at least 2 domains, got {list(counts)}")
    return scarce


def _counts(samples: Sequence[Sample]) -> dict[str, int]:
    return {d: len(items) for d, items in _by_domain(samples).items()}


def stratified_kfold(
    samples: Sequence[Sample],
    k: int = 5,
    bins: Sequence[float] = DEFAULT_BINS,
    seed: int = 42,
    damage_classes: tuple[int, ...] = (1,),
    skip_scarce: bool = False,
) -> dict[str, list[list[str]]]:
    """Per domain, ``k`` test-key lists stratified on ``np.digitize(damaged_fraction, bins)``.

    Bins with fewer than ``k`` samples are merged with a neighbour (see :func:`_merge_small_strata`).
    With ``skip_scarce`` a domain with fewer than ``k`` samples is left out instead of refused.

    Raises:
        ConfigError: if ``k < 2`` or (without ``skip_scarce``) a domain has fewer than ``k`` samples.
    """
    if k < 2:
        raise ConfigError(f"k-fold needs k >= 2, got k={k}")
    folds: dict[str, list[list[str]]] = {}
    for domain, items in _by_domain(samples).items():
        if len(items) < k and skip_scarce:
            continue
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


def _scarce_keys(samples: Sequence[Sample], scarce: Mapping[str, int]) -> list[str]:
    """Every key of the scarce domains (they train each fold whole)."""
    return sorted(s.key for s in samples if s.domain in scarce)


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
    check_scarce_targets(_counts(samples), k, "kfold")
    out = []
    for domain, folds in stratified_kfold(samples, k, skip_scarce=True, **kw).items():
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
    the val set), test on D's fold-f test split. Domains with fewer than ``k`` samples are
    sources only: all their samples train every fold (``meta["source_only"]``).
    """
    counts = _counts(samples)
    if len(counts) < 2:
        raise ConfigError(f"LODO needs at least 2 domains, got {list(counts)}")
    _check_domains(list(targets or ()), list(counts), "target")
    scarce = check_scarce_targets(counts, k, "lodo", targets)
    folds = stratified_kfold(samples, k, skip_scarce=True, **kw)
    domains = list(folds)
    extra = _scarce_keys(samples, scarce)
    targets = domains if targets is None else list(targets)
    out = []
    for target in targets:
        sources = [d for d in domains if d != target]
        for f in range(k):
            train, val = _sources(folds, sources, f)
            train += extra
            meta = {"protocol": "lodo", "fold": f, "sources": sources + list(scarce), "source_only": list(scarce)}
            out.append(Fold(f"lodo/{target}/f{f}", train, val, folds[target][f], target, meta))
    return out


def ssdc_folds(samples: Sequence[Sample], sources: Sequence[str], k: int = 5, **kw: Any) -> list[Fold]:
    """Specific source domain combination.

    Train / val on ``sources`` (as in LODO), test on fold f of every other domain. A scarce
    source (fewer than ``k`` samples) trains every fold whole; a scarce non-source is not tested.
    """
    counts = _counts(samples)
    domains = list(counts)
    sources = list(sources)
    if not sources:
        raise ConfigError(f"SSDC needs at least one source domain; known domains: {domains}")
    _check_domains(sources, domains, "source")
    if not [d for d in domains if d not in sources]:
        raise ConfigError(f"SSDC sources {sources} cover every domain; nothing is left to test on")
    scarce = check_scarce_targets(counts, k, "ssdc", sources=sources)
    folds = stratified_kfold(samples, k, skip_scarce=True, **kw)
    extra = _scarce_keys(samples, {d: n for d, n in scarce.items() if d in sources})
    split_sources = [d for d in sources if d in folds]
    targets = [d for d in folds if d not in sources]
    tag = "+".join(sources)
    out = []
    for target in targets:
        for f in range(k):
            train, val = _sources(folds, split_sources, f)
            train += extra
            meta = {"protocol": "ssdc", "fold": f, "sources": sources, "source_only": list(scarce)}
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
    counts = _counts(samples)
    _check_domains([target], list(counts), "target")
    scarce = check_scarce_targets(counts, k, "fewshot", [target])
    folds = stratified_kfold(samples, k, seed=seed, damage_classes=damage_classes, skip_scarce=True, **kw)
    sources = [d for d in folds if d != target]
    extra = _scarce_keys(samples, scarce)
    if not sources and not extra:
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
        train += extra
        for n in shots:
            if n > len(order):
                raise ConfigError(
                    f"few-shot: {n} shots requested but target {target!r} has only {len(order)} "
                    f"samples outside the fold-{f} test split"
                )
            meta = {
                "protocol": "fewshot",
                "fold": f,
                "sources": sources + list(scarce),
                "source_only": list(scarce),
                "n_shots": n,
                "shots": order[:n],
                "draw": draw,
                "decoder": decoder,
            }
            fold_train = train + order[:n] if decoder == "sources+shots" else list(train)
            out.append(Fold(f"fewshot/{target}/{n}shot/f{f}", fold_train, val, test, target, meta))
    return out
