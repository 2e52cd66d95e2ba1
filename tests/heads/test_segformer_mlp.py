"""The SegFormer all-MLP head: shapes, and equality with the Hugging Face decode head."""

import pytest
import torch

from damagemap.errors import CheckpointError, ConfigError
from damagemap.heads import build_head


def _features(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, c, 32 // s, 48 // s, generator=g) for c, s in ((8, 1), (16, 2), (24, 4), (32, 8))]


def test_logits_at_input_size_and_config_round_trip() -> None:
    head = build_head("segformer_mlp", (8, 16, 24, 32), 4, decoder_dim=16)
    out = head(_features(), (128, 192))
    assert out.shape == (2, 4, 128, 192)
    assert head.decode(_features()).shape == (2, 16, 32, 48)  # stride 4 embedding
    again = build_head(**head.config)
    again.load_state_dict(head.state_dict())
    head.eval(), again.eval()
    torch.testing.assert_close(head(_features(), (32, 48)), again(_features(), (32, 48)))
    with pytest.raises(ConfigError, match="unknown option"):
        build_head("segformer_mlp", (8,), 2, fpn_channels=3)


def test_matches_hf_decode_head_weights(tmp_path) -> None:
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    torch.manual_seed(0)
    cfg = SegformerConfig(
        hidden_sizes=[8, 16, 24, 32],
        depths=[1, 1, 1, 1],
        num_attention_heads=[1, 1, 2, 2],
        decoder_hidden_size=16,
        num_labels=4,
    )
    ref = SegformerForSemanticSegmentation(cfg).eval()
    with torch.no_grad():
        ref.decode_head.batch_norm.running_mean.uniform_(-1, 1)
    ref.save_pretrained(tmp_path)
    head = build_head("segformer_mlp", (8, 16, 24, 32), 4, decoder_dim=16, init_checkpoint=str(tmp_path)).eval()
    assert "init_checkpoint" not in head.config
    with torch.no_grad():
        torch.testing.assert_close(head(_features(), (32, 48)), ref.decode_head(_features()))
    # another label count: everything but the classifier is loaded, and that is noted
    other = build_head("segformer_mlp", (8, 16, 24, 32), 2, decoder_dim=16, init_checkpoint=str(tmp_path))
    assert other.init_notes and torch.equal(other.linear_fuse.weight, head.linear_fuse.weight)
    with pytest.raises(CheckpointError):
        build_head("segformer_mlp", (8, 16, 24, 64), 4, decoder_dim=16, init_checkpoint=str(tmp_path))
