"""Tests for damagemap.video.coco (ISBDA-like COCO reader) and the xBD converter."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from damagemap.errors import InputError
from damagemap.video.coco import CocoDamageDataset
from damagemap.video.config import CLASSES
from damagemap.video.xbd_convert import xbd_to_coco


def _write_doc(tmp_path, annotations, buildings, images=None):
    Image.fromarray(np.full((30, 40, 3), 128, np.uint8)).save(tmp_path / "f.png")
    doc = {
        "images": images or [{"id": 7, "file_name": "f.png", "width": 40, "height": 30}],
        "categories": [{"id": 1, "name": "Slight"}, {"id": 2, "name": "Severe"}, {"id": 3, "name": "Debris"}],
        "annotations": annotations,
        "buildings": buildings,
    }
    (tmp_path / "a.json").write_text(json.dumps(doc))
    return tmp_path / "a.json"


def test_reader_targets(tmp_path):
    anns = [
        {
            "id": 1,
            "image_id": 7,
            "category_id": 3,
            "bbox": [10, 5, 10, 10],
            "iscrowd": 0,
            "building_id": 2,
            "segmentation": [[10, 5, 20, 5, 20, 15, 10, 15]],
            "area": 100,
        }
    ]
    buildings = [{"id": 1, "image_id": 7, "bbox": [0, 0, 5, 5]}, {"id": 2, "image_id": 7, "bbox": [8, 3, 14, 14]}]
    ds = CocoDamageDataset(_write_doc(tmp_path, anns, buildings), CLASSES)
    image, t = ds[0]
    assert image.shape == (3, 30, 40) and image.dtype == torch.float32
    assert t["labels"].tolist() == [3] and t["boxes"].tolist() == [[10, 5, 20, 15]]
    assert t["building_boxes"].tolist() == [[8, 3, 22, 17]]  # only the damaged building
    assert t["masks"].shape == (1, 30, 40) and t["masks"][0, 5:15, 10:20].all()
    assert int(t["masks"].sum()) == pytest.approx(100, abs=25)


def test_missing_image_names_file(tmp_path):
    path = _write_doc(tmp_path, [], [], images=[{"id": 1, "file_name": "gone.png", "width": 4, "height": 4}])
    with pytest.raises(InputError, match=r"a.json: image 1 file not found: .*gone.png"):
        CocoDamageDataset(path, CLASSES)


def test_unknown_category_and_bad_json(tmp_path):
    path = _write_doc(tmp_path, [], [])
    with pytest.raises(InputError, match=r"categories \['Debris'\] are not among"):
        CocoDamageDataset(path, ["Slight", "Severe"])
    (tmp_path / "bad.json").write_text('{"images": []}')
    with pytest.raises(InputError, match="bad.json: not a COCO instances file"):
        CocoDamageDataset(tmp_path / "bad.json", CLASSES)


def _feature(wkt, subtype, uid):
    return {"properties": {"feature_type": "building", "subtype": subtype, "uid": uid}, "wkt": wkt}


def test_convert_hand_made_label(tmp_path):
    root = tmp_path / "xbd"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(root / "images" / "flood-x_00000001_post_disaster.png")
    feats = [
        _feature("POLYGON ((10 5, 30 5, 30 15, 10 15, 10 5))", "major-damage", "a"),
        _feature("POLYGON ((0 20, 4 20, 4 30, 0 30, 0 20))", "no-damage", "b"),
        _feature("POLYGON ((35 20, 45 20, 40 30, 35 20))", "destroyed", "c"),
        _feature("POLYGON ((1 1, 3 1, 3 3, 1 3, 1 1))", "minor-damage", "d"),
        _feature("POLYGON ((20 20, 25 20, 25 25, 20 25, 20 20))", "un-classified", "e"),
    ]
    doc = {"features": {"xy": feats, "lng_lat": []}, "metadata": {"width": 48, "height": 32}}
    (root / "labels" / "flood-x_00000001_post_disaster.json").write_text(json.dumps(doc))
    out = xbd_to_coco(root, tmp_path / "coco" / "x.json")
    assert [b["uid"] for b in out["buildings"]] == ["a", "b", "c", "d", "e"]
    names = {c["id"]: c["name"] for c in out["categories"]}
    assert [(names[a["category_id"]], a["building_id"]) for a in out["annotations"]] == [
        ("Severe", 1),
        ("Debris", 3),
        ("Slight", 4),
    ]
    assert out["annotations"][0]["bbox"] == [10, 5, 20, 10]
    assert out["annotations"][1]["segmentation"] == [[35, 20, 45, 20, 40, 30]]
    assert out["images"][0]["file_name"] == "images/flood-x_00000001_post_disaster.png"  # relative to root
    ds = CocoDamageDataset(tmp_path / "coco" / "x.json", CLASSES, root)  # relative file_name resolves
    _, t = ds[0]
    assert t["labels"].tolist() == [2, 3, 1] and len(t["building_boxes"]) == 3
    assert t["masks"][0, 5:15, 10:30].all() and t["masks"][0].sum() == 200


def test_convert_real_xbd(shared_data, tmp_path):
    root = shared_data / "xbd"
    if not root.is_dir():
        pytest.skip(f"{root} not present")
    tile = "joplin-tornado_00000002"
    out = xbd_to_coco(root, tmp_path / "t.json", [tile])
    subtypes = Counter(
        f["properties"]["subtype"]
        for f in json.loads((root / "labels" / f"{tile}_post_disaster.json").read_text())["features"]["xy"]
    )
    assert len(out["buildings"]) == sum(subtypes.values()) == 103
    by_class = Counter(out["annotations"][i]["category_id"] for i in range(len(out["annotations"])))
    assert by_class == {1: subtypes["minor-damage"], 2: subtypes["major-damage"], 3: subtypes["destroyed"]}
    _, t = CocoDamageDataset(tmp_path / "t.json", CLASSES, root)[0]  # file_name relative to root
    assert t["masks"].shape[1:] == (1024, 1024) and len(t["boxes"]) == sum(by_class.values())
    assert (t["masks"].flatten(1).sum(1) > 0).all()
