"""EXIF GPS of photos written with Pillow lands at the right coordinates."""

import numpy as np
import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from damagemap.errors import InputError
from damagemap.severity.exif import read_photo


def write_gps_jpeg(path, lat: float, lon: float, size=(24, 16), colour=(90, 120, 150)) -> None:
    """A JPEG whose EXIF GPS block holds ``lat``/``lon`` as degrees, minutes, seconds rationals."""

    def dms(value: float):
        value = abs(value)
        d = int(value)
        m = int((value - d) * 60)
        s = round(((value - d) * 60 - m) * 60 * 10000)
        return (IFDRational(d, 1), IFDRational(m, 1), IFDRational(s, 10000))

    exif = Image.Exif()
    exif[0x8825] = {1: "N" if lat >= 0 else "S", 2: dms(lat), 3: "E" if lon >= 0 else "W", 4: dms(lon)}
    Image.new("RGB", size, colour).save(path, "JPEG", exif=exif, quality=95)


@pytest.mark.parametrize(
    "lat, lon", [(37.7749, 36.9120), (-33.8688, 151.2093), (40.4168, -3.7038), (-12.0464, -77.0428)]
)
def test_gps_point_in_every_hemisphere(tmp_path, lat, lon) -> None:
    path = tmp_path / "p.jpg"
    write_gps_jpeg(path, lat, lon)
    image, gps = read_photo(path)
    assert image.shape == (3, 16, 24) and image.dtype == np.float32
    assert gps == pytest.approx((lat, lon), abs=1e-6)


def test_photo_without_gps_and_non_image(tmp_path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    assert read_photo(tmp_path / "plain.png")[1] is None
    (tmp_path / "notes.txt").write_text("not a photo")
    with pytest.raises(InputError, match="notes.txt.*not a readable image"):
        read_photo(tmp_path / "notes.txt")


def test_exif_orientation_is_applied(tmp_path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    Image.new("RGB", (20, 10)).save(tmp_path / "r.jpg", "JPEG", exif=exif)
    assert read_photo(tmp_path / "r.jpg")[0].shape == (3, 20, 10)
