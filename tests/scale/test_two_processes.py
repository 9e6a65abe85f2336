"""Two real API processes on one PostgreSQL behave as one broker (issue: scale-out)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

BASE = "/ngsi-ld/v1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """A real HTTP notification receiver recording every Notification body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers["Content-Length"])
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def two_servers(empty_postgres: str) -> Iterator[tuple[str, str]]:
    """Two `agilecity serve` processes on the same (emptied) PostgreSQL database."""
    postgres_url = empty_postgres
    processes, urls = [], []
    for _ in range(2):
        port = free_port()
        env = {**os.environ, "AGILECITY_DB": postgres_url, "AGILECITY_PORT": str(port),
               "AGILECITY_AUTH": "false",
               "AGILECITY_ALLOW_PRIVATE_NOTIFICATION_URLS": "true",
               "AGILECITY_LOG_LEVEL": "warning"}  # fmt: skip
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "agilecity.cli", "serve"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        )
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url in urls:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"{url} did not start")
                time.sleep(0.2)
        yield urls[0], urls[1]
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=15)


def test_writes_are_visible_everywhere_and_notified_exactly_once(
    two_servers: tuple[str, str],
) -> None:
    first, second = two_servers
    receiver = Receiver()
    try:
        subscription = {
            "type": "Subscription",
            "entities": [{"type": "Meter"}],
            "notification": {"endpoint": {"uri": receiver.url}, "format": "keyValues"},
        }
        assert httpx.post(f"{first}{BASE}/subscriptions", json=subscription).status_code == 201
        expected = set()
        for i in range(10):
            entity = {"id": f"urn:ngsi-ld:Meter:{i}", "type": "Meter", "reading": {"value": 0}}
            created = httpx.post(f"{(first, second)[i % 2]}{BASE}/entities", json=entity)
            assert created.status_code == 201, created.text
            expected.add((entity["id"], 0))
            # Visible at once through the other process.
            other = httpx.get(f"{(second, first)[i % 2]}{BASE}/entities/{entity['id']}")
            assert other.status_code == 200
        for round_ in (1, 2):
            for i in range(10):
                server = (first, second)[(i + round_) % 2]
                patch = {"reading": {"value": round_}}
                url = f"{server}{BASE}/entities/urn:ngsi-ld:Meter:{i}/attrs"
                assert httpx.patch(url, json=patch).status_code == 204
                expected.add((f"urn:ngsi-ld:Meter:{i}", round_))
        deadline = time.monotonic() + 20
        while len(receiver.bodies) < len(expected) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)  # a duplicate, if any, would arrive now
        seen = [(d["id"], d["reading"]) for body in receiver.bodies for d in body["data"]]
        assert len(seen) == len(expected), sorted(seen)
        assert set(seen) == expected
        status = httpx.get(f"{second}{BASE}/subscriptions").json()[0]["notification"]
        deadline = time.monotonic() + 5
        while status["timesSent"] < len(expected) and time.monotonic() < deadline:
            time.sleep(0.3)
            status = httpx.get(f"{second}{BASE}/subscriptions").json()[0]["notification"]
        assert status["timesSent"] == len(expected)
    finally:
        receiver.close()
