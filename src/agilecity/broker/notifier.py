"""Notification delivery: the change outbox is matched against subscriptions and sent.

Writes only append a change row in their transaction (see the store contract); this
dispatcher claims those rows after commit, so matching and sending are never on a
write's critical path. Each endpoint has its own bounded queue and worker: a slow or
unreachable receiver delays nobody else. A failed send is retried with backoff, in
order, until it succeeds, so an outage loses nothing the queue can hold; what it cannot
hold is counted on the subscription (``timesDropped``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import orjson

from agilecity.broker.context import CORE_CONTEXT_URL
from agilecity.broker.subscriptions import CompiledSubscription
from agilecity.broker.timeutil import now_iso
from agilecity.store.base import EntityQuery, EntitySelector, Store

if TYPE_CHECKING:
    from agilecity.broker.broker import Broker

log = logging.getLogger("agilecity.notifier")
Callback = Callable[[dict[str, Any]], Awaitable[None] | None]
CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"


@dataclass(frozen=True)
class DeliveryPolicy:
    """Limits of notification delivery."""

    queue_size: int = 10_000
    timeout: float = 5.0
    max_backoff: float = 10.0
    first_backoff: float = 0.1
    poll_interval: float = 0.5


class SendError(Exception):
    """A delivery attempt failed (the receiver answered an error or could not be reached)."""


#: the most entities one notification carries when waiting ones are sent together
MAX_NOTIFIED_ENTITIES = 100


class _Endpoint:
    """One receiver: a bounded queue and a worker sending in order, with retries."""

    def __init__(self, notifier: Notifier, key: str) -> None:
        self.notifier = notifier
        self.key = key
        self.queue: asyncio.Queue[tuple[CompiledSubscription, dict[str, Any]]] = asyncio.Queue(
            notifier.policy.queue_size
        )
        self.task = asyncio.create_task(self._run(), name=f"notify {key}")
        self._next: tuple[CompiledSubscription, dict[str, Any]] | None = None

    def offer(self, sub: CompiledSubscription, payload: dict[str, Any]) -> bool:
        try:
            self.queue.put_nowait((sub, payload))
        except asyncio.QueueFull:
            return False
        return True

    async def _run(self) -> None:
        policy = self.notifier.policy
        while not self.notifier._stopping:
            if self._next is not None:
                (sub, payload), self._next = self._next, None
            else:
                sub, payload = await self.queue.get()
            taken = 1 + self._coalesce(sub, payload)
            delay = policy.first_backoff
            while True:
                try:
                    await self.notifier.transport(sub, payload)
                except Exception as exc:  # any failure of the receiver: retry with backoff
                    self.notifier.record(sub, ok=False, reason=str(exc))
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, policy.max_backoff)
                    if not self.notifier.is_current(sub):
                        break  # the subscription was deleted meanwhile
                    continue
                self.notifier.record(sub, ok=True)
                break
            for _ in range(taken):
                self.queue.task_done()

    def _coalesce(self, sub: CompiledSubscription, payload: dict[str, Any]) -> int:
        """Add the waiting notifications of the same subscription to this one's data.

        A receiver slower than the updates would otherwise fall further behind with every
        one of them (one POST per change, in order); now one POST carries what waited, in
        the same order. It stops at another subscription's notification (kept for the
        next round), at an entity already in the data (each notification has one state
        per entity) and at MAX_NOTIFIED_ENTITIES. Returns how many it took from the queue.
        """
        data: list[dict[str, Any]] = payload["data"]
        seen = {entity.get("id") for entity in data}
        taken = 0
        while len(data) < MAX_NOTIFIED_ENTITIES and not self.queue.empty():
            other_sub, other = self.queue.get_nowait()
            ids = {entity.get("id") for entity in other["data"]}
            if other_sub is not sub or seen & ids or len(data) + len(ids) > MAX_NOTIFIED_ENTITIES:
                self._next = (other_sub, other)  # task_done when it is sent
                break
            data.extend(other["data"])
            seen |= ids
            taken += 1
        return taken


class Notifier:
    """Matches claimed changes against subscriptions and delivers notifications."""

    def __init__(self, broker: Broker, policy: DeliveryPolicy) -> None:
        self.broker = broker
        self.store: Store = broker.store
        self.policy: DeliveryPolicy = policy
        self.subscriptions: dict[tuple[str, str], CompiledSubscription] = {}
        self.callbacks: dict[tuple[str, str], Callback] = {}
        self._endpoints: dict[str, _Endpoint] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._periodic: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._throttled: dict[tuple[str, str], dict[str, Any]] = {}
        self._last_sent: dict[tuple[str, str], float] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._client: httpx.AsyncClient | None = None
        self._mqtt: dict[str, Any] = {}
        self._stopping: bool = False
        self._version = 0

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start the dispatcher and the status flusher."""
        self._client = httpx.AsyncClient(timeout=self.policy.timeout)
        self._tasks = [
            asyncio.create_task(self._dispatch_forever(), name="notification dispatcher"),
            asyncio.create_task(self._flush_forever(), name="subscription status flusher"),
        ]

    async def stop(self) -> None:
        """Stop every task, persist status counters, close connections."""
        self._stopping = True
        tasks = [
            *self._tasks,
            *self._periodic.values(),
            *(e.task for e in self._endpoints.values()),
        ]
        for task in tasks:
            task.cancel()
        if tasks:
            # A send that ignores cancellation must not hold shutdown hostage.
            _, pending = await asyncio.wait(tasks, timeout=self.policy.timeout)
            for task in pending:
                log.warning("task %s did not stop in time", task.get_name())
        await self._flush()
        if self._client is not None:
            await self._client.aclose()
        for client in self._mqtt.values():
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)

    async def sync_version(self) -> None:
        """Note the store's subscription version (the registry is about to be loaded)."""
        self._version = await self.store.subscription_version()

    def wake(self) -> None:
        """Called after a write committed: look at the outbox now."""
        self._wake.set()

    # -- the registry ------------------------------------------------------------------

    def put(self, sub: CompiledSubscription, callback: Callback | None = None) -> None:
        """Add or replace a subscription (keeping its status not yet saved)."""
        key = (sub.tenant, sub.id)
        previous = self.subscriptions.get(key)
        if previous is not None:
            sub.status = previous.status
        self.subscriptions[key] = sub
        if callback is not None:
            self.callbacks[key] = callback
            self.store.capture_changes(sub.tenant, True)
        task = self._periodic.pop(key, None)
        if task is not None:
            task.cancel()
        if sub.time_interval is not None:
            self._periodic[key] = asyncio.create_task(self._periodic_forever(sub))

    def remove(self, tenant: str, subscription_id: str) -> None:
        """Forget a subscription."""
        key = (tenant, subscription_id)
        self.subscriptions.pop(key, None)
        if self.callbacks.pop(key, None) is not None and not any(
            k[0] == tenant for k in self.callbacks
        ):
            self.store.capture_changes(tenant, False)
        task = self._periodic.pop(key, None)
        if task is not None:
            task.cancel()

    def is_current(self, sub: CompiledSubscription) -> bool:
        """True while the subscription still exists."""
        return (sub.tenant, sub.id) in self.subscriptions

    # -- matching ----------------------------------------------------------------------

    async def _dispatch_forever(self) -> None:
        while not self._stopping:
            # asyncio.timeout, unlike wait_for on 3.11, never turns a cancellation into a
            # timeout, so stop() cannot be swallowed here.
            try:
                async with asyncio.timeout(self.policy.poll_interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.dispatch_pending()
            except Exception:  # never let one bad change stop all notifications
                log.exception("notification dispatch failed; retrying")
                await asyncio.sleep(self.policy.poll_interval)

    async def dispatch_pending(self) -> None:
        """Claim every pending change, match it, hand notifications to the endpoints."""
        version = await self.store.subscription_version()
        if version != self._version:
            # Another process created, changed or deleted a subscription.
            self._version = version
            await self.broker.subscriptions.reload()
        while True:
            changes = await self.store.claim_changes(500)
            if not changes:
                return
            now = now_iso()
            for change in changes:
                doc = change.after if change.after is not None else change.before
                if doc is None:  # a write that found no entity and left none: nothing to say
                    continue
                for sub in list(self.subscriptions.values()):
                    if sub.tenant != change.tenant or sub.time_interval is not None:
                        continue
                    if not sub.is_live(now) or not sub.selects(doc):
                        continue
                    if sub.trigger(change.before, change.after) is None:
                        continue
                    if not await self.store.matches_filter(doc, sub.q, sub.scope_q):
                        continue
                    self._send(sub, [sub.render(change.before, change.after, now)])
            await self.store.ack_changes([c.seq for c in changes])

    async def _periodic_forever(self, sub: CompiledSubscription) -> None:
        assert sub.time_interval is not None
        while True:
            await asyncio.sleep(sub.time_interval)
            if not sub.is_live(now_iso()):
                continue
            query = EntityQuery(
                selectors=tuple(EntitySelector(s.id, s.id_pattern, s.types) for s in sub.selectors),
                q=sub.q,
                scope_q=sub.scope_q,
                geo=sub.geo,
                limit=self.broker.limits.max_page_size,
            )
            try:
                docs, _ = await self.store.query(sub.tenant, query)
            except Exception:
                log.exception("periodic subscription %s failed", sub.id)
                continue
            if docs:
                self._send(sub, [sub.render(None, d, now_iso()) for d in docs])

    # -- delivery ----------------------------------------------------------------------

    def _send(self, sub: CompiledSubscription, data: list[dict[str, Any]]) -> None:
        key = (sub.tenant, sub.id)
        if sub.throttling is not None:
            elapsed = time.monotonic() - self._last_sent.get(key, float("-inf"))
            if elapsed < sub.throttling:
                # Within the throttling window: keep the latest state of each entity and
                # send it when the window closes (coalescing, not dropping).
                pending = self._throttled.setdefault(key, {})
                first = not pending
                pending.update({entity["id"]: entity for entity in data})
                if first:
                    asyncio.get_running_loop().call_later(
                        sub.throttling - elapsed, self._release, sub
                    )
                return
            self._last_sent[key] = time.monotonic()
        payload = {
            "id": f"urn:ngsi-ld:Notification:{uuid.uuid4().hex}",
            "type": "Notification",
            "subscriptionId": sub.id,
            "notifiedAt": now_iso(),
            "data": data,
        }
        endpoint_key = "callback:" + sub.id if key in self.callbacks else sub.endpoint
        endpoint = self._endpoints.get(endpoint_key)
        if endpoint is None:
            endpoint = self._endpoints[endpoint_key] = _Endpoint(self, endpoint_key)
        if not endpoint.offer(sub, payload):
            self._count(sub, "timesDropped")

    def _release(self, sub: CompiledSubscription) -> None:
        pending = self._throttled.pop((sub.tenant, sub.id), {})
        if pending and self.is_current(sub):
            self._send(sub, list(pending.values()))

    async def transport(self, sub: CompiledSubscription, payload: dict[str, Any]) -> None:
        """Send one notification: Python callback, HTTP(S) POST or MQTT publish."""
        callback = self.callbacks.get((sub.tenant, sub.id))
        if callback is not None:
            result = callback(payload)
            if inspect.isawaitable(result):
                await result
            return
        body, headers = self._body(sub, payload)
        scheme = urlsplit(sub.endpoint).scheme
        if scheme in ("mqtt", "mqtts"):
            await self._publish_mqtt(sub, body, headers)
            return
        assert self._client is not None
        try:
            response = await self._client.post(sub.endpoint, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise SendError(f"{sub.endpoint}: {exc.__class__.__name__}") from exc
        if response.status_code >= 300:
            raise SendError(f"{sub.endpoint} answered HTTP {response.status_code}")

    def _body(
        self, sub: CompiledSubscription, payload: dict[str, Any]
    ) -> tuple[bytes, dict[str, str]]:
        context_urls = list(sub.terms.urls) or [CORE_CONTEXT_URL]
        headers = {"Content-Type": sub.accept if sub.accept != "application/geo+json"
                   else "application/json"}  # fmt: skip
        if sub.accept == "application/ld+json":
            # The subscription's own @context as given (inline objects included).
            sources = list(sub.doc.get("jsonldContext") or [])
            context: Any = CORE_CONTEXT_URL
            if sources:
                context = sources[0] if len(sources) == 1 else sources
            payload = {**payload, "@context": context}
        else:
            headers["Link"] = (
                f'<{context_urls[0]}>; rel="{CONTEXT_REL}"; type="application/ld+json"'
            )
        if sub.tenant:
            headers["NGSILD-Tenant"] = sub.tenant
        headers.update(dict(sub.receiver_info))
        return orjson.dumps(payload), headers

    async def _publish_mqtt(
        self, sub: CompiledSubscription, body: bytes, headers: dict[str, str]
    ) -> None:
        import aiomqtt

        parts = urlsplit(sub.endpoint)
        server = f"{parts.hostname}:{parts.port or 1883}"
        info = dict(sub.notifier_info)
        qos = int(info.get("MQTT-QoS", "0"))
        message = orjson.dumps({"metadata": headers, "body": orjson.loads(body)})
        try:
            client = self._mqtt.get(server)
            if client is None:
                client = aiomqtt.Client(
                    hostname=parts.hostname or "localhost",
                    port=parts.port or 1883,
                    username=parts.username,
                    password=parts.password,
                    timeout=self.policy.timeout,
                )
                await client.__aenter__()
                self._mqtt[server] = client
            await client.publish(parts.path.lstrip("/"), message, qos=qos)
        except aiomqtt.MqttError as exc:
            stale = self._mqtt.pop(server, None)
            if stale is not None:
                with contextlib.suppress(Exception):
                    await stale.__aexit__(None, None, None)
            raise SendError(f"{sub.endpoint}: {exc}") from exc

    # -- status ------------------------------------------------------------------------

    def _count(self, sub: CompiledSubscription, member: str) -> None:
        sub.status[member] = sub.status.get(member, 0) + 1
        self._dirty.add((sub.tenant, sub.id))

    def record(self, sub: CompiledSubscription, *, ok: bool, reason: str = "") -> None:
        """Update a subscription's status after one delivery attempt."""
        now = now_iso()
        sub.status["lastNotification"] = now
        if ok:
            self._count(sub, "timesSent")
            sub.status["lastSuccess"] = now
            sub.status["status"] = "ok"
        else:
            self._count(sub, "timesFailed")
            sub.status["lastFailure"] = now
            sub.status["status"] = "failed"
            log.warning("notification of %s failed: %s", sub.id, reason)

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self._flush()
            except Exception:
                log.exception("could not save subscription status")

    async def _flush(self) -> None:
        # Status members are added to the stored subscription as deltas, so that several
        # processes delivering for the same subscription never overwrite each other.
        dirty, self._dirty = self._dirty, set()
        for key in dirty:
            sub = self.subscriptions.get(key)
            if sub is None or key in self.callbacks or not sub.status:
                continue
            pending, sub.status = sub.status, {}
            counters = {k: v for k, v in pending.items() if isinstance(v, int)}
            stamps = {k: v for k, v in pending.items() if isinstance(v, str)}
            await self.store.update_subscription_status(sub.tenant, sub.id, counters, stamps)

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every queued notification was delivered (tests, shutdown)."""
        await self.dispatch_pending()
        deadline = time.monotonic() + timeout
        for endpoint in list(self._endpoints.values()):
            remaining = max(deadline - time.monotonic(), 0.01)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await endpoint.queue.join()
