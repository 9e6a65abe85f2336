"""``agilecity demo``: the platform with its gateway, and the demo town living inside it.

On first start the town is provisioned, its entities created and ``backfill_days`` of
history written (with a progress bar); then its devices publish live over MQTT (or over
the gateway's HTTP endpoint when no MQTT broker answers). The simulated time reached is
saved in the store, so a restart fills the gap since the last run (up to ``backfill_days``)
instead of duplicating or losing history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TextIO

import aiomqtt
import httpx
from starlette.applications import Starlette

from agilecity.broker.broker import Broker
from agilecity.ingest.simulator import Reading, Town, runner, ultralight
from agilecity.settings import Settings
from agilecity.store.base import Record

log = logging.getLogger("agilecity.demo")
STATE_KIND, STATE_KEY = "demo_town", "state"
DEMO_KEY_NAME = "demo-admin"
CHECKPOINT_EVERY = 5.0  # seconds between saves of the simulated time reached


@dataclass
class DemoOptions:
    """How the demo town runs."""

    seed: int = 1
    speed: float = 1.0
    backfill_days: float = 14.0
    tenant: str = ""
    duration: float | None = None  # real seconds of live running; None: until stopped


class DemoError(RuntimeError):
    """The store holds a demo town that these options cannot continue."""


class DemoTown:
    """The demo town of one platform process, driven through the platform's own API."""

    def __init__(self, app: Starlette, settings: Settings, options: DemoOptions) -> None:
        self.app = app
        self.broker: Broker = app.state.broker
        self.settings = settings
        self.options = options
        self._saved = 0.0
        self._last: datetime | None = None
        self.admin_key: str | None = None

    async def _admin_key(self) -> str | None:
        """A fresh admin key for this run (the previous run's is revoked); None in open mode."""
        credentials = self.app.state.credentials
        if credentials is None:
            return None
        for key in await credentials.list_keys():
            if key["name"] == DEMO_KEY_NAME and not key["revoked_at"]:
                await credentials.revoke_key(key["id"])
        _, token = await credentials.create_key("admin", ["*"], DEMO_KEY_NAME)
        token_text: str = token
        return token_text

    def _client(self) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app)
        base = f"http://{self.settings.host}:{self.settings.port}"
        headers = {"Authorization": f"Bearer {self.admin_key}"} if self.admin_key else {}
        return httpx.AsyncClient(transport=transport, base_url=base, timeout=120, headers=headers)

    async def _state(self) -> dict[str, str | int] | None:
        record = await self.broker.get_record(STATE_KIND, self.options.tenant, STATE_KEY)
        return None if record is None else record.doc

    async def _save(self, town: Town, until: datetime) -> None:
        doc = {"seed": town.seed, "origin": _iso(town.origin), "simulated_until": _iso(until)}
        await self.broker.put_record(
            Record(STATE_KIND, self.options.tenant, STATE_KEY, doc), create=False
        )
        self._saved = time.monotonic()

    async def prepare(self, progress: TextIO | None = sys.stderr) -> tuple[Town, datetime]:
        """Provision and backfill as needed; the town and the simulated time live starts at."""
        options = self.options
        self.admin_key = await self._admin_key()
        now = datetime.now(UTC).replace(microsecond=0)
        window = timedelta(days=options.backfill_days)
        state = await self._state()
        async with self._client() as client:
            if state is None:
                town = Town(options.seed, now - window)
                await runner.provision(client, town, options.tenant or None)
                await runner.create_entities(client, town, options.tenant or None)
                since = town.origin
            else:
                if int(state["seed"]) != options.seed:
                    raise DemoError(
                        f"this store holds the demo town of seed {state['seed']}; run with "
                        f"--seed {state['seed']} or on another --db"
                    )
                town = Town(options.seed, _parse(str(state["origin"])))
                await runner.provision(client, town, options.tenant or None)  # new devices
                since = max(_parse(str(state["simulated_until"])), now - window)
            start = max(now, since)
            while since < start:  # the backfill takes time: top up until live is near now
                await runner.backfill(client, town, since, start, options.tenant or None, progress)
                since, now = start, datetime.now(UTC).replace(microsecond=0)
                if now - start > timedelta(seconds=5):
                    start = now
        await self._save(town, start)
        return town, start

    async def _checkpoint(self, town: Town, batch: list[Reading], *, force: bool = False) -> None:
        if batch:
            self._last = batch[-1].time + timedelta(seconds=1)
        if self._last is not None and (force or time.monotonic() - self._saved >= CHECKPOINT_EVERY):
            await self._save(town, self._last)

    async def live(self, town: Town, start: datetime) -> int:
        """Publish live readings over MQTT, or over HTTP when MQTT is unreachable."""
        try:
            return await self._live(town, start)
        finally:  # however it ends, remember how far the town got (best effort)
            with contextlib.suppress(Exception):
                await self._checkpoint(town, [], force=True)

    async def _live(self, town: Town, start: datetime) -> int:
        options, settings = self.options, self.settings

        async def checkpoint(batch: list[Reading]) -> None:
            await self._checkpoint(town, batch)

        try:
            return await runner.live(
                town, start, speed=options.speed, duration=options.duration,
                mqtt_host=settings.mqtt_host, mqtt_port=settings.mqtt_port, on_batch=checkpoint,
            )  # fmt: skip
        except aiomqtt.MqttError as exc:
            log.warning(
                "no MQTT broker on %s:%s (%s): the demo devices report over HTTP instead",
                settings.mqtt_host, settings.mqtt_port, exc,
            )  # fmt: skip
        sent = 0
        async with self._client() as client:
            speed, duration = options.speed, options.duration
            async for batch in runner.live_batches(town, start, speed=speed, duration=duration):
                for reading in batch:
                    params = {"k": reading.apikey, "i": reading.device_id}
                    await client.post("/iot/d", params=params, content=ultralight(reading))
                sent += len(batch)
                await checkpoint(batch)
        return sent

    async def run(self, progress: TextIO | None = sys.stderr) -> int:
        """prepare, tell where to look, then live; the live readings sent."""
        town, start = await self.prepare(progress)
        if progress is not None:
            progress.write(where_to_look(self.settings, town, self.admin_key) + "\n")
            progress.flush()
        return await self.live(town, start)


def where_to_look(settings: Settings, town: Town, admin_key: str | None = None) -> str:
    """The lines printed once the town is ready."""
    base = f"http://{settings.host}:{settings.port}"
    counts: dict[str, int] = {}
    for entity in town.entities():
        counts[entity["type"]] = counts.get(entity["type"], 0) + 1
    summary = ", ".join(f"{n} {t}" for t, n in sorted(counts.items(), key=lambda i: -i[1]))
    return "\n".join([
        "",
        f"The demo town is live ({summary}).",
        f"  parking spots  {base}/ngsi-ld/v1/entities?type=ParkingSpot&options=keyValues&limit=5",
        f"  noise meters   {base}/ngsi-ld/v1/entities?type=NoiseLevelObserved&options=keyValues",
        f"  a history      {base}/ngsi-ld/v1/temporal/entities?type=WeatherObserved&lastN=10",
        f"  devices        {base}/iot/devices",
        f"  gateway health {base}/health   (counters also at {base}/metrics)",
        *([
            "Public data reads need no key; everything else does. An admin key for this run:",
            f"  export AGILECITY_KEY={admin_key}",
            '  curl -H "Authorization: Bearer $AGILECITY_KEY" ' + base + "/iot/devices",
        ] if admin_key else ["Authentication is off (open mode)."]),
        "Stop with Ctrl-C; the next start fills in the time it was stopped.",
    ])  # fmt: skip


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def serve_demo(settings: Settings, options: DemoOptions) -> None:
    """Run the platform (gateway on) and the demo town until interrupted."""
    import uvicorn

    from agilecity.app import build_app

    app = build_app(settings)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=settings.log_level,
        access_log=False,
    )  # fmt: skip
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving  # start-up failed: raise its error
            return
        await asyncio.sleep(0.05)
    town = asyncio.create_task(DemoTown(app, settings, options).run())
    done, _ = await asyncio.wait({serving, town}, return_when=asyncio.FIRST_COMPLETED)
    if town in done and not serving.done():
        if town.exception() is not None:
            server.should_exit = True
            await serving
            raise town.exception()  # type: ignore[misc]
        await serving  # live running ended (--duration): keep serving until stopped
    else:
        town.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await town
