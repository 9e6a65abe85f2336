"""The simulator runner against the real app (SQLite and PostgreSQL) and a real Mosquitto:
provisioning requests, entity creation, backfill through the temporal API, live MQTT."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from tests.conftest import BASE
from tests.receivers import MqttCollector

from agilecity.app import build_app
from agilecity.ingest.simulator.base import Reading
from agilecity.ingest.simulator.entities import typed_value
from agilecity.ingest.simulator.provisioning import topic, ultralight
from agilecity.ingest.simulator.runner import (
    SimulationOptions,
    backfill,
    create_entities,
    live,
    provision,
    run,
)
from agilecity.ingest.simulator.town import Town
from agilecity.settings import Settings

ORIGIN = datetime(2026, 2, 2, tzinfo=UTC)
CHECKED = ("ps-0001", "nm-01", "hm-s01", "iaq-s01", "sl-001", "sp-01", "ws-01", "ev-01", "wc-01")


class IotAgentStub(httpx.AsyncBaseTransport):
    """Answers /iot/* itself (recording the requests), passes the rest to the app."""

    def __init__(self, inner: httpx.AsyncBaseTransport, status: int = 201) -> None:
        self.inner = inner
        self.status = status
        self.requests: list[tuple[str, dict[str, str], Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/iot/"):
            body = orjson.loads(await request.aread())
            self.requests.append((request.url.path, dict(request.headers), body))
            return httpx.Response(self.status, json={} if self.status < 300 else {"name": "X"})
        return await self.inner.handle_async_request(request)


@contextlib.asynccontextmanager
async def stubbed_client(
    settings: Settings, status: int = 201
) -> AsyncIterator[tuple[httpx.AsyncClient, IotAgentStub]]:
    """A client on the running app whose IoT Agent endpoints are a recording stub."""
    app: Starlette = build_app(settings)
    async with app.router.lifespan_context(app):
        stub = IotAgentStub(httpx.ASGITransport(app=app), status)
        async with httpx.AsyncClient(transport=stub, base_url="http://test") as client:
            yield client, stub


async def history(
    client: httpx.AsyncClient, entity_id: str, since: datetime, until: datetime, **params: str
) -> dict[str, Any]:
    """The temporalValues of an entity over [since, until)."""
    response = await client.get(
        f"{BASE}/temporal/entities/{entity_id}",
        params={"timerel": "between", "timeAt": since.isoformat(), "endTimeAt": until.isoformat(),
                "options": "temporalValues", **params},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def expected_series(town: Town, readings: list[Reading]) -> dict[str, list[tuple[Any, datetime]]]:
    """Per attribute name, the (value, time) pairs the readings must leave in the history."""
    out: dict[str, list[tuple[Any, datetime]]] = {}
    for reading in readings:
        kind = town.kind_of(reading.device_id)
        for key, value in reading.measures.items():
            measure = kind.measure(key)
            out.setdefault(measure.name, []).append((typed_value(measure, value), reading.time))
    return out


async def check_history(
    client: httpx.AsyncClient, town: Town, device_id: str, since: datetime, until: datetime
) -> int:
    """Assert the history of a device over [since, until) is exactly its readings."""
    device = town.by_id[device_id]
    expected = expected_series(town, town.device_readings(device_id, since, until))
    found = await history(client, device.entity_id, since, until)
    for name, series in expected.items():
        values = found[name]["values"]
        got = [(v, datetime.fromisoformat(t)) for v, t in values]
        assert got == series, (device_id, name, got[:3], series[:3])
    return sum(len(s) for s in expected.values())


async def test_backfill_writes_every_reading_as_history(client: httpx.AsyncClient) -> None:
    town = Town(seed=11, origin=ORIGIN)
    assert await create_entities(client, town) == len(town.entities())
    end = ORIGIN + timedelta(hours=6)
    out = io.StringIO()
    summary = await backfill(client, town, ORIGIN, end, progress=out)
    assert summary.readings == town.count_readings(ORIGIN, end) > 5000
    assert summary.instances > summary.readings and summary.requests > len(town.devices) / 2
    text = out.getvalue()
    assert f"{summary.readings:,}/{summary.readings:,} readings" in text
    assert text.rstrip().endswith("readings/s")
    for device_id in CHECKED:
        assert await check_history(client, town, device_id, ORIGIN, end) > 0
    # The current state is the last reading; the creation value (before the origin) stays
    # in the history outside the window.
    spot = town.by_id["ps-0001"]
    response = await client.get(
        f"{BASE}/entities/{spot.entity_id}", params={"options": "keyValues"}
    )
    assert (
        response.json()["status"] == town.device_readings("ps-0001", ORIGIN, end)[-1].measures["st"]
    )
    count = await client.get(
        f"{BASE}/entities", params={"type": "ParkingSpot", "count": "true", "limit": 1}
    )
    assert count.headers["NGSILD-Results-Count"] == "200"


async def test_live_publishes_ultralight_at_the_requested_speed() -> None:
    town = Town(seed=12, origin=ORIGIN)
    start = ORIGIN + timedelta(days=1, hours=7)
    speed, duration = 3600.0, 2.0
    expected = list(town.readings(start, start + timedelta(seconds=speed * duration)))
    keys = set(town.apikeys.values())
    async with MqttCollector(topic="/+/+/attrs") as mqtt:
        began = time.monotonic()
        published = await live(town, start, speed=speed, duration=duration)

        def mine() -> list[Any]:
            return [m for m in mqtt.messages if m.topic.split("/")[1] in keys]

        deadline = time.monotonic() + 10
        while len(mine()) < len(expected) and time.monotonic() < deadline:
            await mqtt.wait_for(len(mqtt.messages) + 1, timeout=10)
    received = mine()
    assert published == len(expected) > 1000
    assert [(m.topic, m.payload.decode()) for m in received] == [
        (topic(r), ultralight(r)) for r in expected
    ]
    for message, reading in zip(received, expected, strict=True):
        due = (reading.time - start).total_seconds() / speed
        lag = message.received_at - began - due
        assert 0 <= lag < 1.5, (reading, lag)  # never early, at most a few ticks late
    spread = received[-1].received_at - received[0].received_at
    assert spread > 1.5  # paced over the two seconds, not sent at once


async def test_provisioning_requests(settings_factory: Callable[..., Settings]) -> None:
    town = Town(seed=13, origin=ORIGIN)
    async with stubbed_client(settings_factory()) as (client, stub):
        assert await provision(client, town, tenant="lille", cbroker="http://cb:1026") == (9, 415)
    paths = [path for path, _, _ in stub.requests]
    assert paths == ["/iot/services"] + ["/iot/devices"] * 5
    assert all(headers["fiware-service"] == "lille" for _, headers, _ in stub.requests)
    services = stub.requests[0][2]["services"]
    assert {s["cbroker"] for s in services} == {"http://cb:1026"}
    sent = [d["device_id"] for _, _, body in stub.requests[1:] for d in body["devices"]]
    assert sent == [d.device_id for d in town.devices]
    async with stubbed_client(settings_factory()) as (client, stub):
        await provision(client, town)
    assert all("fiware-service" not in headers for _, headers, _ in stub.requests)


async def test_provisioning_again_is_fine(settings_factory: Callable[..., Settings]) -> None:
    """409 (already provisioned) is no error: each item is then sent on its own."""
    town = Town(seed=13, origin=ORIGIN)
    async with stubbed_client(settings_factory(), status=409) as (client, stub):
        assert await provision(client, town) == (9, 415)
    assert len(stub.requests) == 1 + 9 + 5 + 415


async def test_run_backfills_then_goes_live_without_gap_or_duplicate(
    settings_factory: Callable[..., Settings],
) -> None:
    start = ORIGIN + timedelta(days=3)
    options = SimulationOptions(
        seed=14, tenant="demo", start=start, backfill_days=0.25, speed=1800.0, duration=1.0
    )
    town = Town(seed=14, origin=start - timedelta(days=0.25))
    live_end = start + timedelta(minutes=30)
    async with stubbed_client(settings_factory()) as (client, stub):
        client.headers["NGSILD-Tenant"] = "demo"
        async with MqttCollector(topic=f"/{town.apikeys['noise']}/+/attrs") as mqtt:
            out = io.StringIO()
            await run(options, progress=out, client=client)
            meters = [d for d in town.devices if d.kind.key == "noise"]
            await mqtt.wait_for(30 * len(meters), timeout=10)
        assert "backfill: " in out.getvalue() and "live from" in out.getvalue()
        assert {path for path, _, _ in stub.requests} == {"/iot/services", "/iot/devices"}
        for device in meters:
            backfilled = await history(client, device.entity_id, town.origin, start, attrs="LAeq")
            times = [datetime.fromisoformat(t) for _, t in backfilled["LAeq"]["values"]]
            live_frames = [
                m.payload.decode() for m in mqtt.messages if f"/{device.device_id}/" in m.topic
            ]
            live_times = [datetime.fromisoformat(f.split("|")[0]) for f in live_frames]
            expected = [
                r.time for r in town.device_readings(device.device_id, town.origin, live_end)
            ]
            assert times + live_times == expected  # joined: no gap, no duplicate
            assert times[-1] < start <= live_times[0]
