"""What :func:`damagemap.mapping.map_scene` returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from damagemap.mapping.encoding import CLASS, PROBABILITY, UNCERTAINTY
from damagemap.mapping.products import BUILDINGS_CSV, GPKG_NAME, SUMMARY, ZONES_CSV
from damagemap.mapping.writer import FILENAMES


@dataclass
class MappingResult:
    """Where the outputs are and what they contain.

    Attributes:
        out_dir: the output directory.
        probability, damage_class, uncertainty: the three COGs.
        vectors: ``damage.gpkg`` (None if no layer was produced).
        buildings_csv, zones_csv: the tables (None when not produced).
        summary: ``summary.json``.
        stats: totals — width, height, tiles, tiles_predicted, tiles_nodata, blocks,
            blocks_resumed, valid_pixels, damaged_pixels, damaged_area_m2, mean_probability,
            regions, buildings, damaged_buildings, zones, workers, seconds.
    """

    out_dir: Path
    probability: Path
    damage_class: Path
    uncertainty: Path
    vectors: Path | None
    buildings_csv: Path | None
    zones_csv: Path | None
    summary: Path
    stats: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_files(cls, out: Path, files: dict[str, Path], stats: dict[str, Any]) -> MappingResult:
        """The result for the published ``files`` in ``out``."""

        def opt(name: str) -> Path | None:
            return out / name if name in files else None

        return cls(
            out_dir=out,
            probability=out / FILENAMES[PROBABILITY],
            damage_class=out / FILENAMES[CLASS],
            uncertainty=out / FILENAMES[UNCERTAINTY],
            vectors=opt(GPKG_NAME),
            buildings_csv=opt(BUILDINGS_CSV),
            zones_csv=opt(ZONES_CSV),
            summary=out / SUMMARY,
            stats=stats,
        )

    def paths(self) -> dict[str, str | None]:
        """Every output path by attribute name (``None``: not produced), e.g. for a JSON summary."""
        names = ("out_dir", "probability", "damage_class", "uncertainty", "vectors", "buildings_csv", "zones_csv")
        return {name: None if getattr(self, name) is None else str(getattr(self, name)) for name in (*names, "summary")}
