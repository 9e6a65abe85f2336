"""Façade levels per floor against ISO 9613-2 geometric divergence (each test names it).

ISO 9613-2 eq. (7): Adiv = 20·lg(d/d0) + 11 dB for a point source of sound power LW, so
Lp = LW − 20·lg d − 11. Integrated along a straight line of emission LW' per metre (incoherent
point sources) it gives at perpendicular distance p: Lp = LW' − 10·lg(10^1.1·p) +
10·lg(atan(t2/p) − atan(t1/p)), which for an infinite line is LW' − 10·lg(10^1.1·p/π)
= LW' − 10·lg(p) − 6.03 (≈ 10·lg(4p): 10^1.1 is ISO's rounding of 4π): 3.01 dB per doubling.
Receivers: 2 m in front of the façade, at 1.5 m + 3 m × floor.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from agilecity.services.noise import facades as f
from agilecity.services.noise import propagation as p

PROJECTION = p.LocalProjection(3.0, 50.0)
LINE_DB = 10 * math.log10(10**1.1 / math.pi)  # 6.028 dB: infinite line at 1 m


def lonlat(*xy: tuple[float, float]) -> list[tuple[float, float]]:
    """Metres around PROJECTION's centre as (lon, lat)."""
    return [(lon, lat) for lon, lat in PROJECTION.to_lonlat(np.array(xy)).tolist()]


def square(x0: float, side: float = 10.0, y0: float = 0.0) -> list[tuple[float, float]]:
    """A square footprint whose west façade is x0 metres east of the origin (closed ring)."""
    h = side / 2
    ring = [(x0, y0 - h), (x0 + side, y0 - h), (x0 + side, y0 + h), (x0, y0 + h), (x0, y0 - h)]
    return lonlat(*ring)


def road(x: float, half_length: float = 20_000.0, kind: str = "primary") -> p.Street:
    """A straight north-south road at x metres."""
    return p.Street(kind, lonlat((x, -half_length), (x, half_length)))


def test_segment_integral_equals_finely_spaced_iso_point_sources() -> None:
    """The exact line integral is the limit of ISO 9613-2 point sources along the segment:
    0.05 m spacing agrees within 0.005 dB, near (3 m) and far (300 m) from a 200 m segment."""
    street = p.Street("primary", lonlat((-100.0, 0.0), (100.0, 0.0)))
    receivers = np.array([[0.0, 3.0, 1.5], [150.0, 20.0, 4.0], [30.0, 300.0, 10.0]])
    points = p.point_sources([street], PROJECTION, spacing_m=0.05)
    by_points = p.levels_from_transfer(p.kind_transfer(points, receivers), points.kinds,
                                       {"primary": 80.0})  # fmt: skip
    segments = f.street_segments([street], PROJECTION)
    exact = p.levels_from_transfer(f.segment_transfer(segments, receivers), segments.kinds,
                                   {"primary": 80.0})  # fmt: skip
    assert exact == pytest.approx(by_points, abs=0.005)


def test_infinite_line_source_falls_3_db_per_doubling() -> None:
    """Infinite line, ISO 9613-2 point sources integrated: Lp = LW' − 10·lg(10^1.1·d/π),
    i.e. LW' − 10·lg(d) − 6.03 dB, and 3.01 dB per doubling (the textbook cylindrical
    10·lg(2πd) = 10·lg(d) + 7.98 has the same slope; the calibration absorbs the constant)."""
    segments = f.street_segments([road(0.0, 1e6)], PROJECTION, height_m=0.0)
    d = np.array([10.0, 20.0, 40.0, 80.0])
    receivers = np.column_stack([d, np.zeros(4), np.zeros(4)])
    levels = p.levels_from_transfer(f.segment_transfer(segments, receivers), segments.kinds,
                                    {"primary": 80.0})  # fmt: skip
    assert levels == pytest.approx(80.0 - 10 * np.log10(d) - 6.028, abs=0.002)
    assert np.diff(levels) == pytest.approx([-10 * math.log10(2)] * 3, abs=0.01)


def test_floor_levels_beside_a_long_road_follow_the_3d_distance() -> None:
    """Receivers 2 m in front of the façade facing the road, at 1.5 m + 3 m × floor: at
    horizontal distance h = 10 − 2 = 8 m from the road (source 0.5 m), floor f hears
    LW' − 10·lg(10^1.1·p/π), p = √(8² + (1.5 + 3f − 0.5)²): 69.91, 69.46, 68.71, 67.90,
    67.13 dB for 85 dB/m (ground floor: p = 8.062 m, 85 − 6.028 − 9.065 = 69.91).
    The ground floor is loudest; the 4 m receiver lies between floors 0 and 1."""
    segments = f.street_segments([road(0.0, half_length=200_000.0)], PROJECTION)
    building = f.Building("b1", square(10.0), floors=5, population=40.0)
    model = f.facade_model([building], segments, PROJECTION)
    (levels,) = model.floor_levels({"primary": 85.0})
    p_floor = np.hypot(8.0, 1.5 + 3.0 * np.arange(5) - 0.5)
    assert levels == pytest.approx(85.0 - 10 * np.log10(p_floor) - LINE_DB, abs=0.002)
    assert levels == pytest.approx([69.91, 69.46, 68.71, 67.90, 67.13], abs=0.01)
    assert all(a > b for a, b in zip(levels[:-1], levels[1:], strict=True))
    (at_4m,) = model.assessment_levels({"primary": 85.0})
    assert at_4m == pytest.approx(85.0 - 10 * math.log10(math.hypot(8.0, 3.5)) - LINE_DB, abs=0.01)
    assert levels[1] < at_4m < levels[0]
    assert list(model.floor_heights_m) == [1.5, 4.5, 7.5, 10.5, 13.5]


def test_point_source_twice_as_far_is_6_db_quieter() -> None:
    """ISO 9613-2 point source (a 1 cm segment of LW' = 120 dB/m: LW = 100 dB): receivers
    2 m in front of façades at 102 and 202 m are at 100 and 200 m (3-D: 1 m height
    difference), Lp = 100 − 20·lg(100.005) − 11 ≈ 49.0 dB, and 6.02 dB less at twice that."""
    street = p.Street("point", lonlat((-0.005, 0.0), (0.005, 0.0)))
    segments = f.street_segments([street], PROJECTION)
    near = f.Building("near", square(102.0), 1)
    far = f.Building("far", square(202.0), 1)
    model = f.facade_model([near, far], segments, PROJECTION)
    (a,), (b,) = model.floor_levels({"point": 120.0})
    assert a == pytest.approx(100.0 - 20 * math.log10(math.hypot(100.0, 1.0)) - 11.0, abs=0.01)
    assert a - b == pytest.approx(20 * math.log10(2), abs=0.01)


def test_each_road_is_heard_at_its_own_nearest_facade() -> None:
    """A building between two roads: the most exposed façade's level is the energetic sum
    of each road at the façade facing it (8 m and 18 m after the 2 m offset), no screening.
    A road nearer than 2 m puts the receiver on the road (p = 1 m height difference)."""
    segments = f.street_segments([road(0.0), road(50.0, kind="residential")], PROJECTION)
    building = f.Building("b", square(10.0, side=20.0), floors=1)
    model = f.facade_model([building], segments, PROJECTION)
    emission = {"primary": 80.0, "residential": 70.0}
    (levels,) = model.floor_levels(emission)
    west = 10 ** ((80.0 - 10 * math.log10(math.hypot(8.0, 1.0)) - LINE_DB) / 10)
    east = 10 ** ((70.0 - 10 * math.log10(math.hypot(18.0, 1.0)) - LINE_DB) / 10)
    assert levels[0] == pytest.approx(10 * math.log10(west + east), abs=0.01)
    hugging = f.facade_model([f.Building("h", square(1.0), 1)], f.street_segments(
        [road(0.0)], PROJECTION), PROJECTION)  # fmt: skip
    (close,) = hugging.floor_levels({"primary": 80.0})
    assert close[0] == pytest.approx(80.0 - LINE_DB, abs=0.01)


def test_buildings_from_geojson_features() -> None:
    """Polygon: its exterior ring; MultiPolygon: the largest part; floors at least 1."""
    ring = [[3.0, 50.0], [3.001, 50.0], [3.001, 50.001], [3.0, 50.0]]
    polygon = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
               "properties": {"id": "b1", "floors": 4, "population": 12}}  # fmt: skip
    building = f.building_from_feature(polygon)
    assert building is not None and (building.id, building.floors, building.population) == (
        "b1", 4, 12.0)  # fmt: skip
    big = [[3.0, 50.0], [3.01, 50.0], [3.01, 50.01], [3.0, 50.01], [3.0, 50.0]]
    multi = {"type": "Feature", "properties": {"id": "m", "floors": None},
             "geometry": {"type": "MultiPolygon", "coordinates": [[ring], [big]]}}  # fmt: skip
    parsed = f.building_from_feature(multi)
    assert parsed is not None and len(parsed.footprint) == 5 and parsed.floors == 1
    point = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [3, 50]},
             "properties": {}}  # fmt: skip
    assert f.building_from_feature(point) is None
