"""The service host: history handed over once, in order, caught up after downtime."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from tests.conftest import running_app

from agilecity.errors import BadRequestDataError
from agilecity.services.base import Job, RouteSpec, Service, ServiceContext, Watch, setting
from agilecity.services.host import ServiceHost, ServiceRunner
from agilecity.settings import Settings

BASE = "/ngsi-ld/v1"


@dataclass(frozen=True)
class CounterSettings:
    """A test service's settings."""

    threshold: float = setting(10.0, "A threshold.")


SEEN: list[tuple[str, str, Any]] = []


async def count(ctx: ServiceContext, entities: list[dict[str, Any]]) -> None:
    for entity in entities:
        for instance in entity.get("level", []):
            SEEN.append((entity["id"], instance["observedAt"], instance["value"]))
    ctx.state["calls"] = ctx.state.get("calls", 0) + 1


async def totals(ctx: ServiceContext, params: dict[str, str]) -> Any:
    return {"seen": len(SEEN), "threshold": ctx.settings.threshold}


COUNTER = Service(
    name="counter", title="Counter", settings=CounterSettings,
    watches=(Watch("Probe", ("level",)),), on_changes=count,
    jobs=(Job("noop", 3600, lambda ctx: asyncio.sleep(0)),),
    routes=(RouteSpec("totals", totals, public=True),),
)  # fmt: skip


async def _post(client: httpx.AsyncClient, entity_id: str, values: list[tuple[str, float]]) -> None:
    instances = [{"type": "Property", "value": v, "observedAt": t} for t, v in values]
    body = {"id": entity_id, "type": "Probe", "level": instances}
    r = await client.post(f"{BASE}/temporal/entities", json=body)
    assert r.status_code in (201, 204), r.text


async def test_history_is_handed_over_once_in_order_and_after_downtime(
    settings_factory: Callable[..., Settings],
) -> None:
    SEEN.clear()
    settings = settings_factory()
    async with running_app(settings) as (app, client):
        await _post(client, "urn:ngsi-ld:Probe:a", [("2026-11-01T10:00:00Z", 1),
                                                   ("2026-11-01T09:00:00Z", 0)])  # fmt: skip
        runner = ServiceRunner(ServiceContext(COUNTER, app.state.broker, "", CounterSettings()))
        await runner.ctx.load_state()
        await asyncio.sleep(2.1)  # past the settling delay
        assert await runner.catch_up() == 2
        assert SEEN == [("urn:ngsi-ld:Probe:a", "2026-11-01T09:00:00.000Z", 0),
                        ("urn:ngsi-ld:Probe:a", "2026-11-01T10:00:00.000Z", 1)]  # fmt: skip
        assert await runner.catch_up() == 0  # nothing new: nothing handed twice
        # "downtime": a new runner (as after a restart) on the saved state
        await _post(client, "urn:ngsi-ld:Probe:a", [("2026-11-01T11:00:00Z", 2)])
        await _post(client, "urn:ngsi-ld:Probe:b", [("2026-11-01T11:30:00Z", 7)])
        restarted = ServiceRunner(ServiceContext(COUNTER, app.state.broker, "", CounterSettings()))
        await restarted.ctx.load_state()
        assert restarted.ctx.state["calls"] == 1
        await asyncio.sleep(2.1)
        assert await restarted.catch_up() == 2
        assert SEEN[2:] == [("urn:ngsi-ld:Probe:a", "2026-11-01T11:00:00.000Z", 2),
                            ("urn:ngsi-ld:Probe:b", "2026-11-01T11:30:00.000Z", 7)]  # fmt: skip
        # a redelivered, older instance is not handed over again
        await _post(client, "urn:ngsi-ld:Probe:a", [("2026-11-01T10:30:00Z", 5)])
        await asyncio.sleep(2.1)
        assert await restarted.catch_up() == 0


async def test_host_runs_on_notifications(settings_factory: Callable[..., Settings]) -> None:
    SEEN.clear()
    async with running_app(settings_factory()) as (app, client):
        host = ServiceHost(app.state.broker, [("", COUNTER, CounterSettings())])
        await host.start()
        try:
            await host.runners[0].idle.wait()
            await _post(client, "urn:ngsi-ld:Probe:c", [("2026-11-02T10:00:00Z", 3)])
            for _ in range(100):
                if SEEN:
                    break
                await asyncio.sleep(0.1)
            assert SEEN == [("urn:ngsi-ld:Probe:c", "2026-11-02T10:00:00.000Z", 3)]
            assert host.context("", "counter") is not None
            assert host.context("roubaix", "counter") is None
        finally:
            await host.stop()


def test_service_settings_from_env_and_table() -> None:
    loaded = COUNTER.load_settings({"threshold": 3}, env={})
    assert loaded.threshold == 3.0
    loaded = COUNTER.load_settings({"threshold": 3}, env={"AGILECITY_COUNTER_THRESHOLD": "4.5"})
    assert loaded.threshold == 4.5
    with pytest.raises(BadRequestDataError, match="services.counter.colour"):
        COUNTER.load_settings({"colour": "red"}, env={})
    with pytest.raises(BadRequestDataError, match="AGILECITY_COUNTER_THRESHOLD"):
        COUNTER.load_settings({}, env={"AGILECITY_COUNTER_THRESHOLD": "high"})
