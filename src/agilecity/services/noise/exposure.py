"""The noise service's town exposure: façade levels per floor, END Annex VI bands, %HA/%HSD.

For every day D with at least two meters whose Lden is complete, the road-source model
(``facades.py``) is calibrated on the meters' Lden (and, separately, on their Lnight), the
level at the most exposed façade of every building is computed, and one
``KeyPerformanceIndicator`` ``urn:ngsi-ld:KeyPerformanceIndicator:noise:highly-annoyed:<D>``
is written: ``kpiValue`` = residents highly annoyed (Directive (EU) 2020/367), with the
people per END Annex VI band and the calibration as further properties. The geometry part
(streets × buildings × floors) never changes, so it is computed once per process and file
version, off the event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from agilecity.broker.broker import QueryParams
from agilecity.broker.representation import RenderOptions, render_entity
from agilecity.errors import BadRequestDataError
from agilecity.services.base import ServiceContext
from agilecity.services.noise import facades, model, propagation

KPI_PREFIX = "urn:ngsi-ld:KeyPerformanceIndicator:noise:"
EXPOSURE_PREFIX = f"{KPI_PREFIX}highly-annoyed:"
PRIOR_DB_PER_M = 65.0  # start of the calibration for every street kind (as the map's)
METHOD = (
    "ISO 9613-2 point-source divergence integrated along each street segment (3-D, sources "
    "at 0.5 m), emission per street kind calibrated on the meters' levels at 4 m; receivers "
    "2 m in front of the facade nearest each segment, at 1.5 m + 3 m x floor and at 4 m (END "
    "assessment height, used for the bands and %HA); incident levels (no +3 dB facade "
    "reflection); no screening, ground effect or air absorption"
)


@dataclass(frozen=True)
class Geometry:
    """The town's streets and buildings with the façade transfers (computed once)."""

    projection: propagation.LocalProjection
    segments: facades.Segments
    model: facades.FacadeModel
    features: tuple[dict[str, Any], ...]  # the buildings' GeoJSON features, model order
    seconds: float  # time the façade transfers took


_CACHE: dict[tuple[Any, ...], Geometry] = {}


def _version(path: str) -> tuple[str, int, int]:
    stat = os.stat(path)
    return path, stat.st_mtime_ns, stat.st_size


def read_geometry(streets_path: str, buildings_path: str) -> Geometry | None:
    """The façade model of these files (cached per file version); None if either is missing."""
    if not streets_path or not buildings_path:
        return None
    if not Path(streets_path).is_file() or not Path(buildings_path).is_file():
        return None
    key = (_version(streets_path), _version(buildings_path))
    if key in _CACHE:
        return _CACHE[key]
    import time

    streets = [
        propagation.Street(
            str(f["properties"].get("kind", "residential")),
            [(float(c[0]), float(c[1])) for c in f["geometry"]["coordinates"]],
        )  # fmt: skip
        for f in json.loads(Path(streets_path).read_text(encoding="utf-8")).get("features", [])
        if f.get("geometry", {}).get("type") == "LineString"
    ]
    collection = json.loads(Path(buildings_path).read_text(encoding="utf-8"))
    pairs = [(f, facades.building_from_feature(f)) for f in collection.get("features", [])]
    kept = [(f, b) for f, b in pairs if b is not None]
    if not streets or not kept:
        return None
    projection = propagation.LocalProjection.around([c for s in streets for c in s.coordinates])
    segments = facades.street_segments(streets, projection)
    started = time.perf_counter()
    facade_model = facades.facade_model([b for _, b in kept], segments, projection)
    seconds = time.perf_counter() - started
    geometry = Geometry(projection, segments, facade_model, tuple(f for f, _ in kept), seconds)
    _CACHE.clear()  # one town per process in practice: keep only the newest
    _CACHE[key] = geometry
    return geometry


async def load_geometry(ctx: ServiceContext) -> Geometry | None:
    """The configured town's façade model, computed in a worker thread the first time."""
    return await asyncio.to_thread(read_geometry, ctx.settings.streets, ctx.settings.buildings)


@dataclass(frozen=True)
class Meter:
    """A meter's position and day levels (Lnight None when its night is incomplete)."""

    lon: float
    lat: float
    lden: float
    lnight: float | None


@dataclass(frozen=True)
class TownExposure:
    """Levels at the most exposed façades and what they mean for the residents, one day."""

    emission_lden: dict[str, float]
    emission_lnight: dict[str, float] | None
    rms_lden: float
    rms_lnight: float | None
    lden: np.ndarray[Any, np.dtype[np.float64]]  # per building, 4 m, most exposed façade
    lnight: np.ndarray[Any, np.dtype[np.float64]] | None
    population: float
    bands_lden: dict[str, float]
    bands_lnight: dict[str, float] | None
    highly_annoyed: float
    highly_sleep_disturbed: float | None
    meters: int


def _calibrate(
    geometry: Geometry, meters: list[tuple[float, float, float]]
) -> propagation.Calibration:
    xy = geometry.projection.to_metres([(lon, lat) for lon, lat, _ in meters])
    receivers = np.column_stack([xy, np.full(len(xy), propagation.MAP_HEIGHT_M)])
    transfer = facades.segment_transfer(geometry.segments, receivers)
    prior = dict.fromkeys(geometry.segments.kinds, PRIOR_DB_PER_M)
    measured = np.array([level for *_, level in meters], dtype=float)
    return propagation.calibrate_transfer(transfer, geometry.segments.kinds, measured, prior)


def town_exposure(geometry: Geometry, meters: list[Meter]) -> TownExposure:
    """Calibrate on the meters' Lden (and Lnight), then levels, bands, %HA and %HSD."""
    fit = _calibrate(geometry, [(m.lon, m.lat, m.lden) for m in meters])
    lden = geometry.model.assessment_levels(fit.emission_db_per_m)
    night_meters = [(m.lon, m.lat, m.lnight) for m in meters if m.lnight is not None]
    night_fit = _calibrate(geometry, night_meters) if len(night_meters) >= 2 else None
    lnight = (
        None if night_fit is None else geometry.model.assessment_levels(night_fit.emission_db_per_m)
    )
    people = np.array([b.population for b in geometry.model.buildings])
    living = people > 0
    pairs = list(zip(people[living].tolist(), lden[living].tolist(), strict=True))
    night_pairs = (
        None
        if lnight is None
        else list(zip(people[living].tolist(), lnight[living].tolist(), strict=True))
    )
    return TownExposure(
        fit.emission_db_per_m,
        None if night_fit is None else night_fit.emission_db_per_m,
        fit.rms_db,
        None if night_fit is None else night_fit.rms_db,
        lden,
        lnight,
        float(people[living].sum()),
        model.exposure_bands(pairs, model.END_LDEN_EXPOSURE),
        None
        if night_pairs is None
        else model.exposure_bands(night_pairs, model.END_LNIGHT_EXPOSURE),
        model.people_highly_annoyed(pairs),
        None if night_pairs is None else model.people_highly_sleep_disturbed(night_pairs),
        len(meters),
    )


def exposure_entity(day: date, exposure: TownExposure, complete: bool) -> dict[str, Any]:
    """The town's KeyPerformanceIndicator of day D: residents highly annoyed, END bands."""
    d = day.isoformat()

    def prop(value: Any, unit: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "Property", "value": value}
        if unit is not None:
            out["unitCode"] = unit
        return out

    def rounded(values: dict[str, float]) -> dict[str, float]:
        return {key: round(value, 3) for key, value in values.items()}

    entity: dict[str, Any] = {
        "id": f"{EXPOSURE_PREFIX}{d}",
        "type": "KeyPerformanceIndicator",
        "name": prop(f"Residents highly annoyed by road traffic noise {d}"),
        "description": prop(
            "Residents highly annoyed (Commission Directive (EU) 2020/367, Annex III, road "
            "traffic) at the Lden of their building's most exposed facade; people per END "
            "Annex VI band of Lden and Lnight"
        ),
        "category": prop(["quantitative"]),
        "calculationFrequency": prop("daily"),
        "calculationMethod": prop("automatic"),
        "calculationPeriod": prop({"from": d, "to": d}),
        "kpiValue": prop(round(exposure.highly_annoyed, 1)),
        "complete": prop(complete),
        "meters": prop(exposure.meters),
        "population": prop(round(exposure.population, 3)),
        "exposureLden": prop(rounded(exposure.bands_lden)),
        "emissionLden": prop(rounded(exposure.emission_lden), "2N"),
        "calibrationRmsLden": prop(round(exposure.rms_lden, 3), "2N"),
        "method": prop(METHOD),
    }
    if exposure.bands_lnight is not None and exposure.emission_lnight is not None:
        entity["exposureLnight"] = prop(rounded(exposure.bands_lnight))
        entity["emissionLnight"] = prop(rounded(exposure.emission_lnight), "2N")
        entity["calibrationRmsLnight"] = prop(round(exposure.rms_lnight or 0.0, 3), "2N")
    if exposure.highly_sleep_disturbed is not None:
        entity["highlySleepDisturbed"] = prop(round(exposure.highly_sleep_disturbed, 1))
    return entity


async def _kpis(ctx: ServiceContext, pattern: str) -> list[dict[str, Any]]:
    """KeyPerformanceIndicators whose id matches, keyValues, all pages."""
    rows: list[dict[str, Any]] = []
    offset = 0
    while True:
        query = QueryParams(type="KeyPerformanceIndicator", id_pattern=pattern, limit=1000,
                            offset=offset)  # fmt: skip
        docs, _ = await ctx.broker.query_entities(ctx.tenant, query, ctx.terms)
        rows += [render_entity(d, ctx.terms, RenderOptions(format="keyValues")) for d in docs]
        if len(docs) < 1000:
            return rows
        offset += 1000


async def meter_days(ctx: ServiceContext, day: date | None = None) -> list[dict[str, Any]]:
    """The per-meter daily KPIs (of one day, or all), keyValues."""
    suffix = f":{day.isoformat()}$" if day is not None else ""
    rows = await _kpis(ctx, f"^{KPI_PREFIX}.*{suffix}")
    return [r for r in rows if "refNoiseLevelObserved" in r]


def _location(doc: dict[str, Any]) -> tuple[float, float] | None:
    for iri, instances in doc.get("attrs", {}).items():
        if iri.endswith("location") and instances:
            geometry = instances[0].get("value", {})
            if geometry.get("type") == "Point":
                return float(geometry["coordinates"][0]), float(geometry["coordinates"][1])
    return None


def day_complete(rows: list[dict[str, Any]]) -> bool:
    """A day is complete when every meter that reported that day has a complete Lden."""
    return bool(rows) and all(r.get("complete") is True and "kpiValue" in r for r in rows)


async def update_days(ctx: ServiceContext, days: set[date]) -> None:
    """Recompute and write the town exposure KPI of these days (needs 2 complete meters)."""
    geometry = await load_geometry(ctx) if days else None
    if geometry is None:
        return
    located = {doc["id"]: _location(doc) for doc in await ctx.entities("NoiseLevelObserved")}
    entities = []
    for day in sorted(days):
        rows = await meter_days(ctx, day)
        meters = [
            Meter(*where, float(r["kpiValue"]),
                  float(r["lnight"]) if isinstance(r.get("lnight"), int | float) else None)
            for r in rows
            if "kpiValue" in r and (where := located.get(str(r["refNoiseLevelObserved"])))
        ]  # fmt: skip
        if len(meters) >= 2:
            exposure = await asyncio.to_thread(town_exposure, geometry, meters)
            entities.append(exposure_entity(day, exposure, day_complete(rows)))
    await ctx.write(entities)


def _day_param(params: dict[str, str]) -> date | None:
    if "date" not in params:
        return None
    try:
        return date.fromisoformat(params["date"])
    except ValueError:
        raise BadRequestDataError(f"date: {params['date']!r} is not a YYYY-MM-DD day") from None


async def exposure_days(ctx: ServiceContext, params: dict[str, str]) -> Any:
    """GET /services/noise/exposure[?date=D]: the town exposure KPIs, newest first."""
    day = _day_param(params)
    suffix = f"{day.isoformat()}$" if day is not None else ""
    rows = await _kpis(ctx, f"^{EXPOSURE_PREFIX}{suffix}")
    return sorted(rows, key=lambda r: str(r["id"]), reverse=True)


async def latest_complete_day(ctx: ServiceContext) -> tuple[str | None, list[dict[str, Any]]]:
    """The newest day whose meter KPIs are all complete, with those KPIs."""
    by_day: dict[str, list[dict[str, Any]]] = {}
    for row in await meter_days(ctx):
        by_day.setdefault(str(row["calculationPeriod"]["from"]), []).append(row)
    for day in sorted(by_day, reverse=True):
        if day_complete(by_day[day]):
            return day, by_day[day]
    return None, []


async def summary(ctx: ServiceContext, params: dict[str, str]) -> Any:
    """GET /services/noise/summary: the dashboard's figures for the latest complete day."""
    day, rows = await latest_complete_day(ctx)
    levels = [float(r["kpiValue"]) for r in rows]
    town = await exposure_days(ctx, {"date": day}) if day is not None else []
    return {
        "meters": len(rows),
        "lden_mean": round(sum(levels) / len(levels), 2) if levels else None,
        "meters_over_lden_limit": sum(1 for r in rows if r.get("ldenExceeded") is True),
        "highly_annoyed": town[0]["kpiValue"] if town else None,
        "date": day,
    }


async def facade_collection(ctx: ServiceContext, params: dict[str, str]) -> Any:
    """GET /services/noise/facades.geojson[?date=D]: buildings with Lden/Lnight per floor."""
    geometry = await load_geometry(ctx)
    if "date" in params:
        chosen = await exposure_days(ctx, params)
    else:
        day, _ = await latest_complete_day(ctx)
        chosen = await exposure_days(ctx, {"date": day} if day else {})
    if geometry is None or not chosen:
        return {"type": "FeatureCollection", "features": [], "method": "none"}
    kpi = chosen[0]
    emission = {k: float(v) for k, v in kpi["emissionLden"].items()}
    night = kpi.get("emissionLnight")
    floors = geometry.model.floor_levels(emission)
    at_4m = geometry.model.assessment_levels(emission)
    night_floors = (
        geometry.model.floor_levels({k: float(v) for k, v in night.items()}) if night else None
    )
    night_4m = (
        geometry.model.assessment_levels({k: float(v) for k, v in night.items()}) if night else None
    )
    features = []
    for i, source in enumerate(geometry.features):
        props = dict(source.get("properties", {}))
        props["lden_floors"] = [round(float(v), 1) for v in floors[i]]
        props["lden"] = round(float(at_4m[i]), 1)
        props["band"] = model.exposure_label(float(at_4m[i]), model.END_LDEN_EXPOSURE) or "<55"
        if night_floors is not None and night_4m is not None:
            props["lnight_floors"] = [round(float(v), 1) for v in night_floors[i]]
            props["lnight"] = round(float(night_4m[i]), 1)
        features.append({"type": "Feature", "geometry": source["geometry"], "properties": props})
    return {
        "type": "FeatureCollection",
        "features": features,
        "date": kpi["calculationPeriod"]["from"],
        "method": METHOD,
        "floor_heights_m": "1.5 + 3 x floor (floor 0 = ground)",
    }
