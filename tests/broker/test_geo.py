"""Tests of agilecity.broker.geo: GeoJSON validation, geo-query parsing, relations, near."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agilecity.broker import geo
from agilecity.broker.geo import (
    GeoQuery,
    bounding_box,
    distance_m,
    matches,
    matches_json,
    parse_geo_query,
    query_from_json,
    query_to_json,
    search_box,
    validate_geometry,
)
from agilecity.errors import BadRequestDataError

R = 6_371_008.8
SQUARE: list[list[list[float]]] = [[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]]
BOUNDED = settings(max_examples=300, deadline=None)


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


def polygon(*rings: list[list[float]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": list(rings)}


def box(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    return polygon([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]])


def bad(obj: object, fragment: str, **kwargs: Any) -> None:
    with pytest.raises(BadRequestDataError) as info:
        validate_geometry(obj, **kwargs)
    assert fragment in info.value.detail


def query(georel: str, geometry: dict[str, Any]) -> GeoQuery:
    parsed = parse_geo_query(
        georel, geometry["type"], orjson.dumps(geometry["coordinates"]).decode(), None
    )
    assert parsed is not None
    return parsed


# Independent spherical formulas (not the module's code) used as references.
def cosine_law_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    c = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
    return R * math.acos(max(-1.0, min(1.0, c)))


def vincenty_sphere_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    y = math.hypot(
        math.cos(p2) * math.sin(dl),
        math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl),
    )
    x = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
    return R * math.atan2(y, x)


def destination(lon: float, lat: float, bearing: float, metres: float) -> tuple[float, float]:
    p1, t, d = math.radians(lat), math.radians(bearing), metres / R
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(t))
    dl = math.atan2(
        math.sin(t) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    lon2 = lon + math.degrees(dl)
    if not -180 <= lon2 <= 180:
        lon2 = (lon2 + 540.0) % 360.0 - 180.0
    return lon2, math.degrees(p2)


def inside(lon: float, lat: float, b: tuple[float, float, float, float]) -> bool:
    return b[0] <= lon <= b[2] and b[1] <= lat <= b[3]


# --- validate_geometry ------------------------------------------------------------------


def test_valid_geometries_are_normalised() -> None:
    g = validate_geometry({"type": "Point", "coordinates": (8, 49.5, 120.0), "bbox": [1, 2]})
    assert g == {"type": "Point", "coordinates": [8, 49.5, 120.0]}
    assert isinstance(g["coordinates"], list) and isinstance(g["coordinates"][0], int)
    for obj in (
        {"type": "MultiPoint", "coordinates": [[0, 0], [1, 1]]},
        {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
        {"type": "MultiLineString", "coordinates": [[[0, 0], [1, 1]], [[2, 2], [3, 3]]]},
        polygon(SQUARE[0], [[1, 1], [2, 1], [2, 2], [1, 1]]),
        {
            "type": "MultiPolygon",
            "coordinates": [SQUARE, [[[20, 20], [21, 20], [21, 21], [20, 20]]]],
        },
        point(-180, -90),
        point(180, 90),
    ):
        assert validate_geometry(obj) == obj


@pytest.mark.parametrize(
    ("obj", "fragment"),
    [
        ([1, 2], "JSON object"),
        ({"coordinates": [1, 2]}, "geometry type must be one of"),
        ({"type": "Circle", "coordinates": [1, 2]}, "not 'Circle'"),
        ({"type": "point", "coordinates": [1, 2]}, "geometry type must be one of"),
        ({"type": "GeometryCollection", "geometries": []}, "GeometryCollection is not supported"),
        ({"type": "Point"}, "no 'coordinates'"),
        ({"type": "Point", "coordinates": "1,2"}, "must be a position"),
        ({"type": "Point", "coordinates": [1]}, "2 or 3 numbers"),
        ({"type": "Point", "coordinates": [1, 2, 3, 4]}, "2 or 3 numbers"),
        ({"type": "Point", "coordinates": ["1", 2]}, "coordinates[0] must be a number"),
        ({"type": "Point", "coordinates": [True, 2]}, "must be a number, not True"),
        ({"type": "Point", "coordinates": [1, False]}, "must be a number, not False"),
        ({"type": "Point", "coordinates": [1, None]}, "must be a number"),
        ({"type": "Point", "coordinates": [math.nan, 2]}, "finite"),
        ({"type": "Point", "coordinates": [1, math.inf]}, "finite"),
        ({"type": "Point", "coordinates": [1, 2, -math.inf]}, "finite"),
        ({"type": "Point", "coordinates": [1, 2, 10**400]}, "finite"),
        ({"type": "Point", "coordinates": [180.5, 0]}, "longitude 180.5 is outside [-180, 180]"),
        ({"type": "Point", "coordinates": [-181, 0]}, "longitude -181"),
        ({"type": "Point", "coordinates": [0, 90.01]}, "latitude 90.01 is outside [-90, 90]"),
        ({"type": "Point", "coordinates": [0, -91]}, "latitude -91"),
        ({"type": "MultiPoint", "coordinates": []}, "at least 1 positions"),
        ({"type": "MultiPoint", "coordinates": [1, 2]}, "coordinates[0] must be a position"),
        ({"type": "LineString", "coordinates": [[0, 0]]}, "at least 2 positions"),
        ({"type": "LineString", "coordinates": [[0, 0], [0, 0]]}, "invalid LineString: Too few"),
        ({"type": "MultiLineString", "coordinates": [[[0, 0]]]}, "coordinates[0] must have"),
        ({"type": "MultiLineString", "coordinates": []}, "at least 1 line strings"),
        ({"type": "Polygon", "coordinates": []}, "at least 1 linear rings"),
        (
            {"type": "Polygon", "coordinates": [1, 2]},
            "coordinates[0] must be an array of positions",
        ),
        (polygon([[0, 0], [1, 0], [0, 0]]), "at least 4 positions"),
        (polygon([[0, 0], [1, 0], [1, 1], [0, 1]]), "coordinates[0]: linear ring is not closed"),
        (polygon([[0, 0], [1, 0], [1, 1], [0, 0, 5]]), "not closed"),
        (polygon(SQUARE[0], [[20, 20], [21, 20], [21, 21]]), "coordinates[1] must have at least"),
        (
            {"type": "MultiPolygon", "coordinates": [[[0, 0], [1, 0]]]},
            "coordinates[0][0] must have at least 4",
        ),
        ({"type": "MultiPolygon", "coordinates": []}, "at least 1 polygons"),
        (polygon([[0, 0], [1, 0], [2, 0], [0, 0]]), "invalid Polygon"),
    ],
)
def test_validation_errors(obj: object, fragment: str) -> None:
    bad(obj, fragment)


def test_self_intersecting_polygon_names_the_reason() -> None:
    bowtie = polygon([[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]])
    bad(bowtie, "invalid Polygon: Self-intersection[0.5 0.5]")
    hole_outside = polygon(SQUARE[0], [[20, 20], [21, 20], [21, 21], [20, 20]])
    bad(hole_outside, "Hole lies outside shell")
    overlapping = {
        "type": "MultiPolygon",
        "coordinates": [SQUARE, [[[5, 5], [15, 5], [5, 15], [5, 5]]]],
    }
    bad(overlapping, "invalid MultiPolygon")


def test_too_many_positions() -> None:
    line = {"type": "LineString", "coordinates": [[0, 0], [1, 1], [2, 2], [3, 3]]}
    assert validate_geometry(line, max_coordinates=4) == line
    bad(line, "more than 3 positions", max_coordinates=3)
    bad(polygon(*SQUARE), "more than 4 positions", max_coordinates=4)
    huge = {"type": "MultiPoint", "coordinates": [[0, 0]] * 10_001}
    bad(huge, "more than 10000 positions")  # DEFAULT_MAX_GEOMETRY_POINTS


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda kids: st.lists(kids, max_size=5)
        | st.dictionaries(st.sampled_from(["type", "coordinates", "x"]), kids, max_size=3),
        max_leaves=30,
    ),
    st.sampled_from(geo.GEOMETRY_TYPES + ("GeometryCollection", "Nope")),
)
@BOUNDED
def test_validation_only_raises_bad_request_data(coordinates: object, kind: str) -> None:
    for obj in (coordinates, {"type": kind, "coordinates": coordinates}):
        try:
            validate_geometry(obj)
        except BadRequestDataError:
            pass


# --- parse_geo_query --------------------------------------------------------------------


def test_no_geo_query() -> None:
    assert parse_geo_query(None, None, None, None) is None
    assert parse_geo_query(None, None, None, "position") is None


@pytest.mark.parametrize(
    ("georel", "max_distance", "min_distance"),
    [
        ("near;maxDistance==500", 500.0, None),
        ("near;minDistance==10", None, 10.0),
        ("near;maxDistance==500;minDistance==10", 500.0, 10.0),
        ("near;minDistance==10;maxDistance==500", 500.0, 10.0),
        ("near;maxDistance==0.5", 0.5, None),
        ("near;maxDistance==1e3", 1000.0, None),
        ("near;maxDistance==0;minDistance==0", 0.0, 0.0),
    ],
)
def test_near_forms(georel: str, max_distance: float | None, min_distance: float | None) -> None:
    q = parse_geo_query(georel, "Point", "[8.68,49.39]", None)
    assert q == GeoQuery("near", point(8.68, 49.39), max_distance, min_distance, "location")


@pytest.mark.parametrize(
    "georel", ["within", "contains", "intersects", "overlaps", "disjoint", "equals"]
)
def test_other_georels(georel: str) -> None:
    q = parse_geo_query(georel, "Polygon", "[[[0,0],[1,0],[1,1],[0,0]]]", "position")
    assert q is not None
    assert (q.georel, q.max_distance, q.min_distance, q.geoproperty) == (
        georel,
        None,
        None,
        "position",
    )
    assert q.geometry == polygon([[0, 0], [1, 0], [1, 1], [0, 0]])


def test_coordinates_as_a_list_from_a_query_body() -> None:
    q = parse_geo_query("within", "Polygon", SQUARE, None)
    assert q is not None and q.geometry == polygon(*SQUARE)
    q = parse_geo_query("near;maxDistance==5", "Point", [8, 49], None)
    assert q is not None and q.geometry == point(8, 49)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("near;maxDistance==5", None, None), "missing: geometry, coordinates"),
        ((None, "Point", "[1,2]"), "missing: georel"),
        (("within", "Point", None), "missing: coordinates"),
        ((None, None, "[1,2]"), "missing: georel, geometry"),
        (("close", "Point", "[1,2]"), "georel must start with one of"),
        (("", "Point", "[1,2]"), "georel must start with one of"),
        (("near", "Point", "[1,2]"), "near needs maxDistance"),
        (("near;", "Point", "[1,2]"), "modifier must be"),
        (("near;maxDistance=5", "Point", "[1,2]"), "modifier must be"),
        (("near;distance==5", "Point", "[1,2]"), "modifier must be"),
        (("near;maxDistance==-1", "Point", "[1,2]"), "non-negative number, not '-1'"),
        (("near;maxDistance==abc", "Point", "[1,2]"), "non-negative number"),
        (("near;maxDistance==", "Point", "[1,2]"), "non-negative number"),
        (("near;maxDistance==nan", "Point", "[1,2]"), "non-negative number"),
        (("near;maxDistance==inf", "Point", "[1,2]"), "non-negative number"),
        (("near;maxDistance==1_000", "Point", "[1,2]"), "non-negative number"),
        (("near;maxDistance== 5", "Point", "[1,2]"), "non-negative number"),
        (("near;maxDistance==1e999", "Point", "[1,2]"), "too large"),
        (("near;maxDistance==5;maxDistance==6", "Point", "[1,2]"), "more than once"),
        (("near;maxDistance==5;minDistance==6", "Point", "[1,2]"), "must not exceed"),
        (("within;maxDistance==5", "Point", "[1,2]"), "within takes no modifiers"),
        (("within", "Circle", "[1,2]"), "geometry must be one of"),
        (("within", "GeometryCollection", "[1,2]"), "geometry must be one of"),
        (("within", "point", "[1,2]"), "geometry must be one of"),
        (("within", "Point", "[1,2"), "coordinates must be a JSON array"),
        (("within", "Point", "8.68,49.39"), "coordinates must be a JSON array"),
        (("within", "Point", '{"a":1}'), "coordinates must be a JSON array"),
        (("within", "Point", "[1e999,2]"), "coordinates must be a JSON array"),
        (("within", "Point", 42), "coordinates must be a JSON array"),
        (("within", "Point", "[[[0,0],[1,0],[1,1],[0,0]]]"), "geo-query geometry: coordinates"),
        (("within", "Polygon", "[8.68,49.39]"), "geo-query geometry: coordinates[0] must be"),
        (("within", "LineString", "[[1,2]]"), "at least 2 positions"),
        (("within", "Point", "[200,2]"), "longitude 200"),
        (("within", "Polygon", "[[[0,0],[1,1],[1,0],[0,1],[0,0]]]"), "Self-intersection"),
    ],
)
def test_parse_errors(args: tuple[Any, Any, Any], fragment: str) -> None:
    with pytest.raises(BadRequestDataError) as info:
        parse_geo_query(*args, None)
    assert fragment in info.value.detail


@pytest.mark.parametrize("prop", ["", "a b", 'x"', "a;b", 5])
def test_bad_geoproperty(prop: Any) -> None:
    with pytest.raises(BadRequestDataError, match="geoproperty"):
        parse_geo_query("within", "Point", "[1,2]", prop)


@given(st.text(max_size=30), st.text(max_size=12), st.text(max_size=40))
@BOUNDED
def test_parse_only_raises_bad_request_data(georel: str, geometry: str, coords: str) -> None:
    try:
        parse_geo_query(georel, geometry, coords, None)
    except BadRequestDataError:
        pass


# --- relations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("georel", "query_geometry", "stored", "expected"),
    [
        ("within", polygon(*SQUARE), point(5, 5), True),
        ("within", polygon(*SQUARE), point(15, 5), False),
        ("within", polygon(*SQUARE), point(0, 5), False),  # on the boundary: not within
        ("within", polygon(*SQUARE), box(1, 1, 2, 2), True),
        ("within", polygon(*SQUARE), box(5, 5, 15, 15), False),
        ("contains", point(5, 5), polygon(*SQUARE), True),
        ("contains", point(50, 5), polygon(*SQUARE), False),
        ("contains", polygon(*SQUARE), point(5, 5), False),
        ("contains", box(1, 1, 2, 2), polygon(*SQUARE), True),
        (
            "intersects",
            polygon(*SQUARE),
            {"type": "LineString", "coordinates": [[-5, 5], [5, 5]]},
            True,
        ),
        (
            "intersects",
            polygon(*SQUARE),
            {"type": "LineString", "coordinates": [[-5, 5], [-1, 5]]},
            False,
        ),
        ("intersects", polygon(*SQUARE), box(10, 10, 11, 11), True),  # touching corners
        (
            "intersects",
            polygon(*SQUARE),
            {"type": "MultiPoint", "coordinates": [[50, 5], [5, 5]]},
            True,
        ),
        ("overlaps", polygon(*SQUARE), box(5, 5, 15, 15), True),
        ("overlaps", polygon(*SQUARE), box(1, 1, 2, 2), False),  # contained, not overlapping
        ("overlaps", polygon(*SQUARE), box(20, 20, 21, 21), False),
        ("disjoint", polygon(*SQUARE), point(50, 50), True),
        ("disjoint", polygon(*SQUARE), point(5, 5), False),
        ("disjoint", polygon(*SQUARE), point(10, 5), False),
        ("equals", polygon(*SQUARE), polygon([[10, 10], [10, 0], [0, 0], [0, 10], [10, 10]]), True),
        ("equals", polygon(*SQUARE), box(0, 0, 10, 11), False),
        ("equals", point(1, 2), {"type": "Point", "coordinates": [1.0, 2.0, 300]}, True),
        ("equals", point(1, 2), point(1, 2.000001), False),
    ],
)
def test_relations(
    georel: str, query_geometry: dict[str, Any], stored: dict[str, Any], expected: bool
) -> None:
    assert matches(stored, query(georel, query_geometry)) is expected


def test_near_relations() -> None:
    centre = point(8.68, 49.39)
    north_400 = point(8.68, 49.39 + 400 / 111_195)
    assert matches(north_400, query("near;maxDistance==500", centre))
    assert not matches(north_400, query("near;maxDistance==300", centre))
    assert matches(north_400, query("near;minDistance==300", centre))
    assert not matches(north_400, query("near;minDistance==500", centre))
    assert matches(north_400, query("near;maxDistance==500;minDistance==300", centre))
    assert not matches(north_400, query("near;maxDistance==900;minDistance==450", centre))
    street = {
        "type": "LineString",
        "coordinates": [[8.6, 49.39 + 400 / 111_195], [8.7, 49.39 + 400 / 111_195]],
    }
    assert matches(street, query("near;maxDistance==500", centre))
    assert matches(centre, query("near;maxDistance==0", centre))


def test_matches_tolerates_unusable_stored_values() -> None:
    q = query("within", polygon(*SQUARE))
    near = query("near;maxDistance==10", point(0, 0))
    for stored in ({}, {"type": "Point"}, {"type": "Circle", "coordinates": [1]}, [1, 2]):
        assert matches(stored, q) is False  # type: ignore[arg-type]
        assert matches(stored, near) is False  # type: ignore[arg-type]
    assert matches({"type": "Point", "coordinates": ["x", 1]}, near) is False


def test_query_geometry_is_prepared_once() -> None:
    q = query("within", polygon(*SQUARE))
    assert q._prepared is q._prepared
    assert matches(point(1, 1), q) and matches(point(2, 2), q)


# --- distances --------------------------------------------------------------------------


def test_paris_london() -> None:
    # Paris (2.3522 E, 48.8566 N) to London (0.1278 W, 51.5074 N): the great-circle distance
    # usually quoted is about 343.5 km; the haversine formula of
    # https://www.movable-type.co.uk/scripts/latlong.html (R = 6371 km) gives 343.56 km.
    # Cross-checked here with two independent formulas (law of cosines, spherical Vincenty).
    d = distance_m(point(2.3522, 48.8566), point(-0.1278, 51.5074))
    assert d == pytest.approx(343_500, abs=500)
    assert d == pytest.approx(cosine_law_m(2.3522, 48.8566, -0.1278, 51.5074), abs=1)
    assert d == pytest.approx(vincenty_sphere_m(2.3522, 48.8566, -0.1278, 51.5074), abs=0.01)
    assert distance_m(point(-0.1278, 51.5074), point(2.3522, 48.8566)) == pytest.approx(d)


def test_short_distance_along_a_meridian() -> None:
    a, b = point(8.68, 49.39), point(8.68, 49.39 + 500 / 111_195)
    assert distance_m(a, b) == pytest.approx(500, abs=0.5)
    assert distance_m(a, a) == 0.0


def test_distance_across_the_antimeridian() -> None:
    d = distance_m(point(179.999, 0), point(-179.999, 0))
    assert d == pytest.approx(0.002 * math.pi / 180 * R, rel=1e-6)
    line = {"type": "LineString", "coordinates": [[-179.999, -1], [-179.999, 1]]}
    assert distance_m(point(179.999, 0), line) == pytest.approx(d, rel=1e-3)


def test_point_to_line_and_polygon() -> None:
    equator = {"type": "LineString", "coordinates": [[-1, 0], [1, 0]]}
    expected = 0.01 * math.pi / 180 * R  # 1111.95 m due north of the line
    assert distance_m(point(0, 0.01), equator) == pytest.approx(expected, rel=1e-6)
    assert distance_m(equator, point(0, 0.01)) == pytest.approx(expected, rel=1e-6)
    block = box(0, 45, 0.01, 45.01)
    assert distance_m(point(0.005, 45.02), block) == pytest.approx(expected, rel=5e-3)
    assert distance_m(point(0.005, 45.005), block) == 0.0
    assert distance_m(box(0.02, 45, 0.03, 45.01), block) == pytest.approx(
        cosine_law_m(0.01, 45.005, 0.02, 45.005), rel=5e-3
    )
    multi = {"type": "MultiPoint", "coordinates": [[10, 10], [0, 0.01]]}
    assert distance_m(multi, point(0, 0)) == pytest.approx(expected, rel=1e-9)
    assert distance_m(point(0, 0), multi) == pytest.approx(expected, rel=1e-9)


@given(
    st.floats(-170, 170),
    st.floats(-75, 75),
    st.floats(0, 360),
    st.floats(0.05, 0.4),
    st.floats(100, 50_000),
)
@BOUNDED
def test_near_line_approximation_under_one_percent(
    lon: float, lat: float, heading: float, length: float, metres: float
) -> None:
    # A line of up to 0.4 degrees and a point up to 50 km away: compare with the minimum
    # haversine distance over a dense sampling of the (straight in lon/lat) line.
    end = (
        lon + length * math.sin(math.radians(heading)),
        lat + length * math.cos(math.radians(heading)),
    )
    line = {"type": "LineString", "coordinates": [[lon, lat], list(end)]}
    mid = ((lon + end[0]) / 2, (lat + end[1]) / 2)
    target = destination(mid[0], mid[1], heading + 90, metres)
    samples = [
        (lon + (end[0] - lon) * i / 4000, lat + (end[1] - lat) * i / 4000) for i in range(4001)
    ]
    reference = min(vincenty_sphere_m(*target, *s) for s in samples)
    assert distance_m(point(*target), line) == pytest.approx(reference, rel=0.01, abs=1.0)


# --- bounding_box and search_box --------------------------------------------------------


def test_bounding_box() -> None:
    assert bounding_box(point(1, 2)) == (1.0, 2.0, 1.0, 2.0)
    assert bounding_box(polygon(*SQUARE)) == (0.0, 0.0, 10.0, 10.0)
    line = {"type": "LineString", "coordinates": [[3, -4, 9], [-1, 5]]}
    assert bounding_box(line) == (-1.0, -4.0, 3.0, 5.0)


def test_search_box_per_relation() -> None:
    for georel in ("within", "contains", "intersects", "overlaps", "equals"):
        assert search_box(query(georel, polygon(*SQUARE))) == (0.0, 0.0, 10.0, 10.0)
    assert search_box(query("disjoint", polygon(*SQUARE))) is None
    assert search_box(query("near;minDistance==10", point(0, 0))) is None
    b = search_box(query("near;maxDistance==1000;minDistance==10", point(8, 49)))
    assert b is not None
    assert b[1] < 49 - 1000 / 111_195 and b[3] > 49 + 1000 / 111_195
    width = 1000 / 111_195 / math.cos(math.radians(49))
    assert b[0] < 8 - width and b[2] > 8 + width
    assert b[2] - b[0] < 3 * width  # still a useful prefilter


def test_search_box_near_poles_and_antimeridian() -> None:
    polar = search_box(query("near;maxDistance==50000", point(10, 89.8)))
    assert polar is not None and (polar[0], polar[2], polar[3]) == (-180.0, 180.0, 90.0)
    assert 89 < polar[1] < 89.8 - 50_000 / 111_195
    b = search_box(query("near;maxDistance==2000", point(179.99, 10)))
    assert b is not None and (b[0], b[2]) == (-180.0, 180.0)
    assert search_box(query("near;maxDistance==1e8", point(0, 0))) == (-180.0, -90.0, 180.0, 90.0)


@given(
    st.floats(-180, 180),
    st.floats(-80, 80),
    st.floats(0, 200_000),
    st.floats(0, 360),
    st.floats(0, 1.3),
)
@BOUNDED
def test_search_box_never_drops_a_near_point(
    lon: float, lat: float, metres: float, bearing: float, fraction: float
) -> None:
    q = query(f"near;maxDistance=={metres!r}", point(lon, lat))
    b = search_box(q)
    assert b is not None
    target = destination(lon, lat, bearing, metres * fraction)
    if matches(point(*target), q):
        assert inside(*target, b)
    if vincenty_sphere_m(lon, lat, *target) <= metres:
        assert inside(*target, b)
    if fraction < 0.999 and metres > 1:
        assert matches(point(*target), q)


@given(
    st.floats(-179, 179),
    st.floats(-79, 79),
    st.floats(0.0001, 0.5),
    st.floats(0, 100_000),
    st.floats(0, 360),
    st.floats(0, 1.3),
    st.integers(0, 3),
)
@BOUNDED
def test_search_box_never_drops_a_match_near_a_polygon(
    lon: float, lat: float, side: float, metres: float, bearing: float, fraction: float, corner: int
) -> None:
    area = box(lon, lat, lon + side, lat + side)
    q = query(f"near;maxDistance=={metres!r}", area)
    b = search_box(q)
    assert b is not None
    start = area["coordinates"][0][corner]
    target = destination(start[0], start[1], bearing, metres * fraction)
    if matches(point(*target), q):
        assert inside(*target, b)


@given(
    st.tuples(st.floats(-10, 10), st.floats(-10, 10)),
    st.floats(0.01, 5),
    st.tuples(st.floats(-15, 15), st.floats(-15, 15)),
    st.sampled_from(["within", "contains", "intersects", "overlaps", "equals"]),
)
@BOUNDED
def test_search_box_never_drops_a_topological_match(
    corner: tuple[float, float], side: float, other: tuple[float, float], georel: str
) -> None:
    q = query(georel, box(corner[0], corner[1], corner[0] + side, corner[1] + side))
    b = search_box(q)
    assert b is not None
    stored = box(other[0], other[1], other[0] + 3, other[1] + 3)
    if matches(stored, q):
        s = bounding_box(stored)
        assert s[0] <= b[2] and b[0] <= s[2] and s[1] <= b[3] and b[1] <= s[3]


# --- JSON forms -------------------------------------------------------------------------


def test_query_json_round_trip() -> None:
    for q in (
        query("near;maxDistance==500;minDistance==10", point(8.68, 49.39)),
        query("within", polygon(*SQUARE)),
        GeoQuery(
            "equals",
            point(
                1,
                2,
            ),
            geoproperty="position",
        ),
    ):
        text = query_to_json(q)
        assert isinstance(text, str)
        assert query_from_json(text) == q
        assert query_from_json(text.encode()) == q


@pytest.mark.parametrize(
    "text",
    [
        "",
        "nope",
        "[]",
        '{"georel":"close"}',
        '{"georel":"near","geometry":{"type":"Point","coordinates":[1,2]}}',
        '{"georel":"near","maxDistance":-1,"geometry":{"type":"Point","coordinates":[1,2]}}',
        '{"georel":"near","maxDistance":true,"geometry":{"type":"Point","coordinates":[1,2]}}',
        '{"georel":"within","maxDistance":5,"geometry":{"type":"Point","coordinates":[1,2]}}',
        '{"georel":"within","geometry":{"type":"Point","coordinates":[1,200]}}',
        '{"georel":"within","geometry":{"type":"Point","coordinates":[1,2]},"geoproperty":""}',
    ],
)
def test_query_from_json_errors(text: str) -> None:
    with pytest.raises(BadRequestDataError):
        query_from_json(text)


def test_matches_json() -> None:
    q = query_to_json(query("near;maxDistance==500", point(8.68, 49.39)))
    near_json = orjson.dumps(point(8.68, 49.392))
    assert matches_json(near_json, q) is True
    assert matches_json(near_json.decode(), q) is True
    assert matches_json(orjson.dumps(point(8.68, 49.4)), q) is False
    within = query_to_json(query("within", polygon(*SQUARE)))
    assert matches_json('{"type":"Point","coordinates":[5,5,100]}', within) is True
    assert matches_json('{"type":"Point","coordinates":[50,5]}', within) is False
    before = geo._cached_query.cache_info().hits
    for _ in range(5):
        matches_json('{"type":"Point","coordinates":[5,5]}', within)
    assert geo._cached_query.cache_info().hits >= before + 5


@pytest.mark.parametrize(
    "stored",
    [
        "",
        b"\xff\xfe",
        "nope",
        "null",
        "[1,2]",
        "{}",
        '{"type":"Point"}',
        '{"type":"Point","coordinates":[]}',
        '{"type":"Point","coordinates":["a","b"]}',
        '{"type":"Point","coordinates":[1e308,1e308]}',
        '{"type":"Polygon","coordinates":[[[0,0],[1,1],[1,0],[0,1],[0,0]]]}',
        '{"type":"Polygon","coordinates":[[[0,0],[1,1]]]}',
        '{"type":"LineString","coordinates":[[0,0]]}',
        '{"type":"GeometryCollection","geometries":[]}',
        '{"type":"Point","coordinates":[100000000000000000000000000000,1]}',
    ],
)
def test_matches_json_never_raises_on_garbage(stored: str | bytes) -> None:
    for georel in ("within", "contains", "intersects", "overlaps", "disjoint", "equals"):
        assert matches_json(stored, query_to_json(query(georel, polygon(*SQUARE)))) in (True, False)
    for text in ('{"georel":"near","minDistance":1}', "garbage", ""):
        assert matches_json('{"type":"Point","coordinates":[1,2]}', text) is False
    near = query_to_json(query("near;maxDistance==10", box(0, 0, 1, 1)))
    assert matches_json(stored, near) in (True, False)


@given(st.one_of(st.text(max_size=60), st.binary(max_size=60)), st.text(max_size=60))
@BOUNDED
def test_matches_json_never_raises(stored: str | bytes, query_json: str) -> None:
    assert matches_json(stored, query_json) in (True, False)
    assert matches_json(stored, query_to_json(query("within", polygon(*SQUARE)))) in (True, False)
