"""Benchmarks: NGSI-LD create and retrieve against the bare HTTP stack, in the same run.

Each server runs in its own process, pinned to CPU 0 where ``taskset`` exists; wrk, the
load generator, runs pinned to CPU 1. Prints one table (markdown) and exits.
Usage: ``make bench`` or ``.venv/bin/python bench/run.py [--duration 10] [--connections 10]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from history_and_notifications import notification_latency, temporal_aggregation  # noqa: E402
from ingest import ingestion_lag, sustained_ingestion  # noqa: E402

PY = sys.executable

CREATE_LUA = """
local n = 0
local tid = 0
setup = function(thread) thread:set("tid", tid); tid = tid + 1 end
request = function()
  n = n + 1
  local body = string.format([[{"id":"urn:ngsi-ld:Bench:%s-%d","type":"Bench",
    "temperature":{"type":"Property","value":21.5,"unitCode":"CEL","observedAt":"2026-11-30T08:00:00Z"},
    "status":{"type":"Property","value":"ok"},
    "location":{"type":"GeoProperty",
                "value":{"type":"Point","coordinates":[3.17,50.69]}}}]], tid, n)
  local headers = {["Content-Type"]="application/json"}
  return wrk.format("POST", "/ngsi-ld/v1/entities", headers, body)
end
"""
RETRIEVE_LUA = """
request = function()
  return wrk.format("GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:Bench:seed")
end
"""
REPORT_LUA = """
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.3f %.3f %.3f\\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000))
end
"""
SEED = (
    b'{"id":"urn:ngsi-ld:Bench:seed","type":"Bench",'
    b'"temperature":{"type":"Property","value":21.5,"unitCode":"CEL"},'
    b'"location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[3.17,50.69]}}}'
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cpu: int, command: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu), *command]
    return command


def wait_ready(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"server at {url} did not start")


def wrk(port: int, script: str, duration: int, connections: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script + REPORT_LUA)
    command = pinned(
        1,
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "-s", f.name,
         f"http://127.0.0.1:{port}"],
    )  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    os.unlink(f.name)
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    _, requests, errors, p50, p95, p99 = line.split()
    return {
        "rate": int(requests) / duration,
        "errors": int(errors),
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
    }


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        pinned(0, command), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--rate", type=int, default=200, help="updates/s for notification latency")
    parser.add_argument("--db", default="", help="store URL (default: a fresh SQLite file)")
    parser.add_argument("--frames", type=int, default=20_000, help="MQTT frames for ingestion")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    env = dict(os.environ)
    rows: list[tuple[str, dict[str, float], dict[str, float]]] = []
    bare_port = free_port()
    bare = start(
        [PY, "-m", "uvicorn", "bare_app:app", "--port", str(bare_port), "--log-level",
         "warning", "--no-access-log", "--app-dir", str(HERE)], env,
    )  # fmt: skip
    data = tempfile.mkdtemp(prefix="agilecity-bench-")
    port = free_port()
    db = args.db or f"sqlite:///{data}/bench.sqlite"
    broker_env = {
        **env,
        "AGILECITY_PORT": str(port),
        "AGILECITY_LOG_LEVEL": "warning",
        "AGILECITY_DB": db,
        "AGILECITY_AUTH": "false",  # the open mode: wrk and the probes send no credentials
        "AGILECITY_ALLOW_PRIVATE_NOTIFICATION_URLS": "true",
        "AGILECITY_GATEWAY": "true",
        "AGILECITY_MQTT_SHARE_GROUP": f"bench{port}",
    }
    broker = start([PY, "-m", "agilecity.cli", "serve"], broker_env)
    try:
        wait_ready(f"http://127.0.0.1:{bare_port}/ngsi-ld/v1/entities/x")
        wait_ready(f"http://127.0.0.1:{port}/health")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/ngsi-ld/v1/entities", data=SEED,
            headers={"Content-Type": "application/json"}, method="POST",
        )  # fmt: skip
        urllib.request.urlopen(request).close()
        for name, script in (("create entity", CREATE_LUA), ("retrieve entity", RETRIEVE_LUA)):
            ceiling = wrk(bare_port, script, args.duration, args.connections)
            measured = wrk(port, script, args.duration, args.connections)
            rows.append((name, measured, ceiling))
        server = f"http://127.0.0.1:{port}"
        latency = notification_latency(server, args.rate, args.duration)
        aggregation = temporal_aggregation(server)
        ingestion = sustained_ingestion(server, args.frames)
        lag = ingestion_lag(server, args.rate, args.duration)
    finally:
        for process in (bare, broker):
            process.terminate()
            process.wait(timeout=10)
        shutil.rmtree(data, ignore_errors=True)
    print(f"{args.connections} connections, {args.duration} s per scenario, server on 1 core\n")
    print("| scenario | req/s | p50 ms | p95 ms | p99 ms | errors | bare stack req/s | ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, m, c in rows:
        print(
            f"| {name} | {m['rate']:.0f} | {m['p50']:.2f} | {m['p95']:.2f} | {m['p99']:.2f} "
            f"| {m['errors']:.0f} | {c['rate']:.0f} | {m['rate'] / c['rate']:.0%} |"
        )
    print(
        f"\nnotification latency at {latency['rate']:.0f} updates/s: "
        f"p50 {latency['p50']:.1f} ms, p99 {latency['p99']:.1f} ms "
        f"({latency['received']:.0f}/{latency['sent']:.0f} received)"
    )
    print(
        f"temporal: backfill {aggregation['readings']:.0f} readings at "
        f"{aggregation['backfill_per_s']:.0f} readings/s; daily average over a year "
        f"({aggregation['periods']:.0f} periods): p50 {aggregation['p50']:.1f} ms, "
        f"p95 {aggregation['p95']:.1f} ms"
    )
    print(
        f"device gateway: {ingestion['written']:.0f}/{ingestion['frames']:.0f} MQTT frames "
        f"written at {ingestion['rate']:.0f} frames/s "
        f"(publisher {ingestion['publish_rate']:.0f}/s; "
        f"Mosquitto to a bare subscriber {ingestion['ceiling']:.0f}/s, "
        f"{ingestion['ceiling_received']:.0f} received); frame-to-notification lag at "
        f"{lag['rate']:.0f} frames/s: p50 {lag.get('p50', float('nan')):.1f} ms, "
        f"p99 {lag.get('p99', float('nan')):.1f} ms ({lag['received']:.0f}/{lag['sent']:.0f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
