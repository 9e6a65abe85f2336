"""Runs the enabled services: feeds them history since their watermark, runs their jobs.

For each (tenant, service) enabled, the host keeps a watermark in the service's saved
state: the ``modifiedAt`` (recording time) up to which history has been handed over. A
change notification (an in-process subscription on the watched attributes) or the poll
interval wakes it; it reads the instances recorded since the watermark, drops those not
newer (by ``observedAt``) than what each entity already gave, and calls ``on_changes``.
After a restart, the same read catches up on everything recorded while it was down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

from agilecity.broker.broker import Broker
from agilecity.broker.timeutil import format_datetime, now_iso, parse_datetime
from agilecity.services.base import Service, ServiceContext

log = logging.getLogger("agilecity.services")
SETTLE = timedelta(seconds=2)  # rows recorded in the last instants may still be committing
POLL = 5.0
FIRST_JOB_DELAY = 60.0


def new_instances(ctx: ServiceContext, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entities with only instances newer than the ones already handed over, per
    entity and attribute (by observedAt); updates the progress in ``ctx.state``."""
    seen: dict[str, dict[str, str]] = ctx.state.setdefault("seen", {})
    fresh: list[dict[str, Any]] = []
    for entity in entities:
        marks = seen.setdefault(entity["id"], {})
        kept: dict[str, Any] = {"id": entity["id"], "type": entity["type"]}
        for name, instances in entity.items():
            if name in ("id", "type", "@context") or not isinstance(instances, list):
                continue
            last = marks.get(name, "")
            newer = sorted(
                (i for i in instances if isinstance(i, dict) and i.get("observedAt", "") > last),
                key=lambda i: str(i["observedAt"]),
            )
            if newer:
                kept[name] = newer
                marks[name] = newer[-1]["observedAt"]
        if len(kept) > 2:
            fresh.append(kept)
    return fresh


class ServiceRunner:
    """One service in one tenant: its catch-up/change loop and its jobs."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.wake = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.cancels: list[Any] = []
        self.idle = asyncio.Event()
        self.stopping = False

    async def start(self) -> None:
        """Load the state, subscribe to the watched attributes, start the loops."""
        ctx = self.ctx
        await ctx.load_state()
        for watch in ctx.service.watches:
            payload = {"entities": [{"type": watch.entity_type}],
                       "watchedAttributes": list(watch.attrs),
                       "notification": {"attributes": list(watch.attrs)}}  # fmt: skip
            cancel = ctx.broker.subscriptions.subscribe(
                ctx.tenant, payload, self._notified, ctx.terms
            )
            self.cancels.append(cancel)
        self.tasks.append(asyncio.create_task(self._changes_forever()))
        for job in ctx.service.jobs:
            self.tasks.append(asyncio.create_task(self._job_forever(job)))

    async def stop(self) -> None:
        """Cancel the loops and the subscriptions."""
        self.stopping = True
        for cancel in self.cancels:
            cancel()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _notified(self, notification: dict[str, Any]) -> None:
        self.wake.set()

    async def catch_up(self) -> int:
        """Hand every instance recorded since the watermark to the service; how many."""
        ctx = self.ctx
        service = ctx.service
        if service.on_changes is None:
            return 0
        bound = format_datetime(parse_datetime(now_iso()) - SETTLE)
        watermark = ctx.state.get("watermark")
        start = format_datetime(parse_datetime(watermark) - SETTLE) if watermark else None
        handed = 0
        for watch in service.watches:
            entities = await ctx.history_since(watch, start)
            settled = [_until(e, bound) for e in entities]
            fresh = new_instances(ctx, settled)
            if fresh:
                await service.on_changes(ctx, fresh)
                handed += sum(len(v) for e in fresh for k, v in e.items() if isinstance(v, list))
        ctx.state["watermark"] = bound
        await ctx.save_state()
        return handed

    async def _changes_forever(self) -> None:
        while not self.stopping:
            try:
                await self.catch_up()
            except Exception:
                if self.stopping:  # psycopg turns a cancelled query into QueryCanceled
                    return
                log.exception("service %s (tenant %r) failed", self.ctx.service.name,
                              self.ctx.tenant)  # fmt: skip
            self.idle.set()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the
            # cancellation that stop() sends when the wake-up lands at the same moment, and
            # stop() then waits for ever (the teardown hang seen in the tests)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL):
                    await self.wake.wait()
            self.wake.clear()
            await asyncio.sleep(SETTLE.total_seconds())  # let the burst of changes settle

    async def _job_forever(self, job: Any) -> None:
        await asyncio.sleep(min(job.every, FIRST_JOB_DELAY))  # let the first catch-up run
        while not self.stopping:
            try:
                await job.run(self.ctx)
            except Exception:
                if self.stopping:  # a cancellation the database driver turned into an error
                    return
                log.exception("job %s of service %s failed", job.name, self.ctx.service.name)
            await asyncio.sleep(job.every)


def _until(entity: dict[str, Any], bound: str) -> dict[str, Any]:
    """The entity with only instances recorded (modifiedAt) before ``bound``."""
    kept: dict[str, Any] = {}
    for name, value in entity.items():
        if isinstance(value, list):
            kept[name] = [i for i in value if isinstance(i, dict)
                          and str(i.get("modifiedAt", "")) < bound]  # fmt: skip
        else:
            kept[name] = value
    return kept


class ServiceHost:
    """All enabled services of a platform process."""

    def __init__(self, broker: Broker, enabled: list[tuple[str, Service, Any]]) -> None:
        self.broker = broker
        self.runners = [
            ServiceRunner(ServiceContext(service, broker, tenant, settings))
            for tenant, service, settings in enabled
        ]

    async def start(self) -> None:
        """Start every runner."""
        for runner in self.runners:
            await runner.start()

    async def stop(self) -> None:
        """Stop every runner."""
        for runner in self.runners:
            await runner.stop()

    def context(self, tenant: str, name: str) -> ServiceContext | None:
        """The context of a service enabled in a tenant, or None."""
        for runner in self.runners:
            if runner.ctx.tenant == tenant and runner.ctx.service.name == name:
                return runner.ctx
        return None
