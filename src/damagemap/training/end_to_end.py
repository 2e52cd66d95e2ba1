"""End-to-end training through the encoder, for encoders with trainable parameters (ATL, …).

Used instead of the feature cache when the encoder has any parameter with
``requires_grad=True`` (adapter modules attached by :mod:`damagemap.adapters`) or the recipe
asks for image-level augmentation (``train.color_jitter``), which changes encoder input. Every
step runs the images through the encoder; only parameters with ``requires_grad`` (adapters +
head) are optimised. Views, masks, dihedral augmentation, objectives, epoch selection on the
validation mIoU and the cosine schedule are those of the cached path (:mod:`.fit`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from rich.progress import Progress

from damagemap.adapters import adapter_record, parameter_counts, trainable_state
from damagemap.data.views import make_views, view_image, view_mask
from damagemap.encoders.base import Encoder
from damagemap.errors import ConfigError
from damagemap.heads import build_head
from damagemap.heads.base import Head
from damagemap.model import DamageModel
from damagemap.objectives.base import WeightedSum
from damagemap.recipe import Recipe, TrainConfig
from damagemap.training.fit import FeatureSource, FitResult, Item, fit
from damagemap.training.objective_factory import ObjectiveContext, build_objective
from damagemap.types import Sample

View = dict[str, torch.Tensor]


def image_views(samples: Sequence[Sample], recipe: Recipe) -> list[Item]:
    """Items whose ``features`` hold the encoder-input image ``[C, S, S]`` (not yet encoded)."""
    cfg = recipe.input
    items = []
    for v in make_views(list(samples), cfg):
        s = samples[v.sample_index]
        if s.mask is None:
            raise ConfigError(f"sample {s.key} has no mask; training and evaluation need labels")
        items.append(Item(features=[view_image(s, v, cfg)], mask=view_mask(s.mask, v, cfg),
                          eval_mask=view_mask(s.mask, v, cfg, native=True),
                          buildings=None if s.buildings is None else view_mask(s.buildings, v, cfg),
                          key=v.key, resized=cfg.mode == "resize"))
    return items


def color_jitter(images: torch.Tensor, params: Sequence[float]) -> torch.Tensor:
    """torchvision ColorJitter(brightness, contrast, saturation, hue) on the first three bands of
    each image of ``[B, C, H, W]`` in [0, 1], drawn independently per image (global torch RNG)."""
    from torchvision.transforms import v2

    if images.shape[1] < 3:
        raise ConfigError("train.color_jitter needs at least 3 bands (it jitters the first three)")
    jitter = v2.ColorJitter(*params)
    rgb = torch.stack([jitter(img[:3]) for img in images])
    return torch.cat([rgb, images[:, 3:]], dim=1)


@torch.no_grad()
def encode_items(encoder: Encoder, items: Sequence[Item], batch_size: int = 8) -> list[Item]:
    """Copies of image items with ``features`` replaced by the encoder's maps."""
    out = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        maps = encoder(torch.stack([it.features[0] for it in chunk]))
        out += [copy.copy(it) for it in chunk]
        for j, it in enumerate(out[start:]):
            it.features = [m[j] for m in maps]
    return out


class LiveEncoder(FeatureSource):
    """Encoder maps computed every step by an encoder with trainable parts; items hold images."""

    def __init__(self, encoder: Encoder, jitter: Sequence[float] | None = None) -> None:
        self.encoder, self.jitter = encoder, jitter

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.encoder.parameters() if p.requires_grad]

    def step_inputs(self, chunk: Sequence[Item], transforms: Sequence | None) -> tuple[list[torch.Tensor], dict]:
        images, batch = super().step_inputs(chunk, transforms)
        images = images[0] if not self.jitter else color_jitter(images[0], self.jitter)
        return self.encoder(images), batch

    def eval_items(self, items: Sequence[Item]) -> Sequence[Item]:
        self.encoder.invalidate_fingerprint()  # its trainable weights changed since the last epoch
        return encode_items(self.encoder, items)

    def snapshot(self) -> dict[str, torch.Tensor]:
        return trainable_state(self.encoder)

    def restore(self, state: dict[str, torch.Tensor]) -> None:
        own = dict(self.encoder.named_parameters())
        with torch.no_grad():
            for k, v in state.items():
                own[k].copy_(v)
        self.encoder.invalidate_fingerprint()


def fit_end_to_end(
    encoder: Encoder, head: Head, objective: WeightedSum, train: Sequence[Item], val: Sequence[Item],
    cfg: TrainConfig, num_classes: int, binary: bool, damage_classes: Sequence[int] = (1,),
    progress: Progress | None = None,
) -> tuple[FitResult, dict[str, torch.Tensor]]:
    """Train the trainable parameters of ``encoder`` and ``head`` on image items with the
    cached path's loop (:func:`damagemap.training.fit.fit`).

    Returns the :class:`FitResult` (best head weights) and the encoder's trainable tensors of
    the best epoch; both modules are left holding the best epoch's weights.
    """
    source = LiveEncoder(encoder, cfg.color_jitter)
    best = fit(head, objective, train, val, cfg, num_classes, binary, damage_classes, progress,
               "train end-to-end", source=source)
    return best, best.source_state


def train_end_to_end(
    recipe: Recipe, encoder: Encoder, train_samples: Sequence[Sample], val_samples: Sequence[Sample],
    progress: Progress | None = None,
) -> tuple[DamageModel, FitResult]:
    """Build the head and train it together with the encoder's trainable parameters.

    The returned model's encoder is frozen again; its trained tensors are ``model.adapter``
    (saved as ``adapter.safetensors``) with ``model.adapter_config`` saying how to re-create
    them; ``metrics["parameters"]`` holds the trainable / total parameter counts and share.
    """
    train_items = image_views(train_samples, recipe)
    val_items = image_views(val_samples, recipe) if val_samples else []
    ctx = ObjectiveContext(recipe, [], encoder.channels)
    objective = build_objective(ctx)
    torch.manual_seed(recipe.train.seed)
    head = build_head(recipe.head.kind, in_channels=tuple(encoder.channels),
                      out_channels=recipe.num_outputs, **recipe.head.options)
    counts = parameter_counts(encoder, head)
    result, tensors = fit_end_to_end(encoder, head, objective, train_items, val_items, recipe.train,
                                     len(recipe.classes), recipe.binary, recipe.damage_classes, progress)
    config = adapter_record(encoder, tensors) if tensors else None
    encoder.freeze()
    model = DamageModel(recipe, encoder, head, dict(ctx.state), adapter=tensors or None, adapter_config=config)
    model.metrics = {"parameters": counts, "notes": ctx.notes}
    return model, result
