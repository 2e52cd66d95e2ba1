"""Reader for CVAT XML polygon annotations (CVAT "for images 1.1"; the EIDSeg format).

Layout: ``<root>/<domain>/<annotations>.xml`` with the images next to the XML file or in an
``images/`` folder beside it (``<image name=...>`` may include sub-folders). If ``root`` itself
holds XML files it is one domain named after the folder. Each ``<image name width height>``
holds ``<polygon label="…" points="x,y;x,y;…" z_order="…">`` elements in pixel coordinates
(origin at the top-left corner of the top-left pixel). Polygons are burnt into a class mask in
increasing ``z_order`` (document order on ties), so the upper polygon wins where they overlap;
unannotated pixels are background (class 0). Labels become classes through the recipe's
``data.labels`` table; a label missing from it is an error naming the file and the label.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from damagemap.data.io import read_image
from damagemap.errors import InputError
from damagemap.safepath import is_safe_path
from damagemap.types import Sample


def rasterize_polygons(shapes: Sequence[tuple[np.ndarray, int]], height: int, width: int) -> np.ndarray:
    """Burn ``(points [N, 2] as x, y, class)`` polygons in order into an int64 ``[H, W]`` mask.

    A pixel belongs to a polygon when its centre is inside it (rasterio's default rule).
    """
    from rasterio.features import rasterize
    from shapely.geometry import Polygon

    mask = np.zeros((height, width), dtype=np.int64)
    for points, value in shapes:
        poly = Polygon(points)
        if not poly.is_valid:
            poly = poly.buffer(0)
        if poly.is_empty:
            continue
        burnt = rasterize([(poly, 1)], out_shape=(height, width), fill=0, dtype="uint8")
        mask[burnt.astype(bool)] = value
    return mask


def _points(text: str, xml_path: Path, image: str) -> np.ndarray:
    try:
        pts = np.array([[float(v) for v in p.split(",")] for p in text.strip().split(";") if p], dtype=float)
    except ValueError:
        raise InputError(xml_path, f"image {image!r}: polygon points {text[:60]!r} are not 'x,y;x,y;…'") from None
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3:
        raise InputError(xml_path, f"image {image!r}: a polygon needs at least 3 'x,y' points, got {text[:60]!r}")
    return pts


def _find_image(xml_path: Path, name: str) -> Path:
    """The image ``name`` of a label file, looked up only inside the label file's folder.

    An absolute ``name`` or one with ``..`` is never read where it points: only its file name
    is looked up next to the label file (or in ``images/`` beside it).
    """
    base = xml_path.parent
    confined = is_safe_path(name)  # base / name stays inside base
    candidates = [base / name, base / "images" / name] if confined else []
    for cand in (*candidates, base / "images" / Path(name).name, base / Path(name).name):
        if cand.is_file():
            return cand
    raise InputError(xml_path, f"image {name!r} not found next to the XML file or in {base / 'images'}")


def read_cvat_xml(xml_path: str | Path, labels: Mapping[str, int], domain: str) -> list[Sample]:
    """Read every annotated ``<image>`` of one CVAT XML file into samples.

    Args:
        xml_path: the annotations file.
        labels: annotation label → class index (255 = ignore).
        domain: domain name of the samples.

    Raises:
        InputError: unparsable XML, a label missing from ``labels``, bad points, a missing image
            or an image whose size differs from the XML's ``width``/``height``.
    """
    xml_path = Path(xml_path)
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise InputError(xml_path, f"not a readable CVAT XML file ({exc})") from None
    samples = []
    for node in root.iter("image"):
        name = node.get("name", "")
        try:
            width, height = int(node.get("width", "")), int(node.get("height", ""))
        except ValueError:
            raise InputError(xml_path, f"<image name={name!r}> lacks integer width/height") from None
        shapes = []
        for order, poly in enumerate(node.iter("polygon")):
            label = poly.get("label", "")
            if label not in labels:
                raise InputError(
                    xml_path,
                    f"image {name!r}: label {label!r} is not in the label table "
                    f"(data.labels: {', '.join(sorted(labels)) or 'empty'})",
                )
            shapes.append(
                (
                    int(poly.get("z_order", "0") or 0),
                    order,
                    _points(poly.get("points", ""), xml_path, name),
                    labels[label],
                )
            )
        shapes.sort(key=lambda s: (s[0], s[1]))
        image_path = _find_image(xml_path, name)
        image = read_image(image_path)
        if image.shape[1:] != (height, width):
            raise InputError(
                image_path, f"image is {image.shape[1]}x{image.shape[2]} (HxW) but {xml_path} says {height}x{width}"
            )
        mask = rasterize_polygons([(s[2], s[3]) for s in shapes], height, width)
        meta = {"image_path": str(image_path), "annotations": str(xml_path)}
        samples.append(Sample(image=image, mask=mask, domain=domain, id=Path(name).stem, meta=meta))
    return samples


def read_cvat(root: str | Path, labels: Mapping[str, int] | None, domains: Sequence[str] | None = None) -> list[Sample]:
    """Read ``<root>/<domain>/*.xml`` CVAT annotations (or ``<root>/*.xml`` as one domain)."""
    root = Path(root)
    if not labels:
        raise InputError(
            root, "CVAT polygons need a label table: set data.labels in the recipe (annotation label → class name)"
        )
    if any(root.glob("*.xml")) and not domains:
        groups = {root.name: sorted(root.glob("*.xml"))}
    else:
        names = domains or sorted(d.name for d in root.iterdir() if d.is_dir() and any(d.glob("*.xml")))
        missing = [d for d in names if not (root / d).is_dir()]
        if missing:
            raise InputError(root, f"domain folder(s) not found: {', '.join(missing)}")
        groups = {d: sorted((root / d).glob("*.xml")) for d in names}
    samples = [s for domain, files in groups.items() for f in files for s in read_cvat_xml(f, labels, domain)]
    keys = [s.key for s in samples]
    if len(set(keys)) != len(keys):
        raise InputError(root, f"duplicate image ids: {sorted({k for k in keys if keys.count(k) > 1})[:5]}")
    return samples
