"""Few-shot encoder adaptation with LoRA (Smart Transfer, docs/methods.md §1).

After the decoder has been trained, the ViT encoder is adapted on the n target shots with
low-rank adapters (the ``lora`` adapter kind, :mod:`damagemap.adapters.lora`: r = 8, α = 16 on
the ``qkv`` / ``proj`` / ``fc1`` / ``fc2`` Linear layers of the transformer blocks; lr 3e-5,
3 epochs) while the decoder stays frozen (its BatchNorm in eval mode). It runs through the one
fit loop (:func:`damagemap.training.fit.fit`) with a live-encoder source whose only trainable
parameters are the LoRA matrices.

* Images go through the encoder at every step (the encoder changes, so no feature cache);
  views, masks and dihedral augmentation are those of the recipe. The loss is the recipe's
  objective; a ``pc`` term is rebuilt from the projection and *source* prototypes stored in
  ``model.state`` (prototypes never come from target data). No validation split exists for n
  shots, so the last epoch is kept. AdamW uses ``fewshot.lr`` and the recipe's weight decay and
  gradient clipping; everything is seeded by ``train.seed``.
* The adapted encoder is a copy: the model passed in (and its encoder, which callers may share
  between folds) is left untouched. Its :attr:`~damagemap.encoders.base.Encoder.fingerprint`
  covers the LoRA weights, so the feature cache never serves base features for it.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence

import torch
from rich.progress import Progress

from damagemap.adapters import adapter_record, adapter_specs, adapter_tensors, attach_adapter
from damagemap.adapters.lora import lora_supported
from damagemap.errors import ConfigError
from damagemap.model import DamageModel
from damagemap.objectives import ObjectiveContext, build_objective
from damagemap.objectives.pc import PROJECTION_PREFIX, PROTOTYPES_PREFIX
from damagemap.recipe import FewShotConfig
from damagemap.training.fit import FitSpec, fit
from damagemap.training.items import image_items
from damagemap.training.sources import LiveEncoder
from damagemap.types import Sample

__all__ = ["adapt_encoder_lora", "lora_supported"]


def _check_pc_state(model: DamageModel) -> None:
    pc = model.recipe.objectives.get("pc")
    if pc is None or pc.weight == 0:
        return
    has = [any(k.startswith(p) for k in model.state) for p in (PROJECTION_PREFIX, PROTOTYPES_PREFIX)]
    if not all(has):
        raise ConfigError("recipe uses 'pc' but the model has no stored PC projection/prototypes")


def adapt_encoder_lora(
    model: DamageModel,
    samples: Sequence[Sample],
    cfg: FewShotConfig,
    progress: Progress | None = None,
) -> DamageModel:
    """Adapt a copy of ``model.encoder`` with LoRA on the labelled ``samples``, decoder frozen.

    Returns a new :class:`DamageModel` with the adapted encoder (frozen again, eval mode),
    ``adapter`` = every adapter tensor of the encoder (the LoRA matrices, after any earlier
    adapters), ``adapter_config`` = how to re-create them, and ``metrics["lora"]`` = the
    per-epoch training loss and counts. ``model`` itself is not modified.

    Raises:
        ConfigError: the encoder is not a ViT (no qkv/proj/fc1/fc2 layers in its blocks) or is
            already LoRA-adapted, a sample has no mask, or the recipe's objective cannot be built.
    """
    if any(spec["kind"] == "lora" for spec in adapter_specs(model.encoder)):
        raise ConfigError("this model's encoder is already LoRA-adapted; adapt the base model instead")
    if not lora_supported(model.encoder, cfg.target_modules):
        raise ConfigError(
            f"LoRA few-shot adaptation needs a ViT encoder; {model.encoder.name} has no "
            f"{'/'.join(cfg.target_modules)} layers"
        )
    recipe = model.recipe
    items = image_items(samples, recipe.input)
    if not items:
        raise ConfigError("LoRA few-shot adaptation needs at least one labelled shot")
    _check_pc_state(model)
    ctx = ObjectiveContext(
        recipe,
        [],
        tuple(model.encoder.channels),
        state=dict(model.state),
        has_buildings=all(it.buildings is not None for it in items),
    )
    objective = build_objective(ctx)

    torch.manual_seed(recipe.train.seed)  # LoRA A initialisation
    encoder = copy.deepcopy(model.encoder).freeze()
    head = copy.deepcopy(model.head).requires_grad_(False).eval()
    attach_adapter(
        encoder, "lora", {"r": cfg.lora_r, "alpha": cfg.lora_alpha, "target_modules": list(cfg.target_modules)}
    )
    encoder.to(model.device)  # the new LoRA matrices join the model on its device
    for name, p in encoder.named_parameters():
        p.requires_grad_(".lora_" in name)
    params = [p for p in encoder.parameters() if p.requires_grad]
    train = recipe.train.model_copy(
        update={
            "lr": cfg.lr,
            "epochs": cfg.epochs,
            "batch_size": cfg.batch_size,
            "select_by": "last",
            "scheduler": "none",
            "color_jitter": None,
        }
    )
    result = fit(
        head,
        objective,
        items,
        [],
        FitSpec.for_recipe(recipe, "LoRA", train, device=model.device, precision=model.precision),
        progress,
        LiveEncoder(encoder),
    )

    n_modules = len({k.rsplit(".lora_", 1)[0] for k, _ in encoder.named_parameters() if ".lora_" in k})
    trainable = int(sum(p.numel() for p in params))
    encoder.freeze()
    adapter, adapter_config = adapter_tensors(encoder), adapter_record(encoder)
    metrics = dict(model.metrics)
    metrics["lora"] = {
        "history": result.history,
        "n_shots": len(samples),
        "n_views": len(items),
        "epochs": cfg.epochs,
        "lr": cfg.lr,
        "n_modules": n_modules,
        "trainable_params": trainable,
    }
    return dataclasses.replace(
        model, encoder=encoder, head=head, metrics=metrics, adapter=adapter, adapter_config=adapter_config
    )
