"""What the parking service reports, as pure functions: zone KPIs, entities, enforcement list.

:func:`zone_kpis` computes occupancy, dwell time and turnover per zone from stays;
``Alert`` entities report long stays and suspect sensors, ``KeyPerformanceIndicator``
entities the zone KPIs (Smart Data Models, NGSI-LD normalized, core @context only:
no ``@context`` member, attribute names as in the schemas, DateTime values typed), and the
enforcement list for the agents on the street (rows and CSV text).

The Alert schema's ``category`` and ``subCategory`` are closed enums without a parking
value: a long stay is ``traffic`` / ``carStopped`` (the closest: a vehicle left standing on
the public road); a suspect sensor is ``traffic`` without a subCategory (none fits, and it
is optional). Identifiers are deterministic, so rewriting an alert or a KPI is idempotent.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any

from agilecity.services.parking.model import LongStay, SensorIssue, Stay, as_utc

ALERT_CATEGORY = "traffic"
LONG_STAY_SUBCATEGORY = "carStopped"
#: The rule cited in long-stay alerts unless the service names another (municipal order...).
R417_12 = "Code de la route, art. R417-12"
#: ``calculationFrequency`` values the KeyPerformanceIndicator schema allows.
FREQUENCIES = frozenset(
    {"hourly", "daily", "weekly", "monthly", "yearly", "quarterly", "bimonthly", "biweekly"}
)
_ISSUE_TEXT = {
    "silent": "sends no message any more",
    "stuckOccupied": "reports occupied for implausibly long",
    "stuckFree": "reports free for long while its zone's other spots turn over",
}
_SPOT_PREFIX = "urn:ngsi-ld:ParkingSpot:"
_ZONE_PREFIXES = ("urn:ngsi-ld:OnStreetParking:", "urn:ngsi-ld:OffStreetParking:")


@dataclass(frozen=True)
class SpotPlace:
    """Where a spot is, for people: its label, its street, its GeoJSON geometry."""

    name: str
    street: str
    location: dict[str, Any] | None = None


def spot_place(entity: Mapping[str, Any]) -> SpotPlace:
    """The place of a normalized ParkingSpot entity (street: address, else name less bay number)."""
    name = _value(entity.get("name")) or str(entity.get("id", ""))
    address = _value(entity.get("address"))
    street = address.get("streetAddress") if isinstance(address, dict) else None
    if not isinstance(street, str) or not street:
        street = re.sub(r"\s+\d+\s*$", "", str(name))
    location = _value(entity.get("location"))
    return SpotPlace(str(name), street, location if isinstance(location, dict) else None)


def _value(attribute: object) -> Any:
    return attribute.get("value") if isinstance(attribute, dict) else None


def long_stay_alert_id(finding: LongStay) -> str:
    """The Alert id of a stay: one per spot and arrival."""
    spot = _local(finding.spot, (_SPOT_PREFIX,))
    return f"urn:ngsi-ld:Alert:parking-long-stay:{spot}:{_stamp(finding.arrival)}"


def sensor_alert_id(issue: SensorIssue) -> str:
    """The Alert id of a sensor issue: one per spot, kind and start."""
    spot = _local(issue.spot, (_SPOT_PREFIX,))
    return f"urn:ngsi-ld:Alert:parking-sensor-{issue.kind}:{spot}:{_stamp(issue.since)}"


def alert_entity(
    finding: LongStay | SensorIssue, place: SpotPlace | None = None, *, reference: str = R417_12
) -> dict[str, Any]:
    """The normalized Alert entity of a long stay or of a suspect sensor."""
    if isinstance(finding, LongStay):
        entity = _long_stay_alert(finding, place, reference)
    else:
        entity = _sensor_alert(finding, place)
    if place is not None and place.location is not None:
        entity["location"] = {"type": "GeoProperty", "value": place.location}
    if place is not None and place.street:
        entity["address"] = _prop({"streetAddress": place.street})
    return entity


def _long_stay_alert(finding: LongStay, place: SpotPlace | None, reference: str) -> dict[str, Any]:
    where = place.name if place is not None else finding.spot
    at_least = "" if finding.arrival_seen else "at least "
    text = (
        f"Vehicle parked at {where} since {_stamp_text(finding.arrival)}, {at_least}"
        f"{duration_text(finding.duration)}: over the {_hours(finding.limit)} h limit ({reference})"
    )
    if finding.phase == "ended" and finding.departure is not None:
        text += f"; left {_stamp_text(finding.departure)}"
    elif finding.phase == "withdrawn":
        text += "; withdrawn: implausibly long, the sensor is suspect"
    data: dict[str, Any] = {
        "kind": "longStay",
        "phase": finding.phase,
        "arrival": _stamp_text(finding.arrival),
        "arrivalObserved": finding.arrival_seen,
        "durationHours": round(finding.duration / timedelta(hours=1), 2),
        "limitHours": _hours(finding.limit),
        "rule": reference,
    }
    if finding.departure is not None:
        data["departure"] = _stamp_text(finding.departure)
    if finding.zone is not None:
        data["refParkingSite"] = finding.zone
    entity: dict[str, Any] = {
        "id": long_stay_alert_id(finding),
        "type": "Alert",
        "category": _prop(ALERT_CATEGORY),
        "subCategory": _prop(LONG_STAY_SUBCATEGORY),
        "alertSource": {"type": "Relationship", "object": finding.spot},
        "dateIssued": _date_time(finding.over_since),
        "validFrom": _date_time(finding.over_since),
        "severity": _prop("medium"),
        "description": _prop(text),
        "data": _prop(data),
    }
    if finding.closed is not None:
        entity["validTo"] = _date_time(finding.closed)
    return entity


def _sensor_alert(issue: SensorIssue, place: SpotPlace | None) -> dict[str, Any]:
    where = place.name if place is not None else issue.spot
    text = (
        f"Parking sensor at {where} {_ISSUE_TEXT[issue.kind]}: since "
        f"{_stamp_text(issue.since)} ({duration_text(issue.duration)})"
    )
    data: dict[str, Any] = {
        "kind": "sensor",
        "issue": issue.kind,
        "since": _stamp_text(issue.since),
        "durationHours": round(issue.duration / timedelta(hours=1), 2),
    }
    if issue.zone is not None:
        data["refParkingSite"] = issue.zone
    return {
        "id": sensor_alert_id(issue),
        "type": "Alert",
        "category": _prop(ALERT_CATEGORY),
        "alertSource": {"type": "Relationship", "object": issue.spot},
        "dateIssued": _date_time(issue.detected),
        "validFrom": _date_time(issue.since),
        "severity": _prop("low"),
        "description": _prop(text),
        "data": _prop(data),
    }


@dataclass(frozen=True)
class ZoneKpis:
    """Occupancy, dwell time and turnover of one zone over [start, end)."""

    zone: str
    start: datetime
    end: datetime
    spots: int
    #: Occupied spot-time over available spot-time (0..1).
    occupancy: float | None
    #: Arrivals per spot per day.
    turnover: float | None
    #: Mean stay of the cars arriving in the window (clipped at ``end``).
    mean_dwell: timedelta | None
    arrivals: int
    #: Occupancy by local hour of the day (index 0..23; None where the window has no such hour).
    hourly_occupancy: tuple[float | None, ...]
    #: Mean dwell by local hour of arrival (None where no car arrived).
    hourly_dwell: tuple[timedelta | None, ...]


def zone_kpis(
    stays: Iterable[Stay],
    zones: Mapping[str, Collection[str]],
    start: datetime,
    end: datetime,
    *,
    tz: tzinfo = UTC,
    exclude: Collection[str] = (),
) -> dict[str, ZoneKpis]:
    """KPIs per zone (zone -> its spots) over [start, end), stays clipped to the window.

    Occupancy counts every occupied second inside the window; turnover and dwell count
    the cars whose arrival was observed inside it, each dwell clipped at ``end``.
    ``exclude`` drops spots (e.g. suspect sensors) from both the stays and the capacity.
    """
    lo, hi = as_utc(start).timestamp(), as_utc(end).timestamp()
    if hi <= lo:
        raise ValueError("the window must end after it starts")
    excluded = set(exclude)
    zone_of = {s: z for z, spots in zones.items() for s in spots if s not in excluded}
    capacity = {z: sum(1 for s in spots if s not in excluded) for z, spots in zones.items()}
    hour_capacity = _hour_seconds(lo, hi, tz)
    occupied = {z: [0.0] * 24 for z in zones}
    dwells: dict[str, list[list[float]]] = {z: [[] for _ in range(24)] for z in zones}
    for stay in stays:
        zone = zone_of.get(stay.spot)
        if zone is None:
            continue
        a, b = stay.arrival.timestamp(), stay.end.timestamp()
        for hour, seconds in enumerate(_hour_seconds(max(a, lo), min(b, hi), tz)):
            occupied[zone][hour] += seconds
        if stay.arrival_seen and lo <= a < hi:
            dwells[zone][_local_hour(math.floor(a / 900), tz)].append(min(b, hi) - a)
    days = (hi - lo) / 86_400
    out: dict[str, ZoneKpis] = {}
    for zone in zones:
        n = capacity[zone]
        all_dwells = [d for hour in dwells[zone] for d in hour]
        out[zone] = ZoneKpis(
            zone=zone,
            start=as_utc(start),
            end=as_utc(end),
            spots=n,
            occupancy=sum(occupied[zone]) / (n * (hi - lo)) if n else None,
            turnover=len(all_dwells) / n / days if n else None,
            mean_dwell=_mean_seconds(all_dwells),
            arrivals=len(all_dwells),
            hourly_occupancy=tuple(
                occupied[zone][h] / (n * hour_capacity[h]) if n and hour_capacity[h] else None
                for h in range(24)
            ),
            hourly_dwell=tuple(_mean_seconds(dwells[zone][h]) for h in range(24)),
        )
    return out


def _hour_seconds(a: float, b: float, tz: tzinfo) -> list[float]:
    """Seconds of [a, b) (epoch seconds) falling in each local hour of the day.

    Walks UTC quarter hours: every UTC offset in use is a multiple of 15 minutes and
    changes on a quarter hour, so a quarter hour lies in one local hour.
    """
    out = [0.0] * 24
    t = a
    while t < b:
        quarter = math.floor(t / 900)
        step = min(b, (quarter + 1) * 900.0)
        out[_local_hour(quarter, tz)] += step - t
        t = step
    return out


@lru_cache(maxsize=65_536)
def _local_hour(quarter: int, tz: tzinfo) -> int:
    return datetime.fromtimestamp(quarter * 900, tz).hour


def _mean_seconds(values: list[float]) -> timedelta | None:
    return timedelta(seconds=sum(values) / len(values)) if values else None


@dataclass(frozen=True)
class KpiMetric:
    """One KPI the service publishes per zone: how to read it off :class:`ZoneKpis`."""

    key: str
    title: str
    formula: str
    unit: str | None  # UN/CEFACT common code of kpiValue
    value: Callable[[ZoneKpis], Any]


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _minutes(value: timedelta | None) -> float | None:
    return None if value is None else round(value / timedelta(minutes=1), 1)


#: The KPIs per zone, as data (key -> description).
KPI_METRICS: dict[str, KpiMetric] = {
    m.key: m
    for m in (
        KpiMetric("occupancy", "Occupancy rate",
                  "occupied spot-seconds in the period / (spots x seconds of the period)",
                  "C62", lambda k: _round(k.occupancy, 4)),
        KpiMetric("turnover", "Turnover (vehicles per spot per day)",
                  "arrivals observed in the period / spots / days of the period",
                  None, lambda k: _round(k.turnover, 3)),
        KpiMetric("meanDwell", "Mean dwell time (minutes)",
                  "mean of (min(departure, end) - arrival) over the arrivals in the period",
                  "MIN", lambda k: _minutes(k.mean_dwell)),
        KpiMetric("hourlyOccupancy", "Occupancy rate by hour of the day",
                  "occupancy of each local hour 0..23 over the period (null: hour absent)",
                  "C62", lambda k: [_round(v, 4) for v in k.hourly_occupancy]),
        KpiMetric("hourlyDwell", "Mean dwell time by hour of arrival (minutes)",
                  "mean dwell of the cars arriving in each local hour 0..23 (null: none)",
                  "MIN", lambda k: [_minutes(v) for v in k.hourly_dwell]),
    )
}  # fmt: skip


def kpi_entity(
    kpis: ZoneKpis,
    metric: str,
    *,
    zone_name: str | None = None,
    frequency: str = "daily",
    tz: tzinfo = UTC,
    location: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The normalized KeyPerformanceIndicator of one metric of one zone and period.

    One entity per (metric, frequency, zone): each period updates ``kpiValue`` (observedAt:
    the period's end) and ``calculationPeriod``, so the temporal history holds the series.
    Raises ValueError when the period has no value for the metric (e.g. no arrival).
    """
    description = KPI_METRICS[metric]
    if frequency not in FREQUENCIES:
        raise ValueError(f"calculationFrequency must be one of {sorted(FREQUENCIES)}")
    value = description.value(kpis)
    if value is None:
        raise ValueError(f"no {metric} for zone {kpis.zone} over the period")
    area = zone_name or kpis.zone
    kpi_value: dict[str, Any] = {
        "type": "Property",
        "value": value,
        "observedAt": _stamp_text(kpis.end),
    }
    if description.unit is not None:
        kpi_value["unitCode"] = description.unit
    last_day = (kpis.end - timedelta(microseconds=1)).astimezone(tz).date()
    entity: dict[str, Any] = {
        "id": (
            f"urn:ngsi-ld:KeyPerformanceIndicator:parking-{metric}-{frequency}:"
            f"{_local(kpis.zone, _ZONE_PREFIXES)}"
        ),
        "type": "KeyPerformanceIndicator",
        "name": _prop(f"{description.title} — {area}"),
        "description": _prop(
            f"{description.title} of {kpis.spots} on-street spots, "
            f"{_stamp_text(kpis.start)} to {_stamp_text(kpis.end)}"
        ),
        "category": _prop(["quantitative"]),
        "kpiValue": kpi_value,
        "calculationPeriod": _prop(
            {"from": kpis.start.astimezone(tz).date().isoformat(), "to": last_day.isoformat()}
        ),
        "calculationFrequency": _prop(frequency),
        "calculationMethod": _prop("automatic"),
        "calculationFormula": _prop(description.formula),
        "aggregatedData": _prop([{"entityType": "ParkingSpot", "attrs": ["status"]}]),
        "process": _prop("On-street parking"),
        "area": _prop(area),
        "seeAlso": _prop([kpis.zone]),
    }
    if location is not None:
        entity["location"] = {"type": "GeoProperty", "value": location}
    return entity


def kpi_entities(
    kpis: ZoneKpis,
    *,
    zone_name: str | None = None,
    frequency: str = "daily",
    tz: tzinfo = UTC,
    location: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Every KPI entity of a zone and period that has a value."""
    return [
        kpi_entity(kpis, key, zone_name=zone_name, frequency=frequency, tz=tz, location=location)
        for key, metric in KPI_METRICS.items()
        if metric.value(kpis) is not None
    ]


@dataclass(frozen=True)
class EnforcementRow:
    """One car for the agents to check: where, since when, for how long."""

    street: str
    spot: str
    spot_id: str
    since: datetime
    duration: timedelta
    #: True when the arrival was not observed (the car was there before the history).
    at_least: bool


def enforcement_rows(
    findings: Iterable[LongStay], places: Mapping[str, SpotPlace] | None = None
) -> list[EnforcementRow]:
    """The cars still parked over the limit (new or ongoing), by street and spot."""
    places = places or {}
    rows = []
    for f in findings:
        if f.phase not in ("new", "ongoing"):
            continue
        place = places.get(f.spot) or SpotPlace(f.spot, "")
        rows.append(
            EnforcementRow(
                place.street, place.name, f.spot, f.arrival, f.duration, not f.arrival_seen
            )
        )
    return sorted(rows, key=lambda r: (_natural(r.street), _natural(r.spot), r.since))


ENFORCEMENT_COLUMNS = (
    "street",
    "spot",
    "since",
    "duration",
    "hours",
    "arrival_observed",
    "spot_id",
)


def enforcement_csv(rows: Iterable[EnforcementRow], tz: tzinfo = UTC) -> str:
    """The enforcement list as CSV text (RFC 4180, header row, times in ``tz``)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(ENFORCEMENT_COLUMNS)
    for r in rows:
        writer.writerow([
            _cell(r.street),
            _cell(r.spot),
            r.since.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
            duration_text(r.duration),
            f"{r.duration / timedelta(hours=1):.1f}",
            "no" if r.at_least else "yes",
            _cell(r.spot_id),
        ])  # fmt: skip
    return out.getvalue()


def duration_text(duration: timedelta) -> str:
    """``8 d 03 h`` (whole hours, rounded down)."""
    hours = int(duration / timedelta(hours=1))
    return f"{hours // 24} d {hours % 24:02d} h"


def _cell(text: str) -> str:
    # A spreadsheet runs a cell starting with = + - @ as a formula (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _natural(text: str) -> list[tuple[int, Any]]:
    return [(0, int(p)) if p.isdigit() else (1, p.casefold()) for p in re.split(r"(\d+)", text)]


def _prop(value: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value}


def _date_time(moment: datetime) -> dict[str, Any]:
    return _prop({"@type": "DateTime", "@value": _stamp_text(moment)})


def _stamp_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _hours(duration: timedelta) -> float:
    hours = duration / timedelta(hours=1)
    return int(hours) if hours == int(hours) else round(hours, 2)


def _local(entity_id: str, prefixes: tuple[str, ...]) -> str:
    for prefix in prefixes:
        if entity_id.startswith(prefix):
            return entity_id[len(prefix) :]
    return entity_id
