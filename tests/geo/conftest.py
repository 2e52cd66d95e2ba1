"""The geo tests use the mapping tests' small synthetic GeoTIFF scenes."""

from tests.mapping.conftest import helpers, scene  # noqa: F401  (pytest fixtures)
