import random
import warnings

import numpy as np
import pytest

from damagemap.errors import ConfigError
from damagemap.protocols import Fold, fewshot_folds, kfold_folds, lodo_folds, ssdc_folds, stratified_kfold
from damagemap.protocols.splits import _merge_small_strata
from damagemap.types import Sample


def sample(domain: str, i: int, damaged_px: int) -> Sample:
    mask = np.zeros((10, 10), dtype=np.int64)
    mask.reshape(-1)[:damaged_px] = 1
    return Sample(image=np.zeros((1, 10, 10), np.float32), mask=mask, domain=domain, id=f"t{i:02d}")


def dataset() -> list[Sample]:
    """nepal: 25 (5 heavily damaged); haiti: 15 (2 heavily damaged: a bin smaller than k); peru: 12."""
    out = [sample("nepal", i, 30 if i < 5 else (3 if i < 10 else 0)) for i in range(25)]
    out += [sample("haiti", i, 50 if i < 2 else (2 if i < 8 else 0)) for i in range(15)]
    out += [sample("peru", i, 10 if i % 3 == 0 else 0) for i in range(12)]
    return out


def keys_of(samples, domain):
    return {s.key for s in samples if s.domain == domain}


def test_folds_partition_each_domain_without_warnings():
    samples = dataset()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # small bins are merged, so StratifiedKFold does not warn
        folds = stratified_kfold(samples, k=5)
    assert sorted(folds) == ["haiti", "nepal", "peru"]
    for domain, parts in folds.items():
        flat = [key for part in parts for key in part]
        assert len(parts) == 5 and len(flat) == len(set(flat)) and set(flat) == keys_of(samples, domain)


def test_stratification_spreads_damaged_samples():
    folds = stratified_kfold(dataset(), k=5)
    heavy = {f"nepal/t{i:02d}" for i in range(5)}
    assert [len(heavy & set(part)) for part in folds["nepal"]] == [1] * 5


def test_small_strata_merge_into_smaller_neighbour():
    strata = np.array([1] * 10 + [2] * 3 + [4] * 6)
    merged = _merge_small_strata(strata, 5)
    assert merged.tolist() == [1] * 10 + [4] * 9
    assert _merge_small_strata(np.array([1, 1, 2]), 5).tolist() == [1, 1, 1]  # one stratum left


def test_deterministic_and_independent_of_input_order():
    samples = dataset()
    shuffled = samples[:]
    random.Random(1).shuffle(shuffled)
    assert stratified_kfold(samples) == stratified_kfold(shuffled)
    assert stratified_kfold(samples, seed=42) != stratified_kfold(samples, seed=7)
    assert lodo_folds(samples) == lodo_folds(shuffled)


def check_disjoint(fold: Fold) -> None:
    train, val, test = set(fold.train), set(fold.val), set(fold.test)
    assert not train & test and not val & test and not train & val


def test_kfold_within_domain():
    samples = dataset()
    folds = kfold_folds(samples, k=5)
    assert len(folds) == 15 and folds[0].name == "kfold/haiti/f0"
    for fold in folds:
        check_disjoint(fold)
        domain_keys = keys_of(samples, fold.target_domain)
        assert set(fold.train) | set(fold.val) | set(fold.test) == domain_keys
        # as the reference: the model learns from the other 4/5; the epoch is chosen on a
        # fifth of that part (not on a whole fold, not on the test fold)
        rest = len(domain_keys) - len(fold.test)
        assert len(fold.val) == max(1, round(0.2 * rest)) and len(fold.train) == rest - len(fold.val)
    tests = [key for f in folds if f.target_domain == "peru" for key in f.test]
    assert sorted(tests) == sorted(keys_of(samples, "peru"))


def test_lodo_has_no_target_in_train_or_val():
    samples = dataset()
    folds = lodo_folds(samples, k=5)
    assert len(folds) == 15 and {f.name for f in folds} >= {"lodo/nepal/f0", "lodo/peru/f4"}
    parts = stratified_kfold(samples, k=5)
    for fold in folds:
        check_disjoint(fold)
        target = keys_of(samples, fold.target_domain)
        assert not (set(fold.train) | set(fold.val)) & target
        assert fold.test == parts[fold.target_domain][fold.meta["fold"]]
        sources = set().union(*(keys_of(samples, d) for d in fold.meta["sources"]))
        assert set(fold.train) | set(fold.val) == sources
    assert [f.name for f in lodo_folds(samples, targets=["haiti"])][:2] == ["lodo/haiti/f0", "lodo/haiti/f1"]


def test_ssdc_trains_on_sources_only():
    samples = dataset()
    folds = ssdc_folds(samples, ["nepal"], k=5)
    assert {f.target_domain for f in folds} == {"haiti", "peru"} and folds[0].name == "ssdc/nepal/haiti/f0"
    for fold in folds:
        check_disjoint(fold)
        assert set(fold.train) | set(fold.val) == keys_of(samples, "nepal")
        assert set(fold.test) <= keys_of(samples, fold.target_domain)


def test_fewshot_damaged_first_shots_come_from_target_non_test_and_prefer_damage():
    samples = dataset()
    folds = fewshot_folds(samples, "peru", shots=(1, 3, 5), k=5, draw="damaged-first", decoder="sources+shots")
    assert len(folds) == 15 and folds[0].name == "fewshot/peru/1shot/f0"
    damaged = {f"peru/t{i:02d}" for i in range(0, 12, 3)}  # 4 damaged target samples
    by_fold: dict[int, list[list[str]]] = {}
    for fold in folds:
        check_disjoint(fold)
        shots = fold.meta["shots"]
        assert len(shots) == fold.meta["n_shots"] and set(shots) <= set(fold.train)
        assert set(shots) <= keys_of(samples, "peru") - set(fold.test)
        assert set(fold.train) - set(shots) <= keys_of(samples, "nepal") | keys_of(samples, "haiti")
        assert not set(fold.val) & keys_of(samples, "peru")
        available = len(damaged - set(fold.test))
        assert len(set(shots) & damaged) == min(len(shots), available)
        by_fold.setdefault(fold.meta["fold"], []).append(shots)
    for shots in by_fold.values():  # nested: 1-shot ⊂ 3-shot ⊂ 5-shot
        assert shots[0] == shots[1][:1] and shots[1] == shots[2][:3]
    assert fewshot_folds(samples, "peru", shots=(3,)) == fewshot_folds(samples, "peru", shots=(3,))


def test_fewshot_default_is_the_paper_protocol():
    """Random seeded shots (not damaged-first), decoder trained on the sources only, n = 0 included."""
    samples = dataset()
    assert fewshot_folds.__defaults__[0] == (0, 1, 3, 5, 10)  # the paper's n, with the source-only n = 0
    folds = fewshot_folds(samples, "peru", shots=(0, 1, 3, 8), k=5)
    assert sorted({f.meta["n_shots"] for f in folds}) == [0, 1, 3, 8]
    sources = keys_of(samples, "nepal") | keys_of(samples, "haiti")
    for fold in folds:
        check_disjoint(fold)
        assert set(fold.train) <= sources  # the shots never train the decoder
        assert set(fold.meta["shots"]) <= keys_of(samples, "peru") - set(fold.test)
    f0 = {f.meta["n_shots"]: f.meta["shots"] for f in folds if f.meta["fold"] == 0}
    pool = sorted(k for k in keys_of(samples, "peru") if k not in next(f for f in folds if f.meta["fold"] == 0).test)
    expected = [pool[i] for i in np.random.RandomState(0).permutation(len(pool))]
    assert f0[8] == expected[:8] and f0[3] == expected[:3] and f0[0] == []


def test_errors_are_clear():
    samples = dataset()
    with pytest.raises(ConfigError, match=r"unknown source.*'atlantis'.*known domains.*haiti"):
        ssdc_folds(samples, ["atlantis"])
    with pytest.raises(ConfigError, match="unknown target"):
        fewshot_folds(samples, "atlantis")
    with pytest.raises(ConfigError, match="unknown target"):
        lodo_folds(samples, targets=["atlantis"])
    with pytest.raises(ConfigError, match=r"has only \d+ samples"):
        fewshot_folds(samples, "peru", shots=(50,))
    with pytest.raises(ConfigError, match="at least 2 domains"):
        lodo_folds([s for s in samples if s.domain == "nepal"])
    with pytest.raises(ConfigError, match=r"'peru' has 12 samples, fewer than k=13"):
        stratified_kfold(samples, k=13)
    with pytest.raises(ConfigError, match="cover every domain"):
        ssdc_folds(samples, ["nepal", "haiti", "peru"])
    with pytest.raises(ConfigError, match="duplicate"):
        stratified_kfold(samples + samples[:1])
    with pytest.raises(ConfigError, match="k >= 2"):
        kfold_folds(samples, k=1)


def _with_scarce() -> list[Sample]:
    """dataset() plus 'tonga' with 3 samples: fewer than k = 5 folds."""
    return dataset() + [sample("tonga", i, 20 if i == 0 else 0) for i in range(3)]


def test_scarce_domain_is_a_source_only_in_lodo():
    samples = _with_scarce()
    folds = lodo_folds(samples, k=5)
    tonga = keys_of(samples, "tonga")
    assert {f.target_domain for f in folds} == {"nepal", "haiti", "peru"}  # never a target
    for f in folds:
        assert tonga <= set(f.train) and not tonga & set(f.val + f.test)  # all of it trains every fold
        assert f.meta["source_only"] == ["tonga"] and "tonga" in f.meta["sources"]
    with pytest.raises(ConfigError, match=r"cannot be split into 5 folds \(tonga has 3"):
        lodo_folds(samples, k=5, targets=["tonga"])


def test_scarce_domain_in_ssdc_kfold_and_fewshot():
    samples = _with_scarce()
    tonga = keys_of(samples, "tonga")
    ssdc = ssdc_folds(samples, ["nepal", "tonga"], k=5)
    assert {f.target_domain for f in ssdc} == {"haiti", "peru"} and all(tonga <= set(f.train) for f in ssdc)
    assert {f.target_domain for f in kfold_folds(samples, k=5)} == {"nepal", "haiti", "peru"}
    shots = fewshot_folds(samples, "peru", shots=(0, 1), k=5)
    assert all(tonga <= set(f.train) for f in shots)
    with pytest.raises(ConfigError, match="cannot be split"):
        fewshot_folds(samples, "tonga", k=5)


def test_scarce_check_runs_on_counts_alone():
    from damagemap.protocols.splits import check_scarce_targets, scarce_note

    counts = {"joplin": 12, "palu": 4, "mexico": 4}
    scarce = check_scarce_targets(counts, 5, "lodo")
    assert scarce == {"mexico": 4, "palu": 4}
    assert scarce_note(scarce, 5).endswith("mexico (4), palu (4)")
    with pytest.raises(ConfigError, match="no domain has at least 5"):
        check_scarce_targets({"palu": 4, "mexico": 4}, 5, "lodo")
    with pytest.raises(ConfigError, match="unknown target"):
        check_scarce_targets(counts, 5, "lodo", targets=["atlantis"])
