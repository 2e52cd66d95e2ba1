"""Labelled samples from what a user points at: a dataset folder, or scenes with drawn polygons.

The responder's loop trains on the event's own imagery: ``--scene post.tif --labels
polygons.gpkg`` (repeatable; each pair is a domain) with the polygons drawn in QGIS over it.
:func:`load_labelled` is the one function ``damagemap train / evaluate / experiment`` and the
demo use to turn either kind of input into samples, so the CLI and the demo follow one path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from damagemap.data.geo_labels import read_geotiff_labels
from damagemap.data.loading import load_samples
from damagemap.errors import ConfigError, InputError
from damagemap.geo.spec import Scale
from damagemap.recipe import Recipe
from damagemap.types import Sample


@dataclass(frozen=True)
class ScenePair:
    """One labelled scene: the scene raster, its label polygons, optional footprints and pre-event scene."""

    scene: str
    labels: str
    footprints: str | None = None
    pre: str | None = None


@dataclass(frozen=True)
class SceneOptions:
    """How scene pixels and polygons become training tiles (the ``map`` command's options).

    Attributes:
        label_field: the polygons' class attribute: recipe class names or class indexes.
        bands: 1-based scene bands in model order (default: the recipe's ``input.bands`` + 1).
        scale: raw value → [0, 1] scaling, as ``damagemap map --scale``.
        replicate_single_band: repeat a 1-band scene for a model that expects more bands.
    """

    label_field: str = "damage"
    bands: tuple[int, ...] | None = None
    scale: Scale = "dtype"
    replicate_single_band: bool = False


@dataclass(frozen=True)
class Inputs:
    """Either dataset folders in the recipe's ``data.format`` or labelled scenes (not both).

    ``data`` is one folder or several (their samples are pooled, see :func:`load_roots`).
    """

    data: Path | tuple[Path, ...] | None = None
    domains: Sequence[str] | None = None
    scenes: Sequence[ScenePair] = field(default_factory=tuple)
    options: SceneOptions = field(default_factory=SceneOptions)


def pair_scenes(
    scenes: Sequence[str], labels: Sequence[str], footprints: Sequence[str] = (), pres: Sequence[str] = ()
) -> list[ScenePair]:
    """The scene pairs of ``--scene``/``--labels`` (one each per scene).

    ``--footprints``: none, one for all scenes, or one each; ``--pre``: none, or one each.
    """
    if len(scenes) != len(labels):
        raise ConfigError(
            f"--scene and --labels come in pairs: got {len(scenes)} scene(s) and {len(labels)} label file(s)"
        )
    if len(footprints) not in (0, 1, len(scenes)):
        raise ConfigError(
            f"--footprints: give one file for every scene, or one per scene ({len(scenes)}), got {len(footprints)}"
        )
    if len(pres) not in (0, len(scenes)):
        raise ConfigError(f"--pre: give one pre-event scene per --scene ({len(scenes)}), got {len(pres)}")
    given: list[str | None] = [str(f) for f in footprints]
    fps = given * len(scenes) if len(given) == 1 else given or [None] * len(scenes)
    pre_list: list[str | None] = [str(p) for p in pres] or [None] * len(scenes)
    return [ScenePair(str(s), str(lab), f, p) for s, lab, f, p in zip(scenes, labels, fps, pre_list)]


def read_scene_pairs(
    pairs: Sequence[ScenePair], recipe: Recipe, options: SceneOptions | None = None, pre: bool | None = None
) -> list[Sample]:
    """Training tiles of every labelled scene; each scene is one domain (its file stem).

    Every pair is read and checked (CRS, overlap, polygons outside the scene, label values
    against the recipe's classes, empty layers) before anything is returned, so bad input is
    reported before any training starts. Tiles are ``input.size`` scene pixels. ``pre``: whether
    pre-event scenes are required (default: the recipe's ``input.pair``).
    """
    opts = options or SceneOptions()
    domains = [Path(p.scene).stem for p in pairs]
    if len(set(domains)) != len(domains):
        dup = sorted({d for d in domains if domains.count(d) > 1})
        raise ConfigError(f"two scenes share the name {dup[0]!r}: each --scene is a domain, named by its file stem")
    has_pre = [p.pre is not None for p in pairs]
    need_pre = recipe.input.pair if pre is None else pre
    if need_pre and not all(has_pre):
        raise ConfigError(f"recipe {recipe.name} is a pre/post pair recipe (input.pair): give --pre for every --scene")
    if any(has_pre) and not need_pre:
        raise ConfigError(
            f"--pre given but recipe {recipe.name} takes post-event images only (set input.pair: true to use it)"
        )
    class_map = {name: i for i, name in enumerate(recipe.classes)}
    bands = opts.bands
    if bands is None and recipe.input.bands is not None:
        bands = tuple(b + 1 for b in recipe.input.bands)
    samples: list[Sample] = []
    for pair, domain in zip(pairs, domains):
        samples += read_geotiff_labels(
            pair.scene,
            pair.labels,
            tile=recipe.input.size,
            class_column=opts.label_field,
            class_map=class_map,
            buildings_path=pair.footprints,
            bands=bands,
            domain=domain,
            scale=opts.scale,
            replicate_to=int(recipe.encoder.options.get("in_chans", 3)) if opts.replicate_single_band else None,
            pre_path=pair.pre,
        )
    return samples


def load_labelled(recipe: Recipe, inputs: Inputs, pre: bool | None = None) -> list[Sample]:
    """The labelled samples of ``inputs`` for ``recipe`` (dataset folder or labelled scenes).

    ``pre``: read the pre-event images too (default: the recipe's ``input.pair``; an experiment
    comparing post-only and pair recipes reads them for all).
    """
    pre = recipe.input.pair if pre is None else pre
    if (inputs.data is None) == (not inputs.scenes):
        raise ConfigError("give either --data DATASET or --scene SCENE --labels POLYGONS (one or more pairs)")
    if inputs.scenes:
        if inputs.domains:
            raise ConfigError("--domains selects dataset folders; with --scene every scene is a domain")
        return read_scene_pairs(inputs.scenes, recipe, inputs.options, pre)
    domains = list(inputs.domains) if inputs.domains else None
    return load_roots(data_roots(inputs), recipe, domains, pre)


def data_roots(inputs: Inputs) -> list[Path]:
    """The dataset folders of ``inputs`` (one or more), each checked to exist."""
    data = inputs.data
    roots = [] if data is None else [Path(data)] if isinstance(data, (str, Path)) else [Path(p) for p in data]
    if len(set(roots)) != len(roots):
        raise ConfigError(f"--data: a folder is given twice: {sorted({str(r) for r in roots if roots.count(r) > 1})}")
    for root in roots:
        if not root.exists():
            raise InputError(root, "data folder does not exist")
    return roots


def load_roots(roots: Sequence[Path], recipe: Recipe, domains: list[str] | None, pre: bool) -> list[Sample]:
    """Samples of every root, pooled; domains keep their names.

    Two roots may hold the same domain (an event split over folders, e.g. xBD's tier1 and
    tier3): its samples are pooled into one domain as long as no sample key (``domain/id``) is in
    both; a key found in two roots is refused, naming both folders. With ``domains``, each root
    reads the ones it has (a domain no root has is an error).
    """
    if len(roots) == 1:
        return load_samples(roots[0], recipe.data, len(recipe.classes), domains, pre=pre)
    samples: list[Sample] = []
    origin: dict[str, Path] = {}
    for root in roots:
        wanted = None
        if domains is not None:
            from damagemap.data.listing import list_domains

            have = list_domains(root, recipe.data)
            wanted = domains if have is None else [d for d in domains if d in have]
            if not wanted:
                continue
        for s in load_samples(root, recipe.data, len(recipe.classes), wanted, pre=pre):
            if s.key in origin:
                raise InputError(
                    root,
                    f"sample {s.key} is also in {origin[s.key]}: two --data folders give the same domain "
                    "and tile; pass each dataset once",
                )
            origin[s.key] = root
            samples.append(s)
    if domains is not None:
        missing = sorted(set(domains) - {s.domain for s in samples})
        if missing:
            raise InputError(roots[0], f"domains {missing} not found in any --data folder")
    return samples
