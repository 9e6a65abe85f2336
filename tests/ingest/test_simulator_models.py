"""Behaviour of the simulated devices: each check compares readings with what the physics
or the calendar says they must show, so a broken model fails them."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from astral import Observer
from astral.sun import sun

from agilecity.ingest.simulator.almanac import is_school_day, local_hours
from agilecity.ingest.simulator.base import Reading
from agilecity.ingest.simulator.parking import ParkingSpotSensor
from agilecity.ingest.simulator.town import Town

FOURTEEN_DAYS = timedelta(days=14)


@pytest.fixture(scope="module")
def town() -> Town:
    return Town(seed=1)  # origin Monday 2026-01-05, in term time


@pytest.fixture(scope="module")
def fortnight(town: Town) -> list[Reading]:
    return list(town.readings(town.origin, town.origin + FOURTEEN_DAYS))


def _of(readings: list[Reading], prefix: str) -> dict[str, list[Reading]]:
    out: dict[str, list[Reading]] = defaultdict(list)
    for r in readings:
        if r.device_id.startswith(prefix):
            out[r.device_id].append(r)
    return out


def _hour(r: Reading) -> float:
    return local_hours(int(r.time.timestamp()))


def _ordinary_spots(town: Town) -> list[ParkingSpotSensor]:
    spots = [d for d in town.devices if isinstance(d, ParkingSpotSensor)]
    return [s for s in spots if not s.stays and s.stuck is None]


def _occupied_spans(readings: list[Reading]) -> list[tuple[datetime, datetime]]:
    spans, since = [], None
    for r in readings:
        if r.measures["st"] == "occupied" and since is None:
            since = r.time
        elif r.measures["st"] == "free" and since is not None:
            spans.append((since, r.time))
            since = None
    if since is not None:
        spans.append((since, readings[-1].time))
    return spans


# -- parking ---------------------------------------------------------------------------


def test_commercial_streets_are_busier_by_day_than_at_four(
    town: Town, fortnight: list[Reading]
) -> None:
    spots = {s.device_id: s for s in _ordinary_spots(town)}
    by_hour: dict[tuple[str, int], list[bool]] = defaultdict(list)
    for r in fortnight:
        spot = spots.get(r.device_id)
        if spot is None or r.time.weekday() == 6:
            continue
        by_hour[(spot.usage, int(_hour(r)))].append(r.measures["st"] == "occupied")
    day = np.mean(by_hour[("commercial", 10)] + by_hour[("commercial", 15)])
    night = np.mean(by_hour[("commercial", 4)])
    assert day > night + 0.25, (day, night)
    # Residential streets are the other way round: cars sleep at home.
    assert np.mean(by_hour[("residential", 4)]) > np.mean(by_hour[("residential", 10)]) + 0.2


def test_ordinary_stays_last_under_three_days(town: Town, fortnight: list[Reading]) -> None:
    """So a long-stay detector flags exactly the scenario's long stays and stuck sensors."""
    longest = timedelta(0)
    commercial_dwell = []
    for spot in _ordinary_spots(town):
        events = [r for r in fortnight if r.device_id == spot.device_id]
        for start, end in _occupied_spans(events):
            longest = max(longest, end - start)
            if spot.usage == "commercial" and 9 <= local_hours(int(start.timestamp())) < 18:
                commercial_dwell.append((end - start).total_seconds() / 60)
    assert timedelta(hours=12) < longest < timedelta(hours=72)
    assert 20 < float(np.median(commercial_dwell)) < 24 * 60


def test_long_stay_cars_stay_for_their_whole_stay(town: Town) -> None:
    stays = town.scenario.long_stays
    assert len(stays) == 5
    assert sum(s.over_limit for s in stays) == 3
    assert all(timedelta(days=3) <= s.duration <= timedelta(days=11) for s in stays)
    assert all(s.over_limit == (s.duration > timedelta(hours=168)) for s in stays)
    for stay in stays:
        assert town.origin < stay.arrival < stay.departure <= town.scenario.horizon
        readings = town.device_readings(
            stay.device_id,
            stay.arrival - timedelta(minutes=30),
            stay.departure + timedelta(minutes=30),
        )
        inside = [r for r in readings if stay.arrival <= r.time < stay.departure]
        before = [r for r in readings if r.time < stay.arrival]
        after = [r for r in readings if r.time >= stay.departure]
        assert inside[0].time == stay.arrival and inside[0].measures == {"st": "occupied"}
        assert all(r.measures == {"st": "occupied"} for r in inside)
        hours = stay.duration.total_seconds() / 3600
        assert len(inside) >= int(hours) - 1  # the hourly heartbeats all along
        assert all(r.measures == {"st": "free"} for r in before + after)
        assert after[0].time == stay.departure


def test_stuck_sensors_are_stuck(town: Town, fortnight: list[Reading]) -> None:
    stuck = {s.mode: s for s in town.scenario.stuck_sensors}
    assert set(stuck) == {"occupied", "free", "silent"}
    end = town.origin + FOURTEEN_DAYS
    for mode in ("occupied", "free"):
        sensor = stuck[mode]
        after = [r for r in fortnight if r.device_id == sensor.device_id and r.time >= sensor.since]
        assert {r.measures["st"] for r in after} == {mode}
        assert len(after) >= int((end - sensor.since).total_seconds() // 3600)  # heartbeats
    silent = stuck["silent"]
    mine = [r for r in fortnight if r.device_id == silent.device_id]
    assert mine and all(r.time < silent.since for r in mine)


# -- noise -----------------------------------------------------------------------------


def test_nights_are_quieter_than_days(town: Town) -> None:
    start = town.origin
    readings = list(town.readings(start, start + timedelta(days=7)))
    for device_id, samples in _of(readings, "nm-").items():
        meter = town.by_id[device_id]
        assert len(samples) == 7 * 1440
        day = [r.measures["l"] for r in samples if 7 <= _hour(r) < 19]
        night = [r.measures["l"] for r in samples if _hour(r) >= 23 or _hour(r) < 7]
        gap = float(np.mean(day) - np.mean(night))
        assert 7 <= gap <= 14, (device_id, gap)
        expected = {"primary": (64, 72), "secondary": (57, 65), "residential": (45, 55)}
        low, high = expected[meter.street_kind]  # type: ignore[attr-defined]
        assert low <= np.mean(day) <= high, (device_id, np.mean(day))
        assert all(r.measures["m"] > r.measures["l"] for r in samples)


# -- lighting --------------------------------------------------------------------------


@pytest.mark.parametrize("day", [date(2026, 1, 12), date(2026, 6, 21)])
def test_lights_are_on_at_night_and_off_at_noon(day: date) -> None:
    town = Town(seed=1)
    observer = Observer(latitude=50.58, longitude=2.98)  # the town centre
    times = sun(observer, day, tzinfo=UTC)
    start = datetime.combine(day, datetime.min.time(), UTC)
    readings = list(town.readings(start, start + timedelta(days=1)))
    lamps = _of(readings, "sl-")
    assert len(lamps) == 120
    margin = timedelta(minutes=15)
    checked = 0
    for device_id, reports in lamps.items():
        for r in reports:
            if times["sunrise"] + margin < r.time < times["sunset"] - margin:
                assert r.measures["p"] == "off", (device_id, r)
                assert r.measures["w"] == 0.0
                checked += 1
            elif r.time > times["sunset"] + margin or r.time < times["sunrise"] - margin:
                assert r.measures["p"] in ("on", "low"), (device_id, r)
                checked += 1
    assert checked > 120 * 20


def test_failed_lamps_report_a_defect_and_no_power(town: Town, fortnight: list[Reading]) -> None:
    failed = {f.device_id: f for f in town.scenario.failed_lamps}
    assert len(failed) == 3
    for r in fortnight:
        lamp = failed.get(r.device_id)
        if lamp is None:
            if r.device_id.startswith("sl-"):
                assert r.measures["s"] == "ok"
            continue
        if r.time >= lamp.since:
            assert r.measures["s"] == "defectiveLamp" and r.measures["w"] == 0.0
        else:
            assert r.measures["s"] == "ok"
            assert (r.measures["w"] > 0) == (r.measures["p"] != "off")


# -- buildings -------------------------------------------------------------------------


def test_school_co2_is_higher_on_school_mornings_than_on_sundays(
    town: Town, fortnight: list[Reading]
) -> None:
    for device_id, samples in _of(fortnight, "iaq-s").items():
        school, sunday = [], []
        for r in samples:
            if not 9.0 <= _hour(r) < 11.5:
                continue
            if is_school_day(r.time.date()):
                school.append(r.measures["c"])
            elif r.time.weekday() == 6:
                sunday.append(r.measures["c"])
        assert school and sunday
        assert np.mean(school) > 800 > 500 > np.mean(sunday), device_id
        assert 19 <= np.mean([r.measures["t"] for r in samples if _hour(r) == 10.0
                              and is_school_day(r.time.date())]) <= 22  # fmt: skip


def _daily_heat(town: Town, start: datetime, days: int) -> dict[str, float]:
    readings = list(town.readings(start, start + timedelta(days=days)))
    out = {}
    for device_id, samples in _of(readings, "hm-").items():
        registers = [r.measures["c"] for r in samples]
        assert registers == sorted(registers)  # a register never runs backwards
        out[device_id] = (registers[-1] - registers[0]) / days
    return out


def test_heating_is_lower_in_july_than_in_january(town: Town) -> None:
    january = _daily_heat(town, datetime(2026, 1, 12, tzinfo=UTC), 7)
    july = _daily_heat(town, datetime(2026, 7, 13, tzinfo=UTC), 7)
    assert set(january) == set(july) and len(january) == 10
    for device_id in january:
        assert january[device_id] > 100  # kWh a day for a school in winter
        assert july[device_id] < 0.1 * january[device_id], device_id


# -- green spaces ----------------------------------------------------------------------


def test_soil_moisture_rises_after_rain(town: Town) -> None:
    start = town.origin
    readings = list(town.readings(start, start + timedelta(days=28)))
    rain = [r for r in readings if r.device_id == "ws-01"]
    probes = _of(readings, "sp-")
    events = 0
    for k in range(4, len(rain) - 12):
        window = sum(float(r.measures["p"]) for r in rain[k : k + 12])  # the next 3 hours
        dry_before = all(float(r.measures["p"]) == 0 for r in rain[k - 4 : k])
        if window < 3 or not dry_before:
            continue
        events += 1
        for samples in probes.values():
            wettest = max(r.measures["m"] for r in samples[k : k + 13])
            assert wettest > samples[k].measures["m"] + 0.003, samples[k]
    assert events >= 2


def test_weather_is_plausible_for_the_season(town: Town) -> None:
    for start, low, high in ((datetime(2026, 1, 5, tzinfo=UTC), -12, 16),
                             (datetime(2026, 7, 6, tzinfo=UTC), 6, 36)):  # fmt: skip
        samples = [
            r for r in town.readings(start, start + timedelta(days=7)) if r.device_id == "ws-01"
        ]
        assert len(samples) == 7 * 96
        temps = [r.measures["t"] for r in samples]
        assert low < min(temps) < max(temps) < high
        assert all(0 <= r.measures["h"] <= 1 for r in samples)
        assert all(r.measures["r"] == 0 for r in samples if _hour(r) in (0.0, 23.0))
        assert max(r.measures["r"] for r in samples if 12 <= _hour(r) <= 14) > 100


# -- utilities -------------------------------------------------------------------------


def test_waste_fill_drops_at_collection(fortnight: list[Reading]) -> None:
    collections = 0
    for samples in _of(fortnight, "wc-").values():
        levels = [r.measures["f"] for r in samples]
        assert all(0 <= level <= 1 for level in levels)
        for k, r in enumerate(samples):
            if "e" in r.measures and k > 0:
                collections += 1
                assert (
                    r.measures["f"] < samples[k - 1].measures["f"]
                    or samples[k - 1].measures["f"] < 0.05
                )
                assert r.measures["f"] <= 0.05
    assert collections >= 40  # every container is emptied at least once in two weeks


def test_charging_stations(town: Town, fortnight: list[Reading]) -> None:
    outage = town.scenario.charger_outages[0]
    for device_id, samples in _of(fortnight, "ev-").items():
        capacity = town.by_id[device_id].capacity  # type: ignore[attr-defined]
        assert all(0 <= r.measures["a"] <= capacity for r in samples)
        assert any(r.measures["a"] < capacity for r in samples)
        for r in samples:
            down = device_id == outage.device_id and outage.start <= r.time < outage.end
            assert (r.measures["s"] == "outOfService") == down
