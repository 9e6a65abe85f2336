"""Benchmarks of subscriptions and the temporal API against a running broker.

- notification latency: PATCHes released at a fixed rate (open loop, asyncio, several
  keep-alive connections) on 100 probe entities; a receiver in the same event loop stamps
  each notification; latency = arrival - send time of the update that caused it;
- temporal aggregation: one year of 15-minute readings (35,040) for one attribute, then
  the daily average over the year (365 periods), timed end to end over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

BASE = "/ngsi-ld/v1"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class StampingReceiver:
    """Records the arrival time of every notification with the send time it carries."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                arrived = time.time()
                for entity in json.loads(body)["data"]:
                    receiver.latencies.append(arrived - float(entity["sentAt"]))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


PROBES = 100  # entities the latency updates rotate over


def _content_length(head: bytes) -> int:
    """The Content-Length of an HTTP message head (0 without one)."""
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            return int(line[15:])
    return 0


class _Receiver:
    """An asyncio HTTP endpoint that stamps each notification's arrival (in the sender's loop)."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, bytes]] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/notify"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                body = await reader.readexactly(_content_length(head))
                self.arrivals.append((time.time(), body))
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()  # the broker closed its connection, or the run is over

    def latencies_ms(self) -> list[float]:
        """Arrival minus the send time each notified entity carries, in ms."""
        return [
            1000 * (arrived - float(entity["sentAt"]))
            for arrived, body in self.arrivals
            for entity in json.loads(body)["data"]
            if entity["sentAt"] != "0"  # the probes' creation value, never a PATCH's
        ]


async def _paced_patches(
    host: str, port: int, rate: int, seconds: float, connections: int
) -> tuple[int, float, dict[int, int]]:
    """PATCH sentAt on the probes at ``rate``/s over ``connections`` keep-alive connections.

    A scheduler releases update i at start + i/rate whatever the responses do (no
    coordinated omission); each connection sends the next released update when free and
    stamps it just before writing. Returns updates sent, the rate they were written at
    (up to the last write), statuses seen.
    """
    total = int(rate * seconds)
    released: asyncio.Queue[int | None] = asyncio.Queue()
    statuses: dict[int, int] = {}
    last_write = 0.0

    async def connection() -> None:
        nonlocal last_write
        reader, writer = await asyncio.open_connection(host, port)
        while (i := await released.get()) is not None:
            body = b'{"sentAt":{"type":"Property","value":"%r"}}' % time.time()
            last_write = time.perf_counter()
            writer.write(
                b"PATCH %s/entities/urn:ngsi-ld:LatencyProbe:%d/attrs HTTP/1.1\r\n"
                b"Host: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (BASE.encode(), i % PROBES, host.encode(), len(body), body)
            )
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            statuses[status] = statuses.get(status, 0) + 1
            await reader.readexactly(_content_length(head))
        writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    start = time.perf_counter()
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        released.put_nowait(i)
    for _ in workers:
        released.put_nowait(None)
    await asyncio.gather(*workers)
    return total, (total - 1) / (last_write - start), statuses


def notification_latency(
    server: str, rate: int, seconds: float, connections: int = 10
) -> dict[str, Any]:
    """p50/p95/p99 update-to-receipt latency in ms at a fixed update rate (asyncio client).

    The probes' PATCHes go out at ``rate``/s from several connections; a subscription on
    them notifies a receiver in the same event loop, which stamps arrivals with the same
    clock the sender stamps ``sentAt`` with.
    """
    url = httpx.URL(server)
    host, port = url.host, url.port or 80

    async def scenario() -> dict[str, Any]:
        receiver = _Receiver()
        endpoint = await receiver.start()
        async with httpx.AsyncClient(base_url=server, timeout=30) as client:
            probes = [
                {"id": f"urn:ngsi-ld:LatencyProbe:{i}", "type": "LatencyProbe",
                 "sentAt": {"type": "Property", "value": "0"}}
                for i in range(PROBES)
            ]  # fmt: skip
            response = await client.post(f"{BASE}/entityOperations/upsert", json=probes)
            response.raise_for_status()
            subscription = {
                "type": "Subscription",
                "entities": [{"type": "LatencyProbe"}],
                "watchedAttributes": ["sentAt"],
                "notification": {"endpoint": {"uri": endpoint}, "format": "keyValues",
                                 "attributes": ["sentAt"]},
            }  # fmt: skip
            response = await client.post(f"{BASE}/subscriptions", json=subscription)
            response.raise_for_status()
            sent, achieved, statuses = await _paced_patches(host, port, rate, seconds, connections)
            deadline = time.monotonic() + 10
            while len(receiver.arrivals) < sent and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await client.delete(response.headers["Location"])
        assert receiver.server is not None
        receiver.server.close()
        ms = receiver.latencies_ms()
        errors = sum(n for status, n in statuses.items() if status != 204)
        result: dict[str, Any] = {
            "target": rate, "rate": achieved, "sent": sent, "received": len(ms),
            "errors": errors, "statuses": statuses,
        }  # fmt: skip
        if ms:
            result |= {"p50": percentile(ms, 0.5), "p95": percentile(ms, 0.95),
                       "p99": percentile(ms, 0.99), "max": max(ms)}  # fmt: skip
        return result

    try:
        import uvloop
    except ImportError:
        return asyncio.run(scenario())
    return uvloop.run(scenario())


def temporal_aggregation(server: str, repeats: int = 20) -> dict[str, float]:
    """Backfill a year of 15-minute readings, then time the daily-average query."""
    client = httpx.Client(base_url=server, timeout=60)
    entity_id = "urn:ngsi-ld:Bench:year"
    start = datetime(2025, 1, 1, tzinfo=UTC)
    readings = [
        {"type": "Property", "value": 20 + (i % 96) / 10,
         "observedAt": (start + timedelta(minutes=15 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")}
        for i in range(365 * 96)
    ]  # fmt: skip
    began = time.perf_counter()
    for offset in range(0, len(readings), 2000):
        chunk = readings[offset : offset + 2000]
        body = {"id": entity_id, "type": "Meter", "temperature": chunk}
        client.post(f"{BASE}/temporal/entities", json=body).raise_for_status()
    backfill = len(readings) / (time.perf_counter() - began)
    params = {"options": "aggregatedValues", "aggrMethods": "avg", "aggrPeriodDuration": "P1D",
              "timerel": "between", "timeAt": "2025-01-01T00:00:00Z",
              "endTimeAt": "2026-01-01T00:00:00Z"}  # fmt: skip
    timings = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        response = client.get(f"{BASE}/temporal/entities/{entity_id}", params=params)
        timings.append(1000 * (time.perf_counter() - t0))
        response.raise_for_status()
    periods = len(response.json()["temperature"]["avg"])
    client.close()
    return {"readings": len(readings), "backfill_per_s": backfill, "periods": periods,
            "p50": statistics.median(timings), "p95": percentile(timings, 0.95)}  # fmt: skip
