"""damagemap: rapid disaster damage mapping with frozen vision foundation models."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("damagemap")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
