from damagemap.active.scene import SuggestOptions
from damagemap.batch_size import default_batch
from damagemap.mapping import MapOptions


def test_half_precision_doubles_the_default_batch_and_the_options_use_it() -> None:
    assert default_batch("fp32") == 4
    assert default_batch("bf16") == default_batch("fp16") == 8
    assert MapOptions().batch == SuggestOptions().batch == default_batch()
