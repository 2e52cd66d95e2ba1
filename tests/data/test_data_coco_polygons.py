"""COCO polygon annotations → class masks, on a small file written here."""

import json

import pytest
from PIL import Image

from damagemap.data.coco_polygons import read_coco_polygons
from damagemap.errors import InputError

LABELS = {"building": 1, "rubble": 3}


def _write(folder, categories=("building", "rubble")):
    folder.mkdir(parents=True)
    Image.new("RGB", (20, 10)).save(folder / "p1.png")
    coco = {
        "images": [{"id": 7, "file_name": "p1.png", "width": 20, "height": 10}],
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(categories)],
        "annotations": [
            {
                "id": 1,
                "image_id": 7,
                "category_id": 2,
                "area": 20.0,
                "iscrowd": 0,
                "segmentation": [[12, 2, 16, 2, 16, 7, 12, 7]],
                "bbox": [12, 2, 4, 5],
            },
            {
                "id": 2,
                "image_id": 7,
                "category_id": 1,
                "area": 100.0,
                "iscrowd": 0,
                "segmentation": [[10, 0, 20, 0, 20, 10, 10, 10]],
                "bbox": [10, 0, 10, 10],
            },
        ],
    }
    (folder / "instances.json").write_text(json.dumps(coco))


def test_larger_objects_are_painted_first(tmp_path) -> None:
    _write(tmp_path / "ev")
    [s] = read_coco_polygons(tmp_path, LABELS)
    assert s.domain == "ev" and s.id == "p1"
    assert (s.mask[:, :10] == 0).all()
    assert s.mask[5, 18] == 1 and s.mask[4, 14] == 3  # rubble lies on the larger building
    assert (s.mask == 3).sum() == pytest.approx(20, abs=8)  # the 4x5 px rectangle (edge rule)


def test_unknown_category_is_an_error_naming_it(tmp_path) -> None:
    _write(tmp_path / "ev", categories=("building", "smoke"))
    with pytest.raises(InputError, match=r"instances.json.*\['smoke'\].*building, rubble"):
        read_coco_polygons(tmp_path, LABELS)
