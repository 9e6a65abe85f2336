"""The parking service's pure computations: stays, long stays (R417-12), sensor health, KPIs,
their entities and the enforcement list; and the demo town's ground truth found exactly."""

from __future__ import annotations

import csv
import heapq
import io
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

import orjson
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from tests.ingest.simulator_support import key_values, reference_dir

from agilecity.ingest.simulator import Town, devices
from agilecity.services.parking.entities import (
    KPI_METRICS,
    SpotPlace,
    alert_entity,
    enforcement_csv,
    enforcement_rows,
    kpi_entities,
    kpi_entity,
    long_stay_alert_id,
    spot_place,
    zone_kpis,
)
from agilecity.services.parking.model import (
    LEGAL_LIMIT,
    HealthRules,
    LongStay,
    SensorIssue,
    SpotState,
    Stay,
    acknowledge,
    long_stays,
    overstays,
    sensor_health,
    stays_from_series,
    zone_limit,
)

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)
SPOT = "urn:ngsi-ld:ParkingSpot:a-1"
ZONE = "urn:ngsi-ld:OnStreetParking:a"


def at(hours: float) -> datetime:
    return T0 + hours * H


def fed(series: list[tuple[float, str]], spot: str = SPOT, zone: str | None = ZONE) -> SpotState:
    state = SpotState(spot, zone)
    for hours, value in series:
        state.feed(at(hours), value)
    return state


def parked(hours: float, *, start: float = 0, leave: bool = False) -> list[tuple[float, str]]:
    """Free at ``start``, a car from ``start + 1`` for ``hours`` with hourly heartbeats."""
    series = [(start, "free"), (start + 1, "occupied")]
    series += [(start + 1 + k, "occupied") for k in range(1, int(hours) + 1)]
    if leave:
        series.append((start + 1 + hours, "free"))
    return series


# -- stays ------------------------------------------------------------------------------


def test_heartbeats_are_one_state_not_new_arrivals() -> None:
    series = [(0, "free"), (1, "occupied"), (2, "occupied"), (3, "occupied"), (3.5, "free")]
    series += [(4, "free"), (5, "occupied"), (6, "free")]
    stays = stays_from_series([(at(h), v) for h, v in series], SPOT, ZONE)
    assert [(s.arrival, s.departure) for s in stays] == [(at(1), at(3.5)), (at(5), at(6))]
    assert stays[0].last_seen == at(3) and stays[0].duration == 2.5 * H


def test_any_non_occupied_value_ends_a_stay_and_unknown_values_are_unknown() -> None:
    series = [(0, "free"), (1, "occupied"), (2, "closed"), (3, "occupied"), (4, "unknown")]
    series += [(5, "occupied"), (6, "parked?"), (7, "occupied")]
    stays = stays_from_series([(at(h), v) for h, v in series], SPOT)
    assert [(s.arrival, s.departure) for s in stays] == [
        (at(1), at(2)), (at(3), at(4)), (at(5), at(6)), (at(7), None),
    ]  # fmt: skip
    state = fed([(0, "parked?")])
    assert state.status == "unknown"


def test_a_history_starting_occupied_has_an_unobserved_arrival() -> None:
    stays = stays_from_series([(at(0), "occupied"), (at(1), "occupied"), (at(2), "free")], SPOT)
    assert len(stays) == 1 and not stays[0].arrival_seen and stays[0].duration == 2 * H


def test_the_batch_function_sorts_and_the_state_machine_drops_late_observations() -> None:
    series = [(at(2), "free"), (at(0), "free"), (at(1), "occupied")]
    assert [s.arrival for s in stays_from_series(series, SPOT)] == [at(1)]
    state = fed([(0, "free"), (2, "occupied")])
    assert state.feed(at(1), "free") is None  # a redelivered old message changes nothing
    assert state.status == "occupied" and state.since == at(2)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        SpotState(SPOT).feed(datetime(2026, 1, 1), "free")


# -- long stays: Code de la route R417-12 -----------------------------------------------


def test_r417_12_more_than_seven_days_is_abusive_exactly_seven_is_not() -> None:
    """R417-12: "stationnement ininterrompu ... pendant une durée excédant sept jours"."""
    assert LEGAL_LIMIT == timedelta(hours=168)
    state = fed(parked(168))  # arrival at 1 h, last heartbeat at 169 h: exactly 7 days
    assert long_stays([state], at(169)) == []
    (finding,) = long_stays([state], at(169) + timedelta(seconds=1))
    assert finding.phase == "new" and finding.over_since == at(169)
    assert finding.limit == LEGAL_LIMIT and finding.arrival == at(1)


def test_a_municipal_order_sets_a_shorter_limit_per_zone() -> None:
    """R417-12: or "une durée inférieure ... fixée par arrêté de l'autorité de police"."""
    short = "urn:ngsi-ld:OnStreetParking:station"
    a, b = fed(parked(50), zone=short), fed(parked(50), spot=SPOT + "b")
    findings = long_stays([a, b], at(51), {short: timedelta(hours=48)})
    assert [(f.spot, f.limit) for f in findings] == [(SPOT, timedelta(hours=48))]
    assert zone_limit(None) == LEGAL_LIMIT
    with pytest.raises(ValueError, match="below max_occupied"):
        zone_limit(short, {short: timedelta(days=30)})


def test_an_alert_opens_is_updated_and_closes_when_the_car_leaves() -> None:
    state = fed(parked(170))
    states = {SPOT: state}
    first = long_stays(states.values(), at(171))
    assert [f.phase for f in first] == ["new"]
    assert [f.phase for f in long_stays(states.values(), at(171))] == ["new"]  # not yet written
    acknowledge(states, first)
    (ongoing,) = long_stays(states.values(), at(171.5))
    assert ongoing.phase == "ongoing" and ongoing.duration == 170.5 * H
    state.feed(at(180), "free")
    (ended,) = long_stays(states.values(), at(181))
    assert (ended.phase, ended.departure, ended.closed) == ("ended", at(180), at(180))
    assert ended.duration == 179 * H
    acknowledge(states, [ended])
    assert long_stays(states.values(), at(181)) == [] and state.to_dict()["closing"] == []


def test_a_stay_that_passed_the_limit_and_left_between_evaluations_is_reported_once() -> None:
    state = fed(parked(175, leave=True) + [(180, "occupied"), (181, "free")])  # a short stay after
    (ended,) = long_stays([state], at(182))
    assert (ended.phase, ended.arrival, ended.departure) == ("ended", at(1), at(176))
    acknowledge({SPOT: state}, [ended])
    assert long_stays([state], at(182)) == []


def test_a_new_acknowledged_after_the_car_left_still_closes() -> None:
    state = fed(parked(170))
    (new,) = long_stays([state], at(171))
    state.feed(at(172), "free")  # the car leaves before the service acknowledges
    acknowledge({SPOT: state}, [new])
    assert state.alerted is None
    assert [f.phase for f in long_stays([state], at(173))] == ["ended"]


def test_a_stay_beyond_plausibility_is_withdrawn_and_reported_as_a_suspect_sensor() -> None:
    rules = HealthRules()
    state = fed(parked(200))
    acknowledge({SPOT: state}, long_stays([state], at(201)))
    for k in range(202, 12 * 24 + 3):
        state.feed(at(k), "occupied")
    (withdrawn,) = long_stays([state], at(12 * 24 + 2))
    assert withdrawn.phase == "withdrawn" and withdrawn.closed == at(1) + rules.max_occupied
    acknowledge({SPOT: state}, [withdrawn])
    assert long_stays([state], at(12 * 24 + 2)) == []
    (issue,) = sensor_health([state], at(12 * 24 + 2))
    assert (issue.kind, issue.since, issue.detected) == ("stuckOccupied", at(1), at(289))
    assert overstays(stays_from_series([(at(h), v) for h, v in parked(300)], SPOT)) == []


def test_a_silent_sensor_stops_the_clock_of_its_stay() -> None:
    state = fed(parked(100))  # last heartbeat at 101 h, then nothing
    assert long_stays([state], at(400)) == []
    (issue,) = sensor_health([state], at(400))
    assert issue.kind == "silent" and issue.since == at(101) and issue.detected == at(104)


# -- sensor health ----------------------------------------------------------------------


def test_silent_after_heartbeat_times_tolerance() -> None:
    state = fed([(0, "free")])
    assert sensor_health([state], at(3)) == []
    assert [i.kind for i in sensor_health([state], at(3) + timedelta(seconds=1))] == ["silent"]
    slow = HealthRules(heartbeat=timedelta(hours=6))
    assert sensor_health([state], at(17), slow) == []


def busy_zone(days: int, per_day: int, spots: int) -> list[SpotState]:
    """Spots with ``per_day`` short stays a day each, for ``days`` days, with heartbeats."""
    out = []
    for n in range(spots):
        series: list[tuple[float, str]] = []
        for day in range(days):
            for k in range(24):
                hours = day * 24 + k
                series.append((hours, "occupied" if k < per_day and k % 2 == 0 else "free"))
        out.append(fed(series, spot=f"{SPOT}-{n}"))
    return out


def test_free_for_a_week_while_the_zone_turns_over_is_a_stuck_sensor() -> None:
    zone = busy_zone(10, per_day=6, spots=4)  # 3 arrivals a day on the others
    frozen = fed([(h, "free") for h in range(240)], spot=SPOT + "-frozen")
    (issue,) = sensor_health([*zone, frozen], at(239))
    assert (issue.spot, issue.kind, issue.since) == (frozen.spot, "stuckFree", at(0))
    week = fed([(h, "free") for h in range(169)], spot=SPOT + "-frozen")
    assert sensor_health([*zone, week], at(168)) == []  # exactly 7 days: not yet
    assert len(sensor_health([*zone, week], at(168) + timedelta(seconds=1))) == 1
    assert sensor_health(zone[:1] + [frozen], at(239))[0].kind == "stuckFree"


def test_free_for_a_week_in_a_quiet_zone_is_not_suspect() -> None:
    quiet = busy_zone(10, per_day=1, spots=4)  # one arrival a day: not more than 1/day
    frozen = fed([(h, "free") for h in range(240)], spot=SPOT + "-frozen")
    assert sensor_health([*quiet, frozen], at(239)) == []
    assert sensor_health([frozen], at(239)) == []  # alone in its zone: nothing to compare


def test_turnover_counts_observed_arrivals_over_the_trailing_window() -> None:
    (state,) = busy_zone(10, per_day=6, spots=1)
    assert state.turnover(at(239)) == pytest.approx(3.0, rel=0.1)
    assert fed([(0, "free"), (1, "occupied")]).turnover(at(2)) is None  # under a day of data


# -- persistence ------------------------------------------------------------------------


def test_the_state_survives_a_json_round_trip_and_resumes() -> None:
    state = fed(parked(170))
    acknowledge({SPOT: state}, long_stays([state], at(171)))
    state.feed(at(172), "free")
    state.feed(at(173), "occupied")
    copy = SpotState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert copy == state
    for s in (state, copy):
        s.feed(at(174), "free")
    assert copy == state and long_stays([copy], at(175)) == long_stays([state], at(175))
    with pytest.raises(ValueError, match="version"):
        SpotState.from_dict({**state.to_dict(), "version": 99})


# -- KPIs -------------------------------------------------------------------------------

DAY = datetime(2026, 3, 3, tzinfo=UTC)
TWO = {ZONE: [SPOT, SPOT + "b"]}


def stay(spot: str, arrival: datetime, departure: datetime, seen: bool = True) -> Stay:
    return Stay(spot, ZONE, arrival, departure, departure, seen)


def test_occupancy_turnover_and_dwell_of_a_worked_example() -> None:
    """Parking-survey definitions: occupancy = occupied spot-hours / supplied spot-hours;
    turnover = vehicles / spots / days; mean duration = vehicle-hours / vehicles. Stays
    crossing the window's edges are clipped; a car already there at the start is no arrival."""
    stays = [
        stay(SPOT, DAY - 2 * H, DAY + 2 * H),  # 2 h inside, arrived before the window
        stay(SPOT, DAY + 8 * H, DAY + 10.5 * H),  # 2.5 h
        stay(SPOT + "b", DAY + 20 * H, DAY + 28 * H),  # 4 h inside, dwell clipped at the end
        stay(SPOT + "c", DAY + 9 * H, DAY + 10 * H),  # not in the zone
    ]
    (k,) = zone_kpis(stays, TWO, DAY, DAY + 24 * H).values()
    assert k.spots == 2 and k.arrivals == 2
    assert k.occupancy == pytest.approx(8.5 / 48)
    assert k.turnover == pytest.approx(1.0)
    assert k.mean_dwell == 3.25 * H
    assert k.hourly_occupancy[0] == 0.5 and k.hourly_occupancy[1] == 0.5
    assert k.hourly_occupancy[8] == 0.5 and k.hourly_occupancy[9] == 0.5
    assert k.hourly_occupancy[10] == 0.25 and k.hourly_occupancy[12] == 0
    assert k.hourly_dwell[8] == 2.5 * H and k.hourly_dwell[20] == 4 * H
    assert k.hourly_dwell[12] is None
    (excluded,) = zone_kpis(stays, TWO, DAY, DAY + 24 * H, exclude=[SPOT]).values()
    assert excluded.spots == 1 and excluded.occupancy == pytest.approx(4 / 24)


def test_hours_of_the_day_are_local_hours_across_a_dst_change() -> None:
    """Directive 2000/84/EC: summer time starts at 01:00 UTC on the last Sunday of March, so
    in Europe/Paris on 29 March 2026 local 02:00 CET jumps to 03:00 CEST (hour 2 is absent)."""
    paris = ZoneInfo("Europe/Paris")
    day = datetime(2026, 3, 29, tzinfo=paris)
    stays = [
        stay(
            SPOT, datetime(2026, 3, 29, 0, 30, tzinfo=UTC), datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
        )
    ]
    (k,) = zone_kpis(stays, {ZONE: [SPOT]}, day, day + timedelta(days=1), tz=paris).values()
    assert k.hourly_occupancy[2] is None  # that hour does not exist that day
    assert k.hourly_occupancy[1] == 0.5 and k.hourly_occupancy[3] == 0.5
    assert k.hourly_dwell[1] == H and k.occupancy == pytest.approx(1 / 23)


# -- entities ---------------------------------------------------------------------------

SCHEMAS = {
    "Alert": "dataModel.Alert/Alert/schema.json",
    "KeyPerformanceIndicator": (
        "dataModel.KeyPerformanceIndicator/KeyPerformanceIndicator/schema.json"
    ),
}


@cache
def validator(entity_type: str) -> Draft202012Validator:
    root = reference_dir()
    mapping = orjson.loads((root / "ref-map.json").read_bytes())
    resources = [
        (url, Resource.from_contents(orjson.loads((root / path).read_bytes()), DRAFT202012))
        for url, path in mapping.items()
        if url != "description"
    ]
    checker = FormatChecker(formats=())

    @checker.checks("date-time", raises=ValueError)
    def date_time(value: object) -> bool:
        if isinstance(value, str):
            if not value.endswith("Z"):
                raise ValueError(f"{value!r} is not UTC")
            datetime.fromisoformat(value)
        return True

    @checker.checks("date", raises=ValueError)
    def date(value: object) -> bool:
        if isinstance(value, str):
            datetime.strptime(value, "%Y-%m-%d")
        return True

    @checker.checks("uri", raises=ValueError)
    def uri(value: object) -> bool:
        if isinstance(value, str) and not urlparse(value).scheme:
            raise ValueError(f"{value!r} has no scheme")
        return True

    schema = orjson.loads((Path(root) / SCHEMAS[entity_type]).read_bytes())
    return Draft202012Validator(
        schema, registry=Registry().with_resources(resources), format_checker=checker
    )


def errors(entity: dict[str, Any]) -> list[str]:
    return [e.message for e in validator(entity["type"]).iter_errors(key_values(entity))]


PLACE = SpotPlace(
    "Rue des Lilas 4", "Rue des Lilas", {"type": "Point", "coordinates": [2.98, 50.58]}
)


def finding(phase: str = "ongoing", **changes: Any) -> LongStay:
    base = LongStay(SPOT, ZONE, at(1), True, 200 * H, LEGAL_LIMIT, "ongoing")
    return replace(base, phase=phase, **changes)


def test_alert_entities_validate_against_the_alert_schema() -> None:
    open_ = alert_entity(finding(), PLACE)
    ended = alert_entity(finding("ended", departure=at(201), closed=at(201)))
    issue = SensorIssue(SPOT, ZONE, "silent", at(5), at(8), 30 * H)
    sensor = alert_entity(issue, PLACE)
    for entity in (open_, ended, sensor):
        assert errors(entity) == [], entity
    assert open_["category"]["value"] == "traffic" and open_["subCategory"]["value"] == "carStopped"
    assert open_["alertSource"] == {"type": "Relationship", "object": SPOT}
    assert open_["dateIssued"]["value"]["@value"] == "2026-03-09T09:00:00Z"  # arrival + 168 h
    assert "validTo" not in open_ and ended["validTo"]["value"]["@value"] == "2026-03-10T17:00:00Z"
    assert "R417-12" in open_["description"]["value"] and "@context" not in open_
    assert open_["id"] == ended["id"] == long_stay_alert_id(finding())
    assert sensor["id"] != open_["id"] and "subCategory" not in sensor


def test_the_validator_rejects_what_the_schemas_forbid() -> None:
    """Guard against a validator that accepts everything."""
    entity = alert_entity(finding())
    assert errors({**entity, "category": {"type": "Property", "value": "parking"}})
    assert errors({**entity, "subCategory": {"type": "Property", "value": "longStay"}})
    kpi = kpi_entity(worked_kpis(), "occupancy")
    assert errors({**kpi, "calculationFrequency": {"type": "Property", "value": "often"}})
    bad_period = {"type": "Property", "value": {"from": "2026-03-03T00:00:00Z"}}
    assert errors({**kpi, "calculationPeriod": bad_period})


def worked_kpis() -> Any:
    stays = [stay(SPOT, DAY + 8 * H, DAY + 10.5 * H)]
    return zone_kpis(stays, TWO, DAY, DAY + 24 * H)[ZONE]


def test_kpi_entities_validate_against_the_kpi_schema() -> None:
    entities = kpi_entities(worked_kpis(), zone_name="Rue des Lilas", location=PLACE.location)
    assert [e["id"].split(":")[3] for e in entities] == [
        f"parking-{key}-daily" for key in KPI_METRICS
    ]
    for entity in entities:
        assert errors(entity) == [], entity
    occupancy = entities[0]
    assert occupancy["kpiValue"] == {
        "type": "Property", "value": round(2.5 / 48, 4), "observedAt": "2026-03-04T00:00:00Z",
        "unitCode": "C62",
    }  # fmt: skip
    assert occupancy["calculationPeriod"]["value"] == {"from": "2026-03-03", "to": "2026-03-03"}
    assert entities[2]["kpiValue"]["value"] == 150.0  # minutes
    assert len(entities[3]["kpiValue"]["value"]) == 24
    empty = zone_kpis([], TWO, DAY, DAY + 24 * H)[ZONE]
    with pytest.raises(ValueError, match="no meanDwell"):
        kpi_entity(empty, "meanDwell")
    with pytest.raises(ValueError, match="calculationFrequency"):
        kpi_entity(empty, "occupancy", frequency="often")


# -- enforcement list -------------------------------------------------------------------


def test_enforcement_rows_and_csv() -> None:
    findings = [
        finding(spot=SPOT + "10"),
        finding(spot=SPOT + "2", arrival_seen=False),
        finding("ended", spot=SPOT + "3", departure=at(201), closed=at(201)),
        finding("new", spot=SPOT + "x"),
    ]
    places = {
        SPOT + "10": SpotPlace("Rue des Lilas 10", "Rue des Lilas"),
        SPOT + "2": SpotPlace("Rue des Lilas 2", "Rue des Lilas"),
        SPOT + "x": SpotPlace("=HYPERLINK(1)", "Avenue Foch"),
    }
    rows = enforcement_rows(findings, places)
    assert [r.spot for r in rows] == ["=HYPERLINK(1)", "Rue des Lilas 2", "Rue des Lilas 10"]
    text = enforcement_csv(rows, ZoneInfo("Europe/Paris"))
    table = list(csv.reader(io.StringIO(text)))
    assert table[0] == [
        "street",
        "spot",
        "since",
        "duration",
        "hours",
        "arrival_observed",
        "spot_id",
    ]
    assert table[1][1] == "'=HYPERLINK(1)"  # no formula in a spreadsheet
    assert table[2][:6] == ["Rue des Lilas", "Rue des Lilas 2", "2026-03-02 10:00", "8 d 08 h",
                            "200.0", "no"]  # fmt: skip
    assert table[2][6] == SPOT + "2"


def test_spot_place_reads_a_parking_spot_entity() -> None:
    town_spot = Town(seed=1).entities()
    spot = next(e for e in town_spot if e["type"] == "ParkingSpot")
    place = spot_place(spot)
    assert place.name == spot["name"]["value"] and not place.street[-1].isdigit()
    assert place.location == spot["location"]["value"]
    with_address = {**spot, "address": {"type": "Property", "value": {"streetAddress": "1 Rue X"}}}
    assert spot_place(with_address).street == "1 Rue X"


# -- the demo town's ground truth -------------------------------------------------------


def parking_readings(town: Town, days: int) -> Iterator[tuple[datetime, str, str]]:
    """(time, ParkingSpot id, status) of the town's bay sensors, mapped as the gateway does.

    The same readings as ``town.readings`` filtered to ParkingSpot devices, taken device by
    device (the other 250 devices need not be generated) and merged in time order."""
    end = town.origin + timedelta(days=days)
    streams = []
    for device in devices(town)["devices"]:
        if device["entity_type"] != "ParkingSpot":
            continue
        names = {a["object_id"]: a["name"] for a in device["attributes"]}
        entity = device["entity_name"]
        streams.append(
            [
                (r.time, entity, str(value))
                for r in town.device_readings(device["device_id"], town.origin, end)
                for key, value in r.measures.items()
                if names[key] == "status"
            ]
        )
    return heapq.merge(*streams, key=lambda r: r[0])


def zones_of(town: Town) -> dict[str, str]:
    return {
        e["id"]: e["refParkingSite"]["object"]
        for e in town.entities()
        if e["type"] == "ParkingSpot"
    }


#: The service's clock (newest observation) trails the hour boundary by a few seconds.
SLACK = timedelta(minutes=5)


@pytest.mark.parametrize(
    ("seed", "origin"),
    [(1, None), (2, None), (3, None), (4, datetime(2026, 6, 18, 9, 30, tzinfo=UTC))],
)
def test_the_demo_towns_long_stays_and_stuck_sensors_are_found_exactly(
    seed: int, origin: datetime | None
) -> None:
    """Replays 14 days as the service would (evaluating every simulated hour, persisting and
    resuming its state every 6 h) and compares with ``town.scenario``: long-stay alerts closed
    by a departure are exactly its overstays (R417-12: over 168 h), the stays under the limit
    raise nothing, and the suspect sensors are exactly its stuck ones. Three seeds from the
    default origin (a Monday in January) and one from a Thursday morning in June."""
    town = Town(seed=seed) if origin is None else Town(seed=seed, origin=origin)
    scenario = town.scenario
    zone = zones_of(town)
    states = {spot: SpotState(spot, z) for spot, z in zone.items()}
    opened: dict[tuple[str, datetime], datetime] = {}
    ended: set[tuple[str, datetime, datetime | None]] = set()
    withdrawn: set[str] = set()
    detected: dict[tuple[str, str], datetime] = {}
    now = town.origin
    evaluations = 0

    def evaluate() -> None:
        findings = long_stays(states.values(), now)
        for f in findings:
            if f.phase == "new":
                opened.setdefault((f.spot, f.arrival), now)
            elif f.phase == "ended":
                ended.add((f.spot, f.arrival, f.departure))
            elif f.phase == "withdrawn":
                withdrawn.add(f.spot)
        acknowledge(states, findings)
        for issue in sensor_health(states.values(), now):
            detected.setdefault((issue.spot, issue.kind), now)

    next_hour = town.origin + H
    for moment, spot, status in parking_readings(town, 14):
        if moment >= next_hour:
            evaluate()
            evaluations += 1
            if evaluations % 6 == 0:  # a restart: the state comes back from its JSON
                states = {
                    s: SpotState.from_dict(json.loads(json.dumps(v.to_dict())))
                    for s, v in states.items()
                }
            next_hour += H
        states[spot].feed(moment, status)
        now = moment
    evaluate()

    truth = {(s.spot, s.arrival, s.departure) for s in scenario.overstays}
    assert len(truth) == 3 and ended == truth
    stuck = {s.mode: s for s in scenario.stuck_sensors}
    # The bay stuck on occupied looks like a parked car until the plausibility bound: its
    # alert opens at 168 h like a real one and is withdrawn at 12 days.
    frozen = stuck["occupied"].spot
    assert {spot for spot, _ in opened} == {s.spot for s in scenario.overstays} | {frozen}
    assert withdrawn == {frozen}
    for s in scenario.overstays:  # opened within the hour after the limit was passed
        assert timedelta(0) < opened[(s.spot, s.arrival)] - (s.arrival + LEGAL_LIMIT) <= H + SLACK
    assert all(state.alerted is None for state in states.values())

    kinds = {"occupied": "stuckOccupied", "free": "stuckFree", "silent": "silent"}
    assert set(detected) == {(s.spot, kinds[s.mode]) for s in scenario.stuck_sensors}
    final = {(i.spot, i.kind) for i in sensor_health(states.values(), now)}
    assert final == set(detected)
    rules = HealthRules()
    delays = {
        "silent": rules.silent_after, "free": rules.max_free, "occupied": rules.max_occupied,
    }  # fmt: skip
    for mode, s in stuck.items():  # found within the hour after the rule's threshold
        assert detected[(s.spot, kinds[mode])] - s.since <= delays[mode] + H + SLACK


def test_the_batch_functions_find_the_same_overstays() -> None:
    town = Town(seed=1)
    series: dict[str, list[tuple[datetime, object]]] = {}
    for moment, spot, status in parking_readings(town, 14):
        series.setdefault(spot, []).append((moment, status))
    zone = zones_of(town)
    stays = [s for spot, obs in series.items() for s in stays_from_series(obs, spot, zone[spot])]
    found = {(s.spot, s.arrival, s.departure) for s in overstays(stays)}
    assert found == {(s.spot, s.arrival, s.departure) for s in town.scenario.overstays}
    planted = {x.spot for x in town.scenario.long_stays}
    planted |= {x.spot for x in town.scenario.stuck_sensors if x.mode == "occupied"}
    ordinary = max(s.duration for s in stays if s.spot not in planted)
    assert ordinary < timedelta(hours=72)  # the simulator's README: no ordinary stay that long
