"""CVAT XML polygons (EIDSeg format) → class masks, on small files written here."""

import numpy as np
import pytest
from PIL import Image

from damagemap.data.cvat import read_cvat, read_cvat_xml
from damagemap.data.loading import load_samples
from damagemap.errors import InputError
from damagemap.recipe import Recipe

LABELS = {"UD_Building": 1, "UD_Road": 1, "D_Building": 2, "D_Road": 2, "Debris": 3}
XML = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <image id="0" name="{name}" width="20" height="10">
    <polygon label="UD_Building" occluded="0" source="manual" points="0,0;10,0;10,10;0,10" z_order="0"/>
    <polygon label="{label}" occluded="0" source="manual" points="5,0;15,0;15,5;5,5" z_order="1"/>
  </image>
</annotations>
"""


def _domain(folder, name="a.jpg", label="Debris"):
    (folder / "images").mkdir(parents=True)
    Image.new("RGB", (20, 10), (10, 20, 30)).save(folder / "images" / name)
    (folder / "annotations.xml").write_text(XML.format(name=name, label=label))


def test_polygons_burn_in_z_order_with_pixel_centre_rule(tmp_path) -> None:
    _domain(tmp_path / "turkey")
    [s] = read_cvat_xml(tmp_path / "turkey" / "annotations.xml", LABELS, "turkey")
    expected = np.zeros((10, 20), np.int64)
    expected[:, :10] = 1
    expected[:5, 5:15] = 3  # the z_order 1 debris polygon lies on top
    assert (s.mask == expected).all()
    assert s.id == "a" and s.domain == "turkey" and s.image.shape == (3, 10, 20)


def test_unknown_label_names_the_file_the_label_and_the_table(tmp_path) -> None:
    _domain(tmp_path / "d", label="Smoke")
    with pytest.raises(InputError) as err:
        read_cvat(tmp_path, LABELS)
    msg = str(err.value)
    assert "annotations.xml" in msg and "'Smoke'" in msg and "D_Building" in msg and "UD_Road" in msg


def test_recipe_label_table_maps_names_through_load_samples(tmp_path) -> None:
    _domain(tmp_path / "x")
    recipe = Recipe.model_validate(
        {
            "name": "s",
            "classes": ["background", "undamaged", "damaged", "debris"],
            "damage_classes": [2, 3],
            "data": {"format": "cvat", "labels": {"UD_Building": "undamaged", "Debris": "debris"}},
        }
    )
    [s] = load_samples(tmp_path, recipe.data, len(recipe.classes))
    assert set(np.unique(s.mask)) == {0, 1, 3}
    with pytest.raises(InputError, match="label table"):
        load_samples(tmp_path, recipe.model_copy(update={"data": recipe.data.model_copy(update={"labels": None})}).data)


def test_size_mismatch_and_bad_points(tmp_path) -> None:
    _domain(tmp_path / "d")
    Image.new("RGB", (21, 10)).save(tmp_path / "d" / "images" / "a.jpg")
    with pytest.raises(InputError, match="21"):
        read_cvat(tmp_path, LABELS)
    (tmp_path / "d" / "annotations.xml").write_text(
        XML.format(name="a.jpg", label="Debris").replace("5,0;15,0", "5;15")
    )
    with pytest.raises(InputError, match="x,y"):
        read_cvat(tmp_path, LABELS)
