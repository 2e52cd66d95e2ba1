"""The plain-torch EfficientNet-Lite equals timm's ``tf_efficientnet_lite{0,2}`` features model."""

from __future__ import annotations

import subprocess
import sys

import pytest
import timm
import torch

from damagemap.encoders import build_encoder
from damagemap.encoders.lite_net import LiteFeatures
from damagemap.fusion import prepare_for_inference


def _random_bn_stats(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial BatchNorm statistics and affine terms, so a mismatched norm layer shows."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


@pytest.mark.parametrize(
    ("variant", "arch"),
    [("efficientnet-lite0", "tf_efficientnet_lite0"), ("efficientnet-lite2", "tf_efficientnet_lite2")],
)
@pytest.mark.parametrize("out_indices", [(1, 2, 3, 4), (0, 1, 2, 3, 4), (1, 2)])
def test_keys_and_features_equal_timm(variant: str, arch: str, out_indices: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    reference = timm.create_model(arch, pretrained=False, features_only=True, out_indices=out_indices).eval()
    _random_bn_stats(reference, seed=1)
    ours = LiteFeatures(variant, out_indices=out_indices).eval()
    state = reference.state_dict()
    assert sorted(ours.state_dict()) == sorted(state)
    ours.load_state_dict(state, strict=True)
    assert ours.channels == tuple(reference.feature_info.channels())
    assert ours.reductions == tuple(reference.feature_info.reduction())
    # even sizes take the asymmetric "same" padding of the strided convolutions (one more pixel
    # after), odd sizes the symmetric one; (96, 75) mixes both
    for size in [(64, 64), (97, 75), (96, 75)]:
        x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            want, got = reference(x), ours(x)
        assert len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            assert a.shape == b.shape
            assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)


def test_folding_keeps_the_activations() -> None:
    net = LiteFeatures("efficientnet-lite0").eval()
    _random_bn_stats(net, seed=3)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        before = net(x)
        assert prepare_for_inference(net) == sum(
            isinstance(m, torch.nn.BatchNorm2d) for m in LiteFeatures("efficientnet-lite0").modules()
        )
        after = net(x.contiguous(memory_format=torch.channels_last))
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(before, after, strict=True))


def test_rejects_unknown_options() -> None:
    from damagemap.errors import ConfigError

    with pytest.raises(ConfigError, match="drop_path_rate"):
        build_encoder("efficientnet-lite0", pretrained=False, drop_path_rate=0.1)


def test_default_encoder_builds_without_importing_timm() -> None:
    code = (
        "import sys\n"
        "from damagemap.encoders import build_encoder\n"
        "build_encoder('efficientnet-lite0')\n"
        "import damagemap.mapping, damagemap.tile_predictor\n"
        "print(sorted(m for m in ('timm', 'torchvision', 'geopandas', 'pandas', 'pyogrio') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
