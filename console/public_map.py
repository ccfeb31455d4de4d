"""The public page's station map: an SVG drawn from the registry's coordinates.

Web Mercator pixel coordinates at one zoom level, the projection slippy-map tiles use, so the
map needs no tile server, and when a tile URL template is set (``Settings.public_map_tile_url``)
the tiles drawn under the markers line up with them. Colours are the decisions' RGB codes given
as SVG presentation attributes (``fill``), which the console's CSP allows (it forbids only
``style``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from urllib.parse import urlsplit

TILE = 256
PAD = 40  # pixels around the outermost stations
NO_DATA = "#bbbbbb"


@dataclass(frozen=True)
class Marker:
    id: str
    label: str  # the number shown on the marker (AQI, WQI) or "–"
    title: str  # tooltip: station name and value
    lat: float
    lon: float
    fill: str  # "#RRGGBB"
    shape: str  # "circle" (air) | "square" (water)
    ink: str = "#000"  # the label's colour: white on the dark bands


def project(lat: float, lon: float, zoom: int) -> tuple[float, float]:
    """World pixel coordinates of a WGS84 point at ``zoom`` (Web Mercator)."""
    scale = TILE * 2**zoom
    x = (lon + 180.0) / 360.0 * scale
    s = math.sin(math.radians(lat))
    y = (0.5 - math.log((1 + s) / (1 - s)) / (4 * math.pi)) * scale
    return x, y


def tile_origin(template: str) -> str | None:
    """``scheme://host[:port]`` of a tile URL template (for the CSP), None if not http(s)."""
    parts = urlsplit(template)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def _tiles(template: str, zoom: int, x0: float, y0: float, x1: float, y1: float) -> list[str]:
    out = []
    n = 2**zoom
    for ty in range(int(y0 // TILE), int(y1 // TILE) + 1):
        for tx in range(int(x0 // TILE), int(x1 // TILE) + 1):
            if 0 <= tx < n and 0 <= ty < n:
                url = template.replace("{z}", str(zoom)).replace("{x}", str(tx))
                url = url.replace("{y}", str(ty))
                out.append(
                    f'<image href="{escape(url)}" x="{tx * TILE}" y="{ty * TILE}"'
                    f' width="{TILE}" height="{TILE}"/>'
                )
    return out


def station_map(markers: list[Marker], *, zoom: int, tile_url: str = "", title: str = "") -> str:
    """The SVG: a light background (or tiles), each station a marker linking to its card."""
    placed = [(m, *project(m.lat, m.lon, zoom)) for m in markers]
    if placed:
        xs, ys = [p[1] for p in placed], [p[2] for p in placed]
        x0, y0, x1, y1 = min(xs) - PAD, min(ys) - PAD, max(xs) + PAD, max(ys) + PAD
    else:
        x0, y0, x1, y1 = 0.0, 0.0, 200.0, 100.0
    w, h = x1 - x0, y1 - y0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="station-map" class="station-map"'
        f' viewBox="{x0:.1f} {y0:.1f} {w:.1f} {h:.1f}" role="img"'
        f' aria-label="{escape(title)}">',
        f'<rect class="map-bg" x="{x0:.1f}" y="{y0:.1f}" width="{w:.1f}" height="{h:.1f}"'
        ' fill="#eef3f6"/>',
    ]
    if tile_url and tile_origin(tile_url):
        parts += _tiles(tile_url, zoom, x0, y0, x1, y1)
    for m, x, y in placed:
        r = 10
        shape = (
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{m.fill}" stroke="#333"/>'
            if m.shape == "circle"
            else f'<rect x="{x - r:.1f}" y="{y - r:.1f}" width="{2 * r}" height="{2 * r}"'
            f' fill="{m.fill}" stroke="#333"/>'
        )
        parts.append(
            f'<a href="#station-{escape(m.id)}" class="marker" id="marker-{escape(m.id)}">'
            f"<title>{escape(m.title)}</title>{shape}"
            f'<text x="{x:.1f}" y="{y + 3:.1f}" text-anchor="middle" font-size="9"'
            f' fill="{m.ink}">'
            f"{escape(m.label)}</text></a>"
        )
    parts.append("</svg>")
    return "".join(parts)
