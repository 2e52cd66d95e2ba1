"""Recipes: YAML files validated by pydantic. Unknown keys are errors.

A recipe is one method = encoder + input preprocessing + head + objective terms + training
settings. The same schema serves every method; method-specific parts are optional sections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from damagemap.config import StrictModel, read_yaml_mapping, validate
from damagemap.config import apply_overrides as _apply_overrides
from damagemap.errors import ConfigError
from damagemap.safepath import check_name
from damagemap.severity.config import SeverityConfig

Augment = Literal["hflip", "vflip", "rot90"]
"""A part of the random dihedral augmentation (``train.augment``)."""


def _all_augments() -> list[Augment]:
    return ["hflip", "vflip", "rot90"]


class EncoderConfig(StrictModel):
    """Which backbone to use and where its weights are; frozen unless ``finetune``."""

    name: str = "efficientnet-lite0"
    checkpoint: str | None = None
    pretrained: bool = True
    options: dict[str, Any] = Field(default_factory=dict)
    finetune: bool = False
    """Train every encoder weight end to end with the head, at ``train.lr`` (the adapter kind
    ``finetune``, ``damagemap.adapters.finetune``); the trained weights are saved with the model."""
    levels: list[int] | None = Field(None, min_length=1)
    """Feature levels the encoder returns, as log2 of their stride: 1 = stride 2, 2 = stride 4 …
    5 = stride 32 (CNN encoders: EfficientNet-Lite, ResNet). Default: the encoder's own set,
    ``[2, 3, 4, 5]``; ``[1, 2, 3, 4, 5]`` adds the stride-2 map for small targets."""

    @field_validator("levels")
    @classmethod
    def _levels_sorted(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (sorted(set(v)) != v or not all(1 <= lvl <= 5 for lvl in v)):
            raise ValueError(f"levels must be increasing, distinct values in 1..5 (log2 of the stride), got {v}")
        return v


class BandStats(StrictModel):
    """Per-band mean and std of the selected bands (``input.standardize: dataset``)."""

    mean: list[float] = Field(min_length=1)
    std: list[float] = Field(min_length=1)
    n_pixels: int = 0
    """Valid (finite, non-nodata) pixels per band the statistics were computed from (minimum)."""

    @model_validator(mode="after")
    def _consistent(self) -> BandStats:
        if len(self.mean) != len(self.std):
            raise ValueError(f"band_stats: {len(self.mean)} means but {len(self.std)} stds")
        return self


class InputConfig(StrictModel):
    """How images become encoder input.

    ``mode: resize`` resizes each whole image to ``size``×``size`` (Smart Transfer: 128);
    ``mode: tile`` cuts images into ``size``×``size`` tiles at native resolution (edge tiles are
    shifted inward so they stay inside the image). ``standardize: image`` maps each image's
    per-band mean and std to fixed reference values before encoding — a cheap defence against
    radiometric shift between sensors and regions (see ``damagemap.data.views``).
    """

    size: int = Field(256, ge=16)
    mode: Literal["resize", "tile"] = "resize"
    bands: list[int] | None = None
    """0-based band indices to keep, in order (Landslide4Sense RGB = B4,B3,B2 = [3, 2, 1])."""
    standardize: Literal["none", "image", "dataset"] = "none"
    """``dataset``: like ``image`` but with per-band mean/std of the training split
    (``band_stats``, computed at training time; see ``damagemap.data.band_stats``)."""
    band_stats: BandStats | None = None
    """Filled in by training for ``standardize: dataset`` and saved with the model (manifest
    recipe); set it by hand to use fixed statistics instead (training then keeps them)."""
    rgb: list[int] | None = Field(None, min_length=3, max_length=3)
    """0-based image band indices of red, green, blue (among ``bands``; default: the first three
    selected). With more than 3 bands on an RGB encoder, the encoder's first conv keeps its RGB
    weights on these and gets a trainable conv for the others (``damagemap.encoders.band_adapt``)."""
    pair: bool = False
    """Pre/post change input: the pre-event image goes through the same frozen encoder as the
    post-event one and the two are fused per feature level before the head
    (:mod:`damagemap.heads.pair`). Readers then supply ``Sample.pre``; ``map`` needs ``--pre``."""
    fusion: Literal["concat", "difference", "learned"] = "concat"
    """Pair fusion per level: ``concat`` = post ‖ pre ‖ |post − pre| (3C channels),
    ``difference`` = post ‖ |post − pre| (2C), ``learned`` = a trained 1×1 conv + BN + ReLU from
    the ``concat`` stack back to C channels."""


class EvalConfig(StrictModel):
    """How a trained model predicts in ``evaluate``, ``experiment``, ``predict`` and ``map``."""

    tta: Literal["none", "flip"] = "none"
    """``flip``: average the probabilities over the image as it is, flipped left-right, flipped
    up-down and both (each prediction flipped back first); four encoder passes per view."""


class DataConfig(StrictModel):
    """Which reader turns a data folder into samples."""

    format: str = "folders"
    """A key of :data:`damagemap.data.loading.READERS` (folders, smart_transfer, xbd, cvat, coco,
    landslide4sense, bijie)."""
    damage: Literal["grades", "binary-major", "binary-minor"] = "binary-major"
    domains: list[str] | None = None
    chip: int | None = Field(None, ge=16)
    """Cut samples larger than this into non-overlapping chips (e.g. 1024 px xBD tiles → 512)."""
    labels: dict[str, int | str] | None = None
    """Polygon formats (cvat, coco): annotation label → class name (or index; 255/"ignore" = ignore)."""

    @field_validator("format")
    @classmethod
    def _known_format(cls, v: str) -> str:
        from damagemap.data.loading import READERS  # the registry imports every reader: not at module load

        if v not in READERS:
            raise ValueError(f"unknown data format {v!r}; known: {', '.join(READERS)}")
        return v


class TermConfig(StrictModel):
    """One objective term: its weight and options."""

    weight: float = 1.0
    options: dict[str, Any] = Field(default_factory=dict)


class TrainConfig(StrictModel):
    """Optimisation settings (Smart Transfer defaults)."""

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(3e-4, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    grad_clip: float | None = 1.0
    seed: int = 42
    augment: list[Augment] = Field(default_factory=_all_augments)
    val_fraction: float = Field(0.2, ge=0, lt=1)
    select_by: Literal["miou", "loss", "last"] = "miou"
    threshold: float = Field(0.5, gt=0, lt=1)
    scheduler: Literal["none", "cosine"] = "none"
    """``cosine``: cosine annealing of the learning rate from ``lr`` to ``min_lr`` over the epochs."""
    min_lr: float = Field(0.0, ge=0)
    color_jitter: list[float] | None = Field(None, min_length=4, max_length=4)
    """torchvision ColorJitter(brightness, contrast, saturation, hue) on the (first three bands of
    the) training images only; it changes encoder input, so training runs end to end (no cache)."""
    sampler: Literal["uniform", "balanced"] = "uniform"
    """``balanced``: each epoch draws as many training views (with replacement) as there are, view
    ``i`` with probability ∝ Σ_c share_i(c) / share(c) — its pixel share of each class relative to
    that class's share over the training set — so views rich in a rare class come up more often
    (:mod:`damagemap.training.balance`)."""
    class_weights: Literal["none", "auto"] | list[float] = "none"
    """Per-class loss weights for the supervised terms (``focal``, ``ce``, ``dice`` is unweighted):
    a list (one per class) or ``auto`` = 1/√(pixel share of the class in the training split),
    scaled so the mean weight per labelled pixel is 1."""


class ScoringConfig(StrictModel):
    """How evaluation turns pixel predictions into per-building damage (samples with footprints)."""

    building_rule: Literal["majority", "mean"] = "majority"
    """``majority``: a building is damaged if at least half of its pixels are predicted damaged
    (K classes: its most frequent predicted class); ``mean``: if its mean P(damage) exceeds
    ``train.threshold`` (K classes: argmax of the mean class probabilities). See
    :mod:`damagemap.training.building_scores`."""


class HeadConfig(StrictModel):
    """The trainable decoder: ``progressive`` (Smart Transfer, single-scale ViT maps) or ``fpn``."""

    kind: str = "fpn"
    options: dict[str, Any] = Field(default_factory=dict)


class FewShotConfig(StrictModel):
    """Few-shot encoder adaptation (Smart Transfer).

    LoRA on the ViT encoder's ``target_modules`` Linear layers inside its transformer blocks,
    trained on the target shots with the decoder frozen (``damagemap.training.fewshot``). Used by
    the few-shot protocol when ``enabled``; skipped (and recorded as such) for non-ViT encoders.
    """

    enabled: bool = True
    lora_r: int = Field(8, ge=1)
    lora_alpha: float = Field(16, gt=0)
    target_modules: list[str] = Field(default_factory=lambda: ["qkv", "proj", "fc1", "fc2"], min_length=1)
    lr: float = Field(3e-5, gt=0)
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(4, ge=1)
    draw: Literal["random", "damaged-first"] = "random"
    """How the n target shots are drawn: ``random`` (the paper; seeded by ``seed`` + fold) or
    ``damaged-first`` (tiles with damage first, as a responder would pick them)."""
    decoder: Literal["sources", "sources+shots"] = "sources"
    """``sources`` (the paper): the decoder is trained on the source domains only and stays
    frozen; the shots only adapt the encoder. ``sources+shots``: the shots also train it."""
    seed: int = 0
    """Seed of the random shot draw (the reference's ``fewshot_seed``)."""


class ATLConfig(StrictModel):
    """Adaptive Transfer Learning modules on a ViT encoder (TransLandSeg, ``damagemap.adapters``).

    ``placement: prompt`` injects per-block prompts (embedding + FFT high-pass paths) before every
    block; ``block`` adds a bottleneck adapter on every attention output. ``residual`` switches
    the ATL skip connection. Only ATL + head are trained, end to end through the frozen encoder.
    """

    enabled: bool = True
    placement: Literal["prompt", "block"] = "prompt"
    residual: bool = True
    prompt_reduction: int = Field(32, ge=1)
    adapter_reduction: int = Field(4, ge=1)
    fft_rate: float = Field(0.25, gt=0, lt=1)

    def options(self) -> dict[str, Any]:
        """Keyword arguments of :class:`damagemap.adapters.atl.ATL`."""
        return self.model_dump(exclude={"enabled"})


class Recipe(StrictModel):
    """A complete method description (see ``recipes/*.yaml``)."""

    name: str
    description: str = ""
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    input: InputConfig = Field(default_factory=InputConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    classes: list[str] = Field(default_factory=lambda: ["background", "damaged"])
    damage_classes: list[int] = Field(default_factory=lambda: [1])
    head: HeadConfig = Field(default_factory=HeadConfig)
    objectives: dict[str, TermConfig] = Field(
        default_factory=lambda: {"focal": TermConfig(options={"alpha": 0.7, "gamma": 2.0})}
    )
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    fewshot: FewShotConfig | None = None
    atl: ATLConfig | None = None
    severity: SeverityConfig | None = None
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        return check_name(v, "name")  # experiment folders are named after it

    @field_validator("classes")
    @classmethod
    def _at_least_two(cls, v: list[str]) -> list[str]:
        if len(v) < 2:
            raise ValueError("need at least two classes (e.g. [background, damaged])")
        if len(set(v)) != len(v):
            raise ValueError(f"class names must be unique, got {v}")
        return v

    @model_validator(mode="after")
    def _damage_classes_exist(self) -> Recipe:
        bad = [c for c in self.damage_classes if not 0 < c < len(self.classes)]
        if bad:
            raise ValueError(f"damage_classes {bad} are not class indexes 1..{len(self.classes) - 1} of {self.classes}")
        return self

    @model_validator(mode="after")
    def _class_weights_fit(self) -> Recipe:
        w = self.train.class_weights
        if isinstance(w, list) and (len(w) != len(self.classes) or min(w) < 0 or max(w) <= 0):
            raise ValueError(
                f"train.class_weights needs {len(self.classes)} non-negative weights (one per class of "
                f"{self.classes}, not all 0), got {w}"
            )
        return self

    @model_validator(mode="after")
    def _class_names_resolve(self) -> Recipe:
        # data.labels and severity.degrees name classes; resolve / check them against `classes`
        if self.data.labels:
            index = {c: i for i, c in enumerate(self.classes)} | {"ignore": 255}
            valid = lambda v: v in index if isinstance(v, str) else (0 <= v < len(self.classes) or v == 255)  # noqa: E731
            bad = {k: v for k, v in self.data.labels.items() if not valid(v)}
            if bad:
                raise ValueError(f"data.labels {bad} name no class of {self.classes} (or 'ignore')")
            self.data.labels = {k: index[v] if isinstance(v, str) else v for k, v in self.data.labels.items()}
        if self.severity and (unknown := sorted(set(self.severity.degrees) - set(self.classes))):
            raise ValueError(f"severity.degrees names {unknown}, which are not classes {self.classes}")
        return self

    @property
    def binary(self) -> bool:
        """Two classes → one sigmoid logit; more → softmax over all classes."""
        return len(self.classes) == 2

    @property
    def num_outputs(self) -> int:
        """Number of logits the head produces."""
        return 1 if self.binary else len(self.classes)


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe YAML file; errors name the file and the offending keys."""
    raw = read_yaml_mapping(path)
    if raw.get("schema") == "video":
        raise ConfigError(f"{path}: this is a video recipe; use `damagemap video train` with it")
    return validate(Recipe, raw, str(path))


def apply_overrides(recipe: Recipe, overrides: list[str] | None) -> Recipe:
    """Apply ``section.key=value`` overrides (values parsed as YAML) and re-validate.

    Example: ``["data.format=xbd", "data.chip=512", "train.epochs=3"]``.
    """
    return _apply_overrides(recipe, overrides)
