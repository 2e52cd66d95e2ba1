import torch

from damagemap.training.feature_cache import FeatureCache
from tests.tiny import TinyEncoder


def _inputs(seed: int = 0, n: int = 5) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(3, 32, 32, generator=g) for _ in range(n)]


def _run(cache: FeatureCache, xs: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    return cache.features([f"v{i}" for i in range(len(xs))], lambda i: xs[i], batch_size=2)


def test_second_pass_and_restart_never_run_the_encoder(tmp_path) -> None:
    enc = TinyEncoder().freeze()
    xs = _inputs()
    first = _run(FeatureCache(enc, "t", tmp_path), xs)
    calls = enc.calls
    assert calls == 3  # 5 views in batches of 2
    restarted = FeatureCache(enc, "t", tmp_path)  # a new process would build a new cache object
    again = _run(restarted, xs)
    assert enc.calls == calls and restarted.hits == 5 and restarted.misses == 0
    for a, b in zip(first, again):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    # cached values are the encoder's output (stored as float16)
    direct = enc(torch.stack(xs))
    assert torch.allclose(again[3][1].float(), direct[1][3], atol=1e-2, rtol=1e-2)


def test_changed_image_changed_encoder_and_changed_transform_miss(tmp_path) -> None:
    enc = TinyEncoder(seed=0).freeze()
    xs = _inputs()
    _run(FeatureCache(enc, "t", tmp_path), xs)
    xs[2] = xs[2].clone()
    xs[2][0, 0, 0] += 0.5
    c = FeatureCache(enc, "t", tmp_path)
    _run(c, xs)
    assert (c.hits, c.misses) == (4, 1)
    other = TinyEncoder(seed=1).freeze()
    assert other.fingerprint != enc.fingerprint
    c2 = FeatureCache(other, "t", tmp_path)
    _run(c2, xs)
    assert c2.misses == 5
    c3 = FeatureCache(enc, "other-transform", tmp_path)
    _run(c3, xs)
    assert c3.misses == 5


def test_corrupt_entry_is_recomputed(tmp_path) -> None:
    enc = TinyEncoder().freeze()
    xs = _inputs(n=2)
    _run(FeatureCache(enc, "t", tmp_path), xs)
    for f in tmp_path.rglob("*.safetensors"):
        f.write_bytes(b"garbage")
    c = FeatureCache(enc, "t", tmp_path)
    out = _run(c, xs)
    assert c.misses == 2 and out[0][0].shape == (8, 8, 8)


def test_memory_only_cache_writes_nothing(tmp_path) -> None:
    enc = TinyEncoder().freeze()
    c = FeatureCache(enc, "t", None)
    _run(c, _inputs(n=2))
    assert c.misses == 2 and not any(tmp_path.iterdir())
