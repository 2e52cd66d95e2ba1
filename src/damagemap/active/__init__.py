"""Where to label next: candidate tiles ranked by model uncertainty × feature-space diversity."""

from damagemap.active.scene import SuggestOptions, suggest_tiles, write_suggestions
from damagemap.active.select import Selection, select_tiles

__all__ = ["Selection", "SuggestOptions", "select_tiles", "suggest_tiles", "write_suggestions"]
