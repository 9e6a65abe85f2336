"""The HTTP scenarios: request templates, the generic wrk script that sends them, the check.

A scenario is a method and a list of (path, body) variants holding placeholders that wrk's
Lua script fills per request: ``@@uid@@`` (unique per request: run token, wrk thread,
request counter), ``@@seed@@`` (a seeded entity's index, rotating with a prime stride),
``@@time@@`` (an ISO timestamp that moves one second per request). Python renders the
same templates for the check that each scenario's request gets its expected status before
wrk measures it, so the Lua and the check cannot drift apart.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from template import CALIBRATED, CENTER, RAW, SPREAD, TYPE, Q, entity, seed_id, unit_values

BASE = "/ngsi-ld/v1"
SEED_PREFIX = "seed"
BATCH = 1000  # entities per batch upsert, the broker's default max_batch_entities
MARK = re.compile(r"@@(uid|seed|time)@@")
TIME_BASE = 1_795_000_000  # 2026-11-18, the Lua @@time@@ origin
JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Scenario:
    """One wrk scenario: what is sent, what status means success, what one request counts."""

    key: str
    name: str
    method: str
    variants: list[tuple[str, str]]  # (path, body) templates, rotated per request
    expect: frozenset[int]
    per_request: int = 1  # entities or instances one request carries
    unit: str = "req/s"
    connections: int | None = None  # instead of --connections (bulk loads: a few)
    run: str = field(default_factory=lambda: secrets.token_hex(3))

    def render(self, variant: int, values: dict[str, str]) -> tuple[str, str]:
        """A variant with its placeholders filled, as the Lua script fills them."""
        path, body = self.variants[variant]

        def fill(mark: re.Match[str]) -> str:
            return values[mark[1]]

        return MARK.sub(fill, path), MARK.sub(fill, body)

    def check(self, server: str, timeout: float) -> None:
        """Send the first variant once; a status outside ``expect`` stops the benchmark."""
        values = {"uid": f"{self.key}{self.run}-check", "seed": "0", "time": "2026-12-01T00:00:00Z"}
        path, body = self.render(0, values)
        headers = JSON_HEADERS if body else {}
        response = httpx.request(
            self.method, server + path, content=body or None, headers=headers, timeout=timeout
        )
        if response.status_code not in self.expect:
            raise SystemExit(
                f"{self.name}: {self.method} {path} answered {response.status_code} at {server}, "
                f"expected {sorted(self.expect)}: {response.text[:500]}"
            )


def lua_string(text: str) -> str:
    """A Lua string literal of ``text`` (printable ASCII kept, every other byte as \\ddd)."""
    out = []
    for byte in text.encode():
        char = chr(byte)
        out.append(char if 32 <= byte < 127 and char not in '"\\' else f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def lua_parts(template: str) -> str:
    """The template split into a Lua array: literals at odd, placeholder names at even places."""
    return "{" + ",".join(lua_string(p) for p in MARK.split(template)) + "}"


LUA = """
local EXPECT = {%(expect)s}
local VARIANTS = {%(variants)s}
local RUN, SEEDS, TIME_BASE, METHOD = %(run)s, %(seeds)d, %(time_base)d, %(method)s
local HEADERS = %(headers)s
local threads, count = {}, 0
function setup(thread)
  thread:set("tid", count)
  count = count + 1
  table.insert(threads, thread)
end
n, bad, first = 0, 0, ""
local function render(parts, values)
  if #parts == 1 then return parts[1] end
  local out = {}
  for i = 1, #parts do
    if i %% 2 == 0 then out[i] = values[parts[i]] else out[i] = parts[i] end
  end
  return table.concat(out)
end
function request()
  n = n + 1
  local values = {uid = RUN .. "-" .. tid .. "-" .. n,
                  seed = string.format("%%d", (n * 7919 + tid * 104729) %% SEEDS),
                  time = os.date("!%%Y-%%m-%%dT%%H:%%M:%%SZ", TIME_BASE + n)}
  local variant = VARIANTS[n %% #VARIANTS + 1]
  local body = variant[2]
  if body ~= nil then body = render(body, values) end
  return wrk.format(METHOD, render(variant[1], values), HEADERS, body)
end
function response(status, headers, body)
  if not EXPECT[status] then
    bad = bad + 1
    if first == "" then first = status .. " " .. string.sub(body or "", 1, 300) end
  end
end
function done(summary, latency, requests)
  local unexpected, sample = 0, ""
  for _, thread in ipairs(threads) do
    unexpected = unexpected + thread:get("bad")
    if sample == "" then sample = thread:get("first") end
  end
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%.3f %%.3f %%.3f\\n", summary.requests,
    summary.duration, unexpected, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000))
  io.write("FIRST " .. (string.gsub(sample, "\\n", " ")) .. "\\n")
end
"""


def lua_script(scenario: Scenario, seeds: int) -> str:
    """The wrk script sending ``scenario`` (its templates inlined)."""
    variants = ",".join(
        "{" + lua_parts(path) + ("," + lua_parts(body) if body else "") + "}"
        for path, body in scenario.variants
    )
    headers = '{["Content-Type"]="application/json"}' if scenario.variants[0][1] else "{}"
    return LUA % {
        "expect": ",".join(f"[{s}]=true" for s in sorted(scenario.expect)),
        "variants": variants,
        "run": lua_string(scenario.key + scenario.run),
        "seeds": seeds,
        "time_base": TIME_BASE,
        "method": lua_string(scenario.method),
        "headers": headers,
    }


def wrk(
    command_prefix: list[str],
    port: int,
    scenario: Scenario,
    seeds: int,
    duration: float,
    connections: int,
) -> dict[str, Any]:
    """Run wrk (1 thread) with the scenario's script: rates, latencies in ms, errors."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua_script(scenario, seeds))
    try:
        command = [*command_prefix, "wrk", "-t1", f"-c{connections}", f"-d{duration}s",
                   "--timeout", "30s", "-s", f.name, f"http://127.0.0.1:{port}"]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    lines = {line.split(" ", 1)[0]: line for line in done.stdout.splitlines()}
    if "RESULT" not in lines:
        raise SystemExit(f"wrk failed on {scenario.name}: {done.stderr[-1000:]}{done.stdout}")
    _, requests, micros, unexpected, socket_errors, p50, p95, p99 = lines["RESULT"].split()
    rate = int(requests) / (int(micros) / 1e6)
    answered = int(requests) > 0  # wrk reports 0 ms percentiles when nothing came back
    return {
        "rate": rate,
        "per_s": rate * scenario.per_request,
        "requests": int(requests),
        "errors": int(unexpected) + int(socket_errors),
        "p50": float(p50) if answered else None,
        "p95": float(p95) if answered else None,
        "p99": float(p99) if answered else None,
        "first_error": lines.get("FIRST", "FIRST ")[6:].strip(),
    }


def geo_points(count: int = 64) -> list[tuple[float, float]]:
    """Query points spread over the inner 90 % of the seeded square."""
    points = []
    for k in range(count):
        _, _, x, y = unit_values(10_000_000 + k)
        points.append(
            (round(CENTER[0] + 0.9 * SPREAD * (2 * x - 1), 5),
             round(CENTER[1] + 0.9 * SPREAD * (2 * y - 1), 5))
        )  # fmt: skip
    return points


def query_path(**params: str) -> str:
    """GET /entities with the parameters, percent-encoded as any client would."""
    return f"{BASE}/entities?" + urllib.parse.urlencode(params, safe=",")


def q_path() -> str:
    """The type + q query of the benchmark (limit 20)."""
    return query_path(type=TYPE, q=Q, limit="20")


def geo_path(lon: float, lat: float) -> str:
    """The near;maxDistance==500 geo-query of the benchmark around (lon, lat), limit 20."""
    return query_path(type=TYPE, georel="near;maxDistance==500", geometry="Point",
                      coordinates=f"[{lon},{lat}]", limit="20")  # fmt: skip


def dumps(document: object) -> str:
    return orjson.dumps(document).decode()


def scenarios() -> list[Scenario]:
    """The wrk scenarios in the order they run (queries first, on the freshly seeded store)."""
    seeded = f"{BASE}/entities/{seed_id(SEED_PREFIX, '@@seed@@')}"
    patches = [
        dumps({"type": "Property", "value": round(5 + 30 * unit_values(i)[0], 2),
               "unitCode": "CEL", "observedAt": "@@time@@", "datasetId": RAW})
        for i in range(50)
    ]  # fmt: skip
    readings = [
        dumps({
            "temperature": [
                {"type": "Property", "value": 20.5 + i % 7, "unitCode": "CEL",
                 "observedAt": "@@time@@", "datasetId": RAW},
                {"type": "Property", "value": 20.2 + i % 7, "unitCode": "CEL",
                 "observedAt": "@@time@@", "datasetId": CALIBRATED},
            ],
            "humidity": {"type": "Property", "value": 40 + i, "unitCode": "P1",
                         "observedAt": "@@time@@"},
            "pm10": {"type": "Property", "value": 12 + i, "unitCode": "GQ",
                     "observedAt": "@@time@@"},
        })
        for i in range(10)
    ]  # fmt: skip
    batch = dumps([entity(seed_id("@@uid@@", i), i) for i in range(BATCH)])
    return [
        Scenario("q", "query type + q, limit 20", "GET", [(q_path(), "")], frozenset({200})),
        Scenario("geo", "geo-query near;maxDistance==500, limit 20", "GET",
                 [(geo_path(*p), "") for p in geo_points()], frozenset({200})),
        Scenario("retrieve", "retrieve entity", "GET", [(seeded, "")], frozenset({200})),
        Scenario("update", "partial attribute update", "PATCH",
                 [(f"{seeded}/attrs/temperature", body) for body in patches], frozenset({204})),
        Scenario("create", "create entity", "POST",
                 [(f"{BASE}/entities", dumps(entity(seed_id("@@uid@@", i), i))) for i in range(50)],
                 frozenset({201})),
        Scenario("upsert", f"batch upsert ({BATCH:,} entities/request, 2 connections)", "POST",
                 [(f"{BASE}/entityOperations/upsert", batch)], frozenset({201}),
                 per_request=BATCH, unit="entities/s", connections=2),
        Scenario("append", "temporal append (4 instances/request)", "POST",
                 [(f"{BASE}/temporal{seeded[len(BASE):]}/attrs", body) for body in readings],
                 frozenset({204})),
    ]  # fmt: skip


def batches(prefix: str, count: int, first: int = 0) -> Iterator[bytes]:
    """Batch-upsert bodies of the template entities ``first`` .. ``first + count - 1``."""
    for start in range(first, first + count, BATCH):
        stop = min(first + count, start + BATCH)
        yield orjson.dumps([entity(seed_id(prefix, i), i) for i in range(start, stop)])


def upsert_entities(server: str, prefix: str, count: int, first: int = 0) -> float:
    """Batch-upsert ``count`` template entities, two requests in flight; seconds taken.

    Each of the two client threads builds its next body while the other's request is in
    the broker, so the client is not what the rate measures.
    """
    bodies = batches(prefix, count, first)
    lock = threading.Lock()  # one generator, two threads
    with httpx.Client(base_url=server, timeout=300) as client:

        def post(body: bytes) -> None:
            response = client.post(
                f"{BASE}/entityOperations/upsert", content=body, headers=JSON_HEADERS
            )
            if response.status_code not in (201, 204):
                raise SystemExit(f"batch upsert answered {response.status_code}: {response.text}")

        def worker() -> None:
            while True:
                with lock:
                    body = next(bodies, None)
                if body is None:
                    return
                post(body)

        began = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            for future in [pool.submit(worker) for _ in range(2)]:
                future.result()
        return time.perf_counter() - began
