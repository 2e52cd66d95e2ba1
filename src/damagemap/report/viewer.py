"""``viewer.html``: an offline, self-contained interactive map of a mapping run (Leaflet).

Leaflet's JavaScript and CSS come from the ``xstatic-leaflet`` wheel and are inlined (its CSS
images as data URIs), so the page needs no network. Layers: the damage probability, class and
uncertainty rasters — reprojected to Web Mercator at overview resolution (at most
``max_px`` pixels on a side, read from the COG overviews, so a 400 MP scene costs the same
few-MB page as a small one) and embedded as PNGs —, damaged regions, buildings coloured by
damage class with a popup of all their attributes, zones as a choropleth of the damaged-pixel
share, and suggested tiles. A layer switcher and a legend; no base map unless ``basemap`` (an
XYZ URL template, for online use) is given. Vector layers are capped (:data:`MAX_FEATURES`;
buildings keep the damaged ones first) and the page says when features were left out.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from html import escape
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyogrio
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import calculate_default_transform, reproject, transform_bounds

from damagemap.geo.raster import gdal_env
from damagemap.io_atomic import write_text_atomic
from damagemap.mapping import MappingResult
from damagemap.mapping.classes import ClassLegend
from damagemap.mapping.encoding import LEVELS, NODATA
from damagemap.report.html import legend_of

VIEWER_NAME = "viewer.html"
MAX_FEATURES = {"buildings": 20000, "damaged_regions": 5000, "zones": 5000, "suggested_tiles": 1000}


def leaflet_assets() -> tuple[str, str]:
    """Leaflet's ``(js, css)`` from the installed ``xstatic-leaflet`` wheel (CSS images inlined)."""
    import xstatic.pkg.leaflet as leaflet

    base = Path(leaflet.BASE_DIR)
    css = (base / "leaflet.css").read_text(encoding="utf-8")

    def inline(match: re.Match[str]) -> str:
        data = base64.b64encode((base / match.group(1)).read_bytes()).decode("ascii")
        return f"url(data:image/png;base64,{data})"

    css = re.sub(r"url\((images/[^)]+\.png)\)", inline, css)
    return (base / "leaflet.js").read_text(encoding="utf-8"), css


def _png(rgba: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")  # optimize=True: ~3.5x slower for ~2 % smaller files
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def mercator_overview(path: str | os.PathLike, max_px: int) -> tuple[np.ndarray, list[list[float]]]:
    """Band 1 reprojected to Web Mercator (≤ ``max_px`` a side, nearest) and its lat/lon bounds."""
    with gdal_env(path), rasterio.open(path) as src:
        factor = max(1.0, max(src.width, src.height) / max_px)
        h, w = max(1, round(src.height / factor)), max(1, round(src.width / factor))
        data = src.read(1, out_shape=(h, w), resampling=Resampling.nearest)
        transform = src.transform @ src.transform.scale(src.width / w, src.height / h)
        crs = src.crs
    dst_t, dst_w, dst_h = calculate_default_transform(
        crs, "EPSG:3857", w, h, *rasterio.transform.array_bounds(h, w, transform)
    )
    out = np.full((dst_h, dst_w), NODATA, dtype=np.uint8)
    reproject(
        data,
        out,
        src_transform=transform,
        src_crs=crs,
        dst_transform=dst_t,
        dst_crs="EPSG:3857",
        src_nodata=NODATA,
        dst_nodata=NODATA,
        resampling=Resampling.nearest,
    )
    west, south, east, north = transform_bounds(
        "EPSG:3857", "EPSG:4326", *rasterio.transform.array_bounds(dst_h, dst_w, dst_t)
    )
    return out, [[south, west], [north, east]]


def _ramp(values: np.ndarray, cmap: str, alpha: np.ndarray) -> np.ndarray:
    import matplotlib

    rgba = (matplotlib.colormaps[cmap](values) * 255).astype(np.uint8)
    rgba[..., 3] = alpha
    return rgba


def raster_layers(result: MappingResult, legend: ClassLegend, max_px: int) -> list[dict[str, Any]]:
    """The three rasters as ``{"name", "url", "bounds"}`` overlays (PNG data URIs)."""
    layers = []
    q, bounds = mercator_overview(result.probability, max_px)
    p = np.where(q == NODATA, 0, q) / LEVELS
    alpha = np.where(q == NODATA, 0, np.clip(60 + 195 * p, 0, 255)).astype(np.uint8)
    layers.append({"name": "Damage probability", "url": _png(_ramp(p, "inferno", alpha)), "bounds": bounds})
    c, bounds = mercator_overview(result.damage_class, max_px)
    table = np.zeros((256, 4), dtype=np.uint8)
    for value, rgba in legend.colormap().items():
        table[value] = (*rgba[:3], 0 if value == NODATA else 200)
    layers.append({"name": "Damage class", "url": _png(table[c]), "bounds": bounds})
    u, bounds = mercator_overview(result.uncertainty, max_px)
    alpha = np.where(u == NODATA, 0, 200).astype(np.uint8)
    layers.append(
        {
            "name": "Uncertainty",
            "url": _png(_ramp(np.where(u == NODATA, 0, u) / LEVELS, "viridis", alpha)),
            "bounds": bounds,
        }
    )
    return layers


def _geojson(gdf: gpd.GeoDataFrame, limit: int, order: str | None = None) -> tuple[dict, int]:
    """GeoJSON (WGS 84, 6 decimals) of at most ``limit`` features (``order``: a column, largest first)."""
    total = len(gdf)
    if order is not None and total > limit:
        gdf = gdf.sort_values(order, ascending=False, kind="stable")
    gdf = gdf.head(limit).to_crs(4326)
    gdf = gdf.set_geometry(gdf.geometry.set_precision(1e-6))
    return json.loads(gdf.to_json(na="null", drop_id=True)), total


def vector_layers(result: MappingResult, suggestions: str | os.PathLike | None) -> dict[str, dict[str, Any]]:
    """The GeoPackage layers (and suggested tiles) as capped GeoJSON, by layer name."""
    out: dict[str, dict[str, Any]] = {}
    present = set(pyogrio.list_layers(result.vectors)[:, 0]) if result.vectors is not None else set()
    orders = {"buildings": "damage_class", "damaged_regions": "area_m2", "zones": "damaged_pixel_share"}
    for name, order in orders.items():
        if name in present:
            geo, total = _geojson(pyogrio.read_dataframe(result.vectors, layer=name), MAX_FEATURES[name], order)
            out[name] = {"geojson": geo, "total": total}
    if suggestions is not None and Path(suggestions).is_file():
        tiles = pyogrio.read_dataframe(suggestions, layer="suggested_tiles")
        geo, total = _geojson(tiles, MAX_FEATURES["suggested_tiles"])
        out["suggested_tiles"] = {"geojson": geo, "total": total}
    return out


def write_viewer(
    out_dir: str | os.PathLike,
    result: MappingResult,
    *,
    title: str = "damagemap viewer",
    suggestions: str | os.PathLike | None = None,
    basemap: str | None = None,
    max_px: int = 1200,
) -> Path:
    """Write ``out_dir/viewer.html`` (see module docstring) and return its path."""
    summary = json.loads(Path(result.summary).read_text())
    legend = legend_of(summary)
    js, css = leaflet_assets()
    data = {
        "rasters": raster_layers(result, legend, max_px),
        "vectors": vector_layers(result, suggestions),
        "classes": [*legend.to_json(), {"value": -1, "name": "building not assessed", "color": "#969696"}],
        "basemap": basemap,
        "provenance": summary.get("provenance", {}),
    }
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    page = (
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<style>{css}</style><style>{_STYLE}</style></head><body>"
        f"<div id='map'></div><div id='dm-title'>{escape(title)}</div>"
        "<div id='dm-status' data-loaded=''></div>"
        f"<script>{js}</script><script>const DM={payload};</script><script>{_SCRIPT}</script></body></html>\n"
    )
    return write_text_atomic(Path(out_dir) / VIEWER_NAME, page)


_STYLE = """
html,body{height:100%;margin:0;font-family:system-ui,sans-serif}#map{position:absolute;inset:0;background:#dde3e8}
#dm-title{position:absolute;top:8px;left:54px;z-index:1000;background:#fff;padding:4px 10px;border-radius:4px;
font-weight:600;box-shadow:0 1px 4px rgba(0,0,0,.3)}
.dm-legend{background:#fff;padding:6px 10px;border-radius:4px;font-size:12px;line-height:18px;
box-shadow:0 1px 4px rgba(0,0,0,.3);max-width:260px}
.dm-legend i{display:inline-block;width:14px;height:14px;margin-right:6px;vertical-align:middle;border:1px solid #555}
.dm-legend .bar{height:10px;border:1px solid #555;margin:2px 0}.dm-legend .note{color:#666}
.leaflet-popup-content table{border-collapse:collapse;font-size:12px}
.leaflet-popup-content td{border-bottom:1px solid #eee;padding:1px 6px}
"""

_SCRIPT = r"""
(function(){
const map=L.map('map',{zoomSnap:0.25,preferCanvas:false});
map.attributionControl.setPrefix(false);
const overlays={},loaded=[],status=document.getElementById('dm-status');
function done(name){loaded.push(name);status.dataset.loaded=loaded.join('|');}
const klass={};DM.classes.forEach(c=>klass[c.value]=c);
function colorOf(v){return (klass[v]||{color:'#969696'}).color;}
function nameOf(v){return (klass[v]||{name:'class '+v}).name;}
let bounds=null;
if(DM.basemap){L.tileLayer(DM.basemap,{maxZoom:22,attribution:'base map: '+DM.basemap}).addTo(map);}
DM.rasters.forEach((r,i)=>{
  const layer=L.imageOverlay(r.url,r.bounds,{opacity:1});
  overlays[r.name]=layer;
  if(i===0){layer.addTo(map);}
  const probe=new Image();probe.onload=()=>done(r.name);probe.onerror=()=>done(r.name+' FAILED');probe.src=r.url;
  bounds=bounds?bounds.extend(r.bounds):L.latLngBounds(r.bounds);
});
function popup(p){
  return '<table>'+Object.entries(p).map(([k,v])=>'<tr><td>'+k+'</td><td>'+(v===null?'–':
    (k==='damage_class'?v+' ('+nameOf(v)+')':v))+'</td></tr>').join('')+'</table>';
}
function zoneColor(s){
  if(s===null||s===undefined)return '#ffffff';
  return s>=0.3?'#a50f15':s>=0.15?'#de2d26':s>=0.05?'#fb6a4a':s>=0.01?'#fcae91':'#fee5d9';
}
const styles={
  damaged_regions:f=>({color:colorOf(f.properties.damage_class),weight:0.8,fillOpacity:0.25}),
  buildings:f=>({color:'#222',weight:1,fillColor:colorOf(f.properties.damage_class),fillOpacity:0.85}),
  zones:f=>({color:'#555',weight:0.6,fillColor:zoneColor(f.properties.damaged_pixel_share),fillOpacity:0.55}),
  suggested_tiles:f=>({color:'#00bcd4',weight:2,dashArray:'5,4',fill:false}),
};
const labels={damaged_regions:'Damaged regions',buildings:'Buildings by damage',zones:'Zones (damaged share)',
  suggested_tiles:'Tiles to label next'};
const order=['zones','damaged_regions','buildings','suggested_tiles'];
const notes=[];
order.forEach(name=>{
  const v=DM.vectors[name];if(!v)return;
  const layer=L.geoJSON(v.geojson,{style:styles[name],
    onEachFeature:(f,l)=>l.bindPopup(popup(f.properties),{maxHeight:300})});
  const label=labels[name];overlays[label]=layer;
  if(name!=='zones'){layer.addTo(map);}
  if(v.total>v.geojson.features.length){notes.push(label+': '+v.geojson.features.length+' of '+v.total+' shown');}
  done(label);
});
L.control.layers(null,overlays,{collapsed:false}).addTo(map);
L.control.scale({imperial:false}).addTo(map);
const legend=L.control({position:'bottomright'});
legend.onAdd=function(){
  const d=L.DomUtil.create('div','dm-legend');
  let h='<b>Damage class</b><br>'+DM.classes.map(c=>
    '<i style="background:'+c.color+'"></i>'+c.name).join('<br>');
  const bar=c=>'<div class="bar" style="background:linear-gradient(90deg,'+c+')"></div>';
  h+='<br><b>Damage probability</b>'+bar('#000004,#57106e,#bc3754,#f98e09,#fcffa4')+'0 → 1';
  h+='<br><b>Uncertainty</b>'+bar('#440154,#3b528b,#21918c,#5ec962,#fde725')+'certain → uncertain';
  h+='<br><b>Zones</b>: share of pixels damaged<br><i style="background:#fee5d9"></i>&lt;1 %'
    +' <i style="background:#fb6a4a"></i>5–15 % <i style="background:#a50f15"></i>≥30 %';
  const p=DM.provenance||{};const m=p.model||{};
  h+='<div class="note">model '+(m.name||m.fingerprint||'?')+' · damagemap '+(p.damagemap_version||'?')
    +' · '+(p.created_utc||'')+'</div>';
  if(notes.length){h+='<div class="note">'+notes.join('<br>')+'</div>';}
  d.innerHTML=h;return d;
};
legend.addTo(map);
if(bounds){map.fitBounds(bounds);}
status.dataset.ready='1';
})();
"""
