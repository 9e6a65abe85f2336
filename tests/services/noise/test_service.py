"""The noise service on the demo town: Lden per meter matches a recomputation from history.

The reference here is coded independently of the service: the Environmental Noise
Directive 2002/49/EC Annex I formula over the raw LAeq samples read back through the
temporal API (day 07-19, evening 19-23 +5 dB, night 23-07 +10 dB, Europe/Paris).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tests.conftest import running_app

from agilecity.demo import DemoOptions, DemoTown
from agilecity.settings import Settings

BASE = "/ngsi-ld/v1"
PARIS = ZoneInfo("Europe/Paris")


def reference_lden(samples: list[tuple[datetime, float]], day: date) -> float:
    """END Annex I Lden from 1-minute samples stamped at the end of their minute."""

    def local(hour: int, plus_days: int = 0) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=PARIS) + timedelta(
            days=plus_days, hours=hour
        )  # wall-clock hours of day D (no DST change in the test's span matters here)

    spans = {"day": (local(7), local(19)), "evening": (local(19), local(23)),
             "night": (local(23), local(7, 1))}  # fmt: skip
    levels = {}
    for name, (start, end) in spans.items():
        inside = [v for t, v in samples if start <= t - timedelta(seconds=30) < end]
        levels[name] = 10 * math.log10(sum(10 ** (v / 10) for v in inside) / len(inside))
    return 10 * math.log10(
        (12 * 10 ** (levels["day"] / 10) + 4 * 10 ** ((levels["evening"] + 5) / 10)
         + 8 * 10 ** ((levels["night"] + 10) / 10)) / 24
    )  # fmt: skip


async def test_lden_per_meter_matches_the_history(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(gateway=True, mqtt_port=1, services="noise")
    async with running_app(settings) as (app, client):
        demo = DemoTown(app, settings, DemoOptions(seed=11, backfill_days=2.2, duration=0))
        town, start = await demo.prepare(progress=None)
        day = (start.astimezone(PARIS) - timedelta(days=1, hours=7)).date()  # a whole day
        meter = town.by_id["nm-01"].entity_id
        kpi_id = f"urn:ngsi-ld:KeyPerformanceIndicator:noise:{meter.rsplit(':', 1)[-1]}:{day}"
        kpi: dict[str, Any] = {}
        for _ in range(300):  # the service runs beside the backfill and catches up
            r = await client.get(f"{BASE}/entities/{kpi_id}", params={"options": "keyValues"})
            kpi = r.json() if r.status_code == 200 else {}
            if kpi.get("complete"):
                break
            await asyncio.sleep(0.2)
        assert kpi["complete"] is True and kpi["refNoiseLevelObserved"] == meter
        lo = datetime(day.year, day.month, day.day, 6, tzinfo=PARIS).astimezone(UTC)
        hi = lo + timedelta(hours=26)
        r = await client.get(
            f"{BASE}/temporal/entities/{meter}",
            params={"attrs": "LAeq", "timerel": "between", "timeAt": lo.isoformat(),
                    "endTimeAt": hi.isoformat()},
        )  # fmt: skip
        samples = [(datetime.fromisoformat(i["observedAt"].replace("Z", "+00:00")), i["value"])
                   for i in r.json()["LAeq"]]  # fmt: skip
        assert len(samples) > 1400
        assert abs(kpi["kpiValue"] - reference_lden(samples, day)) < 0.01
        # the daily list and the map answer
        days = (await client.get("/services/noise/days", params={"meter": meter})).json()
        assert kpi_id in [d["id"] for d in days]
        noise_map = (await client.get("/services/noise/map.geojson")).json()
        assert noise_map["features"] and "interpolation" in noise_map["method"]
        bands = {f["properties"]["band"] for f in noise_map["features"]}
        assert bands <= {"<55", "55-59", "60-64", "65-69", "70-74", ">=75"}
