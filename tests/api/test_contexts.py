"""JSON-LD @context handling: /jsonldContexts (clause 5.13), core and remote contexts.

Hosted contexts are stored and served by the broker; the NGSI-LD core context (every
published version) is bundled and never fetched; any other URL is fetched once, under
restrictions (http/https only, size limit, no private addresses unless allowed), then
cached. Remote contexts here come from a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from agilecity.broker.contexts import ContextRegistry

BASE = "/ngsi-ld/v1"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"
LD_JSON = {"Content-Type": "application/ld+json"}
CITY = "https://city.example.org/ns/"

ClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]

#: The files the context server serves (name -> body); anything else answers 404.
SERVED: dict[str, bytes] = {
    "city.jsonld": json.dumps(
        {"@context": {"Sensor": CITY + "Sensor", "temperature": CITY + "temperature"}}
    ).encode(),
    "not-json.jsonld": b"<html>this is not JSON</html>",
    "no-context.jsonld": json.dumps({"Sensor": CITY + "Sensor"}).encode(),
    "array.jsonld": b"[1, 2, 3]",
    "big.jsonld": json.dumps(
        {"@context": {f"term{i}": f"{CITY}term{i}" for i in range(20)} | {"Sensor": CITY + "S"}}
    ).encode(),
}


@dataclass
class ContextServer:
    """A static HTTP server on 127.0.0.1 that records the paths it was asked for."""

    base_url: str
    requests: list[str] = field(default_factory=list)

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def hits(self, name: str) -> int:
        return self.requests.count(f"/{name}")


class _Handler(SimpleHTTPRequestHandler):
    extensions_map = {".jsonld": "application/ld+json"}
    record: list[str]

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.record.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def context_server(tmp_path: Path) -> Iterator[ContextServer]:
    root = tmp_path / "www"
    root.mkdir()
    for name, body in SERVED.items():
        (root / name).write_bytes(body)
    requests: list[str] = []
    handler = type("RecordingHandler", (_Handler,), {"record": requests})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, name="context-server", daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield ContextServer(f"http://{host!s}:{port}", requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def link(url: str) -> dict[str, str]:
    return {"Link": f'<{url}>; rel="{CONTEXT_REL}"; type="application/ld+json"'}


def sensor(n: int = 1) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:Sensor:{n}",
        "type": "Sensor",
        "temperature": {"type": "Property", "value": 20 + n},
    }


def assert_problem(response: httpx.Response, status: int, error_type: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["type"] == ERRORS + error_type
    assert isinstance(body["title"], str) and body["title"]


async def host(client: httpx.AsyncClient, document: Any) -> httpx.Response:
    return await client.post(f"{BASE}/jsonldContexts", json=document, headers=LD_JSON)


async def listed(client: httpx.AsyncClient, **params: str) -> list[Any]:
    response = await client.get(f"{BASE}/jsonldContexts", params=params)
    assert response.status_code == 200, response.text
    body: list[Any] = response.json()
    return body


async def details_of(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    """The details=true entry of one context URL (exactly one must exist)."""
    matches = [c for c in await listed(client, details="true") if c["URL"] == url]
    assert len(matches) == 1, matches
    return matches[0]


# -- hosted contexts ----------------------------------------------------------------------

HOSTED = {"@context": {"Bin": "https://city.example.org/ns/Bin", "fill": CITY + "fillLevel"}}


async def test_a_hosted_context_is_served_at_its_location(client: httpx.AsyncClient) -> None:
    response = await host(client, HOSTED)

    assert response.status_code == 201, response.text
    location = response.headers["location"]
    assert f"{BASE}/jsonldContexts/" in location
    served = await client.get(location)
    assert served.status_code == 200
    assert served.json() == HOSTED


async def test_a_hosted_context_is_listed_as_hosted(client: httpx.AsyncClient) -> None:
    location = (await host(client, HOSTED)).headers["location"]

    assert location in await listed(client)
    entry = await details_of(client, location)
    assert entry["kind"] == "Hosted"
    assert entry["localId"] == location.rsplit("/", 1)[1]
    assert location in await listed(client, kind="Hosted")
    assert location not in await listed(client, kind="Cached")
    by_local_id = await client.get(f"{BASE}/jsonldContexts/{entry['localId']}")
    assert by_local_id.json() == HOSTED


async def test_a_hosted_context_is_used_without_any_fetch(
    client_factory: ClientFactory,
) -> None:
    async with client_factory(allow_private_context_urls=False) as client:
        location = (await host(client, HOSTED)).headers["location"]
        entity = {"id": "urn:ngsi-ld:Bin:1", "type": "Bin", "fill": {"type": "Property",
                                                                     "value": 0.5}}  # fmt: skip

        created = await client.post(f"{BASE}/entities", json=entity, headers=link(location))

        assert created.status_code == 201, created.text
        plain = await client.get(f"{BASE}/entities/urn:ngsi-ld:Bin:1")
        assert plain.json()["type"] == CITY + "Bin"
        assert CITY + "fillLevel" in plain.json()
        compact = await client.get(f"{BASE}/entities/urn:ngsi-ld:Bin:1", headers=link(location))
        assert compact.json()["fill"] == {"type": "Property", "value": 0.5}


async def test_a_deleted_hosted_context_is_gone(client: httpx.AsyncClient) -> None:
    location = (await host(client, HOSTED)).headers["location"]

    deleted = await client.delete(location)

    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_problem(await client.get(location), 404, "ResourceNotFound")
    assert location not in await listed(client)
    assert_problem(await client.delete(location), 404, "ResourceNotFound")


async def test_a_context_can_be_hosted_with_application_json(client: httpx.AsyncClient) -> None:
    """Clause 5.13.2: the body is a context document whatever the JSON media type."""
    response = await client.post(f"{BASE}/jsonldContexts", json=HOSTED)

    assert response.status_code == 201, response.text
    assert (await client.get(response.headers["location"])).json() == HOSTED


@pytest.mark.parametrize(
    "document",
    [
        pytest.param([1, 2], id="array"),
        pytest.param("https://city.example.org/ctx.jsonld", id="string"),
        pytest.param(42, id="number"),
        pytest.param({"Bin": CITY + "Bin"}, id="no-@context"),
    ],
)
async def test_hosting_needs_an_object_with_an_at_context(
    client: httpx.AsyncClient, document: Any
) -> None:
    response = await client.post(
        f"{BASE}/jsonldContexts",
        content=json.dumps(document),
        headers={"Content-Type": "application/json"},
    )

    assert_problem(response, 400, "BadRequestData")
    assert await listed(client, kind="Hosted") == []


@pytest.mark.parametrize("inner", [pytest.param("https://x.example/c.jsonld", id="string"),
                                   pytest.param(7, id="number")])  # fmt: skip
async def test_hosting_needs_an_object_or_array_context(
    client: httpx.AsyncClient, inner: Any
) -> None:
    response = await host(client, {"@context": inner})

    assert_problem(response, 400, "BadRequestData")
    assert await listed(client, kind="Hosted") == []


async def test_an_unknown_context_kind_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{BASE}/jsonldContexts", params={"kind": "Remote"})

    assert_problem(response, 400, "BadRequestData")


# -- the core context ---------------------------------------------------------------------

CORE_URLS = [
    f"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.{minor}.jsonld"
    for minor in range(3, 10)
] + ["https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"]


@pytest.fixture
def no_fetch(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and fail) any attempt of the registry to fetch a remote context."""
    attempts: list[str] = []

    async def refuse(self: ContextRegistry, url: str) -> dict[str, Any]:
        attempts.append(url)
        raise AssertionError(f"fetched {url}")

    monkeypatch.setattr(ContextRegistry, "_fetch", refuse)
    return attempts


@pytest.mark.parametrize("core_url", CORE_URLS)
async def test_every_core_context_version_is_the_core_context(
    client: httpx.AsyncClient, core_url: str, no_fetch: list[str]
) -> None:
    created = await client.post(f"{BASE}/entities", json=sensor(), headers=link(core_url))
    query = await client.get(f"{BASE}/entities", params={"type": "Sensor"}, headers=link(core_url))
    with_link = await client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:1", headers=link(core_url))
    without = await client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:1")

    assert created.status_code == 201, created.text
    assert query.status_code == 200, query.text
    assert [e["id"] for e in query.json()] == ["urn:ngsi-ld:Sensor:1"]
    assert with_link.status_code == 200, with_link.text
    assert with_link.json() == without.json() == sensor()
    assert no_fetch == []
    assert await listed(client, kind="Cached") == []


@pytest.mark.parametrize("core_url", CORE_URLS)
async def test_core_context_terms_keep_their_core_meaning(
    client: httpx.AsyncClient, core_url: str, no_fetch: list[str]
) -> None:
    entity = {
        "id": "urn:ngsi-ld:Sensor:1",
        "type": "Sensor",
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [3, 50]}},
    }
    created = await client.post(f"{BASE}/entities", json=entity, headers=link(core_url))
    assert created.status_code == 201, created.text

    attribute = await client.get(f"{BASE}/attributes/location", headers=link(core_url))

    assert attribute.status_code == 200, attribute.text
    assert attribute.json()["id"] == "https://uri.etsi.org/ngsi-ld/location"
    assert no_fetch == []


async def test_the_core_context_cannot_be_deleted(client: httpx.AsyncClient) -> None:
    response = await client.delete(f"{BASE}/jsonldContexts/{quote(CORE_URLS[0], safe='')}")

    assert_problem(response, 400, "BadRequestData")


# -- remote contexts ----------------------------------------------------------------------


async def test_a_remote_context_expands_attribute_names(
    client: httpx.AsyncClient, context_server: ContextServer
) -> None:
    url = context_server.url("city.jsonld")

    created = await client.post(f"{BASE}/entities", json=sensor(), headers=link(url))

    assert created.status_code == 201, created.text
    plain = (await client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:1")).json()
    assert plain == {
        "id": "urn:ngsi-ld:Sensor:1",
        "type": CITY + "Sensor",
        CITY + "temperature": {"type": "Property", "value": 21},
    }
    compact = await client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:1", headers=link(url))
    assert compact.json() == sensor()
    assert compact.headers["link"].startswith(f"<{url}>")
    by_default_vocab = await client.get(f"{BASE}/entities", params={"type": "Sensor"})
    assert by_default_vocab.json() == []


async def test_a_remote_context_is_fetched_once_then_cached(
    client: httpx.AsyncClient, context_server: ContextServer
) -> None:
    url = context_server.url("city.jsonld")

    first = await client.post(f"{BASE}/entities", json=sensor(1), headers=link(url))
    second = await client.post(f"{BASE}/entities", json=sensor(2), headers=link(url))
    query = await client.get(f"{BASE}/entities", params={"type": "Sensor"}, headers=link(url))

    assert first.status_code == second.status_code == 201
    assert [e["id"] for e in query.json()] == ["urn:ngsi-ld:Sensor:1", "urn:ngsi-ld:Sensor:2"]
    assert context_server.hits("city.jsonld") == 1
    assert (await details_of(client, url))["kind"] == "Cached"
    assert url in await listed(client, kind="Cached")
    assert url not in await listed(client, kind="Hosted")
    local_id = (await details_of(client, url))["localId"]
    served = await client.get(f"{BASE}/jsonldContexts/{local_id}")
    assert served.json() == json.loads(SERVED["city.jsonld"])


async def test_a_deleted_cached_context_is_fetched_again(
    client: httpx.AsyncClient, context_server: ContextServer
) -> None:
    url = context_server.url("city.jsonld")
    assert (await client.post(f"{BASE}/entities", json=sensor(1), headers=link(url))).is_success
    local_id = (await details_of(client, url))["localId"]

    deleted = await client.delete(f"{BASE}/jsonldContexts/{local_id}")
    again = await client.get(f"{BASE}/entities", params={"type": "Sensor"}, headers=link(url))

    assert deleted.status_code == 204
    assert [e["id"] for e in again.json()] == ["urn:ngsi-ld:Sensor:1"]
    assert context_server.hits("city.jsonld") == 2


async def test_private_addresses_are_refused_unless_allowed(
    client_factory: ClientFactory, context_server: ContextServer
) -> None:
    url = context_server.url("city.jsonld")
    async with client_factory(allow_private_context_urls=False) as client:
        response = await client.post(f"{BASE}/entities", json=sensor(), headers=link(url))

        assert_problem(response, 503, "LdContextNotAvailable")
        assert context_server.requests == []
        assert url not in await listed(client)
        missing = await client.get(f"{BASE}/entities/urn:ngsi-ld:Sensor:1")
        assert_problem(missing, 404, "ResourceNotFound")


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        pytest.param("missing.jsonld", {}, id="http-404"),
        pytest.param("not-json.jsonld", {}, id="not-json"),
        pytest.param("no-context.jsonld", {}, id="no-@context-member"),
        pytest.param("array.jsonld", {}, id="json-array"),
        pytest.param("big.jsonld", {"context_max_bytes": 100}, id="too-large"),
    ],
)
async def test_unusable_remote_contexts_are_not_available(
    client_factory: ClientFactory,
    context_server: ContextServer,
    name: str,
    overrides: dict[str, Any],
) -> None:
    url = context_server.url(name)
    async with client_factory(**overrides) as client:
        write = await client.post(f"{BASE}/entities", json=sensor(), headers=link(url))
        read = await client.get(f"{BASE}/entities", params={"type": "Sensor"}, headers=link(url))

        assert_problem(write, 503, "LdContextNotAvailable")
        assert_problem(read, 503, "LdContextNotAvailable")
        assert context_server.hits(name) == 2, "a failed fetch is not cached"
        assert url not in await listed(client)
        assert (await client.get(f"{BASE}/entities", params={"type": "Sensor"})).json() == []


async def test_the_size_limit_is_what_refuses_the_large_context(
    client: httpx.AsyncClient, context_server: ContextServer
) -> None:
    assert len(SERVED["big.jsonld"]) > 100
    url = context_server.url("big.jsonld")

    response = await client.get(f"{BASE}/entities", params={"type": "Sensor"}, headers=link(url))

    assert response.status_code == 200, response.text
    assert context_server.hits("big.jsonld") == 1


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/city.jsonld",
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/1",
        "http:///no-host.jsonld",
        "city.jsonld",
    ],
)
async def test_non_http_context_urls_are_not_available(client: httpx.AsyncClient, url: str) -> None:
    write = await client.post(f"{BASE}/entities", json=sensor(), headers=link(url))
    read = await client.get(f"{BASE}/types", headers=link(url))

    assert_problem(write, 503, "LdContextNotAvailable")
    assert_problem(read, 503, "LdContextNotAvailable")
    assert url not in await listed(client)


@pytest.mark.parametrize(
    "header",
    [
        '<https://city.example.org/ctx.jsonld>; rel="alternate"; type="application/ld+json"',
        pytest.param(
            '<https://city.example.org/ctx.jsonld>; rel="http://www.w3.org/ns/json-ld#contexts"',
            id="rel-with-suffix",
        ),
        "https://city.example.org/ctx.jsonld",
        "garbage",
    ],
)
async def test_a_link_header_without_the_json_ld_rel_is_bad_request(
    client: httpx.AsyncClient, header: str, no_fetch: list[str]
) -> None:
    write = await client.post(f"{BASE}/entities", json=sensor(), headers={"Link": header})
    read = await client.get(f"{BASE}/entities", params={"type": "Sensor"}, headers={"Link": header})

    assert_problem(write, 400, "BadRequestData")
    assert_problem(read, 400, "BadRequestData")
    assert no_fetch == []
