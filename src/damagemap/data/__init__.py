"""damagemap.data: readers for real dataset formats, returning lists of :class:`Sample`."""

from damagemap.data.dataset import damaged_fractions
from damagemap.data.folders import read_image_mask_folders
from damagemap.data.io import read_image, read_mask
from damagemap.data.smart_transfer import read_smart_transfer
from damagemap.data.xbd import DAMAGE_GRADES, rasterize_instances, read_xbd, read_xbd_buildings

__all__ = [
    "DAMAGE_GRADES",
    "damaged_fractions",
    "rasterize_instances",
    "read_image",
    "read_image_mask_folders",
    "read_mask",
    "read_smart_transfer",
    "read_xbd",
    "read_xbd_buildings",
]
