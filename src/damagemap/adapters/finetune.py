"""The ``finetune`` adapter kind: train the encoder's own weights end to end (recipe ``encoder.finetune``).

Street-photo severity (docs/methods.md §3) fine-tunes SegFormer as a whole, encoder included.
:func:`apply_finetune` adds no module: it marks every parameter the encoder has when it is
attached trainable (``requires_grad=True``) and returns their names, so the registry records
them as this kind's tensors (:func:`damagemap.adapters.registry.attach_adapter`). Everything
else is the common adapter path:

* the encoder has trainable parameters, so training runs end to end
  (:class:`~damagemap.training.sources.LiveEncoder`, no feature cache) with the head, one
  AdamW at ``train.lr`` for encoder and head (the fit loop has a single learning rate);
* ``adapter.safetensors`` holds every encoder parameter after training, the manifest still
  names the *base* encoder (name, checkpoint, fingerprint of the weights training started
  from), and :func:`~damagemap.artifact.load_model` rebuilds that base encoder, re-applies
  ``finetune`` and loads the tensors over it (then freezes it, as every loaded encoder).

``adapters/recipe.py`` attaches ``finetune`` after the other kinds, so the modules they added
(ATL, the extra-band conv, and the band adapter's otherwise frozen RGB conv) are fine-tuned too.

**Train/eval mode.** :meth:`Encoder.train` keeps every encoder in eval mode, and fine-tuning
does not lift that: the encoder's weights get gradients, but its modules run as at inference.

* Dropout and stochastic depth (drop-path) inside the encoder are off while fine-tuning. For a
  SegFormer MiT that means Hugging Face's ``drop_path_rate`` (0.1 by default) is not applied:
  the encoder trains without stochastic depth (its hidden and attention dropout default to 0
  in ``SegformerConfig``). The decode head is a separate module in train mode, so its dropout
  (``head.options.dropout``, 0.1 in the severity recipes) still regularises.
* BatchNorm layers (EfficientNet-Lite, ResNet) keep normalising with their pretrained running
  statistics, which are not updated. That keeps the saved parameters a *complete* description
  of the trained encoder (buffers never change, so the re-applied model reproduces the adapted
  fingerprint and its predictions exactly), and avoids re-estimating batch statistics from the
  small batches street-photo fine-tuning uses. MiT has LayerNorm only and is unaffected.
"""

from __future__ import annotations

from damagemap.encoders.base import Encoder
from damagemap.errors import ConfigError


def apply_finetune(encoder: Encoder, options: dict) -> list[str]:
    """Adapter kind ``finetune``: make every encoder parameter trainable; returns their names.

    Takes no options. The names are those of the parameters present now (the base weights plus
    any earlier adapter's); the registry saves and re-applies them like the other kinds' tensors.

    Raises:
        ConfigError: options were given, or the encoder has no parameters to train.
    """
    if options:
        raise ConfigError(f"the finetune adapter takes no options, got {options}")
    names = []
    for name, p in encoder.named_parameters():
        p.requires_grad_(True)
        names.append(name)
    if not names:
        raise ConfigError(f"encoder {encoder.name} has no parameters to fine-tune")
    return names
