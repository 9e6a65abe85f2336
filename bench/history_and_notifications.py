"""Benchmarks of subscriptions and the temporal API against a running broker.

- notification latency: PATCH at a fixed rate, a real HTTP receiver stamps each arrival;
  latency = arrival - send time of the update that caused it (same clock);
- temporal aggregation: one year of 15-minute readings (35,040) for one attribute, then
  the daily average over the year (365 periods), timed end to end over HTTP.
"""

from __future__ import annotations

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


def notification_latency(server: str, rate: int, seconds: int) -> dict[str, float]:
    """p50/p99 update-to-receipt latency in ms at a fixed update rate."""
    receiver = StampingReceiver()
    client = httpx.Client(base_url=server, timeout=10)
    try:
        entity = {"id": "urn:ngsi-ld:Bench:latency", "type": "LatencyProbe",
                  "sentAt": {"value": "0"}}  # fmt: skip
        client.post(f"{BASE}/entities", json=entity)
        subscription = {
            "type": "Subscription",
            "entities": [{"type": "LatencyProbe"}],
            "watchedAttributes": ["sentAt"],
            "notification": {"endpoint": {"uri": receiver.url}, "format": "keyValues"},
        }
        client.post(f"{BASE}/subscriptions", json=subscription).raise_for_status()
        total = rate * seconds
        start = time.perf_counter()
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            client.patch(
                f"{BASE}/entities/urn:ngsi-ld:Bench:latency/attrs",
                json={"sentAt": {"value": repr(time.time())}},
            )
        achieved = total / (time.perf_counter() - start)
        deadline = time.monotonic() + 10
        while len(receiver.latencies) < total and time.monotonic() < deadline:
            time.sleep(0.05)
        ms = [1000 * v for v in receiver.latencies]
        return {"rate": achieved, "received": len(ms), "sent": total,
                "p50": percentile(ms, 0.5), "p99": percentile(ms, 0.99)}  # fmt: skip
    finally:
        client.close()
        receiver.close()


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
