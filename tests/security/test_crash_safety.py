"""Crash safety: SIGKILL a real server under write load; after a restart on the same store
every acknowledged write is there, exactly as acknowledged, and nothing is half-written.

Each entity has ATTRS attributes that every write sets to one sequence number (plus a
``sig`` text naming the entity and the number), so a half-applied write would show mixed
numbers. Writers are threads, each owning its entities and sending one request at a time,
so when the kill comes each entity has one acknowledged state and at most one write in
flight; after the restart it must be in one of those two states. Batches (upserts of new
entities) must be present whole when acknowledged, and whole or absent when in flight.
Both stores.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from tests.security.support import BASE

ATTRS = 8
WRITERS = 4
LOAD_SECONDS = 2.5
GONE = -1  # the state of a deleted entity
ENTITIES = f"{BASE}/entities"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """An ``agilecity serve`` process of its own process group, on a given store."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        env = {**os.environ, "AGILECITY_DB": self.db_url, "AGILECITY_PORT": str(self.port),
               "AGILECITY_AUTH": "false",
               "AGILECITY_LOG_LEVEL": "error"}  # fmt: skip
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agilecity.cli", "serve"], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            assert self.process.poll() is None, "the server exited at start"
            assert time.monotonic() < deadline, f"{self.url} did not start"
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the server's process group (the process this test started, and its own)."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """Terminate the server if it still runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)


@pytest.fixture
def server(db_url: str) -> Iterator[Server]:
    first = Server(db_url)
    try:
        yield first.start()
    finally:
        first.stop()


def entity(entity_id: str, kind: str, seq: int) -> dict[str, Any]:
    """An entity whose every attribute carries ``seq``."""
    return {"id": entity_id, "type": kind, **state(entity_id, seq)}


def state(entity_id: str, seq: int) -> dict[str, Any]:
    """The attributes of an entity at ``seq``: all must be written together."""
    attrs: dict[str, Any] = {f"a{i}": {"type": "Property", "value": seq} for i in range(ATTRS)}
    attrs["sig"] = {"type": "Property", "value": f"{entity_id}#{seq}"}
    return attrs


@dataclass
class Ledger:
    """What one writer had acknowledged, and the one write it had in flight at the kill."""

    acked: dict[str, int] = field(default_factory=dict)  # entity id -> seq (GONE: deleted)
    in_flight: dict[str, int] = field(default_factory=dict)  # entity id -> seq it may have
    batches: list[tuple[list[str], bool]] = field(default_factory=list)  # ids, acknowledged
    writes: int = 0


def write_load(base: str, writer: int, stop: threading.Event, ledger: Ledger) -> None:
    """Creates, partial updates, merges, deletes and batch upserts until the server dies."""
    rng = random.Random(writer)
    live: list[str] = []
    made = 0
    with httpx.Client(base_url=base, timeout=10) as client:
        while not stop.is_set():
            roll = rng.random()
            try:
                if roll < 0.25 or not live:
                    made += 1
                    entity_id = f"urn:ngsi-ld:Crash:{writer}-{made}"
                    ledger.in_flight = {entity_id: 0}
                    response = client.post(ENTITIES, json=entity(entity_id, "Crash", 0))
                    assert response.status_code == 201, response.text
                    live.append(entity_id)
                elif roll < 0.35:
                    made += 1
                    ids = [f"urn:ngsi-ld:CrashBatch:{writer}-{made}-{m}" for m in range(4)]
                    ledger.batches.append((ids, False))
                    ledger.in_flight = {}
                    body = [entity(i, "CrashBatch", 0) for i in ids]
                    response = client.post(f"{BASE}/entityOperations/upsert", json=body)
                    assert response.status_code == 201, response.text
                    ledger.batches[-1] = (ids, True)
                    ledger.acked.update(dict.fromkeys(ids, 0))
                    ledger.writes += 1
                    continue
                elif roll < 0.40:
                    entity_id = live.pop(rng.randrange(len(live)))
                    ledger.in_flight = {entity_id: GONE}
                    response = client.delete(f"{ENTITIES}/{entity_id}")
                    assert response.status_code == 204, response.text
                else:
                    entity_id = rng.choice(live)
                    seq = ledger.acked[entity_id] + 1
                    ledger.in_flight = {entity_id: seq}
                    url = f"{ENTITIES}/{entity_id}" + ("/attrs" if roll < 0.7 else "")
                    response = client.patch(url, json=state(entity_id, seq))
                    assert response.status_code == 204, response.text
            except httpx.TransportError:
                return  # the server is gone: the in-flight write is uncertain
            ledger.acked.update(ledger.in_flight)
            ledger.in_flight = {}
            ledger.writes += 1


def stored(base: str) -> dict[str, dict[str, Any]]:
    """Every Crash and CrashBatch entity after the restart, by id (keyValues)."""
    found: dict[str, dict[str, Any]] = {}
    offset = 0
    while True:
        params = {"type": "Crash,CrashBatch", "options": "keyValues", "limit": "1000",
                  "offset": str(offset)}  # fmt: skip
        page = httpx.get(f"{base}{ENTITIES}", params=params, timeout=30).json()
        found.update((e["id"], e) for e in page)
        if len(page) < 1000:
            return found
        offset += 1000


def seq_of(doc: dict[str, Any]) -> int:
    """The entity's one sequence number; fails if its attributes disagree (half-written)."""
    values = {doc.get(f"a{i}") for i in range(ATTRS)}
    assert len(values) == 1, f"half-written entity {doc['id']}: {doc}"
    (seq,) = values
    assert isinstance(seq, int) and doc.get("sig") == f"{doc['id']}#{seq}", doc
    return seq


def test_acknowledged_writes_survive_sigkill(server: Server, db_url: str) -> None:
    stop = threading.Event()
    ledgers = [Ledger() for _ in range(WRITERS)]
    threads = [threading.Thread(target=write_load, args=(server.url, w, stop, ledgers[w]))
               for w in range(WRITERS)]  # fmt: skip
    for thread in threads:
        thread.start()
    time.sleep(LOAD_SECONDS)
    server.kill()  # in the middle of the load: every writer has a request on the wire
    for thread in threads:
        thread.join(timeout=30)
    stop.set()
    assert sum(ledger.writes for ledger in ledgers) > 100, "too little load to test anything"

    again = Server(db_url).start()
    try:
        found = stored(again.url)
        for ledger in ledgers:
            for entity_id, seq in ledger.acked.items():
                possible = {seq, ledger.in_flight.get(entity_id, seq)}
                doc = found.get(entity_id)
                got = GONE if doc is None else seq_of(doc)
                assert got in possible, f"{entity_id}: acknowledged {seq}, found {got}"
            for entity_id, seq in ledger.in_flight.items():
                if entity_id not in ledger.acked:  # a create in flight: whole or absent
                    doc = found.get(entity_id)
                    assert doc is None or seq_of(doc) == seq
            for ids, acknowledged in ledger.batches:
                present = [i for i in ids if i in found]
                assert all(seq_of(found[i]) == 0 for i in present)
                assert len(present) == (len(ids) if acknowledged else len(present))
                assert len(present) in (0, len(ids)), f"a batch was half-written: {present}"
        known = {i for ledger in ledgers for i in (*ledger.acked, *ledger.in_flight)}
        known |= {i for ledger in ledgers for ids, _ in ledger.batches for i in ids}
        assert set(found) <= known, "entities nobody wrote"
        # the store still takes writes
        some = next(i for i, doc in found.items() if doc["type"] == "Crash")
        patch = httpx.patch(f"{again.url}{ENTITIES}/{some}/attrs", json=state(some, 99))
        assert patch.status_code == 204, patch.text
    finally:
        again.stop()
    if db_url.startswith("sqlite:"):
        path = db_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
