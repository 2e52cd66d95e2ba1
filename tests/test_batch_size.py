from damagemap.active.scene import SuggestOptions
from damagemap.batch_size import default_batch, resolve_batch
from damagemap.mapping import MapOptions


def test_half_precision_doubles_the_default_batch_and_the_options_use_it() -> None:
    assert default_batch("fp32") == 4
    assert default_batch("bf16") == default_batch("fp16") == 8
    assert MapOptions().batch == SuggestOptions().batch == default_batch()


def test_a_given_batch_wins_over_the_precision_default() -> None:
    assert resolve_batch(None, "bf16") == 8 and resolve_batch(None, "fp32") == 4
    assert resolve_batch(3, "bf16") == 3
