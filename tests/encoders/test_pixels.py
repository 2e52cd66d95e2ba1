"""The identity ``pixels`` encoder used by the trainable baselines."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import damagemap.encoders.pixels as pixels
from damagemap.encoders import ENCODERS, build_encoder
from damagemap.encoders.pixels import IMAGENET_MEAN, IMAGENET_STD, PixelsEncoder


def test_output_is_the_normalised_image_exactly() -> None:
    enc = PixelsEncoder().freeze()
    x = torch.rand(2, 3, 64, 32)
    out = enc(x)
    assert len(out) == 1
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.equal(out[0], (x - mean) / std)
    assert enc.channels == (3,) and enc.strides == (1,) and enc.size_multiple == 32


def test_is_frozen_and_has_no_parameters() -> None:
    enc = PixelsEncoder()
    assert list(enc.parameters()) == []
    assert enc.state_dict() == {}
    assert enc.freeze() is enc
    enc.train()
    assert not enc.training
    assert not enc(torch.rand(1, 3, 32, 32))[0].requires_grad


def test_fingerprint_is_stable_and_depends_on_normalisation() -> None:
    a, b = PixelsEncoder(), PixelsEncoder()
    assert a.fingerprint == b.fingerprint
    assert len(a.fingerprint) == 16
    assert PixelsEncoder(mean=(0.5, 0.5, 0.5)).fingerprint != a.fingerprint
    assert PixelsEncoder(in_chans=4).fingerprint != a.fingerprint


def test_extra_bands_use_the_mean_of_rgb_stats() -> None:
    enc = PixelsEncoder(in_chans=5)
    avg_mean = sum(IMAGENET_MEAN) / 3
    assert enc.mean == pytest.approx(IMAGENET_MEAN + (avg_mean, avg_mean))
    assert enc.std[3:] == pytest.approx((sum(IMAGENET_STD) / 3,) * 2)
    assert enc.channels == (5,) and enc.in_chans == 5
    assert enc(torch.rand(1, 5, 32, 32))[0].shape == (1, 5, 32, 32)


def test_input_checks() -> None:
    enc = PixelsEncoder()
    with pytest.raises(ValueError, match="divisible by 32"):
        enc(torch.rand(1, 3, 48, 64))
    with pytest.raises(ValueError, match=r"\[B,3,H,W\]"):
        enc(torch.rand(1, 4, 64, 64))
    with pytest.raises(ValueError, match="one per band"):
        PixelsEncoder(in_chans=4, mean=(0.5, 0.5, 0.5))


def test_registered_and_importing_twice_is_harmless() -> None:
    spec = ENCODERS["pixels"]
    assert spec.family == "baseline" and spec.offline_weights
    assert spec.description == "identity: normalised pixels for trainable baseline heads"
    source = Path(pixels.__file__).read_text()  # re-executing the module registers nothing twice
    exec(compile(source, pixels.__file__, "exec"), {"__name__": "pixels_again"})
    assert ENCODERS["pixels"] is spec
    enc = build_encoder("pixels", in_chans=4)
    assert isinstance(enc, pixels.PixelsEncoder) and enc.in_chans == 4 and not enc.training


def test_checkpoint_is_accepted_for_the_head_and_never_read(tmp_path: Path) -> None:
    # encoder.checkpoint of a baseline recipe initialises the head's backbone (the pipeline passes
    # it on); the pixels encoder itself has no weights, so it does not open the file — a saved
    # model must load where the checkpoint is gone
    enc = build_encoder("pixels", checkpoint=tmp_path / "not_here.pth")
    assert isinstance(enc, PixelsEncoder) and enc.state_dict() == {}
    assert enc.fingerprint == PixelsEncoder().fingerprint  # same feature cache as without it
    assert enc.checkpoint_sha256 is None
