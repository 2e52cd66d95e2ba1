"""Class names and a palette chosen by what each class means, not by its number.

The model's class names (its manifest's ``classes``) are read for their meaning: *intact*
names (no damage, background, undamaged, …) are green, then minor → yellow, major → orange,
generic *damaged* → red, destroyed / collapsed → dark red; *unclassified* is grey. A damage
class whose name says nothing known gets a place on the green → dark-red ramp by its index.
A binary model's map has classes 0 and 1; a K-class model's has 0..K-1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from damagemap.mapping.encoding import NODATA

RAMP = [  # severity 0 → 1
    (0.0, (26, 150, 65)),
    (0.33, (255, 221, 51)),
    (0.6, (253, 141, 60)),
    (0.8, (215, 25, 28)),
    (1.0, (103, 0, 13)),
]
UNKNOWN_COLOR = (150, 150, 150)
_MEANING = [  # first match wins; severity in [0, 1], None = unclassified
    (r"un-?classified|unknown|ignore", None),
    (r"\b(no|not|un)[-_ ]?damage|intact|background|none|undamaged|unaffected|safe", 0.0),
    (r"destroy|collaps|total|complete|severe", 1.0),
    (r"major|heavy|substantial|extensive", 0.6),
    (r"minor|slight|light|partial|moderate", 0.33),
    (r"damage|affected|debris|landslide|flood|burn", 0.8),
]


def severity(name: str, index: int, n_classes: int) -> float | None:
    """0 (intact) … 1 (destroyed) read from a class name; by index when the name says nothing known."""
    low = name.lower()
    for pattern, value in _MEANING:
        if re.search(pattern, low):
            return value
    return 0.0 if index == 0 else 0.33 + 0.67 * (index - 1) / max(n_classes - 2, 1)


def ramp_color(t: float) -> tuple[int, int, int]:
    """The RAMP colour at ``t`` in [0, 1] (linear between stops)."""
    t = min(max(t, 0.0), 1.0)
    for (t0, c0), (t1, c1) in zip(RAMP, RAMP[1:]):
        if t <= t1:
            f = (t - t0) / (t1 - t0)
            r, g, b = (round(a + f * (z - a)) for a, z in zip(c0, c1))
            return r, g, b
    return RAMP[-1][1]


@dataclass(frozen=True)
class ClassLegend:
    """Names and RGBA colours of the values of ``damage_class.tif`` (nodata 255 transparent)."""

    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int, int], ...]

    def colormap(self) -> dict[int, tuple[int, int, int, int]]:
        """GDAL colour table: value → RGBA, nodata transparent."""
        return {**dict(enumerate(self.colors)), NODATA: (0, 0, 0, 0)}

    def hex(self, value: int) -> str:
        """``#rrggbb`` of a class value (grey for values outside the legend)."""
        r, g, b, _ = self.colors[value] if 0 <= value < len(self.colors) else (*UNKNOWN_COLOR, 255)
        return f"#{r:02x}{g:02x}{b:02x}"

    def name(self, value: int) -> str:
        """A class value's name (``not assessed`` for −1, ``class N`` outside the legend)."""
        if value == -1:
            return "not assessed"
        return self.names[value] if 0 <= value < len(self.names) else f"class {value}"

    def to_json(self) -> list[dict[str, object]]:
        """``[{"value", "name", "color"}]`` for summary.json."""
        return [{"value": i, "name": n, "color": self.hex(i)} for i, n in enumerate(self.names)]


def class_legend(num_outputs: int, names: list[str] | None = None) -> ClassLegend:
    """The legend of a model with ``num_outputs`` outputs and class ``names`` (default names if missing)."""
    k = 2 if num_outputs == 1 else num_outputs
    if not names or len(names) != k:
        names = ["no damage", "damaged"] if k == 2 else ["no damage", *[f"class {i}" for i in range(1, k)]]
    colors = []
    for i, name in enumerate(names):
        s = severity(name, i, k)
        rgb = UNKNOWN_COLOR if s is None else ramp_color(s)
        colors.append((*rgb, 255))
    return ClassLegend(tuple(names), tuple(colors))
