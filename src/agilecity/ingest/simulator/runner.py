"""Running the demo town against a platform: provision, create entities, backfill, go live.

Each step is a coroutine of its own, taking an ``httpx.AsyncClient`` whose base URL is
the platform (any transport: a real server, or the in-process ASGI app), so the server
can run them itself:

1. :func:`provision` — ``POST /iot/services`` then ``POST /iot/devices`` (header
   ``fiware-service`` only for a tenant); 409 means already provisioned.
2. :func:`create_entities` — the static entities through batch upsert (update mode), in
   chunks of at most 1,000.
3. :func:`backfill` — the readings of [origin, live start) written as history through
   ``POST /temporal/entities``, device by device, a few thousand instances per request.
4. :func:`live` — a simulated clock at ``speed`` × real time from the live start,
   publishing each reading as UltraLight on ``/<apikey>/<device_id>/attrs`` over MQTT;
   :func:`live_batches` yields the same readings for an in-process consumer.

Backfill covers [origin, start) and live covers [start, …): windows are half-open, so
history and live readings join without a gap or a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import aiomqtt
import httpx

from agilecity.ingest.simulator.base import Reading, iso
from agilecity.ingest.simulator.entities import measure_attribute
from agilecity.ingest.simulator.provisioning import device_groups, devices, topic, ultralight
from agilecity.ingest.simulator.town import Town

NGSI_LD = "/ngsi-ld/v1"
DEVICES_PER_REQUEST = 100
ENTITIES_PER_REQUEST = 1000
INSTANCES_PER_REQUEST = 5000


class SimulatorError(RuntimeError):
    """The platform refused a request of the simulator."""


@dataclass
class SimulationOptions:
    """What ``agilecity simulate`` runs (see :func:`run`)."""

    url: str = "http://127.0.0.1:1026"
    tenant: str | None = None
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    seed: int = 1
    speed: float = 1.0
    backfill_days: float = 0.0
    duration: float | None = None  # real seconds of live running; None: forever
    start: datetime | None = None  # simulated time live starts at (default: now)


@dataclass
class BackfillSummary:
    """What a backfill wrote and how fast."""

    readings: int
    instances: int
    requests: int
    seconds: float

    @property
    def rate(self) -> float:
        """Readings written per second."""
        return self.readings / self.seconds if self.seconds > 0 else math.inf


def plan(options: SimulationOptions) -> tuple[Town, datetime]:
    """The town of the options and the simulated instant live running starts at."""
    start = options.start or datetime.now(UTC)
    start = start.astimezone(UTC).replace(microsecond=0)
    origin = start - timedelta(days=options.backfill_days)
    return Town(options.seed, origin), start


def _ngsi_headers(tenant: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if tenant:
        headers["NGSILD-Tenant"] = tenant
    return headers


def _check(response: httpx.Response, what: str, *, conflict_ok: bool = False) -> None:
    if response.is_success or (conflict_ok and response.status_code == 409):
        return
    raise SimulatorError(f"{what}: HTTP {response.status_code} {response.text[:500]}")


async def provision(
    client: httpx.AsyncClient, town: Town, tenant: str | None = None, cbroker: str | None = None
) -> tuple[int, int]:
    """Provision the device groups, then the devices; (groups, devices) sent."""
    headers = {"fiware-service": tenant} if tenant else {}
    groups = device_groups(town, cbroker or str(client.base_url).rstrip("/"))
    response = await client.post("/iot/services", json=groups, headers=headers)
    if response.status_code == 409:  # some exist: add the others one by one
        for group in groups["services"]:
            one = await client.post("/iot/services", json={"services": [group]}, headers=headers)
            _check(one, "provisioning a device group", conflict_ok=True)
    else:
        _check(response, "provisioning device groups")
    listing = devices(town)["devices"]
    for k in range(0, len(listing), DEVICES_PER_REQUEST):
        chunk = listing[k : k + DEVICES_PER_REQUEST]
        response = await client.post("/iot/devices", json={"devices": chunk}, headers=headers)
        if response.status_code == 409:
            for device in chunk:
                one = await client.post("/iot/devices", json={"devices": [device]}, headers=headers)
                _check(one, f"provisioning device {device['device_id']}", conflict_ok=True)
        else:
            _check(response, "provisioning devices")
    return len(groups["services"]), len(listing)


async def create_entities(client: httpx.AsyncClient, town: Town, tenant: str | None = None) -> int:
    """Upsert (update mode) every static entity of the town; how many were sent."""
    entities = town.entities()
    for k in range(0, len(entities), ENTITIES_PER_REQUEST):
        response = await client.post(
            f"{NGSI_LD}/entityOperations/upsert",
            params={"options": "update"},
            json=entities[k : k + ENTITIES_PER_REQUEST],
            headers=_ngsi_headers(tenant),
        )
        _check(response, "creating the entities")
        if response.status_code == 207:
            raise SimulatorError(f"creating the entities: {response.text[:500]}")
    return len(entities)


def temporal_payloads(
    town: Town, device_id: str, readings: list[Reading], limit: int = INSTANCES_PER_REQUEST
) -> list[tuple[dict[str, Any], int, int]]:
    """Temporal-entity bodies for one device's readings: (body, readings, instances) each."""
    device = town.by_id[device_id]
    kind = device.kind
    out: list[tuple[dict[str, Any], int, int]] = []
    body: dict[str, Any] = {"id": device.entity_id, "type": kind.entity_type}
    count = instances = 0
    for reading in readings:
        observed = iso(int(reading.time.timestamp()))
        for key, value in reading.measures.items():
            measure = kind.measure(key)
            body.setdefault(measure.name, []).append(measure_attribute(measure, value, observed))
            instances += 1
        count += 1
        if instances >= limit:
            out.append((body, count, instances))
            body = {"id": device.entity_id, "type": kind.entity_type}
            count = instances = 0
    if count:
        out.append((body, count, instances))
    return out


class Progress:
    """A one-line progress bar: readings done / total and readings per second."""

    def __init__(self, stream: TextIO | None, total: int, label: str = "backfill") -> None:
        self.stream, self.total, self.label = stream, total, label
        self.done = 0
        self.started = time.monotonic()
        self._shown = 0.0

    def advance(self, readings: int) -> None:
        """Count readings written; redraw at most five times a second."""
        self.done += readings
        now = time.monotonic()
        if self.stream is not None and (now - self._shown >= 0.2 or self.done >= self.total):
            self._shown = now
            elapsed = max(now - self.started, 1e-9)
            share = self.done / self.total if self.total else 1.0
            width = 30
            bar = "#" * int(share * width) + "-" * (width - int(share * width))
            self.stream.write(
                f"\r{self.label} [{bar}] {self.done:,}/{self.total:,} readings "
                f"{share:6.1%} {self.done / elapsed:,.0f} readings/s"
            )
            self.stream.flush()

    def finish(self, summary: BackfillSummary) -> None:
        """End the bar's line and print the final rate."""
        if self.stream is not None:
            self.stream.write(
                f"\n{self.label}: {summary.readings:,} readings ({summary.instances:,} attribute "
                f"instances, {summary.requests:,} requests) in {summary.seconds:.1f} s: "
                f"{summary.rate:,.0f} readings/s\n"
            )
            self.stream.flush()


async def backfill(
    client: httpx.AsyncClient,
    town: Town,
    start: datetime,
    end: datetime,
    tenant: str | None = None,
    progress: TextIO | None = sys.stderr,
    concurrency: int = 4,
) -> BackfillSummary:
    """Write the readings of [start, end) as history through the temporal API."""
    began = time.monotonic()
    bar = Progress(progress, town.count_readings(start, end))
    # one item per device, its chunks sent in order: a device's history is written oldest
    # first, so a service reading it as it arrives never sees a later chunk before an earlier
    queue: asyncio.Queue[list[tuple[dict[str, Any], int, int]] | None] = asyncio.Queue(
        concurrency * 2
    )
    totals = [0, 0, 0]
    headers = _ngsi_headers(tenant)

    async def worker() -> None:
        while (chunks := await queue.get()) is not None:
            for body, readings, instances in chunks:
                response = await client.post(
                    f"{NGSI_LD}/temporal/entities", json=body, headers=headers
                )
                _check(response, f"backfilling {body['id']}")
                totals[0] += readings
                totals[1] += instances
                totals[2] += 1
                bar.advance(readings)

    async def producer() -> None:
        try:
            for device in town.devices:
                readings = town.device_readings(device.device_id, start, end)
                chunks = temporal_payloads(town, device.device_id, readings)
                if chunks:
                    await queue.put(chunks)
        finally:
            for _ in range(concurrency):
                await queue.put(None)

    tasks = [asyncio.create_task(producer())]
    tasks += [asyncio.create_task(worker()) for _ in range(concurrency)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
    summary = BackfillSummary(totals[0], totals[1], totals[2], time.monotonic() - began)
    bar.finish(summary)
    return summary


async def live_batches(
    town: Town,
    start: datetime,
    *,
    speed: float = 1.0,
    duration: float | None = None,
    tick: float = 0.2,
) -> AsyncIterator[list[Reading]]:
    """The readings from ``start`` on, batch by batch as the simulated clock reaches them.

    The clock runs at ``speed`` × real time; with ``duration`` (real seconds) it stops at
    exactly ``start + duration × speed``.
    """
    began = time.monotonic()
    cursor = start
    stop = start + timedelta(seconds=duration * speed) if duration is not None else None
    while True:
        now = start + timedelta(seconds=(time.monotonic() - began) * speed)
        if stop is not None and now >= stop:
            now = stop
        batch = list(town.readings(cursor, now))
        cursor = now
        if batch:
            yield batch
        if stop is not None and now >= stop:
            return
        await asyncio.sleep(tick)


async def live(
    town: Town,
    start: datetime,
    *,
    speed: float = 1.0,
    duration: float | None = None,
    mqtt_host: str = "127.0.0.1",
    mqtt_port: int = 1883,
    on_batch: Callable[[list[Reading]], Awaitable[None]] | None = None,
) -> int:
    """Publish the live readings over MQTT (UltraLight, QoS 1); how many were published."""
    published = 0
    quiet = logging.getLogger("agilecity.simulator.mqtt")  # aiomqtt logs queued publishes
    quiet.setLevel(logging.ERROR)
    async with aiomqtt.Client(
        mqtt_host, mqtt_port, max_inflight_messages=100, logger=quiet
    ) as client:
        async for batch in live_batches(town, start, speed=speed, duration=duration):
            for k in range(0, len(batch), 100):  # acknowledged, up to 100 in flight
                await asyncio.gather(*(
                    client.publish(topic(r), ultralight(r).encode(), qos=1)
                    for r in batch[k : k + 100]
                ))  # fmt: skip
            published += len(batch)
            if on_batch is not None:
                await on_batch(batch)
    return published


async def run(
    options: SimulationOptions,
    progress: TextIO | None = sys.stderr,
    client: httpx.AsyncClient | None = None,
) -> None:
    """Provision, create the entities, backfill ``backfill_days``, then run live.

    ``client`` (base URL = the platform) replaces the HTTP client made from ``options.url``.
    """
    town, start = plan(options)
    async with contextlib.AsyncExitStack() as stack:
        if client is None:
            client = await stack.enter_async_context(
                httpx.AsyncClient(base_url=options.url, timeout=120)
            )
        groups, count = await provision(client, town, options.tenant, cbroker=options.url)
        entities = await create_entities(client, town, options.tenant)
        if progress is not None:
            progress.write(f"provisioned {groups} groups, {count} devices; {entities} entities\n")
        if options.backfill_days > 0:
            await backfill(client, town, town.origin, start, options.tenant, progress)
    if options.duration is None or options.duration > 0:
        if progress is not None:
            progress.write(
                f"live from {iso(int(start.timestamp()))} at {options.speed:g}x real time "
                f"on mqtt://{options.mqtt_host}:{options.mqtt_port}\n"
            )
        await live(
            town,
            start,
            speed=options.speed,
            duration=options.duration,
            mqtt_host=options.mqtt_host,
            mqtt_port=options.mqtt_port,
        )
