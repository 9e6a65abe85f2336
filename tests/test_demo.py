"""End to end: demo town -> Mosquitto -> gateway -> broker, backfill joined to live, restart.

The platform runs in-process with its gateway on and a real MQTT connection; the town's
devices publish UltraLight frames to Mosquitto like real devices. Every reading of the
simulated window must end up exactly once in the history, with its observedAt.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from agilecity.app import build_app
from agilecity.demo import STATE_KEY, STATE_KIND, DemoError, DemoOptions, DemoTown
from agilecity.settings import Settings

BASE = "/ngsi-ld/v1"
NOISE_METER = "nm-01"


@contextlib.asynccontextmanager
async def platform(settings: Settings) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """The app with its lifespan running, MQTT connected, and a client on it."""
    app = build_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for _ in range(200):
                if (await client.get("/health")).json()["gateway"]["mqtt"]:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the gateway never connected to Mosquitto")
            yield app, client


async def _history(client: httpx.AsyncClient, entity_id: str, attr: str) -> list[Any]:
    response = await client.get(
        f"{BASE}/temporal/entities/{entity_id}", params={"attrs": attr, "lastN": 100_000}
    )
    assert response.status_code == 200, response.text
    instances: list[Any] = response.json().get(attr, [])
    return sorted((i["observedAt"], i["value"]) for i in instances)


async def _settled(client: httpx.AsyncClient, published: int) -> dict[str, int]:
    counters: dict[str, int] = {}
    for _ in range(200):
        counters = (await client.get("/health")).json()["gateway"]
        if counters["frames_received"] >= published:
            break
        await asyncio.sleep(0.05)
    return counters


@pytest.fixture
def demo_settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(gateway=True, mqtt_share_group=f"demo{uuid.uuid4().hex}")


async def test_demo_town_end_to_end_and_restart(demo_settings: Settings) -> None:
    # a seed of its own: the devices' MQTT topics derive from it, and another run of this test
    # on the same Mosquitto (a second checkout, CI beside a developer) must not cross-talk
    seed = random.randrange(1_000, 1_000_000)
    options = DemoOptions(seed=seed, speed=3600, backfill_days=0.25, duration=2.0)
    async with platform(demo_settings) as (app, client):
        demo = DemoTown(app, demo_settings, options)
        town, start = await demo.prepare(progress=None)
        published = await demo.live(town, start)
        counters = await _settled(client, published)
        # every live frame went simulator -> Mosquitto -> gateway -> broker, none refused
        assert published > 500
        assert counters["frames_received"] == published
        assert counters["frames_accepted"] == published
        assert sum(v for k, v in counters.items() if k.startswith("rejected_")) == 0
        expected_types: dict[str, int] = {}
        for entity in town.entities():
            expected_types[entity["type"]] = expected_types.get(entity["type"], 0) + 1
        for entity_type, count in expected_types.items():
            r = await client.get(f"{BASE}/entities", params={"type": entity_type, "count": "true",
                                                             "limit": 1})  # fmt: skip
            assert int(r.headers["NGSILD-Results-Count"]) == count, entity_type
        # the noise meter's history is its readings of the whole window, once each
        device = town.by_id[NOISE_METER]
        end = start + timedelta(seconds=2.0 * options.speed)
        readings = town.device_readings(NOISE_METER, town.origin, end)
        (initial,) = [e["LAeq"] for e in town.entities() if e["id"] == device.entity_id]
        expected = sorted(
            [(r.time.strftime("%Y-%m-%dT%H:%M:%S.000Z"), r.measures["l"]) for r in readings]
            + [(initial["observedAt"].replace("Z", ".000Z"), initial["value"])]  # its creation
        )
        history = await _history(client, device.entity_id, "LAeq")
        assert history == expected
        assert history[0][0] < start.strftime("%Y-%m-%dT%H:%M:%S") < history[-1][0]
        current = (await client.get(f"{BASE}/entities/{device.entity_id}")).json()
        assert current["LAeq"]["observedAt"] == expected[-1][0]
        assert current["LAeq"]["value"] == expected[-1][1]
        state = await app.state.broker.get_record(STATE_KIND, "", STATE_KEY)
        assert state is not None and state.doc["seed"] == seed

    # restart on the same store: the state says how far the town got; nothing is doubled
    async with platform(demo_settings) as (app, client):
        demo = DemoTown(app, demo_settings, DemoOptions(seed=seed, speed=3600, backfill_days=0.25))
        again, resumed = await demo.prepare(progress=None)
        assert again.origin == town.origin
        assert resumed >= start + timedelta(seconds=options.speed)  # after the live run
        assert await _history(client, device.entity_id, "LAeq") == history
        with pytest.raises(DemoError):
            await DemoTown(app, demo_settings, DemoOptions(seed=seed + 1)).prepare(progress=None)


async def test_restart_after_downtime_fills_the_gap(demo_settings: Settings) -> None:
    options = DemoOptions(seed=5, backfill_days=0.1, duration=0)
    async with platform(demo_settings) as (app, client):
        town, start = await DemoTown(app, demo_settings, options).prepare(progress=None)
        # pretend the platform was stopped for two hours: move the saved state back
        broker = app.state.broker
        record = await broker.get_record(STATE_KIND, "", STATE_KEY)
        assert record is not None
        earlier = start - timedelta(hours=2)
        record.doc["simulated_until"] = earlier.strftime("%Y-%m-%dT%H:%M:%SZ")
        await broker.put_record(record, create=False)
        device = town.by_id[NOISE_METER]
        # the gap is written again from the saved time; drop it first to see it come back
        cut = earlier.strftime("%Y-%m-%dT%H:%M:%SZ")
        r = await client.delete(
            f"{BASE}/temporal/entities/{device.entity_id}/attrs/LAeq",
            params={"deleteAll": "true"},
        )
        assert r.status_code == 204, r.text
        _, resumed = await DemoTown(app, demo_settings, options).prepare(progress=None)
        history = await _history(client, device.entity_id, "LAeq")
        gap = town.device_readings(NOISE_METER, earlier, resumed)
        assert len(history) == len(gap) > 100  # 1-minute samples over two hours
        assert history[0][0] >= cut.replace("Z", ".000Z")
        assert datetime.now(UTC) - resumed < timedelta(seconds=30)


async def test_without_mqtt_the_devices_report_over_http(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(gateway=True, mqtt_port=1)  # nothing listens on port 1
    app = build_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            options = DemoOptions(seed=6, speed=3600, backfill_days=0, duration=1.0)
            demo = DemoTown(app, settings, options)
            town, start = await demo.prepare(progress=None)
            sent = await demo.live(town, start)
            counters = (await client.get("/health")).json()["gateway"]
            assert counters["mqtt"] is False
            assert sent > 100 and counters["frames_accepted"] == sent
