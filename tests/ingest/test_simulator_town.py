"""The demo town as a whole: its map, determinism, window additivity and generation speed."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from shapely.geometry import shape

from agilecity.ingest.simulator.provisioning import device_groups, devices, ultralight
from agilecity.ingest.simulator.town import Town


@pytest.fixture(scope="module")
def town() -> Town:
    return Town(seed=1)


def _dump(town: Town, days: float = 1.0) -> bytes:
    readings = town.readings(town.origin, town.origin + timedelta(days=days))
    return b"\n".join(
        [
            orjson.dumps(town.entities(), option=orjson.OPT_SORT_KEYS),
            orjson.dumps(device_groups(town)),
            orjson.dumps(devices(town)),
            orjson.dumps(town.geography()),
            *(f"{r.apikey} {r.device_id} {ultralight(r)}".encode() for r in readings),
        ]
    )


def test_population_is_about_fifty_thousand(town: Town) -> None:
    features = town.geography()["buildings"]["features"]
    people = [f["properties"]["population"] for f in features]
    assert 49_500 <= sum(people) <= 50_500
    residential = [f for f in features if f["properties"]["category"] == "residential"]
    assert all(f["properties"]["population"] > 0 for f in residential)
    assert all(
        f["properties"]["population"] == 0
        for f in features
        if f["properties"]["category"] != "residential"
    )
    districts = town.geography()["districts"]["features"]
    assert sum(d["properties"]["population"] for d in districts) == sum(people)
    assert len(districts) >= 5


def test_geography_is_valid_geojson_in_northern_france(town: Town) -> None:
    collections = town.geography()
    assert set(collections) == {"districts", "streets", "buildings", "green_spaces", "devices"}
    lons, lats = [], []
    for collection in collections.values():
        assert collection["type"] == "FeatureCollection"
        for feature in collection["features"]:
            geometry = shape(feature["geometry"])
            assert geometry.is_valid, feature["properties"]
            west, south, east, north = geometry.bounds
            lons += [west, east]
            lats += [south, north]
    assert 2.92 < min(lons) < max(lons) < 3.04
    assert 50.55 < min(lats) < max(lats) < 50.61
    width_km = (max(lons) - min(lons)) * 111.32 * 0.633
    assert 2.5 < width_km < 6  # a few kilometres across


def test_streets_buildings_and_green_spaces(town: Town) -> None:
    collections = town.geography()
    streets = collections["streets"]["features"]
    assert Counter(f["geometry"]["type"] for f in streets) == {"LineString": len(streets)}
    kinds = Counter(f["properties"]["kind"] for f in streets)
    assert set(kinds) == {"primary", "secondary", "residential"}
    assert kinds["residential"] > kinds["secondary"] > kinds["primary"] > 0
    assert all(f["properties"]["name"] for f in streets)
    buildings = collections["buildings"]["features"]
    categories = Counter(f["properties"]["category"] for f in buildings)
    assert categories["school"] == 6
    assert categories["public"] + categories["civic"] == 4
    assert {"residential", "office", "retail"} <= set(categories)
    assert all(f["properties"]["floors"] >= 1 for f in buildings)
    assert all(f["properties"]["district"] for f in buildings)
    greens = collections["green_spaces"]["features"]
    assert len(greens) == 7
    assert all(f["geometry"]["type"] == "Polygon" for f in greens)


def test_same_seed_same_bytes() -> None:
    assert _dump(Town(seed=7)) == _dump(Town(seed=7))


def test_different_seed_different_town() -> None:
    one, two = Town(seed=1), Town(seed=2)
    assert orjson.dumps(one.geography()) != orjson.dumps(two.geography())
    assert one.apikeys != two.apikeys
    window = (one.origin, one.origin + timedelta(hours=6))
    first = [(r.time, r.measures) for r in one.readings(*window)]
    second = [(r.time, r.measures) for r in two.readings(*window)]
    assert first != second


@pytest.mark.parametrize(
    "split",
    [
        timedelta(hours=13, minutes=7, seconds=31),  # inside a day
        timedelta(days=1),  # exactly at midnight UTC
        timedelta(days=1, microseconds=500_000),  # a fraction of a second after it
        timedelta(days=1, hours=22, minutes=59, seconds=59),
    ],
)
def test_windows_add_up(split: timedelta) -> None:
    """[a, c) == [a, b) + [b, c), even when [b, c) is computed by a fresh town."""
    a = datetime(2026, 3, 27, 6, 30, tzinfo=UTC)  # spans the switch to summer time
    b, c = a + split, a + timedelta(days=2, hours=1)
    whole = list(Town(seed=3).readings(a, c))
    left = list(Town(seed=3).readings(a, b))
    right = list(Town(seed=3).readings(b, c))
    assert whole == left + right
    assert all(r.time >= b for r in right) and all(r.time < b for r in left)
    assert Town(seed=3).count_readings(a, c) == len(whole)


def test_readings_are_time_ordered_and_keyed(town: Town) -> None:
    readings = list(town.readings(town.origin, town.origin + timedelta(hours=6)))
    times = [r.time for r in readings]
    assert times == sorted(times)
    assert {r.apikey for r in readings} == set(town.apikeys.values())
    for reading in readings[:2000]:
        kind = town.kind_of(reading.device_id)
        assert reading.apikey == town.apikeys[kind.key]
        assert set(reading.measures) <= {m.object_id for m in kind.measures}


def test_three_weeks_of_the_whole_town_generate_quickly() -> None:
    town = Town(seed=5)
    began = time.perf_counter()
    count = sum(1 for _ in town.readings(town.origin, town.origin + timedelta(days=21)))
    elapsed = time.perf_counter() - began
    assert count > 500_000
    assert elapsed < 20, f"{count} readings in {elapsed:.1f} s"
