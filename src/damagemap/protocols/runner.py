"""Run a protocol: train and evaluate every fold of every recipe, resumably.

Each finished fold is written atomically to ``<out>/folds/<recipe>/<fold>.json`` together with a
hash of its configuration (recipe + fold keys); rerunning the same experiment reuses finished
folds and recomputes only the missing or stale ones. Reports are rebuilt from the fold files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.progress import Progress

from damagemap.errors import ConfigError
from damagemap.io_atomic import write_text_atomic
from damagemap.locks import LOCK_NAME, output_lock
from damagemap.model import DamageModel
from damagemap.protocols.splits import Fold, fewshot_folds, kfold_folds, lodo_folds, scarce_domains, ssdc_folds
from damagemap.recipe import FewShotConfig, Recipe
from damagemap.training.fit import FitResult
from damagemap.training.items import DEFAULT_CACHE, CacheDir
from damagemap.training.pipeline import evaluate_model, train_model
from damagemap.types import Sample

log = logging.getLogger(__name__)

PROTOCOLS = ("lodo", "ssdc", "kfold", "fewshot")


@dataclass
class FoldResult:
    """Scores of one recipe on one fold's test split."""

    recipe: str
    fold: str
    target_domain: str
    scores: dict
    meta: dict
    notes: list[str] = field(default_factory=list)
    """Documented fallbacks taken while training this fold (e.g. DPT without footprints)."""
    init: str | None = None
    """How a whole-network baseline was initialised (``"random init"``, ``"imagenet (…)"``); None
    for frozen-encoder recipes. Reports show it next to the recipe name."""


def make_folds(
    samples: Sequence[Sample],
    protocol: str,
    damage_classes: tuple[int, ...],
    k: int = 5,
    sources: Sequence[str] | None = None,
    shots: Sequence[int] = (0, 1, 3, 5, 10),
    targets: Sequence[str] | None = None,
    seed: int = 42,
    fewshot: FewShotConfig | None = None,
    val_fraction: float = 0.2,
) -> list[Fold]:
    """The folds of ``protocol`` over ``samples`` (see :mod:`damagemap.protocols.splits`).

    ``fewshot`` (the first recipe's section) chooses how few-shot shots are drawn and whether
    they also train the decoder; ``val_fraction`` is the k-fold epoch-selection hold-out.
    """
    if protocol == "lodo":
        return lodo_folds(samples, k=k, targets=targets, seed=seed, damage_classes=damage_classes)
    if protocol == "kfold":
        return kfold_folds(samples, k=k, val_fraction=val_fraction, seed=seed, damage_classes=damage_classes)
    if protocol == "ssdc":
        if not sources:
            raise ConfigError("protocol ssdc needs --sources (comma-separated source domains)")
        return ssdc_folds(samples, sources, k=k, seed=seed, damage_classes=damage_classes)
    if protocol == "fewshot":
        present = sorted({s.domain for s in samples})
        domains = [d for d in present if d not in scarce_domains({d: sum(s.domain == d for s in samples)}, k)]
        fs = fewshot or FewShotConfig()
        return [
            f
            for t in (targets or domains)
            for f in fewshot_folds(
                samples,
                t,
                shots,
                k=k,
                seed=seed,
                damage_classes=damage_classes,
                draw=fs.draw,
                decoder=fs.decoder,
                shot_seed=fs.seed,
            )
        ]
    raise ConfigError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def _config_hash(recipe: Recipe, fold: Fold, precision: str = "fp32") -> str:
    dump = recipe.model_dump(mode="json")
    if dump.get("fewshot") is None:  # recipes without the section keep their earlier hashes
        dump.pop("fewshot", None)
    if dump.get("atl") is None:
        dump.pop("atl", None)
    if dump.get("scoring") == {"building_rule": "majority"}:  # the default rule keeps earlier hashes
        dump.pop("scoring", None)
    for key, default in (
        ("scheduler", "none"),
        ("min_lr", 0.0),
        ("color_jitter", None),
        ("sampler", "uniform"),
        ("class_weights", "none"),
    ):
        if dump["train"].get(key) == default:
            dump["train"].pop(key, None)
    if dump["encoder"].get("levels") is None:  # keys added later: their defaults keep earlier hashes
        dump["encoder"].pop("levels", None)
    if dump.get("eval") == {"tta": "none"}:
        dump.pop("eval", None)
    parts: list = [dump, fold.train, fold.val, fold.test]
    if "shots" in fold.meta:  # few-shot folds share their training split; the shots tell them apart
        parts.append(fold.meta["shots"])
    if precision != "fp32":  # reduced precision changes the numbers; fp32 folds keep their earlier hashes
        parts.append(precision)
    return config_hash(parts)


def config_hash(parts: object) -> str:
    """16 hex digits of the SHA-256 of ``parts`` as sorted-key JSON: the key a finished unit is stored under."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def finished_record(path: Path, chash: str) -> dict | None:
    """The record stored at ``path`` if it was computed for configuration ``chash``, else None."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):  # truncated or damaged (e.g. a full disk): compute it again
        log.warning("%s: unreadable fold record (truncated?); computing the fold again", path)
        return None
    return record if isinstance(record, dict) and record.get("config_hash") == chash else None


def store_record(path: Path, record: dict) -> None:
    """Write a finished unit's record (with its ``config_hash``) as JSON, atomically."""
    write_text_atomic(path, json.dumps(record, indent=1, default=float))


def _training_key(recipe: Recipe, fold: Fold) -> str:
    """Folds with the same key train the same model (few-shot folds of one f and recipe)."""
    blob = json.dumps([recipe.model_dump(mode="json"), fold.train, fold.val], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _fold_path(out_dir: Path, recipe: Recipe, fold: Fold) -> Path:
    return out_dir / "folds" / recipe.name / (fold.name.replace("/", "__") + ".json")


class _TrainedModels:
    """The model of the last training split, reused by folds that train the same model.

    One entry is enough: the few-shot folds of one fold index come one after the other.
    """

    def __init__(self) -> None:
        self.key: str | None = None
        self.value: tuple[DamageModel, FitResult] | None = None

    def get(self, key: str, train: Callable[[], tuple[DamageModel, FitResult]]) -> tuple[DamageModel, FitResult]:
        if key != self.key or self.value is None:
            self.key, self.value = None, None
            self.value, self.key = train(), key
        return self.value


def run_fold(
    recipe: Recipe,
    fold: Fold,
    by_key: dict[str, Sample],
    cache_dir: CacheDir,
    progress: Progress | None,
    trained: _TrainedModels | None = None,
    device: torch.device | str | None = None,
    precision: str = "fp32",
) -> dict:
    """Train on the fold's train split (epoch chosen on val) and score its test split.

    Few-shot folds (``fold.meta["shots"]``) of a recipe with ``fewshot.enabled`` then adapt a
    ViT encoder with LoRA on the n shots (decoder frozen; PC prototypes stay those of the
    sources) and score the adapted model; the decoder-only scores are kept as
    ``scores_decoder_only``. n = 0 is the source-only model. Non-ViT encoders skip the
    adaptation (recorded under ``"lora"``). Training and scoring run on ``device`` (default: the
    CPU) in ``precision``.
    """
    pick = lambda keys: [by_key[k] for k in keys]  # noqa: E731

    def train() -> tuple[DamageModel, FitResult]:
        return train_model(
            recipe,
            pick(fold.train),
            pick(fold.val),
            cache_dir=cache_dir,
            progress=progress,
            device=device,
            precision=precision,
        )

    model, result = (trained or _TrainedModels()).get(_training_key(recipe, fold), train)
    test = pick(fold.test)
    scores = evaluate_model(model, test, cache_dir, progress)
    target = fold.target_domain or next(iter(scores))
    record = {
        "scores": scores.get(target, scores["all"]),
        "best_epoch": result.best_epoch,
        "history": result.history,
        "notes": model.metrics.get("notes", []),
        "init": model.metrics.get("init"),
    }
    shots, fewshot = fold.meta.get("shots"), recipe.fewshot
    if shots and fewshot is not None and fewshot.enabled:
        from damagemap.training.fewshot import adapt_encoder_lora, lora_supported

        if not lora_supported(model.encoder, fewshot.target_modules):
            record["lora"] = "skipped (non-ViT encoder)"
        else:
            adapted = adapt_encoder_lora(model, pick(shots), fewshot, progress)
            # the adapted encoder is used for this fold only: don't fill the feature cache with it
            lora_scores = evaluate_model(adapted, test, None, progress)
            record["scores_decoder_only"] = record["scores"]
            record["scores"] = lora_scores.get(target, lora_scores["all"])
            record["lora"] = adapted.metrics["lora"]
    return record


def run_experiment(
    recipes: Sequence[Recipe],
    samples: Sequence[Sample],
    folds: Sequence[Fold],
    out_dir: str | Path,
    cache_dir: CacheDir = DEFAULT_CACHE,
    progress: Progress | None = None,
    compute: bool = True,
    device: torch.device | str | None = None,
    precision: str = "fp32",
) -> list[FoldResult]:
    """Train/evaluate each recipe on each fold; finished folds on disk are reused.

    With ``compute=False`` nothing is trained: only finished folds are returned (to rebuild
    reports while a long run is still going, or from a partial run). Folds run on ``device`` in
    ``precision`` (see :mod:`damagemap.device`). The precision is part of a fold's identity, the
    device is not: an fp32 fold finished on a GPU is reused by a CPU run.
    """
    out_dir = Path(out_dir)
    names = [r.name for r in recipes]
    if len(set(names)) != len(names):
        raise ConfigError(f"recipe names must be unique within an experiment, got {names}")
    with output_lock(out_dir / LOCK_NAME, str(out_dir)):
        return _run_folds(recipes, samples, folds, out_dir, cache_dir, progress, compute, device, precision)


def _run_folds(
    recipes: Sequence[Recipe],
    samples: Sequence[Sample],
    folds: Sequence[Fold],
    out_dir: Path,
    cache_dir: CacheDir,
    progress: Progress | None,
    compute: bool,
    device: torch.device | str | None,
    precision: str,
) -> list[FoldResult]:
    by_key = {s.key: s for s in samples}
    trained = _TrainedModels()
    results: list[FoldResult] = []
    task = progress.add_task("folds", total=len(recipes) * len(folds), info="", report_each=True) if progress else None
    for recipe in recipes:
        for fold in folds:
            path = _fold_path(out_dir, recipe, fold)
            chash = _config_hash(recipe, fold, precision)
            record = finished_record(path, chash)
            if record is not None and recipe.encoder.name == "pixels" and "init" not in record:
                record = None  # a baseline fold written before records carried "init": its init is unknown
            if record is None and not compute:
                continue
            if record is None:
                if progress is not None and task is not None:
                    progress.update(task, info=f"{recipe.name} {fold.name}")
                started = time.perf_counter()
                record = run_fold(recipe, fold, by_key, cache_dir, progress, trained, device, precision)
                record["seconds"] = round(time.perf_counter() - started, 1)
                record.update(
                    {
                        "config_hash": chash,
                        "recipe": recipe.name,
                        "fold": fold.name,
                        "target_domain": fold.target_domain,
                        "meta": fold.meta,
                        "n_train": len(fold.train),
                        "n_val": len(fold.val),
                        "n_test": len(fold.test),
                    }
                )
                store_record(path, record)
                if progress is not None:
                    for tid in [t for t in progress.task_ids if t != task]:
                        progress.remove_task(tid)  # keep the display to the folds bar
            results.append(
                FoldResult(
                    recipe.name,
                    fold.name,
                    record["target_domain"] or "all",
                    record["scores"],
                    record["meta"],
                    list(record.get("notes", [])),
                    record.get("init"),
                )
            )
            if progress is not None and task is not None:
                progress.update(task, advance=1, info=f"{recipe.name} {fold.name} done")
    return results
