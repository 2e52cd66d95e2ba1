"""Where a training step's encoder maps come from (the fit loop's :class:`FeatureSource`).

* :class:`FeatureSource` — the feature cache: items already hold the frozen encoder's maps, so
  an epoch never runs the encoder (the default; Smart Transfer's point).
* :class:`LiveEncoder` — an encoder with trainable parts (ATL, the extra-band stem, LoRA) or
  image-level augmentation (``train.color_jitter``): items hold images and every step runs
  them through the encoder; only parameters with ``requires_grad`` are optimised.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

import torch

from damagemap.adapters import trainable_state
from damagemap.device import module_device
from damagemap.encoders.base import Encoder
from damagemap.errors import ConfigError
from damagemap.training.items import Item, encode_images, encode_items


def collate(
    items: Sequence[Item], transforms: Sequence | None = None
) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    """Stack items (each through its own dihedral transform, if given) into maps and targets."""
    n_levels = len(items[0].features)
    feats: list[list[torch.Tensor]] = [[] for _ in range(n_levels)]
    masks, blds = [], []
    has_buildings = all(it.buildings is not None for it in items)
    for j, it in enumerate(items):
        t = transforms[j] if transforms else (lambda x: x)
        for lvl in range(n_levels):
            feats[lvl].append(t(it.features[lvl]))
        masks.append(t(it.mask))
        if has_buildings:
            blds.append(t(it.buildings))
    batch = {"mask": torch.stack(masks)}
    if has_buildings:
        batch["buildings"] = torch.stack(blds)
    # float32 before stacking: CPU autocast (bf16) refuses to stack the cache's float16 maps
    return [torch.stack([x.float() for x in f]) for f in feats], batch


class FeatureSource:
    """Encoder maps from the feature cache (items hold them already)."""

    def parameters(self) -> list[torch.nn.Parameter]:
        """Encoder-side parameters to optimise alongside the head."""
        return []

    def step_inputs(self, chunk: Sequence[Item], transforms: Sequence | None) -> tuple[list[torch.Tensor], dict]:
        """Encoder maps and targets of one training batch."""
        return collate(chunk, transforms)

    def eval_items(self, items: Sequence[Item]) -> Sequence[Item]:
        """Items carrying encoder maps for validation."""
        return items

    def snapshot(self) -> dict[str, torch.Tensor]:
        """Trainable encoder tensors to keep with the best epoch."""
        return {}

    def restore(self, state: dict[str, torch.Tensor]) -> None:
        """Put a :meth:`snapshot` back."""


def color_jitter(images: torch.Tensor, params: Sequence[float]) -> torch.Tensor:
    """Torchvision ColorJitter(brightness, contrast, saturation, hue) on the first three bands.

    Applied to each image of ``[B, C, H, W]`` in [0, 1], drawn independently per image (global
    torch RNG).
    """
    from torchvision.transforms import v2

    if images.shape[1] < 3:
        raise ConfigError("train.color_jitter needs at least 3 bands (it jitters the first three)")
    jitter = v2.ColorJitter(*params)
    rgb = torch.stack([jitter(img[:3]) for img in images])
    return torch.cat([rgb, images[:, 3:]], dim=1)


class LiveEncoder(FeatureSource):
    """Encoder maps computed every step by an encoder with trainable parts; items hold images."""

    def __init__(self, encoder: Encoder, jitter: Sequence[float] | None = None) -> None:
        self.encoder, self.jitter = encoder, jitter

    def parameters(self) -> list[torch.nn.Parameter]:
        """The encoder's trainable parameters."""
        return [p for p in self.encoder.parameters() if p.requires_grad]

    def step_inputs(self, chunk: Sequence[Item], transforms: Sequence | None) -> tuple[list[torch.Tensor], dict]:
        """The batch run through the encoder (colour-jittered first, if asked; pair images each on their own)."""
        images, batch = super().step_inputs(chunk, transforms)
        device = module_device(self.encoder)
        xs = [x.to(device, non_blocking=True) for x in images]
        if self.jitter:
            xs = [color_jitter(x, self.jitter) for x in xs]
        return encode_images(self.encoder, xs), batch

    def eval_items(self, items: Sequence[Item]) -> Sequence[Item]:
        """Validation items encoded with the current weights."""
        self.encoder.invalidate_fingerprint()  # its trainable weights changed since the last epoch
        return encode_items(self.encoder, items)

    def snapshot(self) -> dict[str, torch.Tensor]:
        """The encoder's trainable tensors."""
        return trainable_state(self.encoder)

    def restore(self, state: dict[str, torch.Tensor]) -> None:
        """Copy a snapshot back into the encoder."""
        own = dict(self.encoder.named_parameters())
        with torch.no_grad():
            for k, v in state.items():
                own[k].copy_(v)
        self.encoder.invalidate_fingerprint()


class EncodedOnDemand(Sequence[Item]):
    """Image items seen through ``encoder``, encoded on first access.

    For objective builders such as PC that need encoder maps of the source items when training
    runs end to end.
    """

    def __init__(self, encoder: Encoder, items: Sequence[Item]) -> None:
        self.encoder, self.items = encoder, items
        self._encoded: list[Item] | None = None

    def _all(self) -> list[Item]:
        if self._encoded is None:
            self._encoded = encode_items(self.encoder, self.items)
        return self._encoded

    def __len__(self) -> int:
        return len(self.items)

    @overload
    def __getitem__(self, index: int) -> Item: ...
    @overload
    def __getitem__(self, index: slice) -> list[Item]: ...
    def __getitem__(self, index: int | slice) -> Item | list[Item]:
        return self._all()[index]

    def __iter__(self) -> Iterator[Item]:
        return iter(self._all())
