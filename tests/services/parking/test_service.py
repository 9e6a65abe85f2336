"""The parking service end to end on the demo town, in accelerated time.

Fourteen simulated days of the town's parking sensors go through the gateway's HTTP
endpoint (as frames with their timestamps) while the service runs beside the platform:
the long-stay alerts it writes are exactly the town's overstays (R417-12: more than 7
days), and its suspect-sensor alerts exactly the town's stuck sensors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tests.conftest import running_app

from agilecity.broker.timeutil import now_iso
from agilecity.ingest.simulator import Town
from agilecity.ingest.simulator import runner as sim
from agilecity.settings import Settings

BASE = "/ngsi-ld/v1"
DAYS = 14
ORIGIN = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday, as the model's ground-truth test


async def test_long_stays_and_suspect_sensors_are_exactly_the_scenarios(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(gateway=True, mqtt_port=1, services="parking")
    town = Town(7, ORIGIN)
    async with running_app(settings) as (app, client):
        await sim.provision(client, town)
        spots = [e for e in town.entities() if e["type"] in ("ParkingSpot", "OnStreetParking")]
        r = await client.post(f"{BASE}/entityOperations/upsert", json=spots)
        assert r.status_code in (201, 204), r.text
        end = ORIGIN + timedelta(days=DAYS)
        for device in town.devices:  # the sensors' history, each device oldest first
            if not device.device_id.startswith("ps-"):
                continue
            readings = town.device_readings(device.device_id, ORIGIN, end)
            for body, _, _ in sim.temporal_payloads(town, device.device_id, readings):
                response = await client.post(f"{BASE}/temporal/entities", json=body)
                assert response.status_code in (201, 204), response.text
        posted = now_iso()  # every reading is recorded by now
        ctx = app.state.services.context("", "parking")
        for _ in range(600):  # the service catches up beside the platform
            if str(ctx.state.get("watermark", "")) > posted:
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("the parking service did not catch up within 2 minutes")
        r = await client.get(
            f"{BASE}/entities", params={"type": "Alert", "limit": 1000, "options": "keyValues"}
        )
        alerts = r.json()
        long_stays = {a["alertSource"] for a in alerts if "long-stay" in str(a["id"])
                      and a["data"]["phase"] != "withdrawn"}  # fmt: skip
        assert long_stays == {o.spot for o in town.scenario.overstays}
        for alert in alerts:  # each closed when the car left, after the 168 h limit
            if "long-stay" in str(alert["id"]) and alert["data"]["phase"] == "ended":
                assert alert["data"]["durationHours"] > 168
        suspects = {a["alertSource"] for a in alerts
                    if "parking-sensor" in str(a["id"]) and "validTo" not in a}  # fmt: skip
        assert suspects == {s.spot for s in town.scenario.stuck_sensors}
        listing = await client.get("/services/parking/enforcement")
        assert listing.status_code == 200 and isinstance(listing.json(), list)
        csv_text = (await client.get("/services/parking/enforcement.csv")).text
        assert csv_text.splitlines()[0].startswith("street")
