"""Real notification receivers for tests: an HTTP server in a thread and an MQTT collector.

:class:`HttpReceiver` is a small ``http.server`` on ``127.0.0.1`` running in a background
thread, so it is independent of the event loop of the app under test. It records every
request it gets (method, path, headers, body) and can be told to answer an error status,
to answer slowly, or be stopped and restarted on the same port (a receiver outage)::

    with HttpReceiver() as receiver:
        ...  # subscribe with notification.endpoint.uri = receiver.url
        (request,) = await receiver.wait_for(1)
        assert request.json()["type"] == "Notification"

:class:`MqttCollector` subscribes to a topic of a real MQTT broker (Mosquitto on
``127.0.0.1:1883`` by default) with ``aiomqtt`` and collects the messages published to it::

    async with MqttCollector() as mqtt:
        ...  # subscribe with notification.endpoint.uri = mqtt.url
        (message,) = await mqtt.wait_for(1)

Both ``wait_for`` methods poll with a deadline and fail with an ``AssertionError`` that
says what arrived, so tests stay robust on a slow machine without fixed sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import aiomqtt
import orjson

__all__ = ["HttpReceiver", "MqttCollector", "MqttMessage", "ReceivedRequest", "wait_until"]

POLL_INTERVAL = 0.02


async def wait_until(
    ready: Callable[[], bool], timeout: float, describe: Callable[[], str]
) -> None:
    """Poll until ``ready()`` is true; after ``timeout`` seconds raise ``AssertionError``.

    ``describe()`` gives the failure message (called only on timeout, so it may show the
    state reached).
    """
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(describe())
        await asyncio.sleep(POLL_INTERVAL)


# -- HTTP ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the receiver got it.

    ``headers`` has lower-cased names (HTTP header names are case-insensitive); ``status``
    is what the receiver answered (or was about to answer when it was stopped);
    ``received_at`` is the ``time.monotonic()`` of the request's arrival, before any
    configured delay.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    received_at: float

    @property
    def accepted(self) -> bool:
        """True when the receiver answered a 2xx status."""
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body parsed as JSON."""
        return orjson.loads(self.body)


class _Server(ThreadingHTTPServer):
    """A threading HTTP server that joins its handler threads on close."""

    daemon_threads = False
    block_on_close = True
    receiver: HttpReceiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (or a stop during a delay) is not worth a traceback."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers on stop
    timeout = 10  # seconds a client may take to send its request

    def do_POST(self) -> None:
        self.server.receiver._handle(self)

    do_PUT = do_PATCH = do_DELETE = do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test output is no place for an access log."""


class HttpReceiver:
    """A real HTTP server on ``127.0.0.1`` that records what it receives.

    Attributes a test may change at any time (they apply to the next request):

    ``status``
        the HTTP status answered to POST/PUT/PATCH/DELETE (default 200);
    ``delay``
        seconds to wait before answering (a slow receiver); a stop cuts the wait short.

    ``documents`` maps a path to a JSON document that GET requests on that path return
    (``application/ld+json``), for instance a user ``@context``; other GETs answer 404.
    Every request, whatever was answered, is recorded in :attr:`requests`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.status = 200
        self.delay = 0.0
        self.documents: dict[str, Any] = {}
        self._requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> HttpReceiver:
        """Listen (on the same port as before when restarted) and serve in a thread."""
        if self._server is not None:
            raise RuntimeError("the receiver is already running")
        self._stopping.clear()
        server = _Server((self.host, self.port), _Handler)
        server.receiver = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"http receiver :{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until :meth:`start` is called again."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()  # joins the handler threads, woken by _stopping
        thread.join()
        self._server = self._thread = None

    def restart(self) -> None:
        """Stop, then start again on the same port."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        """True while the receiver is listening."""
        return self._server is not None

    def __enter__(self) -> HttpReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (the port is known once started)."""
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The default notification endpoint, ``<base_url>/notify``."""
        return self.url_for("/notify")

    def url_for(self, path: str) -> str:
        """The URL of a path on this receiver (different paths are different endpoints)."""
        return self.base_url + path

    # -- what was received -------------------------------------------------------------

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request received so far (a copy), in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def accepted(self) -> list[ReceivedRequest]:
        """The requests answered with a 2xx status: the notifications delivered."""
        return [r for r in self.requests if r.accepted and r.method != "GET"]

    def bodies(self) -> list[Any]:
        """The JSON bodies of the accepted requests."""
        return [r.json() for r in self.accepted]

    def clear(self) -> None:
        """Forget what was received."""
        with self._lock:
            self._requests.clear()

    async def wait_for(
        self, count: int, *, timeout: float = 10.0, path: str | None = None
    ) -> list[ReceivedRequest]:
        """Wait until at least ``count`` accepted requests (on ``path`` if given) arrived.

        Returns all of them (possibly more than ``count``), in arrival order.
        """

        def matching() -> list[ReceivedRequest]:
            return [r for r in self.accepted if path is None or r.path == path]

        await wait_until(
            lambda: len(matching()) >= count,
            timeout,
            lambda: f"expected {count} notification(s) on {self.base_url}{path or ''} "
            f"within {timeout}s, got {len(matching())}: {[r.body[:300] for r in matching()]}",
        )
        return matching()

    def notified_entities(self, path: str | None = None) -> int:
        """Entities notified in accepted requests (on ``path`` if given), however grouped.

        The notifier may send waiting notifications of one subscription together."""
        return sum(len(r.json()["data"]) for r in self.accepted if path is None or r.path == path)

    async def wait_for_entities(
        self, count: int, *, timeout: float = 10.0, path: str | None = None
    ) -> None:
        """Wait until at least ``count`` entities were notified (on ``path`` if given)."""
        await wait_until(
            lambda: self.notified_entities(path) >= count,
            timeout,
            lambda: f"expected {count} notified entities on {self.base_url}{path or ''} "
            f"within {timeout}s, got {self.notified_entities(path)}",
        )

    async def wait_for_attempts(self, count: int, *, timeout: float = 10.0) -> None:
        """Wait until at least ``count`` requests arrived, whatever was answered."""
        await wait_until(
            lambda: len(self.requests) >= count,
            timeout,
            lambda: f"expected {count} request(s) within {timeout}s, got {len(self.requests)}",
        )

    # -- the handler (runs in a server thread) -----------------------------------------

    def _handle(self, handler: _Handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        path = handler.path
        if handler.command == "GET":
            document = self.documents.get(path)
            status = 200 if document is not None else 404
            payload = orjson.dumps(document) if document is not None else b""
        else:
            status, payload = self.status, b""
        request = ReceivedRequest(
            method=handler.command,
            path=path,
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
            status=status,
            received_at=time.monotonic(),
        )
        with self._lock:
            self._requests.append(request)
        if self.delay > 0 and self._stopping.wait(self.delay):
            return  # stopped while delaying: close the connection without an answer
        handler.send_response(status)
        handler.send_header("Content-Type", "application/ld+json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


# -- MQTT ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MqttMessage:
    """One message received on the collector's topic."""

    topic: str
    payload: bytes
    qos: int
    received_at: float

    def json(self) -> Any:
        """The payload parsed as JSON."""
        return orjson.loads(self.payload)


class MqttCollector:
    """Subscribe to a (by default random) topic on a real MQTT broker and keep its messages.

    Entering the context connects and subscribes; a broker that cannot be reached raises
    ``AssertionError`` (a test that needs MQTT fails rather than skips).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 1883, topic: str | None = None) -> None:
        self.host = host
        self.port = port
        self.topic = topic or f"agilecity-test/{uuid.uuid4().hex}"
        self.messages: list[MqttMessage] = []
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """The notification endpoint that publishes to this topic."""
        return f"mqtt://{self.host}:{self.port}/{self.topic}"

    async def __aenter__(self) -> MqttCollector:
        client = aiomqtt.Client(hostname=self.host, port=self.port, timeout=5)
        try:
            await client.__aenter__()
            await client.subscribe(self.topic, qos=1)
        except aiomqtt.MqttError as exc:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)
            raise AssertionError(
                f"the MQTT broker on {self.host}:{self.port} is not reachable: {exc}"
            ) from exc
        self._client = client
        self._task = asyncio.create_task(self._collect(client), name=f"mqtt {self.topic}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await self._client.__aexit__(None, None, None)
        self._client = self._task = None

    async def _collect(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            self.messages.append(
                MqttMessage(
                    topic=str(message.topic),
                    payload=payload if isinstance(payload, bytes) else str(payload).encode(),
                    qos=message.qos,
                    received_at=time.monotonic(),
                )
            )

    async def wait_for(self, count: int, *, timeout: float = 10.0) -> list[MqttMessage]:
        """Wait until at least ``count`` messages arrived; returns them all, in order."""
        await wait_until(
            lambda: len(self.messages) >= count,
            timeout,
            lambda: f"expected {count} MQTT message(s) on {self.topic} within {timeout}s, "
            f"got {len(self.messages)}",
        )
        return list(self.messages)
