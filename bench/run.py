"""Benchmarks of the NGSI-LD broker against its ceilings, measured in the same run: one table.

Ceilings: the bare HTTP stack (bench/bare_app.py, same uvicorn/Starlette/orjson, no broker)
answering the same requests, and the raw store (bench/raw_store.py: the same entities
inserted with sqlite3 or psycopg alone). Every scenario uses the entity of
bench/template.py. Servers run pinned to CPU 0 (``taskset``); wrk, the Python clients and
py-spy run pinned to CPU 1. With ``--workers 2`` the server gets both cores and shares
CPU 1 with the load generator.

    make bench
    .venv/bin/python bench/run.py [--quick] [--duration 10] [--connections 10]
        [--db postgresql://postgres@127.0.0.1:5432/agilecity_bench] [--workers 2]
        [--compare-workers] [--profile DIR] [--entities 100000] [--entities-for-memory N]

A PostgreSQL database is dropped and recreated first (its name must contain "bench").
A request that gets no answer within 60 s, or a broker still busy 60 s after wrk stops,
restarts the broker: the scenario is reported as unanswered and the run goes on.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import httpx  # noqa: E402
import psycopg  # noqa: E402

from history_and_notifications import notification_latency, temporal_aggregation  # noqa: E402
from ingest import ingestion_lag, sustained_ingestion  # noqa: E402
from procfs import cpu_seconds, resident_mb  # noqa: E402
from pyspy import Profiler  # noqa: E402
from scenarios import (  # noqa: E402
    BASE,
    SEED_PREFIX,
    Scenario,
    geo_path,
    geo_points,
    q_path,
    scenarios,
    upsert_entities,
    wrk,
)
from template import TYPE, Q, seed_id  # noqa: E402

PY = sys.executable
FULL = {"duration": 10, "entities": 100_000, "entities_for_memory": 1_000_000, "frames": 20_000}
QUICK = {"duration": 2, "entities": 10_000, "entities_for_memory": 20_000, "frames": 2_000}
MULTI_CORE = (os.cpu_count() or 1) > 1 and shutil.which("taskset") is not None
PATIENCE = 60.0  # seconds a request may take, or the broker stay busy, before a restart


@dataclass
class Row:
    """One line of the table: ``result`` None when unanswered (``missing`` says how)."""

    key: str
    name: str
    result: float | None
    unit: str
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    errors: int | None = None
    ceiling: str = "—"
    ratio: float | None = None
    target: str = "—"
    met: bool | None = None  # None: the run's scale is not the one the target is stated for
    missing: str = ""


@dataclass
class Run:
    """What one pass over the scenarios measured."""

    workers: int
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    http: dict[str, tuple[dict[str, Any] | None, dict[str, Any]]] = field(default_factory=dict)
    versions: list[str] = field(default_factory=list)


def _p95(row: Row) -> float:
    return row.p95 if row.p95 is not None else float("inf")


def _ratio(row: Row) -> float:
    return row.ratio if row.ratio is not None else 0.0


def _result(row: Row) -> float:
    return row.result if row.result is not None else 0.0


# scenario key -> (target, met(row)); stated for 10 connections, q/geo on 100,000 entities
HTTP_TARGETS: dict[str, tuple[str, Callable[[Row], bool]]] = {
    "create": ("≥ 5,000 req/s, p95 < 5 ms, ≥ 50 % bare",
               lambda r: _result(r) >= 5000 and _p95(r) < 5 and _ratio(r) >= 0.5),
    "update": ("≥ 6,000 req/s, p95 < 5 ms, ≥ 50 % bare",
               lambda r: _result(r) >= 6000 and _p95(r) < 5 and _ratio(r) >= 0.5),
    "retrieve": ("≥ 8,000 req/s, p95 < 5 ms, ≥ 50 % bare",
                 lambda r: _result(r) >= 8000 and _p95(r) < 5 and _ratio(r) >= 0.5),
    "q": ("≥ 3,000 req/s, p95 < 10 ms (100,000 entities)",
          lambda r: _result(r) >= 3000 and _p95(r) < 10),
    "geo": ("p95 < 15 ms (100,000 entities)", lambda r: _result(r) > 0 and _p95(r) < 15),
    "upsert": ("≥ 50,000 entities/s, ≥ 40 % raw insert",
               lambda r: _result(r) >= 50_000 and _ratio(r) >= 0.4),
}  # fmt: skip
ROW_ORDER = ["create", "update", "retrieve", "q", "geo", "upsert", "seed", "append",
             "aggregate", "notification", "memory"]  # fmt: skip


def progress(message: str) -> None:
    """A line on stderr, so a long run shows where it is (the table goes to stdout)."""
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def pinned(cpus: str, command: list[str]) -> list[str]:
    """``command`` under ``taskset -c cpus`` where there are several cores and taskset."""
    return ["taskset", "-c", cpus, *command] if MULTI_CORE else command


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def claim_postgres(url: str) -> Any:
    """A session holding an advisory lock on the database's name for the whole run.

    A second run on the same database would drop it under the first one: it stops here.
    """
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = str(conninfo_to_dict(url).get("dbname", ""))
    session = psycopg.connect(make_conninfo(url, dbname="postgres"), autocommit=True)
    row = session.execute(
        "SELECT pg_try_advisory_lock(hashtext(%s))", (f"agilecity-bench:{name}",)
    ).fetchone()
    if not (row and row[0]):
        raise SystemExit(f"another bench/run.py is using database {name!r}; pick another --db")
    return session


def reset_postgres(url: str) -> None:
    """Drop and recreate the benchmark database, so every run starts from empty."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = str(conninfo_to_dict(url).get("dbname", ""))
    if "bench" not in name:
        raise SystemExit(f"refusing to drop database {name!r}: its name must contain 'bench'")
    with psycopg.connect(make_conninfo(url, dbname="postgres"), autocommit=True) as db:
        db.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def postgres_version(url: str) -> str:
    import psycopg

    with psycopg.connect(url) as db:
        server = db.execute("SHOW server_version").fetchone()
        postgis = db.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'postgis'"
        ).fetchone()
    return f"PostgreSQL {server[0] if server else '?'} + PostGIS {postgis[0] if postgis else '?'}"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


class Servers:
    """The bare stack and the broker, each with ``workers`` processes, on a fresh store."""

    def __init__(self, workers: int, db: str, data: Path) -> None:
        self.workers, self.db, self.data = workers, db, data
        self.cpus = "0" if workers == 1 else "0,1"
        self.bare_port, self.port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.bare_url = f"http://127.0.0.1:{self.bare_port}"

    def _start(self, command: list[str], env: dict[str, str], log: str) -> subprocess.Popen[bytes]:
        with (self.data / log).open("ab") as out:
            return subprocess.Popen(
                pinned(self.cpus, command), env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped with its workers
            )  # fmt: skip

    def _wait_ready(self, url: str, process: subprocess.Popen[bytes], log: str) -> None:
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"server at {url} did not start:\n{(self.data / log).read_text()[-2000:]}")

    def start_broker(self) -> None:
        env = {
            **os.environ,
            "AGILECITY_PORT": str(self.port),
            "AGILECITY_LOG_LEVEL": "warning",
            "AGILECITY_DB": self.db,
            "AGILECITY_AUTH": "false",  # the open mode: wrk and the probes send no credentials
            "AGILECITY_ALLOW_PRIVATE_NOTIFICATION_URLS": "true",
            "AGILECITY_GATEWAY": "true",
            "AGILECITY_MQTT_SHARE_GROUP": f"bench{self.port}",
        }
        command = [str(Path(PY).with_name("agilecity")), "serve", "--workers", str(self.workers)]
        self.broker = self._start(command, env, "broker.log")
        self._wait_ready(f"{self.url}/health", self.broker, "broker.log")

    def restart_broker(self, why: str, run: Run) -> None:
        """Stop a broker stuck in a request and start it again on the same store."""
        progress(f"restarting the broker: {why}")
        run.notes.append(f"broker restarted: {why}")
        stop(self.broker, timeout=5)
        self.start_broker()

    def settle(self, run: Run, after: str) -> None:
        """Wait until the broker's CPU time stops growing (restart it after PATIENCE s)."""
        deadline = time.monotonic() + PATIENCE
        last = cpu_seconds(self.broker.pid)
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = cpu_seconds(self.broker.pid)
            if now - last < 0.05:
                return
            last = now
        self.restart_broker(f"still busy {PATIENCE:.0f} s after {after}", run)

    def __enter__(self) -> Servers:
        self.bare = self._start(
            [PY, "-m", "uvicorn", "bare_app:app", "--port", str(self.bare_port), "--log-level",
             "warning", "--no-access-log", "--app-dir", str(HERE), "--workers",
             str(self.workers)], dict(os.environ), "bare.log",
        )  # fmt: skip
        self.start_broker()
        self._wait_ready(f"{self.bare_url}/ngsi-ld/v1/entities/x", self.bare, "bare.log")
        return self

    def __exit__(self, *exc: object) -> None:
        stop(self.bare)
        stop(self.broker)


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM the process group we started, SIGKILL it if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            continue


def raw_insert(url: str, count: int) -> tuple[float, float]:
    """entities/s and seconds of the raw-store ceiling, run pinned to the server's core."""
    command = pinned("0", [PY, str(HERE / "raw_store.py"), url, str(count)])
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def guarded_get(
    servers: Servers, path: str, run: Run, restart: bool = True
) -> httpx.Response | None:
    """GET on the broker; None (and a restarted broker) if it does not answer in time."""
    try:
        response = httpx.get(servers.url + path, timeout=PATIENCE)
    except httpx.TimeoutException:
        if restart:
            servers.restart_broker(f"GET {path} not answered within {PATIENCE:.0f} s", run)
        else:
            run.notes.append(f"GET {path} not answered within {PATIENCE:.0f} s")
        return None
    response.raise_for_status()
    return response


def sanity(servers: Servers, seeds: int, run: Run) -> None:
    """How many entities the q and geo queries match and return, said once in the notes."""
    lon, lat = geo_points()[0]
    found = []
    for path in (q_path(), geo_path(lon, lat)):
        response = guarded_get(servers, f"{path}&count=true", run)
        if response is None:
            found.append("(no answer)")
            continue
        count, rows = int(response.headers["NGSILD-Results-Count"]), len(response.json())
        short = "" if rows == 20 else " (**not 20**: too few entities seeded?)"
        found.append(f"{count:,} ({count / seeds:.2%}) and returns {rows}{short}")
    run.notes.append(
        f"queries on {seeds:,} entities: q `{Q}` matches {found[0]}; near;maxDistance==500 "
        f"around ({lon}, {lat}) matches {found[1]}"
    )


def http_scenario(
    servers: Servers, scenario: Scenario, args: argparse.Namespace, profiler: Profiler, run: Run
) -> None:
    """Check the request on each server, then wrk on it: the bare stack, then the broker."""
    progress(f"{scenario.name} ({run.workers} process(es))")
    servers.settle(run, "the previous scenario")
    wrk_prefix, connections = pinned("1", []), scenario.connections or args.connections
    scenario.check(servers.bare_url, PATIENCE)
    ceiling = wrk(wrk_prefix, servers.bare_port, scenario, args.entities, args.duration,
                  connections)  # fmt: skip
    measured = None
    try:
        scenario.check(servers.url, PATIENCE)
    except httpx.TimeoutException:
        servers.restart_broker(f"{scenario.name}: one request took over {PATIENCE:.0f} s", run)
    else:
        with profiler.record(profile_name(scenario.key, run.workers)):
            measured = wrk(wrk_prefix, servers.port, scenario, args.entities, args.duration,
                           connections)  # fmt: skip
        servers.settle(run, f"{scenario.name} stopped")
    run.http[scenario.key] = (measured, ceiling)
    for label, result in (("broker", measured), ("bare stack", ceiling)):
        if result and result["first_error"]:
            run.notes.append(f"{scenario.name}, {label}: first error {result['first_error']}")


def profile_name(key: str, workers: int) -> str:
    return key if workers == 1 else f"{key}-{workers}workers"


def http_rows(run: Run, raw_rate: float, args: argparse.Namespace) -> None:
    """The wrk scenarios as table rows, against the bare stack (or the raw insert)."""
    for scenario in scenarios():
        m, c = run.http[scenario.key]
        name = scenario.name
        if scenario.key in ("q", "geo"):
            name += f" ({args.entities:,} entities)"
        row = Row(scenario.key, name, None, scenario.unit, missing=unanswered(m, args))
        if m is not None:
            row.errors = m["errors"]
            row.p50, row.p95, row.p99 = m["p50"], m["p95"], m["p99"]
        if m and m["requests"]:
            row.result = m["per_s"]
        if scenario.key == "upsert":
            row.ceiling = f"raw insert {raw_rate:,.0f}/s (bare {c['per_s']:,.0f}/s)"
            row.ratio = row.result / raw_rate if row.result else None
        else:
            row.ceiling = f"bare {c['per_s']:,.0f}/s"
            row.ratio = row.result / c["per_s"] if row.result else None
        if scenario.key in HTTP_TARGETS:
            row.target, met = HTTP_TARGETS[scenario.key]
            on_scale = args.connections == 10
            if scenario.key in ("q", "geo"):
                on_scale = args.entities == 100_000
            row.met = met(row) if on_scale else None
        run.rows.append(row)


def unanswered(measured: dict[str, Any] | None, args: argparse.Namespace) -> str:
    """Why a wrk scenario has no rate: its check request hung, or wrk got no answer."""
    if measured is None:
        return f"> {PATIENCE:.0f} s a request"
    return "" if measured["requests"] else f"0 answers in {args.duration} s"


def measure(args: argparse.Namespace, workers: int, full: bool) -> Run:
    """One pass on a fresh store: every scenario, or (``full`` false) seed + wrk scenarios."""
    run = Run(workers)
    data = Path(tempfile.mkdtemp(prefix="agilecity-bench-"))
    db = args.db or f"sqlite:///{data}/bench.sqlite"
    postgres = db.startswith("postgresql")
    if postgres:
        reset_postgres(db)
    try:
        progress(f"raw insert of {args.entities:,} entities")
        raw_url = db if postgres else f"sqlite:///{data}/raw.sqlite"
        raw_rate, raw_seconds = raw_insert(raw_url, args.entities)
        with Servers(workers, db, data) as servers:
            profiler = Profiler(
                args.profile, lambda: servers.broker.pid, workers > 1, pinned("1", [])
            )
            progress(f"seeding {args.entities:,} entities ({workers} process(es))")
            with profiler.record(profile_name("seed", workers)):
                seconds = upsert_entities(servers.url, SEED_PREFIX, args.entities)
            run.rows.append(Row(
                "seed", f"seed {args.entities:,} entities (batch upsert, 2 in flight)",
                args.entities / seconds, "entities/s", ceiling=f"raw insert {raw_rate:,.0f}/s",
                ratio=args.entities / seconds / raw_rate,
            ))  # fmt: skip
            run.notes.append(
                f"seeding {args.entities:,} entities took {seconds:.1f} s "
                f"(raw insert of the same rows: {raw_seconds:.2f} s)"
            )
            servers.settle(run, "seeding")
            if postgres:
                # What autovacuum does within a minute of a bulk load; the run does not wait
                # for it, and the planner's choices depend on it.
                with psycopg.connect(db, autocommit=True) as conn:
                    conn.execute("ANALYZE")
                run.notes.append("PostgreSQL: ANALYZE after seeding (as autovacuum would)")
            sanity(servers, args.entities, run)
            for scenario in scenarios():
                http_scenario(servers, scenario, args, profiler, run)
            http_rows(run, raw_rate, args)
            if full:
                slow_scenarios(servers, args, profiler, run)
            if postgres:
                run.versions.append(postgres_version(db))
    finally:
        shutil.rmtree(data, ignore_errors=True)
    return run


def slow_scenarios(
    servers: Servers, args: argparse.Namespace, profiler: Profiler, run: Run
) -> None:
    """Temporal aggregation, notification latency, MQTT ingestion, resident memory."""
    progress("temporal aggregation")
    servers.settle(run, "the wrk scenarios")
    with profiler.record(profile_name("aggregate", run.workers)):
        agg = temporal_aggregation(servers.url)
    run.rows.append(Row(
        "aggregate",
        f"temporal aggregate ({agg['readings']:,} readings → {agg['periods']} daily avg)",
        agg["p50"], "ms (p50)", agg["p50"], agg["p95"], None, 0, target="p95 < 50 ms",
        met=agg["p95"] < 50,
    ))  # fmt: skip
    run.notes.append(
        f"temporal backfill: {agg['readings']:,} readings at {agg['backfill_per_s']:,.0f}/s "
        "(POST /temporal/entities, 2,000 per request)"
    )
    progress(f"notification latency at {args.rate:,} updates/s")
    servers.settle(run, "the temporal aggregation")
    with profiler.record(profile_name("notification", run.workers)):
        n = notification_latency(servers.url, args.rate, args.duration, args.notify_connections)
    complete = n["received"] == n["sent"] and n["errors"] == 0
    met = n.get("p99", float("inf")) < 20 and complete and n["rate"] >= 0.99 * args.rate
    run.rows.append(Row(
        "notification", f"notification latency at {args.rate:,} updates/s", n["rate"],
        "updates/s achieved", n.get("p50"), n.get("p95"), n.get("p99"),
        n["errors"] + n["sent"] - n["received"], target="p99 < 20 ms at 1,000/s",
        met=met if args.rate == 1000 else None,
    ))  # fmt: skip
    run.notes.append(
        f"notification latency: {n['received']:,}/{n['sent']:,} received, PATCH statuses "
        f"{n['statuses']}, max {n.get('max', float('nan')):.1f} ms "
        f"({args.notify_connections} sender connections, paced open loop)"
    )
    mqtt(servers, args, run)
    if args.entities_for_memory:
        memory(servers, args, run)


def mqtt(servers: Servers, args: argparse.Namespace, run: Run) -> None:
    """The device-gateway lines (bench/ingest.py) when Mosquitto listens on 1883."""
    try:
        socket.create_connection(("127.0.0.1", 1883), timeout=1).close()
    except OSError:
        run.notes.append("device gateway: skipped, no MQTT broker on 127.0.0.1:1883")
        return
    progress("device gateway (MQTT)")
    servers.settle(run, "the notification latency")
    ingestion = sustained_ingestion(servers.url, args.frames)
    lag = ingestion_lag(servers.url, 200, args.duration)
    if run.workers > 1:
        run.notes.append(
            f"device gateway with {run.workers} processes: each takes its share of the frames "
            "and /health counts only the answering process's, so 'written' undercounts"
        )
    run.notes.append(
        f"device gateway: {ingestion['written']:.0f}/{ingestion['frames']:.0f} MQTT frames "
        f"written at {ingestion['rate']:.0f} frames/s "
        f"(publisher {ingestion['publish_rate']:.0f}/s; "
        f"Mosquitto to a bare subscriber {ingestion['ceiling']:.0f}/s, "
        f"{ingestion['ceiling_received']:.0f} received); frame-to-notification lag at "
        f"{lag['rate']:.0f} frames/s: p50 {lag.get('p50', float('nan')):.1f} ms, "
        f"p99 {lag.get('p99', float('nan')):.1f} ms ({lag['received']:.0f}/{lag['sent']:.0f})"
    )


def memory(servers: Servers, args: argparse.Namespace, run: Run) -> None:
    """Top the store up to ``--entities-for-memory`` Sensor entities, query, read VmRSS."""
    target = args.entities_for_memory
    progress(f"resident memory with {target:,} entities")
    servers.settle(run, "the previous scenarios")
    info = httpx.get(f"{servers.url}{BASE}/types/{TYPE}", timeout=PATIENCE)
    info.raise_for_status()
    present = int(info.json()["entityCount"])
    loaded = max(0, target - present)
    seconds = upsert_entities(servers.url, "mem", loaded)
    lon, lat = geo_points()[1]
    newest = seed_id("mem", loaded - 1) if loaded else seed_id(SEED_PREFIX, 1)
    queries = [f"{BASE}/entities/{seed_id(SEED_PREFIX, 0)}", f"{BASE}/entities/{newest}",
               q_path(), geo_path(lon, lat)]  # fmt: skip
    answered = 0
    for path in queries:  # a query that times out is not repeated; the broker is kept
        for _ in range(5):
            if guarded_get(servers, path, run, restart=False) is None:
                break
            answered += 1
    broker, bare = resident_mb(servers.broker.pid), resident_mb(servers.bare.pid)
    stored = max(target, present)
    run.rows.append(Row(
        "memory", f"resident memory, {stored:,} entities", broker["rss"], "MB (VmRSS)",
        ceiling=f"bare stack {bare['rss']:.0f} MB", target="< 300 MB with 1,000,000 entities",
        met=broker["rss"] < 300 if stored == 1_000_000 else None,
    ))  # fmt: skip
    run.notes.append(
        f"memory: {loaded:,} entities loaded in {seconds:.1f} s on top of "
        f"{present:,}; {answered}/{len(queries) * 5} retrieve, q and geo queries answered; "
        f"VmRSS {broker['rss']:.0f} MB, peak (VmHWM) {broker['hwm']:.0f} MB, summed over "
        f"{broker['processes']} process(es)"
    )


def header(args: argparse.Namespace, run: Run) -> str:
    store = "PostgreSQL" if args.db.startswith("postgresql") else "SQLite (file, WAL)"
    if not MULTI_CORE:
        placement = "nothing pinned (one core or no taskset)"
    elif run.workers == 1:
        placement = "server: 1 process pinned to CPU 0; wrk, clients, py-spy pinned to CPU 1"
    else:
        placement = (
            f"server: {run.workers} processes on CPUs 0-1, sharing CPU 1 with wrk and the clients"
        )
    versions = [f"Python {platform.python_version()}", f"SQLite {sqlite3.sqlite_version}"]
    profiled = f"; py-spy attached (figures include its pauses) → {args.profile}/"
    return (
        f"### {store}, {run.workers} process(es), {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n\n"
        f"{cpu_model()}, {os.cpu_count()} cores; {', '.join(versions + run.versions)}; "
        f"{args.duration} s per scenario, {args.connections} connections (wrk, 1 thread); "
        f"{placement}{profiled if args.profile else ''}\n"
    )


def fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def table(run: Run) -> str:
    lines = [
        "| scenario | result | unit | p50 ms | p95 ms | p99 ms | errors | ceiling | ratio "
        "| target | met |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | --- | --- |",
    ]
    for row in sorted(run.rows, key=lambda r: ROW_ORDER.index(r.key)):
        met = "—" if row.target == "—" else {True: "yes", False: "**no**", None: "n/a"}[row.met]
        ratio = "—" if row.ratio is None else f"{row.ratio:.0%}"
        errors = "—" if row.errors is None else str(row.errors)
        result = row.missing if row.result is None else fmt(row.result, int(row.result < 100))
        lines.append(
            f"| {row.name} | {result} | {row.unit} | {fmt(row.p50)} | {fmt(row.p95)} "
            f"| {fmt(row.p99)} | {errors} | {row.ceiling} | {ratio} | {row.target} | {met} |"
        )
    return "\n".join(lines)


def comparison(one: Run, two: Run, args: argparse.Namespace) -> str:
    """The wrk scenarios with 1 and 2 server processes (and the bare stack with each)."""
    lines = [
        "| scenario | unit | 1 process | 2 processes | 2 vs 1 | p95 ms 1 / 2 "
        "| bare 1 / 2 processes |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for scenario in scenarios():
        (m1, c1), (m2, c2) = one.http[scenario.key], two.http[scenario.key]
        rates = [unanswered(m, args) or fmt(m["per_s"], 0) for m in (m1, m2)]
        speedup = "—"
        if m1 and m2 and m1["requests"] and m2["requests"]:
            speedup = f"{m2['per_s'] / m1['per_s']:.2f}×"
        p95 = " / ".join(fmt(m["p95"]) if m else "—" for m in (m1, m2))
        lines.append(
            f"| {scenario.name} | {scenario.unit} | {rates[0]} | {rates[1]} | {speedup} | {p95} "
            f"| {c1['per_s']:,.0f} / {c2['per_s']:,.0f} |"
        )
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="small and short, for development")
    add("--duration", type=int, help="seconds per scenario (10; quick 2)")
    add("--connections", type=int, default=10, help="wrk connections (10)")
    add("--entities", type=int, help="entities seeded for the queries (100,000; quick 10,000)")
    add(
        "--entities-for-memory",
        type=int,
        help="entities held for the memory figure (1,000,000; quick 20,000; 0 skips it)",
    )
    add("--rate", type=int, default=1000, help="updates/s of the notification latency (1,000)")
    add(
        "--notify-connections",
        type=int,
        default=32,
        help="connections the paced notification sender may use (32)",
    )
    add("--frames", type=int, help="MQTT frames of the ingestion scenario (20,000; quick 2,000)")
    add("--db", default="", help="store URL (default: a fresh SQLite file)")
    add("--workers", type=int, default=1, help="server processes (PostgreSQL only)")
    add(
        "--compare-workers",
        action="store_true",
        help="then the seed and wrk scenarios again with 2 processes (PostgreSQL only)",
    )
    add("--profile", type=Path, metavar="DIR", help="py-spy each scenario into DIR/<name>.txt")
    args = parser.parse_args()  # fmt: skip
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main() -> int:
    args = parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    if (args.workers > 1 or args.compare_workers) and not args.db.startswith("postgresql"):
        raise SystemExit("--workers and --compare-workers need --db postgresql://...")
    if MULTI_CORE:
        os.sched_setaffinity(0, {1})  # this process is load: the clients and the probes
    claim = claim_postgres(args.db) if args.db.startswith("postgresql") else None
    try:
        report(args)
    finally:
        if claim is not None:
            claim.close()
    return 0


def report(args: argparse.Namespace) -> None:
    """Measure and print the table (and the 1 vs 2 processes one with --compare-workers)."""
    run = measure(args, args.workers, full=True)
    print(header(args, run))
    print(table(run))
    print()
    for note in run.notes:
        print(f"- {note}")
    if args.compare_workers:
        two = measure(args, 2, full=False)
        print(f"\n{header(args, two)}")
        print(comparison(run, two, args))
        for note in two.notes:
            print(f"- {note}")


if __name__ == "__main__":
    sys.exit(main())
