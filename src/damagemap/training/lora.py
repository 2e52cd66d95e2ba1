"""Few-shot encoder adaptation with LoRA (Smart Transfer, METHODS.md §1).

After the decoder has been trained on the source domains plus the n target shots, the ViT
encoder is adapted on the shots alone with low-rank adapters (``peft`` LoRA, r = 8, α = 16 on
the ``qkv`` / ``proj`` / ``fc1`` / ``fc2`` Linear layers of the transformer blocks; lr 3e-5,
3 epochs) while the decoder stays frozen (its BatchNorm in eval mode). Only the LoRA matrices
are trained and saved (``adapter.safetensors`` in the model artifact); the base weights never
change, so the artifact still names the base encoder and its fingerprint.

Details and choices:

* Targets are the ``nn.Linear`` modules *inside* ``blocks.<i>.`` whose last name part is one of
  ``target_modules`` — the attention ``qkv`` and output ``proj`` and the MLP ``fc1`` / ``fc2``
  in timm's DINOv3 (Eva), DINOv2 and SAM ViTs: 4 per block. The patch-embedding ``proj`` (a
  conv) and SAM's neck are never adapted.
* timm's Eva with a qkv bias (DINOv3 ``*_qkvb``) computes ``F.linear(x, qkv.weight, bias)``,
  which would bypass a LoRA-wrapped ``qkv``; those attention modules are switched to
  ``qkv_bias_separate`` (``qkv(x) + bias``, the same function) so the adapter is used.
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
import math
import re
from collections.abc import Sequence

import torch
from rich.progress import Progress
from torch import nn

from damagemap.data.augment import random_dihedral
from damagemap.data.views import make_views, view_image, view_mask
from damagemap.encoders.base import Encoder
from damagemap.errors import CheckpointError, ConfigError
from damagemap.model import DamageModel
from damagemap.objectives.base import WeightedSum
from damagemap.recipe import FewShotConfig, Recipe
from damagemap.training.fit import forward_head
from damagemap.training.objective_factory import ObjectiveContext, build_objective
from damagemap.types import Sample

ADAPTER_NAME = "default"
_BLOCK = re.compile(r"(?:^|\.)blocks\.\d+\.")

__all__ = [
    "adapt_encoder_lora",
    "apply_lora_adapter",
    "lora_supported",
    "lora_target_modules",
]


def lora_target_modules(encoder: Encoder, target_modules: Sequence[str]) -> list[str]:
    """Names (relative to ``encoder``) of the Linear layers LoRA adapts: inside ``blocks.<i>.``
    and ending in one of ``target_modules``. Empty for non-transformer encoders."""
    targets = set(target_modules)
    return [
        name for name, module in encoder.named_modules()
        if isinstance(module, nn.Linear) and _BLOCK.search(name) and name.rsplit(".", 1)[-1] in targets
    ]


def lora_supported(encoder: Encoder, cfg: FewShotConfig) -> bool:
    """Whether ``encoder`` has layers to adapt (a ViT) under ``cfg.target_modules``."""
    return bool(lora_target_modules(encoder, cfg.target_modules))


def _require_targets(encoder: Encoder, target_modules: Sequence[str]) -> list[str]:
    names = lora_target_modules(encoder, target_modules)
    if not names:
        raise ConfigError(
            f"LoRA few-shot adaptation needs a ViT encoder; {encoder.name} has no "
            f"{'/'.join(target_modules)} layers"
        )
    return names


def _inject(encoder: Encoder, r: int, alpha: float, target_modules: Sequence[str]) -> list[str]:
    """Wrap the target layers of ``encoder`` (in place) with zero-initialised LoRA adapters."""
    from peft import LoraConfig, inject_adapter_in_model  # heavy import; only when adapting

    names = _require_targets(encoder, target_modules)
    for name in names:  # Eva with qkv bias: make the fused-bias path go through the wrapped qkv
        parent = encoder.get_submodule(name.rsplit(".", 1)[0])
        if getattr(parent, "q_bias", None) is not None and hasattr(parent, "qkv_bias_separate"):
            parent.qkv_bias_separate = True
    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=0.0, bias="none",
        target_modules="|".join(re.escape(n) for n in names),  # exact names (full match)
    )
    inject_adapter_in_model(config, encoder, adapter_name=ADAPTER_NAME)
    return names


def _lora_parameters(encoder: Encoder) -> list[nn.Parameter]:
    return [p for name, p in encoder.named_parameters() if ".lora_" in name]


def _objective(model: DamageModel, encoder_channels: tuple[int, ...]) -> WeightedSum:
    """The recipe's objective; ``pc`` is rebuilt from the model's stored projection and source
    prototypes (building prototypes from target shots would break the method)."""
    recipe = model.recipe
    active = {k: t for k, t in recipe.objectives.items() if t.weight != 0}
    pc = active.pop("pc", None)
    terms: dict = {}
    if active:
        base = build_objective(ObjectiveContext(recipe.model_copy(update={"objectives": active}),
                                                [], encoder_channels))
        terms = {name: (base.weights[name], term) for name, term in base.terms.items()}
    if pc is not None:
        from damagemap.objectives.pc import PixelClusteringLoss, Prototypes, RandomProjection

        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix):]: v for k, v in model.state.items() if k.startswith(prefix)}

        projection, prototypes = part("pc.projection."), part("pc.prototypes.")
        if not projection or not prototypes:
            raise ConfigError("recipe uses 'pc' but the model has no stored PC projection/prototypes")
        feature_index = int(pc.options.get("feature_index", -1))
        terms["pc"] = (pc.weight, PixelClusteringLoss(RandomProjection.from_dict(projection),
                                                      Prototypes.from_dict(prototypes), feature_index))
    if not terms:
        raise ConfigError("the recipe has no objective with a non-zero weight")
    return WeightedSum(terms)


def _shot_views(samples: Sequence[Sample], recipe: Recipe) -> list[dict[str, torch.Tensor]]:
    cfg = recipe.input
    out = []
    for v in make_views(list(samples), cfg):
        s = samples[v.sample_index]
        if s.mask is None:
            raise ConfigError(f"few-shot sample {s.key} has no mask; LoRA adaptation needs labels")
        item = {"image": view_image(s, v, cfg), "mask": view_mask(s.mask, v, cfg)}
        if s.buildings is not None:
            item["buildings"] = view_mask(s.buildings, v, cfg)
        out.append(item)
    if not out:
        raise ConfigError("LoRA few-shot adaptation needs at least one labelled shot")
    return out


def adapt_encoder_lora(
    model: DamageModel,
    samples: list[Sample],
    cfg: FewShotConfig,
    progress: Progress | None = None,
) -> DamageModel:
    """Adapt a copy of ``model.encoder`` with LoRA on the labelled ``samples``, decoder frozen.

    Returns a new :class:`DamageModel` with the adapted encoder (frozen again, eval mode),
    ``adapter`` = the LoRA tensors (``get_peft_model_state_dict``), ``adapter_config`` = what
    :func:`apply_lora_adapter` needs (r, α, targets, base and adapted fingerprints) and
    ``metrics["lora"]`` = the per-epoch training loss. ``model`` itself is not modified.

    Raises:
        ConfigError: the encoder is not a ViT (no qkv/proj/fc1/fc2 layers in its blocks), a
            sample has no mask, or the recipe's objective cannot be built.
    """
    if model.adapter is not None:
        raise ConfigError("this model's encoder is already LoRA-adapted; adapt the base model instead")
    recipe = model.recipe
    base_fingerprint = model.encoder.fingerprint
    _require_targets(model.encoder, cfg.target_modules)
    views = _shot_views(samples, recipe)
    objective = _objective(model, tuple(model.encoder.channels))

    seed = recipe.train.seed
    torch.manual_seed(seed)  # LoRA A initialisation
    encoder = copy.deepcopy(model.encoder)
    head = copy.deepcopy(model.head)
    encoder.freeze()
    names = _inject(encoder, cfg.lora_r, cfg.lora_alpha, cfg.target_modules)
    params = _lora_parameters(encoder)
    for p in encoder.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    for p in head.parameters():
        p.requires_grad_(False)
    head.eval()  # decoder frozen: BatchNorm uses its running statistics
    encoder.eval()

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=recipe.train.weight_decay)
    n_batches = math.ceil(len(views) / cfg.batch_size)
    size = tuple(views[0]["mask"].shape[-2:])
    task = progress.add_task("LoRA", total=cfg.epochs * n_batches, info="") if progress else None
    history: list[dict[str, float]] = []
    for epoch in range(1, cfg.epochs + 1):
        order = torch.randperm(len(views), generator=gen).tolist()
        total = 0.0
        for b in range(n_batches):
            chunk = [views[i] for i in order[b * cfg.batch_size : (b + 1) * cfg.batch_size]]
            aug = recipe.train.augment
            tfs = [random_dihedral(gen, aug) if aug else (lambda x: x) for _ in chunk]
            images = torch.stack([t(v["image"]) for t, v in zip(tfs, chunk)])
            batch = {"mask": torch.stack([t(v["mask"]) for t, v in zip(tfs, chunk)])}
            if all("buildings" in v for v in chunk):
                batch["buildings"] = torch.stack([t(v["buildings"]) for t, v in zip(tfs, chunk)])
            out = forward_head(head, encoder(images), size)
            loss, _ = objective(out, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if recipe.train.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, recipe.train.grad_clip)
            opt.step()
            total += float(loss.detach()) * len(chunk)
            if progress is not None:
                progress.advance(task)
        history.append({"epoch": epoch, "loss": total / len(views)})
        if progress is not None:
            progress.update(task, info=f"loss={history[-1]['loss']:.3f}")

    from peft import get_peft_model_state_dict

    for p in params:
        p.requires_grad_(False)
    encoder.invalidate_fingerprint()
    adapter = {k: v.detach().cpu().contiguous().clone()
               for k, v in get_peft_model_state_dict(encoder, adapter_name=ADAPTER_NAME).items()}
    adapter_config = {
        "method": "lora",
        "r": cfg.lora_r,
        "alpha": cfg.lora_alpha,
        "target_modules": list(cfg.target_modules),
        "n_modules": len(names),
        "base_fingerprint": base_fingerprint,
        "adapted_fingerprint": encoder.fingerprint,
    }
    metrics = dict(model.metrics)
    metrics["lora"] = {"history": history, "n_shots": len(samples), "n_views": len(views),
                       "epochs": cfg.epochs, "lr": cfg.lr, "n_modules": len(names),
                       "trainable_params": int(sum(p.numel() for p in params))}
    return dataclasses.replace(model, encoder=encoder, head=head, metrics=metrics,
                               adapter=adapter, adapter_config=adapter_config)


def apply_lora_adapter(encoder: Encoder, adapter: dict[str, torch.Tensor], config: dict) -> Encoder:
    """Re-apply a saved LoRA adapter to a *base* encoder (in place) and return it, frozen.

    Raises:
        CheckpointError: the adapter tensors do not fit the encoder's LoRA layers, or the
            result's fingerprint differs from the recorded ``adapted_fingerprint``.
    """
    from peft import set_peft_model_state_dict

    names = _inject(encoder, int(config["r"]), float(config["alpha"]), config["target_modules"])
    try:
        result = set_peft_model_state_dict(encoder, adapter, adapter_name=ADAPTER_NAME)
    except RuntimeError as exc:  # shape mismatch
        raise CheckpointError(None, f"LoRA adapter does not fit encoder {encoder.name} ({exc})") from None
    missing = [k for k in result.missing_keys if ".lora_" in k]
    if missing or result.unexpected_keys or len(names) != int(config.get("n_modules", len(names))):
        raise CheckpointError(None, f"LoRA adapter does not fit encoder {encoder.name}",
                              missing, list(result.unexpected_keys))
    encoder.freeze()
    encoder.invalidate_fingerprint()
    expected = config.get("adapted_fingerprint")
    if expected is not None and encoder.fingerprint != expected:
        raise CheckpointError(
            None, f"adapted encoder fingerprint {encoder.fingerprint} differs from the recorded {expected}"
        )
    return encoder
