"""Live updates for the pages: one in-process subscription per tenant fans changes out to
every open page (server-sent events), each seeing only the entity types it may read."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from agilecity.broker.broker import Broker
from agilecity.broker.context import core_term_map

QUEUE_SIZE = 256  # a page that falls this far behind misses updates, it does not slow others
KEEPALIVE_SECONDS = 15.0


@dataclass(eq=False)  # listeners are told apart by identity
class _Listener:
    types: frozenset[str] | None  # None: every type
    queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: int = 0


class LiveHub:
    """Subscribes (lazily, per tenant) to the types the map draws; fans out to listeners."""

    def __init__(self, broker: Broker, types: list[str]) -> None:
        self.broker = broker
        self.types = types
        self._listeners: dict[str, set[_Listener]] = {}
        self._cancels: dict[str, Callable[[], None]] = {}

    def _ensure(self, tenant: str) -> None:
        if tenant in self._cancels or not self.types:
            return
        payload = {"entities": [{"type": t} for t in self.types],
                   "notification": {"format": "keyValues"}}  # fmt: skip
        self._cancels[tenant] = self.broker.subscriptions.subscribe(
            tenant, payload, lambda n: self._publish(tenant, n), core_term_map()
        )

    def _publish(self, tenant: str, notification: dict[str, Any]) -> None:
        for entity in notification.get("data", []):
            event = _event(entity)
            for listener in self._listeners.get(tenant, ()):
                if listener.types is not None and entity.get("type") not in listener.types:
                    continue
                try:
                    listener.queue.put_nowait(event)
                except asyncio.QueueFull:
                    listener.dropped += 1

    async def stream(self, tenant: str, types: frozenset[str] | None) -> AsyncIterator[bytes]:
        """Server-sent events for one page until it goes away (keep-alive comments between)."""
        self._ensure(tenant)
        listener = _Listener(types)
        self._listeners.setdefault(tenant, set()).add(listener)
        try:
            yield b"retry: 3000\n\n"
            while True:
                try:
                    async with asyncio.timeout(KEEPALIVE_SECONDS):  # not wait_for, see host.py
                        event = await listener.queue.get()
                except TimeoutError:
                    event = b": keep-alive\n\n"
                yield event
        finally:
            self._listeners[tenant].discard(listener)

    def close(self) -> None:
        """Cancel the subscriptions (at shutdown)."""
        for cancel in self._cancels.values():
            with contextlib.suppress(Exception):
                cancel()
        self._cancels.clear()


def _event(entity: dict[str, Any]) -> bytes:
    body = {k: v for k, v in entity.items() if k != "@context"}
    return b"event: entity\ndata: " + orjson.dumps(body) + b"\n\n"
