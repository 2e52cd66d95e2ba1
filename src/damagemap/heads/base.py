"""The trainable-head interface: encoder feature maps → logits at input size."""

from __future__ import annotations

import functools
import inspect
from typing import Any, ClassVar

import torch
from torch import nn

from damagemap.heads.resize import resize_logits


def _jsonable(value: Any) -> Any:
    """Tuples (and nested tuples) → lists, so a config survives a JSON round trip unchanged."""
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


class Head(nn.Module):
    """A trainable decoder on top of frozen encoder features.

    Subclasses implement :meth:`decode` (features → the decoder's last feature map, used by
    embedding objectives such as DPT) and set :attr:`classifier` (1×1 conv to
    :attr:`out_channels` logits). ``out_channels`` is 1 for binary (sigmoid) heads and the number
    of classes for multi-class (softmax) heads.
    """

    kind: ClassVar[str]
    """Registry name (``heads.HEADS``) recorded in :attr:`config`."""
    init_only: ClassVar[tuple[str, ...]] = ()
    """Constructor arguments that only initialise weights (checkpoint paths): left out of
    :attr:`config`, because the trained weights are saved with the model."""
    in_channels: tuple[int, ...]
    out_channels: int
    embed_channels: int
    classifier: nn.Module
    """1×1 conv to :attr:`out_channels` logits (set by every subclass)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Record every subclass's constructor arguments once, here (the idea of smp's hub_mixin):
        # `build_head(**head.config)` then rebuilds the architecture without per-head code.
        super().__init_subclass__(**kwargs)
        if "__init__" not in cls.__dict__:
            return
        init = cls.__init__
        signature = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self: nn.Module, *args: Any, **kw: Any) -> None:
            if "_init_args" not in self.__dict__:  # the outermost class records
                bound = signature.bind(self, *args, **kw)
                bound.apply_defaults()
                args_ = {k: v for k, v in bound.arguments.items() if k != "self"}
                object.__setattr__(self, "_init_args", args_)
            init(self, *args, **kw)

        cls.__init__ = recording_init  # type: ignore[method-assign]

    @property
    def config(self) -> dict[str, Any]:
        """JSON-serialisable arguments of :func:`damagemap.heads.build_head` for this head."""
        args = {k: v for k, v in self.__dict__.get("_init_args", {}).items() if k not in self.init_only}
        args["in_channels"] = list(self.in_channels)
        args["out_channels"] = int(self.out_channels)
        return {"kind": self.kind, **_jsonable(args)}

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The decoder's last feature map ``[B, embed_channels, h, w]``."""
        raise NotImplementedError

    def forward(self, features: list[torch.Tensor], out_size: tuple[int, int]) -> torch.Tensor:
        """Logits ``[B, out_channels, *out_size]``."""
        return self.classify(self.decode(features), out_size)

    def classify(self, embedding: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        """Apply the classifier and resize logits to ``out_size`` if needed (bilinear, :mod:`.resize`)."""
        return resize_logits(self.classifier(embedding), out_size)


def single_pixel_map(features: list[torch.Tensor], bands: int, head: str) -> torch.Tensor:
    """The one input map of a trainable end-to-end head (the ``pixels`` encoder's output)."""
    if len(features) != 1:
        raise ValueError(
            f"{head} takes one input map (normalised pixels), got {len(features)} maps; use the 'pixels' encoder"
        )
    if features[0].shape[1] != bands:
        raise ValueError(f"{head} was built for {bands} bands, got {features[0].shape[1]}")
    return features[0]
