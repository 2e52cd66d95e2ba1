"""Recipes: YAML files validated by pydantic. Unknown keys are errors.

A recipe is one method = encoder + input preprocessing + head + objective terms + training
settings. The same schema serves every method; method-specific parts are optional sections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from damagemap.errors import ConfigError
from damagemap.severity.config import SeverityConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EncoderConfig(_Strict):
    """Which frozen backbone to use and where its weights are."""

    name: str = "efficientnet-lite0"
    checkpoint: str | None = None
    pretrained: bool = True
    options: dict[str, Any] = Field(default_factory=dict)


class BandStats(_Strict):
    """Per-band mean and std of the selected bands (``input.standardize: dataset``)."""

    mean: list[float] = Field(min_length=1)
    std: list[float] = Field(min_length=1)
    n_pixels: int = 0
    """Valid (finite, non-nodata) pixels per band the statistics were computed from (minimum)."""

    @model_validator(mode="after")
    def _consistent(self) -> "BandStats":
        if len(self.mean) != len(self.std):
            raise ValueError(f"band_stats: {len(self.mean)} means but {len(self.std)} stds")
        return self


class InputConfig(_Strict):
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
    band_stats: "BandStats | None" = None
    """Filled in by training for ``standardize: dataset`` and saved with the model (manifest
    recipe); set it by hand to use fixed statistics instead (training then keeps them)."""
    rgb: list[int] | None = Field(None, min_length=3, max_length=3)
    """0-based image band indices of red, green, blue (among ``bands``; default: the first three
    selected). With more than 3 bands on an RGB encoder, the encoder's first conv keeps its RGB
    weights on these and gets a trainable conv for the others (``damagemap.encoders.band_adapt``)."""


class DataConfig(_Strict):
    """Which reader turns a data folder into samples."""

    format: Literal["folders", "smart_transfer", "xbd", "cvat", "coco", "landslide4sense", "bijie"] = "folders"
    damage: Literal["grades", "binary-major", "binary-minor"] = "binary-major"
    domains: list[str] | None = None
    chip: int | None = Field(None, ge=16)
    """Cut samples larger than this into non-overlapping chips (e.g. 1024 px xBD tiles → 512)."""
    labels: dict[str, int | str] | None = None
    """Polygon formats (cvat, coco): annotation label → class name (or index; 255/"ignore" = ignore)."""


class TermConfig(_Strict):
    """One objective term: its weight and options."""

    weight: float = 1.0
    options: dict[str, Any] = Field(default_factory=dict)


class TrainConfig(_Strict):
    """Optimisation settings (Smart Transfer defaults)."""

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(3e-4, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    grad_clip: float | None = 1.0
    seed: int = 42
    augment: list[Literal["hflip", "vflip", "rot90"]] = Field(
        default_factory=lambda: ["hflip", "vflip", "rot90"]
    )
    val_fraction: float = Field(0.2, ge=0, lt=1)
    select_by: Literal["miou", "loss", "last"] = "miou"
    threshold: float = Field(0.5, gt=0, lt=1)
    scheduler: Literal["none", "cosine"] = "none"
    """``cosine``: cosine annealing of the learning rate from ``lr`` to ``min_lr`` over the epochs."""
    min_lr: float = Field(0.0, ge=0)
    color_jitter: list[float] | None = Field(None, min_length=4, max_length=4)
    """torchvision ColorJitter(brightness, contrast, saturation, hue) on the (first three bands of
    the) training images only; it changes encoder input, so training runs end to end (no cache)."""


class HeadConfig(_Strict):
    """The trainable decoder: ``progressive`` (Smart Transfer, single-scale ViT maps) or ``fpn``."""

    kind: str = "fpn"
    options: dict[str, Any] = Field(default_factory=dict)


class FewShotConfig(_Strict):
    """Few-shot encoder adaptation (Smart Transfer): LoRA on the ViT encoder's ``target_modules``
    Linear layers inside its transformer blocks, trained on the target shots with the decoder
    frozen (``damagemap.training.lora``). Used by the few-shot protocol when ``enabled``;
    skipped (and recorded as such) for non-ViT encoders."""

    enabled: bool = True
    lora_r: int = Field(8, ge=1)
    lora_alpha: float = Field(16, gt=0)
    target_modules: list[str] = Field(default_factory=lambda: ["qkv", "proj", "fc1", "fc2"], min_length=1)
    lr: float = Field(3e-5, gt=0)
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(4, ge=1)


class ATLConfig(_Strict):
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


class Recipe(_Strict):
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
    fewshot: FewShotConfig | None = None
    atl: "ATLConfig | None" = None
    severity: SeverityConfig | None = None

    @field_validator("classes")
    @classmethod
    def _at_least_two(cls, v: list[str]) -> list[str]:
        if len(v) < 2:
            raise ValueError("need at least two classes (e.g. [background, damaged])")
        if len(set(v)) != len(v):
            raise ValueError(f"class names must be unique, got {v}")
        return v

    @model_validator(mode="after")
    def _damage_classes_exist(self) -> "Recipe":
        bad = [c for c in self.damage_classes if not 0 < c < len(self.classes)]
        if bad:
            raise ValueError(
                f"damage_classes {bad} are not class indexes 1..{len(self.classes) - 1} of {self.classes}"
            )
        return self

    @model_validator(mode="after")
    def _class_names_resolve(self) -> "Recipe":
        # data.labels and severity.degrees name classes; resolve / check them against `classes`
        if self.data.labels:
            index = {c: i for i, c in enumerate(self.classes)} | {"ignore": 255}
            valid = lambda v: v in index if isinstance(v, str) else (0 <= v < len(self.classes) or v == 255)  # noqa: E731
            bad = {k: v for k, v in self.data.labels.items() if not valid(v)}
            if bad:
                raise ValueError(f"data.labels {bad} name no class of {self.classes} (or 'ignore')")
            self.data.labels = {k: index[v] if isinstance(v, str) else v for k, v in self.data.labels.items()}
        if self.severity and (bad := sorted(set(self.severity.degrees) - set(self.classes))):
            raise ValueError(f"severity.degrees names {bad}, which are not classes {self.classes}")
        return self

    @property
    def binary(self) -> bool:
        """Two classes → one sigmoid logit; more → softmax over all classes."""
        return len(self.classes) == 2

    @property
    def num_outputs(self) -> int:
        """Number of logits the head produces."""
        return 1 if self.binary else len(self.classes)


def read_recipe_yaml(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a recipe YAML file (``name`` defaults to the file stem)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: recipe file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of keys, got {type(raw).__name__}")
    raw.setdefault("name", path.stem)
    return raw


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe YAML file; errors name the file and the offending keys."""
    path = Path(path)
    raw = read_recipe_yaml(path)
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: invalid recipe — {problems}") from None


def apply_overrides(recipe: Recipe, overrides: list[str] | None) -> Recipe:
    """Apply ``section.key=value`` overrides (values parsed as YAML) and re-validate.

    Example: ``["data.format=xbd", "data.chip=512", "train.epochs=3"]``.
    """
    if not overrides:
        return recipe
    raw = recipe.model_dump(mode="json")
    for item in overrides:
        path, sep, value = item.partition("=")
        if not sep or not path:
            raise ConfigError(f"override {item!r} is not of the form section.key=value")
        node = raw
        *parents, leaf = path.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {} if node.get(part) is None else node[part]
            node = node[part]
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[leaf] = yaml.safe_load(value)
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid override {overrides}: {problems}") from None
