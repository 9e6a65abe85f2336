"""Benchmarks of the device gateway against a running platform (gateway on) and Mosquitto.

- ceiling: the same frames published to Mosquitto and received by a plain subscriber
  (what the MQTT broker and client library allow on this machine, nothing stored);
- sustained ingestion: frames published as fast as QoS 1 allows from 100 devices, counted
  as written from the gateway's counters in /health (frames/s into the store);
- end-to-end lag: frames at a fixed rate, each carrying its send time; a subscription on
  the devices' entities notifies a local receiver; lag = arrival - send time (so it
  includes the notification hop, itself measured by the notification-latency scenario).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import aiomqtt
import httpx

from history_and_notifications import StampingReceiver, percentile

BASE = "/ngsi-ld/v1"
DEVICES = 100
QUIET = logging.getLogger("bench.mqtt")  # aiomqtt logs every publish waiting in its queue
QUIET.setLevel(logging.ERROR)


def provision(server: str, apikey: str) -> None:
    """One group, DEVICES devices with a Number temperature and a Number sentAt."""
    with httpx.Client(base_url=server, timeout=30) as client:
        group = {"apikey": apikey, "entity_type": "BenchSensor", "resource": "/iot/d"}
        client.post("/iot/services", json={"services": [group]}).raise_for_status()
        devices = [
            {"device_id": f"{apikey}-{i:03d}", "entity_type": "BenchSensor", "apikey": apikey,
             "attributes": [{"object_id": "t", "name": "temperature", "type": "Number"},
                            {"object_id": "s", "name": "sentAt", "type": "Number"}]}
            for i in range(DEVICES)
        ]  # fmt: skip
        client.post("/iot/devices", json={"devices": devices}).raise_for_status()


def _written(server: str) -> int:
    gateway: dict[str, int] = httpx.get(f"{server}/health", timeout=10).json()["gateway"]
    return gateway["frames_accepted"]


async def _publish(prefix: str, frames: int, port: int, devices: str = "") -> float:
    """Publish frames to ``<prefix>/<devices>-NNN/attrs``, QoS 1, 200 in flight; seconds taken."""
    async with aiomqtt.Client("127.0.0.1", port, max_inflight_messages=200, logger=QUIET) as client:
        start = time.perf_counter()
        for first in range(0, frames, 200):
            await asyncio.gather(*(
                client.publish(f"{prefix}/{devices}-{i % DEVICES:03d}/attrs", f"t|{i % 40}", qos=1)
                for i in range(first, min(frames, first + 200))
            ))  # fmt: skip
        return time.perf_counter() - start


async def _ceiling(frames: int, port: int) -> dict[str, float]:
    """Frames/s from a publisher to a plain subscriber through Mosquitto (and how many came)."""
    prefix = f"/ceiling-{uuid.uuid4().hex[:8]}"
    received = 0
    last = start = time.perf_counter()
    async with aiomqtt.Client("127.0.0.1", port, logger=QUIET) as subscriber:
        await subscriber.subscribe(f"{prefix}/+/attrs", qos=1)
        publisher = asyncio.create_task(_publish(prefix, frames, port, "ceiling"))
        start = time.perf_counter()
        messages = aiter(subscriber.messages)
        while received < frames:
            try:  # Mosquitto drops QoS 1 messages past a slow client's queue limit
                await asyncio.wait_for(anext(messages), 3.0)
            except TimeoutError:
                break
            received += 1
            last = time.perf_counter()
        await publisher
    return {"rate": received / (last - start), "received": received}


def _settled(server: str, before: int, frames: int) -> tuple[int, float]:
    """Frames written once the count reaches ``frames`` or stops moving for 3 s."""
    written, changed = before, time.perf_counter()
    while written - before < frames and time.perf_counter() - changed < 3.0:
        time.sleep(0.05)
        now = _written(server)
        if now != written:
            written, changed = now, time.perf_counter()
    return written - before, changed


def sustained_ingestion(server: str, frames: int = 20_000, port: int = 1883) -> dict[str, float]:
    """Frames/s written by the gateway, and the Mosquitto ceiling of the same frames."""
    apikey = f"bench{uuid.uuid4().hex[:8]}"
    provision(server, apikey)
    ceiling = asyncio.run(_ceiling(frames, port))
    time.sleep(3)  # let the gateway count the ceiling's frames (refused: not its devices)
    before = _written(server)
    start = time.perf_counter()
    published = asyncio.run(_publish(f"/{apikey}", frames, port, apikey))
    written, finished = _settled(server, before, frames)
    return {"frames": frames, "written": written, "rate": written / (finished - start),
            "publish_rate": frames / published, "ceiling": ceiling["rate"],
            "ceiling_received": ceiling["received"]}  # fmt: skip


def ingestion_lag(server: str, rate: int, seconds: int, port: int = 1883) -> dict[str, float]:
    """p50/p99 frame-to-notification lag in ms at a fixed frame rate."""
    apikey = f"lag{uuid.uuid4().hex[:8]}"
    provision(server, apikey)
    receiver = StampingReceiver()
    try:
        subscription = {
            "type": "Subscription",
            "entities": [{"type": "BenchSensor"}],
            "watchedAttributes": ["sentAt"],
            "notification": {"endpoint": {"uri": receiver.url}, "format": "keyValues",
                             "attributes": ["sentAt"]},
        }  # fmt: skip
        httpx.post(f"{server}{BASE}/subscriptions", json=subscription).raise_for_status()
        total = rate * seconds

        async def paced() -> float:
            async with aiomqtt.Client("127.0.0.1", port, logger=QUIET) as client:
                start = time.perf_counter()
                for i in range(total):
                    delay = start + i / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    topic = f"/{apikey}/{apikey}-{i % DEVICES:03d}/attrs"
                    await client.publish(topic, f"s|{time.time()!r}", qos=0)
                return total / (time.perf_counter() - start)

        achieved = asyncio.run(paced())
        deadline = time.monotonic() + 15
        while len(receiver.latencies) < total and time.monotonic() < deadline:
            time.sleep(0.05)
        ms = [1000 * v for v in receiver.latencies]
        result: dict[str, Any] = {"rate": achieved, "received": len(ms), "sent": total}
        result |= {"p50": percentile(ms, 0.5), "p99": percentile(ms, 0.99)} if ms else {}
        return result
    finally:
        receiver.close()
