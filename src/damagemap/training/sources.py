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
from damagemap.data.augment import Dihedral
from damagemap.device import module_device
from damagemap.encoders.base import Encoder
from damagemap.errors import ConfigError
from damagemap.training.items import Item, encode_images, encode_items


def collate(
    items: Sequence[Item], transforms: Sequence | None = None
) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    """Stack items (each through its own dihedral transform, if given) into maps and targets."""
    return ItemBank(items).batch(range(len(items)), transforms)


BANK_FLOAT32_LIMIT = 4 << 30
"""Bytes up to which a bank holds float16 cache maps as float32 (above: converted per batch)."""


class ItemBank:
    """Every item's maps and targets stacked once, so a training batch costs one gather per tensor.

    A batch is ``index_select`` on each stacked level and target, then each distinct dihedral
    transform of the batch runs once on the rows that drew it (at most 8 calls, not one per
    sample). Maps are kept as float32 (what the head trains in; CPU autocast cannot stack the
    cache's float16) unless that would take more than :data:`BANK_FLOAT32_LIMIT` bytes.
    """

    def __init__(self, items: Sequence[Item]) -> None:
        if not items:
            raise ValueError("an item bank needs at least one item")
        n_levels = len(items[0].features)
        levels = [torch.stack([it.features[lvl] for it in items]) for lvl in range(n_levels)]
        widened = sum(x.numel() * 4 for x in levels if x.is_floating_point())
        self.levels = [x.float() if x.is_floating_point() and widened <= BANK_FLOAT32_LIMIT else x for x in levels]
        self.targets = {"mask": torch.stack([it.mask for it in items])}
        if all(it.buildings is not None for it in items):
            self.targets["buildings"] = torch.stack([it.buildings for it in items])  # type: ignore[misc]

    def __len__(self) -> int:
        return len(self.targets["mask"])

    def batch(
        self, indices: Sequence[int] | torch.Tensor, transforms: Sequence[Dihedral] | None = None
    ) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """Maps and targets of the items at ``indices``, row ``j`` through ``transforms[j]`` if given."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        feats = [x.index_select(0, idx).float() for x in self.levels]
        batch = {k: v.index_select(0, idx) for k, v in self.targets.items()}
        if transforms:
            rows: dict[Dihedral, list[int]] = {}
            for j, t in enumerate(transforms):
                rows.setdefault(t, []).append(j)
            for t, js in rows.items():
                if t == Dihedral():
                    continue
                sel = torch.tensor(js)
                for x in (*feats, *batch.values()):
                    x[sel] = t(x.index_select(0, sel))
        return feats, batch


class FeatureSource:
    """Encoder maps from the feature cache (items hold them already)."""

    def parameters(self) -> list[torch.nn.Parameter]:
        """Encoder-side parameters to optimise alongside the head."""
        return []

    def prepare(self, items: Sequence[Item]) -> None:
        """Stack the training items once (:class:`ItemBank`); :meth:`step_inputs` gathers from them."""
        self._bank = ItemBank(items)

    def step_inputs(
        self, indices: Sequence[int], transforms: Sequence[Dihedral] | None
    ) -> tuple[list[torch.Tensor], dict]:
        """Encoder maps and targets of one training batch (the prepared items at ``indices``)."""
        return self._bank.batch(indices, transforms)

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

    def step_inputs(
        self, indices: Sequence[int], transforms: Sequence[Dihedral] | None
    ) -> tuple[list[torch.Tensor], dict]:
        """The batch run through the encoder (colour-jittered first, if asked; pair images each on their own)."""
        images, batch = super().step_inputs(indices, transforms)
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
