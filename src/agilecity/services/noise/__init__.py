"""The noise service: Lday/Levening/Lnight/Lden per meter and day, exceedances, a noise map.

From ``NoiseLevelObserved`` entities whose ``LAeq`` holds short (1-minute) Leq samples, it
writes one ``KeyPerformanceIndicator`` per meter and day (``kpiValue`` = Lden, with the
period levels, their coverage and the exceedances as further attributes), recomputed from
the history whenever samples of that day arrive. ``/services/noise/map.geojson`` draws a
map on a grid (calibrated road-source propagation when the street network is configured,
else interpolation of the meters). With the buildings configured too, ``exposure.py``
writes a town ``KeyPerformanceIndicator`` per day (residents highly annoyed, END Annex VI
bands) and serves ``facades.geojson`` (levels per floor), ``exposure`` and ``summary``.
The computations live in ``model.py``, ``propagation.py`` and ``facades.py``; see README.md
for their references.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agilecity.broker.broker import QueryParams
from agilecity.broker.representation import RenderOptions
from agilecity.broker.temporal import TemporalParams
from agilecity.services.base import (
    Layer,
    Panel,
    RouteSpec,
    Service,
    ServiceContext,
    Tile,
    Watch,
    setting,
)
from agilecity.services.noise import exposure, model, propagation

KPI_PREFIX = "urn:ngsi-ld:KeyPerformanceIndicator:noise:"


@dataclass(frozen=True)
class NoiseSettings:
    """Settings of the noise service (AGILECITY_NOISE_*, or [service.noise])."""

    timezone: str = setting("Europe/Paris", "Time zone of the day/evening/night periods.")
    day_start: int = setting(7, "Local hour the day period starts (END default 7).")
    day_hours: int = setting(12, "Hours of the day period (END default 12).")
    evening_hours: int = setting(4, "Hours of the evening period (END: 4, may be 2-4).")
    night_hours: int = setting(8, "Hours of the night period (END default 8).")
    min_coverage: float = setting(0.75, "Share of expected samples a period needs (0-1].")
    lden_limit: float = setting(53.0, "Lden threshold, dB (WHO 2018 road traffic: 53).")
    lnight_limit: float = setting(45.0, "Lnight threshold, dB (WHO 2018 road traffic: 45).")
    streets: str = setting(
        "", "GeoJSON file of the street network (LineStrings with a 'kind'), for the map."
    )
    map_cell_m: float = setting(50.0, "Cell size of the noise map grid, metres.")
    buildings: str = setting(
        "", "GeoJSON file of the buildings (Polygons with floors, population), for the "
        "facade levels and the residents exposed; empty: off (needs streets too)."
    )  # fmt: skip


def _periods(settings: NoiseSettings) -> model.Periods:
    return model.Periods(
        day_start=settings.day_start, day_hours=settings.day_hours,
        evening_hours=settings.evening_hours, night_hours=settings.night_hours,
    )  # fmt: skip


def _local_id(entity_id: str) -> str:
    return entity_id.rsplit(":", 1)[-1]


async def samples_of_day(ctx: ServiceContext, entity_id: str, day: date) -> list[model.Sample]:
    """The LAeq samples of one meter over day D's span (07:00 D to 07:00 D+1 local)."""
    settings: NoiseSettings = ctx.settings
    tz = ZoneInfo(settings.timezone)
    bounds = _periods(settings).bounds(day, tz)
    start, end = bounds[0][1], bounds[-1][2] + timedelta(minutes=1)  # samples stamp the end
    temporal = TemporalParams(timerel="between", time_at=start.astimezone(UTC).isoformat(),
                              end_time_at=end.astimezone(UTC).isoformat())  # fmt: skip
    entity = await ctx.broker.history.retrieve(
        ctx.tenant, entity_id, ["LAeq"], temporal, ctx.terms, RenderOptions()
    )
    instances = entity.get("LAeq", [])
    if isinstance(instances, dict):
        instances = [instances]
    return [
        (datetime.fromisoformat(i["observedAt"].replace("Z", "+00:00")), float(i["value"]))
        for i in instances
        if isinstance(i.get("value"), int | float)
    ]


def kpi_entity(
    meter_id: str, indicators: model.DayIndicators, settings: NoiseSettings
) -> dict[str, Any]:
    """The KeyPerformanceIndicator of one meter and day."""
    day = indicators.day.isoformat()
    thresholds = model.Thresholds(lden=settings.lden_limit, lnight=settings.lnight_limit)
    entity: dict[str, Any] = {
        "id": f"{KPI_PREFIX}{_local_id(meter_id)}:{day}",
        "type": "KeyPerformanceIndicator",
        "name": {"type": "Property", "value": f"Lden {_local_id(meter_id)} {day}"},
        "category": {"type": "Property", "value": ["quantitative"]},
        "calculationFrequency": {"type": "Property", "value": "daily"},
        "calculationMethod": {"type": "Property", "value": "automatic"},
        "calculationPeriod": {"type": "Property", "value": {"from": day, "to": day}},
        "refNoiseLevelObserved": {"type": "Relationship", "object": meter_id},
        "complete": {"type": "Property", "value": indicators.complete},
        "coverage": {"type": "Property", "value": round(indicators.coverage, 4)},
    }
    for name, period in (("lday", indicators.day_period), ("levening", indicators.evening),
                         ("lnight", indicators.night)):  # fmt: skip
        entity[f"{name}Coverage"] = {"type": "Property", "value": round(period.coverage, 4)}
        if period.level is not None:
            entity[name] = {"type": "Property", "value": round(period.level, 2), "unitCode": "2N"}
    if indicators.lden is not None:
        entity["kpiValue"] = {"type": "Property", "value": round(indicators.lden, 2),
                              "unitCode": "2N"}  # fmt: skip
    for exceedance in model.exceedances(indicators.lden, indicators.lnight, thresholds):
        if exceedance.exceeded is not None:
            entity[f"{exceedance.indicator.lower()}Exceeded"] = {
                "type": "Property", "value": exceedance.exceeded,
            }  # fmt: skip
    return entity


async def on_changes(ctx: ServiceContext, entities: list[dict[str, Any]]) -> None:
    """Recompute the indicators of every (meter, day) that received samples."""
    settings: NoiseSettings = ctx.settings
    tz, periods = ZoneInfo(settings.timezone), _periods(settings)
    completeness = model.Completeness(min_coverage=settings.min_coverage)
    touched: set[tuple[str, date]] = set()
    for entity in entities:
        for instance in entity.get("LAeq", []):
            stamp = datetime.fromisoformat(instance["observedAt"].replace("Z", "+00:00"))
            touched.add((entity["id"], periods.day_of(stamp - timedelta(seconds=30), tz)))
    results = []
    for meter_id, day in sorted(touched):
        samples = await samples_of_day(ctx, meter_id, day)
        indicators = model.day_indicators(samples, day, tz, periods, completeness)
        results.append(kpi_entity(meter_id, indicators, settings))
    await ctx.write(results)
    await exposure.update_days(ctx, {day for _, day in touched})


async def day_indicators(ctx: ServiceContext, params: dict[str, str]) -> Any:
    """GET /services/noise/days?meter=<id>: the daily indicators written, newest first."""
    query = QueryParams(type="KeyPerformanceIndicator", id_pattern=f"^{KPI_PREFIX}.*",
                        limit=1000)  # fmt: skip
    docs, _ = await ctx.broker.query_entities(ctx.tenant, query, ctx.terms)
    from agilecity.broker.representation import render_entity

    rows = [render_entity(d, ctx.terms, RenderOptions(format="keyValues")) for d in docs]
    rows = [r for r in rows if "refNoiseLevelObserved" in r]  # not the town's exposure KPIs
    if "meter" in params:
        rows = [r for r in rows if r.get("refNoiseLevelObserved") == params["meter"]]
    return sorted(rows, key=lambda r: str(r["id"]), reverse=True)


def _streets(path: str) -> list[propagation.Street]:
    if not path or not Path(path).is_file():
        return []
    collection = json.loads(Path(path).read_text(encoding="utf-8"))
    return [
        propagation.Street(
            str(f["properties"].get("kind", "residential")),
            [tuple(c) for c in f["geometry"]["coordinates"]],
        )  # fmt: skip
        for f in collection.get("features", [])
        if f.get("geometry", {}).get("type") == "LineString"
    ]


async def noise_map(ctx: ServiceContext, params: dict[str, str]) -> Any:
    """GET /services/noise/map.geojson: Lden on a grid, in END 5 dB bands."""
    settings: NoiseSettings = ctx.settings
    meters: list[tuple[float, float, float]] = []
    for doc in await ctx.entities("NoiseLevelObserved"):
        rows = await day_indicators(ctx, {"meter": doc["id"]})
        lden = next((r["kpiValue"] for r in rows if "kpiValue" in r), None)
        location = _location(doc)
        if lden is not None and location is not None:
            meters.append((location[0], location[1], float(lden)))
    if not meters:
        return {"type": "FeatureCollection", "features": [], "method": "none"}
    lons, lats = [m[0] for m in meters], [m[1] for m in meters]
    streets = _streets(settings.streets)
    if streets:
        every = [c for s in streets for c in s.coordinates]
        lons, lats = [c[0] for c in every], [c[1] for c in every]
    spec = propagation.grid_over((min(lons), min(lats), max(lons), max(lats)), settings.map_cell_m)
    if streets and len(meters) >= 2:
        sources = propagation.point_sources(streets, spec.projection, spacing_m=20.0)
        priors = {kind: 65.0 for kind in sources.kinds}
        fit = propagation.calibrate_emission(sources, meters, spec.projection, priors)
        grid = propagation.propagation_map(sources, fit.emission_db_per_m, spec)
        method = f"road sources calibrated on {len(meters)} meters (rms {fit.rms_db:.1f} dB)"
    else:
        grid = propagation.idw_map(meters, spec)
        method = f"inverse-distance interpolation of {len(meters)} meters (energies)"
    collection = propagation.grid_to_geojson(grid)
    collection["method"] = method
    return collection


def _location(doc: dict[str, Any]) -> tuple[float, float] | None:
    for iri, instances in doc.get("attrs", {}).items():
        if iri.endswith("location") and instances:
            geometry = instances[0].get("value", {})
            if geometry.get("type") == "Point":
                lon, lat = geometry["coordinates"][:2]
                return float(lon), float(lat)
    return None


# The colours of 5 dB bands in noise maps (after DIN 45682 / ISO 1996-2 practice).
NOISE_BANDS = (
    (0.0, "#2e7d32"), (45.0, "#7cb342"), (50.0, "#c0ca33"), (55.0, "#fdd835"),
    (60.0, "#fb8c00"), (65.0, "#e53935"), (70.0, "#8e24aa"), (75.0, "#283593"),
)  # fmt: skip

SERVICE = Service(
    name="noise",
    title="Noise indicators and map",
    settings=NoiseSettings,
    watches=(Watch("NoiseLevelObserved", ("LAeq",)),),
    on_changes=on_changes,
    routes=(
        RouteSpec("days", day_indicators, "Daily Lday/Levening/Lnight/Lden per meter", True),
        RouteSpec("map.geojson", noise_map, "Lden map on a grid (GeoJSON, END bands)", True),
        RouteSpec(
            "facades.geojson",
            exposure.facade_collection,
            "Buildings with Lden/Lnight per floor at the most exposed facade",
            True,
        ),
        RouteSpec(
            "exposure",
            exposure.exposure_days,
            "Residents per END band and highly annoyed (2020/367), per day",
            True,
        ),
        RouteSpec(
            "summary",
            exposure.summary,
            "Meters, mean Lden, meters over the limit, highly annoyed: latest day",
            True,
        ),
    ),
    panel=Panel(
        title="noise.title",
        tiles=(
            Tile("noise.lden_mean", "summary", "lden_mean", "dB(A)"),
            Tile("noise.meters_over_lden_limit", "summary", "meters_over_lden_limit"),
            Tile("noise.highly_annoyed", "summary", "highly_annoyed"),
        ),
        layers=(
            Layer(
                "noise.map",
                "level",
                bands=NOISE_BANDS,
                unit="dB(A)",
                route="map.geojson",
                shown=False,
            ),
        ),  # fmt: skip
    ),
)
