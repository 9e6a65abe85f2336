"""The device gateway: device frames (MQTT or HTTP) -> attribute updates in the broker.

Each measure group of a frame becomes one update of the device's entity, every attribute
carrying ``observedAt`` (the frame's timestamp, else the arrival time), so it flows into
history and subscriptions like any NGSI-LD write. Frames that cannot be trusted (unknown
API key or device, a key that is not the device's, malformed text, wrong types,
implausible values) are counted per cause, logged once per cause and device, and never
create or change an entity. Frames of one device are applied in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from agilecity.broker.broker import Broker
from agilecity.broker.context import TermMap
from agilecity.broker.timeutil import now_iso
from agilecity.errors import AgileCityError
from agilecity.ingest.devices import DEVICE, GROUP, DeviceRegistry, mappings
from agilecity.ingest.frames import FrameError, MeasureGroup, parse_json, parse_payload
from agilecity.ingest.measures import MeasureError, fragment, static_attributes

log = logging.getLogger("agilecity.gateway")
TOPICS = ("/+/+/attrs", "/+/+/attrs/+", "/ul/+/+/attrs", "/json/+/+/attrs")
_LOGGED_LIMIT = 10_000
_SHARDS = 16
_REFRESH_EVERY = 30.0
_REFRESH_ON_MISS_AFTER = 2.0


class FrameRejected(AgileCityError):
    """A whole frame refused; ``cause`` names its counter."""

    status = 400
    error_type = "BadRequestData"
    title = "Device frame rejected"

    def __init__(self, cause: str, detail: str, status: int = 400) -> None:
        super().__init__(detail)
        self.cause = cause
        self.status = status


@dataclass
class Outcome:
    """What became of one frame."""

    entity_id: str
    written: int = 0
    skipped: int = 0  # measures not newer than the stored ones (redelivered frames)
    rejected: list[dict[str, str]] = field(default_factory=list)


@dataclass
class GatewayOptions:
    """Gateway settings: where the MQTT broker is and how big a frame may be."""

    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_username: str = ""
    mqtt_password: str = ""
    share_group: str = "agilecity"
    max_frame_bytes: int = 16_384
    context: str = ""


@dataclass
class _Frame:
    apikey: str
    device_id: str
    payload: bytes
    attribute: str | None
    json_only: bool
    received: str


@dataclass
class _Target:
    tenant: str
    device: dict[str, Any]
    group: dict[str, Any] | None


class Gateway:
    """Device ingestion into one Broker (in the same process)."""

    def __init__(self, broker: Broker, options: GatewayOptions | None = None) -> None:
        self.broker = broker
        self.registry = DeviceRegistry(broker)
        self.options = options or GatewayOptions()
        self.counters: Counter[str] = Counter()
        self.connected = False
        self._logged: set[tuple[str, str]] = set()
        self._groups_by_key: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self._devices: dict[tuple[str, str], dict[str, Any]] = {}
        self._device_tenants: dict[str, set[str]] = {}
        self._refreshed = 0.0
        self._refresh_lock = asyncio.Lock()
        self._terms: TermMap | None = None
        self._queues: list[asyncio.Queue[_Frame]] = []
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, *, mqtt: bool = True) -> None:
        """Load the device index, start the per-device-ordered workers and MQTT listener."""
        await self.refresh()
        self._queues = [asyncio.Queue(maxsize=1000) for _ in range(_SHARDS)]
        self._tasks = [asyncio.create_task(self._work(q)) for q in self._queues]
        self._tasks.append(asyncio.create_task(self._refresh_forever()))
        if mqtt:
            self._tasks.append(asyncio.create_task(self._listen_forever()))

    async def stop(self) -> None:
        """Finish queued frames (a few seconds at most), then stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(q.join() for q in self._queues)), 5.0)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self.connected = False

    async def refresh(self) -> None:
        """Reload the device index from the store (after provisioning, or periodically)."""
        async with self._refresh_lock:
            groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
            for record in await self.broker.list_records(GROUP):
                groups.setdefault(record.doc["apikey"], []).append((record.tenant, record.doc))
            devices: dict[tuple[str, str], dict[str, Any]] = {}
            tenants: dict[str, set[str]] = {}
            for record in await self.broker.list_records(DEVICE):
                devices[(record.tenant, record.key)] = record.doc
                tenants.setdefault(record.key, set()).add(record.tenant)
            self._groups_by_key, self._devices, self._device_tenants = groups, devices, tenants
            self._refreshed = time.monotonic()

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(_REFRESH_EVERY)
            try:
                await self.refresh()
            except Exception:
                log.exception("device index refresh failed")

    # -- frames --------------------------------------------------------------------------

    def _resolve(self, apikey: str, device_id: str) -> _Target:
        for tenant, group in self._groups_by_key.get(apikey, []):
            device = self._devices.get((tenant, device_id))
            if device is None:
                continue
            if device.get("apikey", apikey) == apikey:
                return _Target(tenant, device, group)
        for tenant in sorted(self._device_tenants.get(device_id, ())):
            device = self._devices[(tenant, device_id)]
            if device.get("apikey") == apikey:  # a device provisioned without a group
                return _Target(tenant, device, None)
        if device_id in self._device_tenants:
            raise FrameRejected(
                "wrong_apikey", f"API key is not the one of device {device_id!r}", 403
            )
        if apikey not in self._groups_by_key:
            raise FrameRejected("unknown_apikey", "unknown API key", status=404)
        raise FrameRejected("unknown_device", f"unknown device {device_id!r}", status=404)

    async def _target(self, apikey: str, device_id: str) -> _Target:
        try:
            return self._resolve(apikey, device_id)
        except FrameRejected:
            if time.monotonic() - self._refreshed < _REFRESH_ON_MISS_AFTER:
                raise
        await self.refresh()  # provisioned by another process since the last refresh?
        return self._resolve(apikey, device_id)

    def _note(self, cause: str, device_id: str, detail: str) -> None:
        self.counters[f"rejected_{cause}"] += 1
        key = (cause, device_id)
        if key not in self._logged and len(self._logged) < _LOGGED_LIMIT:
            self._logged.add(key)
            log.warning("device %r: %s (%s; further ones only counted)", device_id, detail, cause)

    async def terms(self) -> TermMap:
        """The @context device attributes are expanded with (the core context by default)."""
        if self._terms is None:
            sources: list[str | dict[str, Any]] | None = (
                [self.options.context] if self.options.context else None
            )
            self._terms = await self.broker.contexts.term_map(sources)
        return self._terms

    async def handle(
        self,
        apikey: str,
        device_id: str,
        body: bytes,
        *,
        attribute: str | None = None,
        timestamp: str | None = None,
        received: str | None = None,
        json_only: bool = False,
    ) -> Outcome:
        """Apply one frame; raises FrameRejected when nothing of it can be written."""
        self.counters["frames_received"] += 1
        received = received or now_iso()
        try:
            if len(body) > self.options.max_frame_bytes:
                raise FrameRejected(
                    "frame_too_large", f"frame over {self.options.max_frame_bytes} bytes", 413
                )
            target = await self._target(apikey, device_id)
            groups = self._parse(body, attribute, json_only)
            outcome = await self._apply(target, groups, timestamp or received)
        except FrameRejected as exc:
            self._note(exc.cause, device_id, exc.detail)
            raise
        if outcome.written or outcome.skipped:
            self.counters["frames_accepted"] += 1
        elif outcome.rejected:
            raise FrameRejected(
                outcome.rejected[0]["cause"], "no measure of the frame could be written"
            )
        return outcome

    @staticmethod
    def _parse(body: bytes, attribute: str | None, json_only: bool) -> list[MeasureGroup]:
        try:
            if attribute is not None:  # /<apikey>/<id>/attrs/<name>: the payload is one value
                text = body.decode("utf-8").strip()
                if not text or "\x00" in text:
                    raise FrameError("empty or NUL value")
                return [MeasureGroup([(attribute, text)])]
            return parse_json(body) if json_only else parse_payload(body)
        except (FrameError, UnicodeDecodeError) as exc:
            raise FrameRejected("malformed_frame", str(exc)) from None

    async def _apply(self, target: _Target, groups: list[MeasureGroup], default: str) -> Outcome:
        device, group = target.device, target.group
        entity_type = device.get("entity_type") or (group or {}).get("entity_type", "Device")
        entity_id = device.get("entity_name") or f"urn:ngsi-ld:{entity_type}:{device['device_id']}"
        maps = mappings(device, group)
        explicit = device.get("explicitAttrs", (group or {}).get("explicitAttrs", False))
        outcome = Outcome(entity_id)
        for measure_group in groups:
            observed = measure_group.timestamp or default
            attrs: dict[str, Any] = {}
            for object_id, raw in measure_group.measures:
                mapping = maps.get(object_id)
                if mapping is None and explicit:
                    self.counters["measures_unmapped"] += 1
                    continue
                try:
                    name, attr = fragment(entity_type, mapping, object_id, raw, observed)
                except MeasureError as exc:
                    self._note(exc.cause, device["device_id"], str(exc))
                    outcome.rejected.append(
                        {"measure": object_id, "cause": exc.cause, "reason": str(exc)}
                    )
                    continue
                attrs[name] = attr
            if attrs:
                written = await self._write(target, entity_id, entity_type, attrs)
                outcome.written += written
                outcome.skipped += len(attrs) - written
                self.counters["measures_written"] += written
        return outcome

    async def _write(
        self, target: _Target, entity_id: str, entity_type: str, attrs: dict[str, Any]
    ) -> int:
        """Write the measures; how many were new (redelivered or stale ones are skipped)."""
        statics = [*(target.group or {}).get("static_attributes", []),
                   *target.device.get("static_attributes", [])]  # fmt: skip
        item = {"id": entity_id, "type": entity_type, **attrs}
        try:
            written, created = await self.broker.record_measures(
                target.tenant, item, static_attributes(statics), await self.terms()
            )
        except AgileCityError as error:
            self._note("write_failed", target.device["device_id"], error.detail or error.title)
            raise FrameRejected("write_failed", error.detail or error.title) from None
        if created:
            self.counters["entities_created"] += 1
        skipped = len(attrs) - written
        if skipped:
            self.counters["measures_not_newer"] += skipped
        return written

    # -- MQTT ----------------------------------------------------------------------------

    def counters_snapshot(self) -> dict[str, int]:
        """Every counter, zeros included, for /health and /metrics."""
        names = ("frames_received", "frames_accepted", "measures_written", "measures_unmapped",
                 "measures_not_newer",
                 "entities_created", "rejected_unknown_apikey", "rejected_unknown_device",
                 "rejected_wrong_apikey", "rejected_malformed_frame", "rejected_frame_too_large",
                 "rejected_invalid_value", "rejected_out_of_range", "rejected_write_failed",
                 "rejected_bad_topic")  # fmt: skip
        return {name: self.counters.get(name, 0) for name in names}

    @staticmethod
    def frame_of_topic(topic: str, payload: bytes) -> _Frame | None:
        """The frame an MQTT message carries, or None for a topic that is not a device's."""
        parts = topic.split("/")
        if len(parts) < 4 or parts[0] != "":
            return None
        if len(parts) == 5 and parts[1] in ("ul", "json") and parts[4] == "attrs":
            return _Frame(parts[2], parts[3], payload, None, parts[1] == "json", now_iso())
        if len(parts) == 4 and parts[3] == "attrs":
            return _Frame(parts[1], parts[2], payload, None, False, now_iso())
        if len(parts) == 5 and parts[3] == "attrs" and parts[4]:
            return _Frame(parts[1], parts[2], payload, parts[4], False, now_iso())
        return None

    async def submit(self, topic: str, payload: bytes) -> bool:
        """Queue an MQTT message on its device's worker (waits while that worker is full)."""
        frame = self.frame_of_topic(topic, payload)
        if frame is None:
            self.counters["frames_received"] += 1
            self.counters["rejected_bad_topic"] += 1
            return False
        shard = zlib.crc32(frame.device_id.encode()) % len(self._queues)
        await self._queues[shard].put(frame)
        return True

    async def _work(self, queue: asyncio.Queue[_Frame]) -> None:
        while True:
            frame = await queue.get()
            try:
                await self.handle(
                    frame.apikey, frame.device_id, frame.payload, attribute=frame.attribute,
                    received=frame.received, json_only=frame.json_only,
                )  # fmt: skip
            except FrameRejected:
                pass  # counted and logged by handle
            except Exception:
                self.counters["rejected_write_failed"] += 1
                log.exception("device %r: frame failed", frame.device_id)
            finally:
                queue.task_done()

    async def _listen_forever(self) -> None:
        delay = 1.0
        identifier = f"agilecity-gateway-{socket.gethostname()}-{os.getpid()}"
        while True:
            try:
                async with aiomqtt.Client(
                    self.options.mqtt_host,
                    self.options.mqtt_port,
                    username=self.options.mqtt_username or None,
                    password=self.options.mqtt_password or None,
                    identifier=identifier,
                ) as client:
                    for topic in TOPICS:  # shared: with several processes each frame goes to one
                        await client.subscribe(f"$share/{self.options.share_group}/{topic}", qos=1)
                    self.connected = True
                    delay = 1.0
                    log.info("gateway listening on mqtt://%s:%s", *self._address())
                    async for message in client.messages:
                        payload = message.payload
                        if not isinstance(payload, bytes | bytearray):
                            payload = str(payload).encode()
                        await self.submit(str(message.topic), bytes(payload))
            except aiomqtt.MqttError as exc:
                self.connected = False
                log.warning("MQTT broker unreachable (%s); retrying in %.0f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    def _address(self) -> tuple[str, int]:
        return self.options.mqtt_host, self.options.mqtt_port
