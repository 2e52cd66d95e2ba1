"""What every configuration schema shares.

A strict pydantic base, readable validation errors, YAML reading and ``--set section.key=value``
overrides.

Recipes (:mod:`damagemap.recipe`), video recipes (:mod:`damagemap.video.config`) and the
severity section (:mod:`damagemap.severity.config`) are all built on :class:`StrictModel`, and
every ``ValidationError`` becomes one :class:`~damagemap.errors.ConfigError` naming the file
(or override) and the offending keys through :func:`config_error`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from damagemap.errors import ConfigError

Model = TypeVar("Model", bound=BaseModel)


class StrictModel(BaseModel):
    """A pydantic model that refuses unknown keys (a typo in a recipe is an error, not a default)."""

    model_config = ConfigDict(extra="forbid")


def config_error(exc: ValidationError, where: str, what: str = "recipe") -> ConfigError:
    """One ``ConfigError`` listing every problem as ``section.key: message``, prefixed by ``where``."""
    problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors())
    return ConfigError(f"{where}: invalid {what} — {problems}")


def validate(schema: type[Model], raw: Any, where: str, what: str = "recipe") -> Model:
    """``schema.model_validate(raw)`` with errors as :func:`config_error`."""
    try:
        return schema.model_validate(raw)
    except ValidationError as exc:
        raise config_error(exc, where, what) from None


def read_yaml_mapping(path: str | Path, what: str = "recipe") -> dict[str, Any]:
    """The raw mapping of a YAML file (``name`` defaults to the file stem)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {what} file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a {what} must be a mapping of keys, got {type(raw).__name__}")
    raw.setdefault("name", path.stem)
    return raw


def apply_overrides(model: Model, overrides: list[str] | None, what: str = "recipe") -> Model:
    """A re-validated copy of ``model`` with ``section.key=value`` overrides (values parsed as YAML).

    Missing sections are created, e.g. ``fewshot.enabled=true`` on a recipe without ``fewshot``.
    Example: ``["data.format=xbd", "data.chip=512", "train.epochs=3"]``.
    """
    if not overrides:
        return model
    raw = model.model_dump(mode="json")
    for item in overrides:
        path, sep, value = item.partition("=")
        *parents, leaf = path.split(".")
        if not sep or not path or not leaf or not all(parents + [leaf]):
            raise ConfigError(f"override {item!r} is not of the form section.key=value")
        node = raw
        for part in parents:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        try:
            node[leaf] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({exc})") from None
    return validate(type(model), raw, f"override {overrides}", what)
