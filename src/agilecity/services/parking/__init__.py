"""The parking service: long-stay ("voiture ventouse") detection, zone KPIs, sensor health.

It follows ``ParkingSpot.status`` (with ``observedAt``) and keeps one state machine per
spot (``model.SpotState``) in its saved state. Its clock is the newest observation seen,
so it runs unchanged on accelerated demo time. It writes Smart Data Models ``Alert``
entities (long stays over the zone's limit — France R417-12: more than 7 days — opened,
updated while the car stays, closed when it leaves; suspect sensors) and, hourly,
``KeyPerformanceIndicator`` entities per zone (occupancy, dwell time, turnover). Routes:
the enforcement list (JSON and CSV, staff only) and the zone KPIs (public).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agilecity.broker.broker import QueryParams
from agilecity.broker.representation import RenderOptions, render_entity
from agilecity.services.base import (
    Job,
    Layer,
    Panel,
    RouteSpec,
    Service,
    ServiceContext,
    Table,
    Tile,
    Watch,
    setting,
)
from agilecity.services.parking import entities as out
from agilecity.services.parking import model


@dataclass(frozen=True)
class ParkingSettings:
    """Settings of the parking service (AGILECITY_PARKING_*, or [service.parking])."""

    limit_hours: float = setting(168.0, "Longest legal stay, hours (France R417-12: 7 days).")
    zone_limits: str = setting(
        "", "Per-zone limits by municipal order: 'urn:...:OnStreetParking:x=48,...' (hours)."
    )
    heartbeat_minutes: float = setting(60.0, "How often a healthy sensor re-sends its status.")
    silent_tolerance: float = setting(3.0, "A sensor is silent after this many heartbeats.")
    max_occupied_days: float = setting(
        12.0, "Occupied longer than this: a suspect sensor, not a stay (above every limit)."
    )
    max_free_days: float = setting(7.0, "Free longer than this in a busy zone: suspect sensor.")
    timezone: str = setting("Europe/Paris", "Time zone of the hourly KPIs.")


def _rules(settings: ParkingSettings) -> model.HealthRules:
    return model.HealthRules(
        heartbeat=timedelta(minutes=settings.heartbeat_minutes),
        tolerance=settings.silent_tolerance,
        max_occupied=timedelta(days=settings.max_occupied_days),
        max_free=timedelta(days=settings.max_free_days),
    )


def _limits(settings: ParkingSettings) -> dict[str, timedelta]:
    limits = {}
    for item in settings.zone_limits.split(","):
        zone, sep, hours = item.rpartition("=")
        if sep:
            limits[zone.strip()] = timedelta(hours=float(hours))
    return limits


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _places(ctx: ServiceContext) -> tuple[dict[str, out.SpotPlace], dict[str, str]]:
    """Each spot's place (name, street, location) and zone (refParkingSite)."""
    places: dict[str, out.SpotPlace] = {}
    zones: dict[str, str] = {}
    for doc in await ctx.entities("ParkingSpot"):
        entity = render_entity(doc, ctx.terms, RenderOptions())
        places[entity["id"]] = out.spot_place(entity)
        site = entity.get("refParkingSite")
        if isinstance(site, dict) and isinstance(site.get("object"), str):
            zones[entity["id"]] = site["object"]
    return places, zones


async def on_changes(ctx: ServiceContext, entities: list[dict[str, Any]]) -> None:
    """Feed the new status observations, then write the alerts they lead to."""
    settings: ParkingSettings = ctx.settings
    saved = ctx.state.get("spots", {})
    states = {spot: model.SpotState.from_dict(data) for spot, data in saved.items()}
    places, zones = await _places(ctx)
    clock = ctx.state.get("clock")
    observations = sorted(
        (instance["observedAt"], entity["id"], instance.get("value"))
        for entity in entities for instance in entity.get("status", [])
    )  # fmt: skip
    if not observations and clock is None:
        return
    rules = _rules(settings)
    limit = timedelta(hours=settings.limit_hours)
    alerts: dict[str, dict[str, Any]] = {}
    fed: dict[str, model.SpotState] = {}

    def evaluate(at: datetime, spots: dict[str, model.SpotState]) -> list[model.LongStay]:
        found = model.long_stays(spots.values(), at, _limits(settings), default_limit=limit,
                                 rules=rules)  # fmt: skip
        for finding in found:
            alerts[out.long_stay_alert_id(finding)] = out.alert_entity(
                finding, places.get(finding.spot)
            )
        model.acknowledge(states, found)
        return found

    # Evaluate as the observations go, every simulated hour, so a whole history delivered at
    # once (a backfill, a catch-up after downtime) opens and closes alerts as it happened.
    next_check: datetime | None = None
    for observed_at, spot, value in observations:
        at = _when(observed_at)
        if next_check is not None and at >= next_check:
            evaluate(next_check, fed)
        if next_check is None or at >= next_check:
            next_check = at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        state = states.setdefault(spot, model.SpotState(spot, zones.get(spot)))
        fed[spot] = state
        state.feed(at, value)
        clock = max(clock or observed_at, observed_at)
    assert clock is not None
    now = _when(clock)
    findings = evaluate(now, states)
    issues = model.sensor_health(states.values(), now, rules)
    alerts.update({out.sensor_alert_id(i): out.alert_entity(i, places.get(i.spot)) for i in issues})
    open_issues = {out.sensor_alert_id(i) for i in issues}
    stamp = {"type": "Property", "value": {"@type": "DateTime", "@value": clock}}
    for gone in set(ctx.state.get("open_issues", [])) - open_issues:  # resolved: close them
        alerts[gone] = {"id": gone, "type": "Alert", "validTo": stamp}
    await ctx.write(list(alerts.values()))
    ctx.state.update(
        spots={spot: state.to_dict() for spot, state in states.items()},
        clock=clock, open_issues=sorted(open_issues),
        findings=[_finding_row(f, places) for f in findings if f.phase in ("new", "ongoing")],
    )  # fmt: skip


def _finding_row(finding: model.LongStay, places: dict[str, out.SpotPlace]) -> dict[str, Any]:
    (row,) = out.enforcement_rows([finding], places)
    return {"street": row.street, "spot": row.spot, "since": finding.arrival.isoformat(),
            "hours": round(finding.duration / timedelta(hours=1), 1),
            "arrivalObserved": finding.arrival_seen, "entity": finding.spot}  # fmt: skip


async def enforcement(ctx: ServiceContext, params: dict[str, str]) -> Any:
    """GET /services/parking/enforcement: cars over the limit now (street, spot, since, hours)."""
    rows: list[dict[str, Any]] = ctx.state.get("findings", [])
    return sorted(rows, key=lambda r: (-r["hours"], r["spot"]))


async def enforcement_csv(ctx: ServiceContext, params: dict[str, str]) -> Any:
    """GET /services/parking/enforcement.csv: the same list for a spreadsheet."""
    saved = ctx.state.get("spots", {})
    states = {spot: model.SpotState.from_dict(data) for spot, data in saved.items()}
    places, _ = await _places(ctx)
    settings: ParkingSettings = ctx.settings
    clock = ctx.state.get("clock")
    if clock is None:
        return out.enforcement_csv([]), "text/csv; charset=utf-8"
    findings = model.long_stays(
        states.values(), _when(clock), _limits(settings),
        default_limit=timedelta(hours=settings.limit_hours), rules=_rules(settings),
    )  # fmt: skip
    rows = out.enforcement_rows(findings, places)
    return out.enforcement_csv(rows, ZoneInfo(settings.timezone)), "text/csv; charset=utf-8"


async def zone_indicators(ctx: ServiceContext) -> None:
    """Hourly job: occupancy, dwell and turnover per zone over the last 24 h, as KPIs."""
    clock = ctx.state.get("clock")
    if clock is None:
        return
    settings: ParkingSettings = ctx.settings
    end = _when(clock)
    start = end - timedelta(hours=24)
    places, zones = await _places(ctx)
    stays: list[model.Stay] = []
    from agilecity.broker.temporal import TemporalParams

    temporal = TemporalParams(timerel="between", time_at=(start - timedelta(days=14)).isoformat(),
                              end_time_at=end.isoformat())  # fmt: skip
    offset = 0
    while True:
        selection = QueryParams(type="ParkingSpot", attrs=["status"], limit=100, offset=offset)
        result = await ctx.broker.history.query(
            ctx.tenant, selection, temporal, ctx.terms, RenderOptions()
        )
        for entity in result.entities:
            series = [(_when(i["observedAt"]), i.get("value")) for i in entity.get("status", [])]
            stays += model.stays_from_series(series, entity["id"], zones.get(entity["id"]))
        if len(result.entities) < 100:
            break
        offset += 100
    by_zone: dict[str, list[str]] = {}
    for spot, zone in zones.items():
        by_zone.setdefault(zone, []).append(spot)
    suspects = {i.spot for i in model.sensor_health(
        [model.SpotState.from_dict(d) for d in ctx.state.get("spots", {}).values()], end,
        _rules(settings))}  # fmt: skip
    kpis = out.zone_kpis(stays, by_zone, start, end, tz=ZoneInfo(settings.timezone),
                         exclude=suspects)  # fmt: skip
    entities = []
    for values in kpis.values():
        entities += out.kpi_entities(values, tz=ZoneInfo(settings.timezone))
    await ctx.write(entities)
    ctx.state["kpi_until"] = clock


async def zone_kpi_list(ctx: ServiceContext, params: dict[str, str]) -> Any:
    """GET /services/parking/zones: the zone KPI entities (keyValues)."""
    query = QueryParams(type="KeyPerformanceIndicator",
                        id_pattern=f"^{PARKING_KPI}", limit=1000)  # fmt: skip
    docs, _ = await ctx.broker.query_entities(ctx.tenant, query, ctx.terms)
    return [render_entity(d, ctx.terms, RenderOptions(format="keyValues")) for d in docs]


PARKING_KPI = "urn:ngsi-ld:KeyPerformanceIndicator:parking"


async def summary(ctx: ServiceContext, params: dict[str, str]) -> Any:
    """GET /services/parking/summary: spots followed, occupied now, long stays, suspects."""
    spots = [model.SpotState.from_dict(d) for d in ctx.state.get("spots", {}).values()]
    suspects = set(ctx.state.get("open_issues", []))
    known = [s for s in spots if s.status in ("free", "occupied")]
    occupied = sum(1 for s in known if s.status == "occupied")
    return {
        "spots": len(spots),
        "occupied": occupied,
        "occupancy": round(100.0 * occupied / len(known), 1) if known else None,
        "long_stays": len(ctx.state.get("findings", [])),
        "suspect_sensors": len(suspects),
        "clock": ctx.state.get("clock"),
    }


SERVICE = Service(
    name="parking",
    title="Parking: long stays, occupancy, sensor health",
    settings=ParkingSettings,
    watches=(Watch("ParkingSpot", ("status",)),),
    on_changes=on_changes,
    jobs=(Job("zone indicators", 3600.0, zone_indicators),),
    routes=(
        RouteSpec("enforcement", enforcement, "Cars over the limit now (staff)"),
        RouteSpec("enforcement.csv", enforcement_csv, "The enforcement list as CSV (staff)"),
        RouteSpec("zones", zone_kpi_list, "Occupancy, dwell time, turnover per zone", True),
        RouteSpec("summary", summary, "Spots, occupancy now, long stays, suspect sensors", True),
    ),
    panel=Panel(
        title="parking.title",
        tiles=(
            Tile("parking.occupancy", "summary", "occupancy", "%"),
            Tile("parking.long_stays", "summary", "long_stays"),
            Tile("parking.suspect_sensors", "summary", "suspect_sensors"),
        ),
        # open alerts (long stays, suspect sensors): staff only, Alert is not a public type
        layers=(
            Layer(
                "Alert",
                "severity",
                q="!validTo",
                colours=(("medium", "#c62828"), ("low", "#6e7781")),
            ),
        ),
        tables=(Table("parking.enforcement", "enforcement", ("street", "spot", "since", "hours")),),
    ),
)
