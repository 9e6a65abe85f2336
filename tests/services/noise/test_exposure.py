"""The noise service's town exposure on the demo town, checked against recomputations.

References coded here independently of the service: Commission Directive (EU) 2020/367,
Annex III, road traffic %HA = 78.9270 − 3.1162·Lden + 0.0342·Lden² (over Lden 40-80 dB, see
the README); END Annex VI 1.5 bands of Lden 55-59 ... >=75 and Lnight 50-54 ... >=70;
ISO 9613-2 point sources (Adiv = 20·lg d + 11) every 0.5 m along the streets, summed at a
receiver 2 m in front of the façade point nearest each street segment (found by shapely).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import shapely.geometry
import shapely.ops
from tests.conftest import running_app

from agilecity.demo import DemoOptions, DemoTown
from agilecity.ingest.simulator import Town
from agilecity.ingest.simulator.command import write_geography
from agilecity.settings import Settings

BASE = "/ngsi-ld/v1"
PARIS = ZoneInfo("Europe/Paris")
EARTH_RADIUS_M = 6_371_008.8


def percent_highly_annoyed(lden: float) -> float:
    """2020/367 Annex III road traffic, applied over Lden 40-80 dB (held at 80 above)."""
    if lden < 40.0:
        return 0.0
    x = min(lden, 80.0)
    return 78.9270 - 3.1162 * x + 0.0342 * x * x


def band(level: float, bounds: tuple[int, ...]) -> str | None:
    shown = round(level, 1)
    if shown < bounds[0]:
        return None
    for lower, upper in zip(bounds, bounds[1:], strict=False):
        if shown < upper:
            return f"{lower}-{upper - 1}"
    return f">={bounds[-1]}"


def brute_force_level(
    ring: list[list[float]], streets: list[dict[str, Any]], emission: dict[str, float],
    height_m: float, centre: tuple[float, float],
) -> float:  # fmt: skip
    """The ground-floor façade level from point sources every 0.5 m (independent code)."""
    lon0, lat0 = centre
    kx = math.radians(1) * EARTH_RADIUS_M * math.cos(math.radians(lat0))
    ky = math.radians(1) * EARTH_RADIUS_M

    def xy(c: list[float]) -> tuple[float, float]:
        return ((c[0] - lon0) * kx, (c[1] - lat0) * ky)

    outline = shapely.geometry.Polygon([xy(c) for c in ring]).exterior
    energy = 0.0
    for street in streets:
        a, b = (xy(c) for c in street["geometry"]["coordinates"])
        line = shapely.geometry.LineString([a, b])
        near_facade, near_street = shapely.ops.nearest_points(outline, line)
        gap = near_facade.distance(near_street)
        step = min(2.0, gap) / gap if gap > 0 else 0.0
        rx = near_facade.x + (near_street.x - near_facade.x) * step
        ry = near_facade.y + (near_street.y - near_facade.y) * step
        pieces = max(1, math.ceil(line.length / 0.5))
        power = 10 ** (emission[street["properties"]["kind"]] / 10) * line.length / pieces
        for i in range(pieces):
            t = (i + 0.5) / pieces
            sx, sy = a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])
            d2 = (sx - rx) ** 2 + (sy - ry) ** 2 + (height_m - 0.5) ** 2
            energy += power / 10 ** (11 / 10) / max(d2, 1.0)  # Lp = LW − 20·lg d − 11
    return 10 * math.log10(energy)


async def wait_for(client: Any, entity_id: str) -> dict[str, Any]:
    """The entity once complete (the service runs beside the backfill and catches up)."""
    found: dict[str, Any] = {}
    for _ in range(600):
        r = await client.get(f"{BASE}/entities/{entity_id}", params={"options": "keyValues"})
        found = r.json() if r.status_code == 200 else {}
        if found.get("complete"):
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"{entity_id} never complete: {found}")


async def recompute_summary(client: Any) -> dict[str, Any]:
    """The summary from the per-meter and town KPIs read through the NGSI-LD API."""
    r = await client.get(f"{BASE}/entities", params={
        "type": "KeyPerformanceIndicator", "options": "keyValues", "limit": 1000})  # fmt: skip
    by_day: dict[str, list[dict[str, Any]]] = {}
    for e in r.json():
        if "refNoiseLevelObserved" in e:
            by_day.setdefault(e["calculationPeriod"]["from"], []).append(e)
    latest = max(d for d, rows in by_day.items() if all(e.get("complete") for e in rows))
    rows = by_day[latest]
    town_id = f"urn:ngsi-ld:KeyPerformanceIndicator:noise:highly-annoyed:{latest}"
    town = (await client.get(f"{BASE}/entities/{town_id}", params={"options": "keyValues"})).json()
    return {
        "meters": len(rows),
        "lden_mean": round(sum(e["kpiValue"] for e in rows) / len(rows), 2),
        "meters_over_lden_limit": sum(e["kpiValue"] > 53.0 for e in rows),
        "highly_annoyed": town.get("kpiValue"),
        "date": latest,
    }


async def test_facades_exposure_and_summary_on_the_demo_town(
    settings_factory: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "town"
    write_geography(Town(11), folder)
    monkeypatch.setenv("AGILECITY_NOISE_STREETS", str(folder / "streets.geojson"))
    monkeypatch.setenv("AGILECITY_NOISE_BUILDINGS", str(folder / "buildings.geojson"))
    buildings = json.loads((folder / "buildings.geojson").read_text())["features"]
    streets = json.loads((folder / "streets.geojson").read_text())["features"]
    settings = settings_factory(gateway=True, mqtt_port=1, services="noise")
    async with running_app(settings) as (app, client):
        demo = DemoTown(app, settings, DemoOptions(seed=11, backfill_days=2.2, duration=0))
        _, start = await demo.prepare(progress=None)
        day = (start.astimezone(PARIS) - timedelta(days=1, hours=7)).date()  # a whole day
        kpi = await wait_for(
            client, f"urn:ngsi-ld:KeyPerformanceIndicator:noise:highly-annoyed:{day}"
        )
        assert kpi["type"] == "KeyPerformanceIndicator" and kpi["meters"] == 10
        assert kpi["calibrationRmsLden"] < 6.0  # the model explains the meters (dB)

        # the façade route: every building, one level per floor, ground floor loudest
        r = await client.get("/services/noise/facades.geojson", params={"date": day.isoformat()})
        collection = r.json()
        assert r.status_code == 200 and collection["date"] == day.isoformat()
        features = collection["features"]
        assert [f["properties"]["id"] for f in features] == [
            b["properties"]["id"] for b in buildings
        ]
        for feature in features:
            props = feature["properties"]
            floors = props["lden_floors"]
            assert len(floors) == props["floors"] and len(props["lnight_floors"]) == props["floors"]
            assert all(a >= b for a, b in zip(floors, floors[1:], strict=False))
            if len(floors) > 1:  # 4 m lies between the 1.5 m and 4.5 m receivers
                assert floors[1] - 0.05 <= props["lden"] <= floors[0] + 0.05
            assert props["lnight"] < props["lden"]

        # the loudest building's ground floor against independent point-source code
        loudest = max(
            range(len(features)), key=lambda i: features[i]["properties"]["lden_floors"][0]
        )
        every = [c for s in streets for c in s["geometry"]["coordinates"]]
        centre = ((min(c[0] for c in every) + max(c[0] for c in every)) / 2,
                  (min(c[1] for c in every) + max(c[1] for c in every)) / 2)  # fmt: skip
        expected = brute_force_level(buildings[loudest]["geometry"]["coordinates"][0], streets,
                                     kpi["emissionLden"], 1.5, centre)  # fmt: skip
        assert features[loudest]["properties"]["lden_floors"][0] == pytest.approx(expected, abs=0.1)

        # the exposure KPI: bands and highly annoyed recomputed from the façade levels
        people = [(f["properties"]["population"], f["properties"]) for f in features]
        living = [(n, p) for n, p in people if n > 0]
        assert kpi["population"] == sum(b["properties"]["population"] for b in buildings)
        annoyed = sum(n * percent_highly_annoyed(p["lden"]) / 100 for n, p in living)
        assert kpi["kpiValue"] == pytest.approx(annoyed, abs=0.1 + 0.01 * annoyed / 100)
        for key, bounds, level in (("exposureLden", (55, 60, 65, 70, 75), "lden"),
                                   ("exposureLnight", (50, 55, 60, 65, 70), "lnight")):  # fmt: skip
            counted: dict[str, float] = {}
            for n, p in living:
                label = band(p[level], bounds)
                if label is not None:
                    counted[label] = counted.get(label, 0) + n
            assert {k: v for k, v in kpi[key].items() if v} == pytest.approx(counted, abs=1e-6)
        assert kpi["exposureLden"].keys() == {"55-59", "60-64", "65-69", "70-74", ">=75"}

        # queryable as plain NGSI-LD, and the exposure route answers the same
        r = await client.get(f"{BASE}/entities", params={
            "type": "KeyPerformanceIndicator", "q": f"kpiValue=={kpi['kpiValue']}",
            "options": "keyValues"})  # fmt: skip
        assert kpi["id"] in [e["id"] for e in r.json()]
        route = (await client.get("/services/noise/exposure", params={"date": str(day)})).json()
        assert [k["id"] for k in route] == [kpi["id"]] and route[0]["kpiValue"] == kpi["kpiValue"]
        assert (
            await client.get("/services/noise/exposure", params={"date": "x"})
        ).status_code == 400

        # the summary against a recomputation from the NGSI-LD API (once the service is idle)
        expected_summary: dict[str, Any] = {}
        summary: dict[str, Any] = {}
        for _ in range(100):
            expected_summary = await recompute_summary(client)
            summary = (await client.get("/services/noise/summary")).json()
            if summary == expected_summary:
                break
            await asyncio.sleep(0.2)
        assert set(summary) == {"meters", "lden_mean", "meters_over_lden_limit", "highly_annoyed",
                                "date"}  # fmt: skip
        assert summary == expected_summary and summary["meters"] == 10
        assert date.fromisoformat(summary["date"]) >= day and summary["highly_annoyed"] > 0
        days = (await client.get("/services/noise/days")).json()
        assert days and all("refNoiseLevelObserved" in d for d in days)
