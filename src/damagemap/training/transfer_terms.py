"""Smart Transfer's transfer strategies as recipe objective terms: ``pc`` and ``dpt``.

``pc`` builds its prototypes from the *source* training items it is given (the fold's training
split), so target-domain data never shapes them. When those items hold no damaged pixel at all,
PC is skipped for that run and the reason is recorded in the model's metrics (``notes``). Its random projection and prototypes are
stored in the model artifact (``state.safetensors``) so a run is reproducible.
"""

from __future__ import annotations

from damagemap.errors import ConfigError
from damagemap.objectives.base import ObjectiveTerm
from damagemap.objectives.dpt import DistancePenalizedTripletLoss
from damagemap.objectives.pc import PixelClusteringLoss, RandomProjection, build_prototypes
from damagemap.training.objective_factory import ObjectiveContext, register_term


@register_term("pc")
def _pc(ctx: ObjectiveContext, options: dict) -> ObjectiveTerm | None:
    if not ctx.recipe.binary:
        raise ConfigError("objective 'pc' supports binary recipes only (damaged vs not damaged)")
    opts = dict(options)
    feature_index = int(opts.pop("feature_index", -1))
    dim = int(opts.pop("projection_dim", 50))
    seed = int(opts.pop("seed", ctx.recipe.train.seed))
    projection = RandomProjection(ctx.encoder_channels[feature_index], dim, seed=seed)
    if not any(bool((it.mask == 1).any()) for it in ctx.train_items):
        # Documented fallback: without damaged source pixels there are no damaged prototypes;
        # train without PC rather than abort a whole protocol run.
        ctx.notes.append("pc skipped: the source training images have no damaged pixels")
        return None
    prototypes = build_prototypes(
        ((it.features[feature_index].float(), it.mask) for it in ctx.train_items),
        projection, seed=seed, **opts,
    )
    ctx.state.update({f"pc.projection.{k}": v for k, v in projection.to_dict().items()})
    ctx.state.update({f"pc.prototypes.{k}": v for k, v in prototypes.to_dict().items()})
    return PixelClusteringLoss(projection, prototypes, feature_index=feature_index)


@register_term("dpt")
def _dpt(ctx: ObjectiveContext, options: dict) -> ObjectiveTerm:
    if not ctx.recipe.binary:
        raise ConfigError("objective 'dpt' supports binary recipes only (damaged vs not damaged)")
    opts = {"seed": ctx.recipe.train.seed, **options}
    return DistancePenalizedTripletLoss(**opts)
