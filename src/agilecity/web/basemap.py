"""The offline basemap: a city's own GeoJSON (districts, streets, buildings, green spaces),
slimmed for the wire (few properties, 5 decimals ≈ 1 m) and served as one collection."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("agilecity.web")

# file stem -> properties kept (the map styles by layer and street kind, shows names)
LAYERS = {
    "districts": ("name",),
    "green_spaces": ("name",),
    "buildings": (),
    "streets": ("name", "kind"),
}
PRECISION = 5


def _round(coordinates: Any) -> Any:
    if isinstance(coordinates, int | float):
        return round(float(coordinates), PRECISION)
    return [_round(c) for c in coordinates]


def load_basemap(folder: str) -> dict[str, Any]:
    """The basemap collection from ``folder`` ("" or a missing folder: an empty map).

    Each feature carries ``layer`` (the file it came from, drawn in the order of LAYERS).
    Unreadable files are skipped with a warning, so a bad file never stops the platform.
    """
    features: list[dict[str, Any]] = []
    if folder:
        for stem, keep in LAYERS.items():
            path = Path(folder) / f"{stem}.geojson"
            if not path.is_file():
                continue
            try:
                collection = orjson.loads(path.read_bytes())
                for feature in collection.get("features", []):
                    geometry = feature["geometry"]
                    props = feature.get("properties") or {}
                    kept = {k: props[k] for k in keep if k in props}
                    features.append({
                        "type": "Feature",
                        "geometry": {"type": geometry["type"],
                                     "coordinates": _round(geometry["coordinates"])},
                        "properties": {"layer": stem, **kept},
                    })  # fmt: skip
            except (OSError, orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                log.warning("basemap: %s skipped (%s)", path, exc)
    return {"type": "FeatureCollection", "features": features}


def bounds_of(collection: dict[str, Any]) -> list[float] | None:
    """[west, south, east, north] of a collection, None when it is empty."""
    xs: list[float] = []
    ys: list[float] = []

    def walk(c: Any) -> None:
        if c and isinstance(c[0], int | float):
            xs.append(float(c[0]))
            ys.append(float(c[1]))
        else:
            for item in c:
                walk(item)

    for feature in collection["features"]:
        walk(feature["geometry"]["coordinates"])
    return [min(xs), min(ys), max(xs), max(ys)] if xs else None
