"""U-Net baselines (smp, ResNet-18 / ResNet-152 encoders) as fully trainable heads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from damagemap.errors import CheckpointError, ConfigError
from damagemap.heads import HEADS, build_head
from damagemap.heads.unet import UNetHead
from damagemap.objectives import BinaryFocalLoss, ForwardOutput

SIZE = 64


@pytest.fixture(scope="module")
def r18_binary() -> UNetHead:
    torch.manual_seed(0)
    return UNetHead((3,), 1, encoder_name="resnet18")


def test_registered_kind() -> None:
    assert HEADS["unet"] is UNetHead


@pytest.mark.parametrize("out_channels", [1, 4])
def test_logits_at_input_size_and_decode_channels(out_channels: int) -> None:
    head = UNetHead((3,), out_channels, encoder_name="resnet18").eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        emb = head.decode([x])
        logits = head([x], (SIZE, SIZE))
    assert emb.shape == (2, head.embed_channels, SIZE, SIZE)
    assert head.embed_channels == 16  # smp's last decoder width
    assert logits.shape == (2, out_channels, SIZE, SIZE)
    assert isinstance(head.classifier, torch.nn.Conv2d)
    assert head.classifier.out_channels == out_channels


def test_size_not_multiple_of_32_is_padded_and_cropped(r18_binary: UNetHead) -> None:
    r18_binary.eval()
    with torch.no_grad():
        emb = r18_binary.decode([torch.randn(1, 3, 70, 50)])
        logits = r18_binary([torch.randn(1, 3, 70, 50)], (70, 50))
    assert emb.shape == (1, 16, 70, 50)
    assert logits.shape == (1, 1, 70, 50)


def test_multiband_input() -> None:
    head = UNetHead(4, 1, encoder_name="resnet18", decoder_channels=(32, 16, 16, 8, 8)).eval()
    with torch.no_grad():
        assert head.decode([torch.randn(1, 4, SIZE, SIZE)]).shape == (1, 8, SIZE, SIZE)
    assert head.config["in_channels"] == [4]


def test_resnet152_builds_and_has_expected_shapes() -> None:
    head = UNetHead((3,), 1, encoder_name="resnet152").eval()
    assert head.encoder.layer4[0].conv3.out_channels == 2048
    assert 60e6 < sum(p.numel() for p in head.parameters()) < 75e6
    with torch.no_grad():
        x = torch.randn(1, 3, SIZE, SIZE)
        assert head.decode([x]).shape == (1, 16, SIZE, SIZE)
        assert head([x], (SIZE, SIZE)).shape == (1, 1, SIZE, SIZE)
    assert head.config["encoder_name"] == "resnet152"


def test_config_round_trip_through_json(r18_binary: UNetHead) -> None:
    cfg = json.loads(json.dumps(r18_binary.config))
    assert cfg["kind"] == "unet"
    rebuilt = build_head(**cfg)
    assert isinstance(rebuilt, UNetHead)
    assert rebuilt.config == r18_binary.config
    a, b = r18_binary.state_dict(), rebuilt.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape for k in a)
    rebuilt.load_state_dict(a)


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="resnet18, resnet152"):
        build_head("unet", (3,), 1, encoder_name="resnet50")
    with pytest.raises(ConfigError, match="one input map"):
        build_head("unet", (16, 32), 1)
    with pytest.raises(ConfigError, match="decoder_channels"):
        build_head("unet", (3,), 1, decoder_channels=[16, 8])


def test_wrong_number_of_maps(r18_binary: UNetHead) -> None:
    with pytest.raises(ValueError, match="pixels"):
        r18_binary.decode([torch.randn(1, 3, 32, 32)] * 2)


def test_few_steps_of_training_reduce_the_loss() -> None:
    torch.manual_seed(0)
    # Damage where a smoothed random image is bright in band 0: a local colour task.
    x = F.avg_pool2d(torch.randn(4, 3, SIZE + 6, SIZE + 6), 7, stride=1) * 3
    mask = (x[:, 0] > 0.3).long()
    head = UNetHead((3,), 1, encoder_name="resnet18")
    head.train()
    loss_fn = BinaryFocalLoss(alpha=0.7, gamma=2.0)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-4)
    losses = []
    for _ in range(5):
        emb = head.decode([x])
        loss = loss_fn(ForwardOutput(head.classify(emb, (SIZE, SIZE)), emb, [x]), {"mask": mask})
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses


def _torchvision_resnet18_state(seed: int = 1) -> dict[str, torch.Tensor]:
    import torchvision

    torch.manual_seed(seed)
    state = torchvision.models.resnet18(weights=None).state_dict()  # includes fc.* (ignored)
    for k, v in state.items():  # make BN statistics non-default so they are checked too
        if v.is_floating_point() and ("running_" in k or "bn" in k):
            state[k] = v + torch.rand_like(v)
    return state


def test_encoder_checkpoint_loads_torchvision_weights(tmp_path: Path) -> None:
    state = _torchvision_resnet18_state()
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    head = build_head("unet", (3,), 1, encoder_name="resnet18", encoder_checkpoint=str(path))
    loaded = head.encoder.state_dict()
    assert set(loaded) == {k for k in state if not k.startswith("fc.")}
    for k, v in loaded.items():
        assert torch.equal(v, state[k]), k
    assert head.encoder_checkpoint == str(path)
    assert head.encoder_checkpoint_sha256 is not None
    # the checkpoint only initialises: the config (saved in artifacts) does not need the file
    assert "encoder_checkpoint" not in head.config


def test_encoder_checkpoint_with_prefix_and_extra_bands(tmp_path: Path) -> None:
    state = _torchvision_resnet18_state()
    path = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in state.items()}}, path)
    head = UNetHead(4, 1, encoder_name="resnet18", encoder_checkpoint=path)
    assert head.encoder.conv1.weight.shape == (64, 4, 7, 7)
    assert torch.equal(head.encoder.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])


def test_encoder_checkpoint_with_missing_keys_names_file_and_keys(tmp_path: Path) -> None:
    state = _torchvision_resnet18_state()
    del state["layer4.1.bn2.weight"], state["layer3.0.conv1.weight"]
    path = tmp_path / "broken_resnet18.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        UNetHead(3, 1, encoder_name="resnet18", encoder_checkpoint=path)
    msg = str(err.value)
    assert "broken_resnet18.pth" in msg
    assert "layer4.1.bn2.weight" in msg and "layer3.0.conv1.weight" in msg
    assert set(err.value.missing) == {"layer4.1.bn2.weight", "layer3.0.conv1.weight"}


def test_encoder_checkpoint_of_the_wrong_depth_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "resnet18.pth"
    torch.save(_torchvision_resnet18_state(), path)
    with pytest.raises(CheckpointError, match="resnet18.pth"):
        UNetHead(3, 1, encoder_name="resnet152", encoder_checkpoint=path)


def test_missing_checkpoint_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        UNetHead(3, 1, encoder_checkpoint=tmp_path / "nope.pth")
