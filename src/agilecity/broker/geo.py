"""GeoJSON geometries and NGSI-LD geo-queries (ETSI GS CIM 009 v1.8, clause 4.10).

Geometries are RFC 7946 GeoJSON in WGS 84 longitude/latitude degrees. Point, MultiPoint,
LineString, MultiLineString, Polygon and MultiPolygon are supported; GeometryCollection is
refused with a clear message (NGSI-LD geo-queries cannot express it and a Multi* geometry
covers the practical cases). Empty geometries are refused too. A third (altitude) value is
kept but ignored by the relations, which are the OGC Simple Features predicates of shapely
evaluated in the lon/lat plane (a straight edge is straight in degrees, as RFC 7946 says).

``near`` measures geodesic distance on a sphere of mean Earth radius 6 371 008.8 m: exactly
with the haversine formula when one side is a Point and the other a Point or MultiPoint;
otherwise both geometries are projected onto a spherical azimuthal-equidistant plane centred
on the query geometry's centroid and the planar shapely distance is used. That projection is
exact for distances from its centre and never shortens a distance between two vertices, and
long edges are densified first; the result is good to well under 1 % for distances under
~50 km (the usual range of a ``near`` query).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import numpy as np
import orjson
import shapely
from numpy.typing import NDArray

from agilecity.errors import BadRequestDataError

EARTH_RADIUS_M = 6_371_008.8
METRES_PER_DEGREE = EARTH_RADIUS_M * math.pi / 180.0  # ~111 195 m along a great circle
GEOMETRY_TYPES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon")
GEORELS = ("near", "within", "contains", "intersects", "overlaps", "disjoint", "equals")

_DENSIFY_DEGREES = 0.01  # longest edge kept as is: GeoJSON edges are straight in lon/lat
_BOX_RELATIVE_MARGIN = 0.01  # search_box slack over the exact spherical bound
_BOX_ABSOLUTE_MARGIN = 1e-3  # degrees (~110 m), covers densified-edge curvature
_POLAR_LATITUDE = 89.0  # beyond this a near box spans every longitude
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NAME_BAD = re.compile(r"[\s\x00-\x1f\x7f\"'<>;=]")

Position = list[int | float]
DEFAULT_MAX_GEOMETRY_POINTS = 10_000  # the max_geometry_points setting's default
_UNLIMITED = 2**62  # re-reading a geometry that was checked on the way in


_bad = BadRequestDataError


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- validation -------------------------------------------------------------------------


class _Budget:
    """Counts positions so that an oversized geometry is refused early."""

    def __init__(self, limit: int) -> None:
        self.left = self.limit = limit

    def take(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise _bad(
                f"geometry has more than {self.limit} positions (the most accepted per geometry)"
            )


def _number(value: object, where: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(f"{where} must be a number, not {_show(value)}")
    if isinstance(value, float) and not math.isfinite(value) or not -(2**63) <= value < 2**63:
        raise _bad(f"{where} must be a finite number")
    return value


def _position(value: object, where: str, budget: _Budget) -> Position:
    if not isinstance(value, list | tuple):
        raise _bad(f"{where} must be a position (an array of 2 or 3 numbers)")
    if len(value) not in (2, 3):
        raise _bad(f"{where} must have 2 or 3 numbers (longitude, latitude[, altitude])")
    budget.take()
    pos = [_number(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not -180 <= pos[0] <= 180:
        raise _bad(f"{where}: longitude {pos[0]} is outside [-180, 180]")
    if not -90 <= pos[1] <= 90:
        raise _bad(f"{where}: latitude {pos[1]} is outside [-90, 90]")
    return pos


def _array(value: object, where: str, what: str, minimum: int = 1) -> list[Any] | tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise _bad(f"{where} must be an array of {what}")
    if len(value) < minimum:
        raise _bad(f"{where} must have at least {minimum} {what}")
    return value


def _positions(value: object, where: str, budget: _Budget, minimum: int) -> list[Position]:
    items = _array(value, where, "positions", minimum)
    return [_position(p, f"{where}[{i}]", budget) for i, p in enumerate(items)]


def _polygon(value: object, where: str, budget: _Budget) -> list[list[Position]]:
    rings = []
    for i, ring in enumerate(_array(value, where, "linear rings")):
        positions = _positions(ring, f"{where}[{i}]", budget, 4)
        if positions[0] != positions[-1]:
            raise _bad(f"{where}[{i}]: linear ring is not closed (first and last positions differ)")
        rings.append(positions)
    return rings


def validate_geometry(
    obj: object, *, max_coordinates: int = DEFAULT_MAX_GEOMETRY_POINTS
) -> dict[str, Any]:
    """Check a GeoJSON geometry and return it normalised to {"type", "coordinates"}.

    Positions are counted as they are read, so an oversized geometry is refused before any
    geometric work."""
    if not isinstance(obj, Mapping):
        raise _bad("a GeoJSON geometry must be a JSON object")
    kind = obj.get("type")
    if kind == "GeometryCollection":
        raise _bad(
            "GeometryCollection is not supported; use a MultiPoint, MultiLineString or "
            "MultiPolygon geometry"
        )
    if not isinstance(kind, str) or kind not in GEOMETRY_TYPES:
        raise _bad(f"geometry type must be one of {', '.join(GEOMETRY_TYPES)}, not {_show(kind)}")
    if "coordinates" not in obj:
        raise _bad(f"{kind} geometry has no 'coordinates' member")
    raw = obj["coordinates"]
    budget = _Budget(max_coordinates)
    coords: Any
    if kind == "Point":
        coords = _position(raw, "coordinates", budget)
    elif kind == "MultiPoint":
        coords = _positions(raw, "coordinates", budget, 1)
    elif kind == "LineString":
        coords = _positions(raw, "coordinates", budget, 2)
    elif kind == "MultiLineString":
        coords = [
            _positions(line, f"coordinates[{i}]", budget, 2)
            for i, line in enumerate(_array(raw, "coordinates", "line strings"))
        ]
    elif kind == "Polygon":
        coords = _polygon(raw, "coordinates", budget)
    else:
        coords = [
            _polygon(poly, f"coordinates[{i}]", budget)
            for i, poly in enumerate(_array(raw, "coordinates", "polygons"))
        ]
    geometry = {"type": kind, "coordinates": coords}
    if kind == "Point":
        return geometry  # a position that passed the checks above is a valid point
    try:
        shape = _shape(geometry)
        reason = None if shapely.is_valid(shape) else shapely.is_valid_reason(shape)
    except (shapely.errors.ShapelyError, ValueError) as exc:
        reason = type(exc).__name__
    if reason is not None:
        raise _bad(f"invalid {kind}: {reason}")
    return geometry


def _xy(positions: Any) -> list[tuple[float, float]]:
    return [(float(p[0]), float(p[1])) for p in positions]


def _shape(geometry: Mapping[str, Any]) -> Any:
    """The 2D shapely geometry of a (structurally valid) GeoJSON geometry dict."""
    kind, coords = geometry["type"], geometry["coordinates"]
    if kind == "Point":
        return shapely.Point(float(coords[0]), float(coords[1]))
    if kind == "MultiPoint":
        return shapely.MultiPoint(_xy(coords))
    if kind == "LineString":
        return shapely.LineString(_xy(coords))
    if kind == "MultiLineString":
        return shapely.MultiLineString([_xy(line) for line in coords])
    if kind == "Polygon":
        return shapely.Polygon(_xy(coords[0]), [_xy(r) for r in coords[1:]])
    if kind == "MultiPolygon":
        return shapely.MultiPolygon(
            [shapely.Polygon(_xy(p[0]), [_xy(r) for r in p[1:]]) for p in coords]
        )
    raise ValueError(f"unsupported geometry type {kind!r}")


def bounding_box(geometry: dict[str, Any]) -> tuple[float, float, float, float]:
    """(min_lon, min_lat, max_lon, max_lat) of a validated geometry."""
    if geometry["type"] == "Point":
        x, y = float(geometry["coordinates"][0]), float(geometry["coordinates"][1])
        return (x, y, x, y)
    xmin, ymin, xmax, ymax = shapely.bounds(_shape(geometry)).tolist()
    return (float(xmin), float(ymin), float(xmax), float(ymax))


# --- distances --------------------------------------------------------------------------


def _haversine(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def _haversine_many(lon: float, lat: float, xy: NDArray[np.float64]) -> float:
    p1, p2 = math.radians(lat), np.radians(xy[:, 1])
    h = (
        np.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * np.cos(p2) * np.sin(np.radians(xy[:, 0] - lon) / 2) ** 2
    )
    return float(2 * EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, np.sqrt(h.min()))))


class _Projection:
    """Spherical azimuthal-equidistant projection (metres) centred on (lon0, lat0)."""

    def __init__(self, lon0: float, lat0: float) -> None:
        self.lon0, self.lat0 = math.radians(lon0), math.radians(lat0)
        self.sin0, self.cos0 = math.sin(self.lat0), math.cos(self.lat0)

    def __call__(self, xy: NDArray[np.float64]) -> NDArray[np.float64]:
        lam = np.radians(xy[:, 0]) - self.lon0
        phi = np.radians(xy[:, 1])
        cos_phi = np.cos(phi)
        half = np.sin(lam / 2) ** 2
        east = cos_phi * np.sin(lam)
        north = np.sin(phi - self.lat0) + 2 * self.sin0 * cos_phi * half
        hav = np.sin((phi - self.lat0) / 2) ** 2 + self.cos0 * cos_phi * half
        arc = EARTH_RADIUS_M * 2 * np.arcsin(np.sqrt(np.clip(hav, 0.0, 1.0)))
        norm = np.hypot(east, north)
        safe = np.where(norm > 0, norm, 1.0)
        x = np.where(norm > 0, east * arc / safe, arc)  # the antipode goes to (pi R, 0)
        y = np.where(norm > 0, north * arc / safe, 0.0)
        return np.column_stack((x, y))

    def project(self, shape: Any) -> Any:
        """The shape in the plane, its long edges densified first."""
        xmin, ymin, xmax, ymax = shapely.bounds(shape).tolist()
        if max(xmax - xmin, ymax - ymin) > _DENSIFY_DEGREES / 2:  # an edge may be too long
            shape = shapely.segmentize(shape, _DENSIFY_DEGREES)
        return shapely.transform(shape, self)


def _point(shape: Any) -> tuple[float, float]:
    return (float(shapely.get_x(shape)), float(shapely.get_y(shape)))


class _Near:
    """A reference geometry ready for repeated ``near`` distance measurements."""

    def __init__(self, shape: Any) -> None:
        kind = shapely.get_type_id(shape)
        self.point = _point(shape) if kind == 0 else None
        self.points: NDArray[np.float64] | None = None
        if kind in (0, 4):
            self.points = shapely.get_coordinates(shape)
        self.projection = _Projection(*_point(shapely.centroid(shape)))
        self.plane = self.projection.project(shape)
        shapely.prepare(self.plane)

    def distance(self, stored: Any) -> float:
        """Metres from ``stored`` (a 2D shapely geometry in degrees) to the reference."""
        kind = shapely.get_type_id(stored)
        if kind == 0 and self.point is not None:
            return _haversine(*self.point, *_point(stored))
        if kind == 4 and self.point is not None:
            return _haversine_many(*self.point, shapely.get_coordinates(stored))
        if kind == 0 and self.points is not None:
            return _haversine_many(*_point(stored), self.points)
        return float(shapely.distance(self.plane, self.projection.project(stored)))


def distance_m(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Geodesic distance in metres between two valid geometries (``b`` is the reference)."""
    return _Near(_shape(b)).distance(_shape(a))


# --- queries ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GeoQuery:
    """An NGSI-LD geo-query; ``geoproperty`` is the client's (unexpanded) attribute name."""

    georel: str
    geometry: dict[str, Any]
    max_distance: float | None = None
    min_distance: float | None = None
    geoproperty: str = "location"

    @cached_property
    def _prepared(self) -> _Prepared:
        return _Prepared(self)


class _Prepared:
    """The shapely side of a GeoQuery, computed once per query."""

    def __init__(self, query: GeoQuery) -> None:
        self.shape = _shape(query.geometry)
        shapely.prepare(self.shape)
        self.near = _Near(self.shape) if query.georel == "near" else None


def _distance_value(text: str, name: str) -> float:
    if not _NUMBER.fullmatch(text):
        raise _bad(f"georel {name} must be a non-negative number, not {_show(text)}")
    value = float(text)
    if not math.isfinite(value):
        raise _bad(f"georel {name} is too large")
    return value


def _parse_georel(georel: str) -> tuple[str, float | None, float | None]:
    relation, *modifiers = georel.split(";")
    if relation not in GEORELS:
        raise _bad(f"georel must start with one of {', '.join(GEORELS)}, not {_show(relation)}")
    if relation != "near":
        if modifiers:
            raise _bad(f"georel {relation} takes no modifiers")
        return relation, None, None
    found: dict[str, float] = {}
    for modifier in modifiers:
        name, sep, value = modifier.partition("==")
        if not sep or name not in ("maxDistance", "minDistance"):
            raise _bad(
                f"georel near modifier must be maxDistance==<m> or minDistance==<m>, "
                f"not {_show(modifier)}"
            )
        if name in found:
            raise _bad(f"georel near gives {name} more than once")
        found[name] = _distance_value(value, name)
    if not found:
        raise _bad("georel near needs maxDistance==<metres> and/or minDistance==<metres>")
    low, high = found.get("minDistance"), found.get("maxDistance")
    if low is not None and high is not None and low > high:
        raise _bad("georel near: minDistance must not exceed maxDistance")
    return relation, high, low


def _check_geoproperty(geoproperty: object) -> str:
    if not isinstance(geoproperty, str) or not geoproperty or _NAME_BAD.search(geoproperty):
        raise _bad(f"geoproperty must be an attribute name, not {_show(geoproperty)}")
    return geoproperty


def parse_geo_query(
    georel: str | None,
    geometry: str | None,
    coordinates: str | object | None,
    geoproperty: str | None,
    *,
    max_points: int = DEFAULT_MAX_GEOMETRY_POINTS,
) -> GeoQuery | None:
    """Parse the georel/geometry/coordinates/geoproperty parameters (None if no geo-query)."""
    given = {"georel": georel, "geometry": geometry, "coordinates": coordinates}
    missing = [name for name, value in given.items() if value is None]
    if len(missing) == 3:
        return None
    if missing:
        raise _bad(
            f"a geo-query needs georel, geometry and coordinates; missing: {', '.join(missing)}"
        )
    if not isinstance(georel, str):
        raise _bad("georel must be text")
    relation, high, low = _parse_georel(georel)
    if not isinstance(geometry, str) or geometry not in GEOMETRY_TYPES:
        raise _bad(f"geometry must be one of {', '.join(GEOMETRY_TYPES)}, not {_show(geometry)}")
    if isinstance(coordinates, str | bytes):
        try:
            coords = orjson.loads(coordinates)
        except orjson.JSONDecodeError:
            raise _bad("coordinates must be a JSON array, such as [8.68,49.39]") from None
    else:
        coords = coordinates
    if not isinstance(coords, list | tuple):
        raise _bad("coordinates must be a JSON array, such as [8.68,49.39]")
    try:
        shape = validate_geometry(
            {"type": geometry, "coordinates": coords}, max_coordinates=max_points
        )
    except BadRequestDataError as exc:
        raise _bad(f"geo-query geometry: {exc.detail}") from None
    prop = "location" if geoproperty is None else _check_geoproperty(geoproperty)
    return GeoQuery(relation, shape, high, low, prop)


def query_to_json(query: GeoQuery) -> str:
    """The query as compact JSON text (the argument of matches_json)."""
    keys = ("georel", "geometry", "maxDistance", "minDistance", "geoproperty")
    q = query
    values = (q.georel, q.geometry, q.max_distance, q.min_distance, q.geoproperty)
    return orjson.dumps(dict(zip(keys, values, strict=True))).decode()


def _optional_distance(value: object, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(f"{name} must be a number")
    if not math.isfinite(value) or value < 0:
        raise _bad(f"{name} must be a finite non-negative number")
    return float(value)


def query_from_json(text: str | bytes) -> GeoQuery:
    """Rebuild a GeoQuery from query_to_json output (checking it again)."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise _bad("geo-query JSON is not valid JSON") from None
    if not isinstance(data, dict) or data.get("georel") not in GEORELS:
        raise _bad("geo-query JSON must be an object with a known georel")
    high = _optional_distance(data.get("maxDistance"), "maxDistance")
    low = _optional_distance(data.get("minDistance"), "minDistance")
    if data["georel"] == "near" and high is None and low is None:
        raise _bad("georel near needs maxDistance and/or minDistance")
    if data["georel"] != "near" and (high is not None or low is not None):
        raise _bad("distances are only allowed with georel near")
    geometry = validate_geometry(data.get("geometry"), max_coordinates=_UNLIMITED)
    prop = _check_geoproperty(data.get("geoproperty", "location"))
    return GeoQuery(data["georel"], geometry, high, low, prop)


# --- prefilter and predicate ------------------------------------------------------------


def search_box(query: GeoQuery) -> tuple[float, float, float, float] | None:
    """A lon/lat box that every matching stored geometry's bounding box intersects, or None."""
    # within/contains/intersects/overlaps/equals: a match shares at least one point with the
    # query geometry (within and equals even lie inside its box), so the query's box is sound.
    # near with maxDistance: the query box grown by the distance (spherical bound plus a
    # margin); it spans every longitude when it would reach a pole or cross the antimeridian.
    # disjoint and near with only minDistance admit matches anywhere: None.
    xmin, ymin, xmax, ymax = bounding_box(query.geometry)
    if query.georel == "disjoint":
        return None
    if query.georel != "near":
        return (xmin, ymin, xmax, ymax)
    if query.max_distance is None:
        return None
    grow = query.max_distance / METRES_PER_DEGREE * (1 + _BOX_RELATIVE_MARGIN)
    grow += _BOX_ABSOLUTE_MARGIN
    south, north = ymin - grow, ymax + grow
    poleward = max(abs(south), abs(north))
    if poleward >= _POLAR_LATITUDE:
        return (-180.0, max(south, -90.0), 180.0, min(north, 90.0))
    # Along a path of length d the longitude changes by at most d / cos(most poleward lat).
    widen = grow / math.cos(math.radians(poleward))
    west, east = xmin - widen, xmax + widen
    if west < -180.0 or east > 180.0:
        return (-180.0, south, 180.0, north)
    return (west, south, east, north)


def _distance_ok(distance: float, query: GeoQuery) -> bool:
    if query.max_distance is not None and not distance <= query.max_distance:
        return False
    return query.min_distance is None or distance >= query.min_distance


# Called as (query shape, stored shape): "stored within query" is "query contains stored".
_PREDICATES: dict[str, Callable[[Any, Any], Any]] = {
    "within": shapely.contains,
    "contains": shapely.within,
    "intersects": shapely.intersects,
    "overlaps": shapely.overlaps,
    "disjoint": shapely.disjoint,
    "equals": shapely.equals,
}


_UNUSABLE = (
    shapely.errors.ShapelyError,
    ArithmeticError,
    AttributeError,
    LookupError,
    TypeError,
    ValueError,
)


def matches(stored: dict[str, Any], query: GeoQuery) -> bool:
    """Whether a stored GeoJSON geometry satisfies the geo-query (False if unreadable)."""
    try:
        prepared = query._prepared
        near = prepared.near
        if near is None:
            return bool(_PREDICATES[query.georel](prepared.shape, _shape(stored)))
        if near.point is not None and stored.get("type") == "Point":
            lon, lat = stored["coordinates"][:2]
            return _distance_ok(_haversine(*near.point, float(lon), float(lat)), query)
        return _distance_ok(near.distance(_shape(stored)), query)
    except _UNUSABLE:  # a stored value that is not a usable geometry matches nothing
        return False


@lru_cache(maxsize=256)
def _cached_query(query_json: str) -> GeoQuery | None:
    try:
        query = query_from_json(query_json)
    except BadRequestDataError:
        return None
    _ = query._prepared
    return query


def matches_json(stored_json: str | bytes, query_json: str) -> bool:
    """matches() on JSON text, for a SQLite function: never raises, False on bad input."""
    try:
        query = _cached_query(query_json)
        if query is None:
            return False
        stored = orjson.loads(stored_json)
        if not isinstance(stored, dict):
            return False
        return matches(stored, query)
    except Exception:  # a SQL function must never fail the whole statement
        return False
