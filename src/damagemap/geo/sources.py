"""Where a scene comes from, resolved in one place: :func:`resolve_scene` → :class:`SceneSource`.

Every reader of a scene (the mapper, training on a scene, the resume ledger, the report's
quicklook, the CLI) resolves it here first and then opens :attr:`SceneSource.gdal_path`. The
accepted forms:

* a local file — ``scene.tif``;
* a GDAL virtual file system path — ``/vsicurl/https://…``, ``/vsis3/bucket/key.tif``,
  ``/vsigs/…``, ``/vsiaz/…``, ``/vsizip/archive.zip/scene.tif``, … (passed to GDAL unchanged);
* a URL — ``https://…``/``http://``/``ftp://`` (→ ``/vsicurl/``), ``s3://`` (→ ``/vsis3/``),
  ``gs://`` (→ ``/vsigs/``), ``az://`` (→ ``/vsiaz/``), ``oss://`` (→ ``/vsioss/``),
  ``file://`` (a local file);
* a STAC item — a local path or an http(s) URL ending in ``.json``, read with ``pystac``.
  The asset is ``asset`` when given, else ``visual``, else the first GeoTIFF/COG asset (media
  type ``image/tiff; application=geotiff[; profile=cloud-optimized]`` or an href ending in
  ``.tif``/``.tiff``). A relative asset href resolves against the item's location (a ``self``
  link in the item is ignored for that). The asset's href then goes through the rules above.

Remote reads (anything that reaches the network, also nested such as ``/vsizip//vsicurl/…``) run
with :data:`REMOTE_GDAL_DEFAULTS` (no directory listing on open, short HTTP timeouts, a few
retries), each only unless the same option is set in the environment. Credentials (AWS_*,
GS_*, AZURE_*, GDAL_HTTP_HEADERS, …) are GDAL's business: set them as for any GDAL tool.
"""

from __future__ import annotations

import email.utils
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import unquote, urlparse
from urllib.request import Request, urlopen

from damagemap.errors import ConfigError, InputError

URL_SCHEMES = {
    "http": "/vsicurl/",
    "https": "/vsicurl/",
    "ftp": "/vsicurl/",
    "s3": "/vsis3/",
    "gs": "/vsigs/",
    "az": "/vsiaz/",
    "oss": "/vsioss/",
}
"""URL scheme → GDAL virtual file system (``/vsicurl/`` keeps the whole URL; the others the part after ``://``)."""

REMOTE_GDAL_DEFAULTS = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_CONNECTTIMEOUT": "10",
    "GDAL_HTTP_TIMEOUT": "20",
    "GDAL_HTTP_MAX_RETRY": "2",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
}
"""GDAL options for remote scenes (an environment variable of the same name wins).

``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR``: GDAL neither lists the remote "directory" nor probes
sidecar files (``.aux.xml``, ``.ovr``, ``.msk``) on open — a COG needs none, and each probe is a
request (servers without listings answer them with errors). That also makes
``CPL_VSIL_CURL_ALLOWED_EXTENSIONS`` unnecessary, which is left unset because it would refuse
URLs without a ``.tif`` extension (signed URLs, ``?format=`` endpoints).
``GDAL_HTTP_CONNECTTIMEOUT=10`` / ``GDAL_HTTP_TIMEOUT=20`` seconds: an unreachable or hung server
fails in seconds instead of libcurl's minutes (GDAL sets no timeout of its own).
``GDAL_HTTP_MAX_RETRY=2`` / ``GDAL_HTTP_RETRY_DELAY=1``: transient 429/5xx answers are retried
twice, starting after one second (GDAL's own default: no retry). ``GDAL_HTTP_MERGE_CONSECUTIVE_RANGES``:
one request for adjacent tiles.
"""

_NETWORK = re.compile(r"/vsi(curl|s3|gs|az|adls|oss|swift|webhdfs|hdfs)(_streaming)?[/?]")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")
_MANGLED = re.compile(r"^((?:/vsicurl/)?[A-Za-z][A-Za-z0-9+.-]+):/(?!/)")  # Path("https://x") -> "https:/x"
_TIFF_SUFFIXES = (".tif", ".tiff")
_STAC_SUFFIXES = (".json",)


@dataclass(frozen=True)
class SceneSource:
    """A scene resolved to what GDAL opens.

    Attributes:
        gdal_path: what to give ``rasterio.open``: a local path or a ``/vsi…`` path (for a STAC
            item: its chosen asset's href, converted the same way). :class:`ReadPlan
            <damagemap.geo.raster.ReadPlan>` carries this, so Dask workers read it directly.
        name: the scene as given, for messages and outputs — the path or URL, or
            ``ITEM [asset KEY]`` for a STAC item.
        local: ``gdal_path`` is a plain file on this machine (``os.stat``/``open`` work on it).
        remote: reading it goes over the network (``/vsicurl/``, ``/vsis3/``, …, also nested in
            ``/vsizip/`` etc.): :data:`REMOTE_GDAL_DEFAULTS` apply.
        given: the scene argument exactly as given (a string).
        stac_item: the STAC item's location (as given) when resolved from one, else None.
        asset: the chosen STAC asset's key (None without a STAC item).
        href: the chosen STAC asset's absolute href (None without a STAC item).
        stem: a short name for sample ids and domains: the file name without suffix, or the
            STAC item's id.
    """

    gdal_path: str
    name: str
    local: bool
    remote: bool
    given: str
    stem: str
    stac_item: str | None = None
    asset: str | None = None
    href: str | None = None

    def to_json(self) -> dict[str, Any]:
        """How outputs record the scene: ``path`` as given, plus ``asset`` and ``href`` for a STAC item."""
        record: dict[str, Any] = {"path": self.given}
        if self.stac_item is not None:
            record.update(asset=self.asset, href=self.href)
        return record

    def __str__(self) -> str:
        return self.name


SceneLike = str | os.PathLike | SceneSource
"""What every scene-reading function accepts (see :func:`resolve_scene`)."""


def resolve_scene(scene: SceneLike, asset: str | None = None) -> SceneSource:
    """Resolve a scene path, URL, GDAL ``/vsi…`` path or STAC item to what GDAL opens.

    Nothing is downloaded except a STAC item's JSON; the raster itself is opened later (and
    checked) by :func:`damagemap.geo.raster.open_scene`. A :class:`SceneSource` is returned
    as is, so resolve once and pass the result on.

    Args:
        scene: a local path, ``/vsi…`` path, URL or STAC item (see the module docstring). Give
            URLs and ``/vsi…`` paths as strings (a ``pathlib.Path`` merges ``//``; the common
            ``https:/`` damage is repaired).
        asset: the STAC asset key to map (default ``visual``, else the first GeoTIFF/COG asset).

    Returns:
        The resolved :class:`SceneSource`.

    Raises:
        InputError: naming the item — a STAC item that cannot be read or parsed, an unknown
            ``asset`` (the message lists the item's assets) or no GeoTIFF asset; an unsupported
            URL scheme.
        ConfigError: ``asset`` given for a scene that is not a STAC item.
    """
    if isinstance(scene, SceneSource):
        if asset is not None and asset != scene.asset:
            raise ConfigError(f"{scene.name}: already resolved (asset {scene.asset!r}); cannot pick asset {asset!r}")
        return scene
    given = os.fspath(scene)
    if not isinstance(given, str):
        raise ConfigError(f"scene must be a path or URL string, got {type(scene).__name__}")
    if not isinstance(scene, str):
        given = _MANGLED.sub(r"\1://", given)
    if is_stac_item(given):
        return _from_stac(given, asset)
    if asset is not None:
        raise ConfigError(
            f"--asset {asset!r} applies to STAC items only (a local path or http(s) URL ending in .json); "
            f"{given} is not one"
        )
    gdal_path = to_gdal_path(given)
    return SceneSource(
        gdal_path=gdal_path,
        name=given,
        local=is_local(gdal_path),
        remote=is_remote(gdal_path),
        given=given,
        stem=_stem(given),
    )


def to_gdal_path(location: str, *, where: str | None = None) -> str:
    """A path or URL → what GDAL opens (``https://x`` → ``/vsicurl/https://x``, ``s3://b/k`` → ``/vsis3/b/k``)."""
    m = _SCHEME.match(location)
    if m is None:
        return location
    scheme = m.group(1).lower()
    if scheme == "file":
        return unquote(urlparse(location).path)
    prefix = URL_SCHEMES.get(scheme)
    if prefix is None:
        raise InputError(
            where or location,
            f"unsupported URL scheme {scheme}://{'' if where is None else ' in ' + location}; accepted: "
            f"{', '.join(s + '://' for s in URL_SCHEMES)}, file://, or a GDAL /vsi…/ path",
        )
    return prefix + (location if prefix == "/vsicurl/" else location[m.end() :])


def is_local(gdal_path: str) -> bool:
    """Whether ``gdal_path`` is a plain file path (not a ``/vsi…`` virtual file system)."""
    return not gdal_path.startswith("/vsi")


def is_remote(gdal_path: str | os.PathLike) -> bool:
    """Whether reading ``gdal_path`` goes over the network (``/vsicurl/``, ``/vsis3/``, …, nested too)."""
    return bool(_NETWORK.search(os.fspath(gdal_path))) if isinstance(gdal_path, str) else False


def is_stac_item(location: str) -> bool:
    """Whether ``location`` names a STAC item (its path, without the query, ends in ``.json``)."""
    path = urlparse(location).path if _SCHEME.match(location) else location.split("?", 1)[0]
    return path.lower().endswith(_STAC_SUFFIXES)


def remote_gdal_options() -> dict[str, str]:
    """:data:`REMOTE_GDAL_DEFAULTS` minus the options set in the environment (the user's win)."""
    return {k: v for k, v in REMOTE_GDAL_DEFAULTS.items() if k not in os.environ}


def http_timeout() -> float:
    """Seconds before an HTTP request of damagemap's own (STAC items, HEAD) gives up: GDAL_HTTP_TIMEOUT."""
    try:
        return float(os.environ.get("GDAL_HTTP_TIMEOUT", REMOTE_GDAL_DEFAULTS["GDAL_HTTP_TIMEOUT"]))
    except ValueError:
        return float(REMOTE_GDAL_DEFAULTS["GDAL_HTTP_TIMEOUT"])


def http_url(gdal_path: str) -> str | None:
    """The plain http(s) URL behind ``/vsicurl/URL`` (None for anything else, e.g. ``/vsis3/``)."""
    if gdal_path.startswith("/vsicurl/"):
        url = gdal_path[len("/vsicurl/") :]
        return url if url.lower().startswith(("http://", "https://")) else None
    return None


def http_headers(source: SceneSource) -> dict[str, str]:
    """``ETag``, ``Last-Modified`` and ``Content-Length`` of an http(s) scene, by one HEAD request.

    Best effort: ``{}`` for scenes that are not plain http(s) URLs (``/vsis3/`` needs GDAL's
    request signing) or when the server refuses HEAD or cannot be reached — GDAL already
    opened the scene, so this never decides whether it can be read.
    """
    url = http_url(source.gdal_path)
    if url is None:
        return {}
    try:
        with urlopen(Request(url, method="HEAD"), timeout=http_timeout()) as response:  # noqa: S310 - http(s) only
            headers = response.headers
    except (OSError, ValueError):
        return {}
    return {k.lower(): headers[k] for k in ("ETag", "Last-Modified", "Content-Length") if headers.get(k)}


def http_status(gdal_path: str) -> int | None:
    """The HTTP error status an http(s) scene answers right now (one 1-byte range request).

    GDAL reports a failed range request mid-read only as a short read ("IReadBlock failed");
    this names the server's answer. None when the request succeeds, the server cannot be
    reached, or the path is not a plain http(s) URL.
    """
    url = http_url(gdal_path)
    if url is None:
        return None
    try:
        with urlopen(Request(url, headers={"Range": "bytes=0-0"}), timeout=http_timeout()):  # noqa: S310
            return None
    except HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def modified_time(source: SceneSource) -> float | None:
    """The scene's modification time (POSIX seconds): the file's mtime, or HTTP ``Last-Modified``; None if unknown."""
    if source.local:
        try:
            return os.stat(source.gdal_path).st_mtime
        except OSError:
            return None
    stamp = http_headers(source).get("last-modified")
    if stamp is None:
        return None
    try:
        return email.utils.parsedate_to_datetime(stamp).timestamp()
    except (TypeError, ValueError):
        return None


def _stem(location: str) -> str:
    path = urlparse(location).path if _SCHEME.match(location) else location.split("?", 1)[0]
    return Path(unquote(path.rstrip("/"))).stem or location


# -- STAC ------------------------------------------------------------------------------------------
def _item_href(location: str) -> str:
    """Where pystac reads the item from: a local path or an http(s) URL."""
    gdal = to_gdal_path(location)
    url = http_url(gdal)
    if url is not None:
        return url
    if not is_local(gdal):
        raise InputError(
            location,
            "STAC items are read from local files or http(s) URLs; give the item's https:// URL "
            "(its assets may be s3:// or any other accepted form)",
        )
    path = Path(gdal)
    if not path.exists():
        raise InputError(location, "STAC item file not found")
    if not path.is_file():
        raise InputError(location, "STAC item path is not a file")
    return str(path.resolve())


def _read_json(href: str, location: str) -> Any:
    try:
        if href.lower().startswith(("http://", "https://")):
            request = Request(href, headers={"User-Agent": "damagemap", "Accept": "application/json"})
            with urlopen(request, timeout=http_timeout()) as response:  # noqa: S310 - http(s) only
                text = response.read().decode("utf-8")
        else:
            text = Path(href).read_text(encoding="utf-8")
    except HTTPError as exc:
        reason = "not found" if exc.code == 404 else exc.reason
        raise InputError(location, f"cannot read the STAC item: HTTP {exc.code} ({reason})") from None
    except URLError as exc:
        raise InputError(location, f"cannot read the STAC item: {exc.reason}") from None
    except (OSError, UnicodeDecodeError) as exc:  # includes timeouts
        raise InputError(location, f"cannot read the STAC item: {exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InputError(location, f"not a STAC item: invalid JSON ({exc})") from None


def _asset_listing(item: Any) -> str:
    parts = [f"{key} ({a.media_type or 'no media type'})" for key, a in item.assets.items()]
    return ", ".join(parts) or "none"


def _is_geotiff(asset: Any) -> bool:
    media = (asset.media_type or "").replace(" ", "").lower()
    if media.startswith("image/tiff") and "application=geotiff" in media:
        return True
    return urlparse(asset.href).path.lower().endswith(_TIFF_SUFFIXES)


def _from_stac(location: str, asset: str | None) -> SceneSource:
    import pystac  # only STAC scenes need it

    href = _item_href(location)
    doc = _read_json(href, location)
    if not isinstance(doc, dict) or doc.get("type") != "Feature":
        kind = doc.get("type") if isinstance(doc, dict) else type(doc).__name__
        raise InputError(location, f"not a STAC item (expected a GeoJSON Feature with assets, got type {kind!r})")
    # relative asset hrefs resolve against where the item was read, not a "self" link it carries
    doc["links"] = [link for link in doc.get("links", []) if not (isinstance(link, dict) and link.get("rel") == "self")]
    try:
        item = pystac.Item.from_dict(doc, href=href, migrate=True, preserve_dict=False)
    except Exception as exc:  # noqa: BLE001 - pystac raises many kinds on malformed items
        raise InputError(location, f"not a valid STAC item: {type(exc).__name__}: {exc}") from None
    if asset is not None:
        if asset not in item.assets:
            raise InputError(
                location, f"STAC item {item.id!r} has no asset {asset!r}; its assets: {_asset_listing(item)}"
            )
        key = asset
    elif "visual" in item.assets:
        key = "visual"
    else:
        key = next((k for k, a in item.assets.items() if _is_geotiff(a)), "")
        if not key:
            raise InputError(
                location,
                f"STAC item {item.id!r} has no 'visual' or GeoTIFF/COG asset; pick one with --asset "
                f"(its assets: {_asset_listing(item)})",
            )
    asset_href = item.assets[key].get_absolute_href() or item.assets[key].href
    gdal_path = to_gdal_path(asset_href, where=f"{location} [asset {key}]")
    return SceneSource(
        gdal_path=gdal_path,
        name=f"{location} [asset {key}]",
        local=is_local(gdal_path),
        remote=is_remote(gdal_path),
        given=location,
        stem=item.id or _stem(location),
        stac_item=location,
        asset=key,
        href=asset_href,
    )
