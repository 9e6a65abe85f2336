"""Error responses: ProblemDetails everywhere, and never a 500 for a client's mistake.

Clause 6.3.6: errors are ProblemDetails (RFC 9457) with an NGSI-LD error type URI; the
/ngsi-ld routes use application/json. A malformed request is the client's fault: it may
be refused, never answered with an InternalError.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

BASE = "/ngsi-ld/v1"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"
PROBLEM_MEMBERS = {"type", "title", "status", "detail", "instance"}
SENSOR = "urn:ngsi-ld:Sensor:001"

ClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@dataclass(frozen=True)
class Call:
    """One HTTP request; ``body`` is sent as JSON unless ``raw`` bytes are given."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str | bytes] = field(default_factory=dict)
    body: Any = None
    raw: bytes | None = None

    async def send(self, client: httpx.AsyncClient) -> httpx.Response:
        headers = dict(self.headers)
        content = self.raw
        if content is None and self.body is not None:
            content = json.dumps(self.body).encode()
        if content is not None:
            headers.setdefault("Content-Type", "application/json")
        try:
            return await client.request(
                self.method, self.path, params=self.params, headers=headers, content=content
            )
        except Exception as exc:  # the ASGI transport re-raises what the app did not handle
            pytest.fail(f"unhandled {type(exc).__name__}: {exc} (a 500 in production)")


def get(path: str, **params: str) -> Call:
    return Call("GET", BASE + path, params=params)


def post(path: str, body: Any = None, *, raw: bytes | None = None, **headers: str) -> Call:
    return Call("POST", BASE + path, headers=dict(headers), body=body, raw=raw)


def entity(**attrs: Any) -> dict[str, Any]:
    return {"id": "urn:ngsi-ld:Sensor:900", "type": "Sensor", **attrs}


def nested_array(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def nested_sub_attributes(depth: int) -> dict[str, Any]:
    attribute: dict[str, Any] = {"type": "Property", "value": 0}
    for level in range(depth):
        attribute = {"type": "Property", "value": level, "sub": attribute}
    return attribute


def deep_sub_attributes_text(depth: int) -> bytes:
    """An entity whose attribute nests ``depth`` sub-attributes, built as text (no recursion)."""
    leaf = '{"type": "Property", "value": 0}'
    attribute = '{"type": "Property", "value": 0, "sub": ' * depth + leaf + "}" * depth
    return ('{"id": "urn:ngsi-ld:Sensor:900", "type": "Sensor", "v": ' + attribute + "}").encode()


def assert_problem_details(response: httpx.Response, *, ngsi_ld: bool = True) -> dict[str, Any]:
    """The body is a ProblemDetails object with an NGSI-LD error type URI."""
    media = "application/json" if ngsi_ld else "application/problem+json"
    assert response.headers["content-type"].split(";")[0] == media, response.headers
    body = response.json()
    assert isinstance(body, dict), body
    assert {"type", "title", "status"} <= set(body) <= PROBLEM_MEMBERS, body
    assert body["status"] == response.status_code, body
    assert isinstance(body["type"], str) and body["type"].startswith(ERRORS), body
    assert isinstance(body["title"], str) and body["title"], body
    assert isinstance(body.get("detail", ""), str), body
    assert body.get("instance", response.request.url.path) == response.request.url.path
    result: dict[str, Any] = body
    return result


@pytest.fixture
async def seeded(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """The client, with one Sensor stored (so that conflicts and updates have a target)."""
    body = {"id": SENSOR, "type": "Sensor", "temperature": {"type": "Property", "value": 20}}
    response = await client.post(f"{BASE}/entities", json=body)
    assert response.status_code == 201, response.text
    return client


# -- the ProblemDetails shape -------------------------------------------------------------

ERROR_CASES = [
    pytest.param(get(f"/entities/{SENSOR}0"), 404, "ResourceNotFound", id="unknown-entity"),
    pytest.param(get("/entities/not-a-uri"), 400, "BadRequestData", id="id-not-uri"),
    pytest.param(post("/entities", raw=b"{"), 400, "InvalidRequest", id="truncated-json"),
    pytest.param(post("/entities", raw=b"  "), 400, "InvalidRequest", id="empty-body"),
    pytest.param(
        Call("POST", f"{BASE}/entities", headers={"Content-Type": "text/plain"}, raw=b"{}"),
        415, "InvalidRequest", id="wrong-content-type",
    ),
    pytest.param(
        Call("GET", f"{BASE}/entities", params={"type": "Sensor"},
             headers={"Accept": "text/html"}),
        406, "InvalidRequest", id="not-acceptable",
    ),
    pytest.param(get("/entities", type="Sensor", limit="5000"), 403, "TooManyResults",
                 id="limit-too-large"),
    pytest.param(post("/entities", {"id": SENSOR, "type": "Sensor"}), 409, "AlreadyExists",
                 id="already-exists"),
    pytest.param(post("/entities", entity(), **{"Content-Type": "application/ld+json"}),
                 400, "BadRequestData", id="ld-json-without-context"),
    pytest.param(post("/entities", {**entity(), "@context": "https://x.example/c.jsonld"}),
                 400, "BadRequestData", id="json-with-context"),
    pytest.param(get("/entities", type="Sensor", q="((temperature"), 400, "BadRequestData",
                 id="bad-q"),
    pytest.param(get("/types", details="maybe"), 400, "BadRequestData", id="bad-boolean"),
    pytest.param(Call("DELETE", f"{BASE}/jsonldContexts/nope"), 404, "ResourceNotFound",
                 id="unknown-context"),
    pytest.param(Call("DELETE", f"{BASE}/entities/{SENSOR}/attrs/humidity"), 404,
                 "ResourceNotFound", id="unknown-attribute"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "status", "error_type"), ERROR_CASES)
async def test_errors_are_problem_details(
    seeded: httpx.AsyncClient, call: Call, status: int, error_type: str
) -> None:
    response = await call.send(seeded)

    assert response.status_code == status, response.text
    body = assert_problem_details(response)
    assert body["type"] == ERRORS + error_type
    assert "Link" not in response.headers


async def test_a_body_over_the_limit_is_413(client_factory: ClientFactory) -> None:
    async with client_factory(max_body_bytes=100) as client:
        big = entity(note={"type": "Property", "value": "x" * 200})

        response = await client.post(f"{BASE}/entities", json=big)

        assert response.status_code == 413, response.text
        assert assert_problem_details(response)["type"] == ERRORS + "RequestEntityTooLarge"
        missing = await client.get(f"{BASE}/entities/{big['id']}")
        assert missing.status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"{BASE}/nothing"),
        ("GET", "/ngsi-ld/v2/entities"),
        ("POST", f"{BASE}/entityOperations/explode"),
        ("GET", f"{BASE}/"),
        ("DELETE", f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:1"),
    ],
)
async def test_unknown_routes_are_resource_not_found(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path)

    assert response.status_code == 404, response.text
    assert assert_problem_details(response)["type"] == ERRORS + "ResourceNotFound"


async def test_errors_outside_ngsi_ld_are_problem_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/no-such-page")

    assert response.status_code == 404
    assert assert_problem_details(response, ngsi_ld=False)["type"] == ERRORS + "ResourceNotFound"


WRONG_METHODS = [
    ("PUT", f"{BASE}/entities", {"GET", "POST"}),
    ("DELETE", f"{BASE}/types", {"GET"}),
    ("GET", f"{BASE}/entityOperations/create", {"POST"}),
    ("PATCH", f"{BASE}/jsonldContexts", {"GET", "POST"}),
    ("POST", f"{BASE}/attributes/temperature", {"GET"}),
    ("DELETE", "/health", {"GET"}),
]


@pytest.mark.parametrize(("method", "path", "allowed"), WRONG_METHODS)
async def test_a_wrong_method_is_405(
    client: httpx.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    response = await client.request(method, path)

    assert response.status_code == 405, response.text
    assert_problem_details(response, ngsi_ld=path.startswith("/ngsi-ld/"))


@pytest.mark.parametrize(("method", "path", "allowed"), WRONG_METHODS)
async def test_a_405_names_the_allowed_methods(
    client: httpx.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    response = await client.request(method, path)

    assert response.status_code == 405
    assert allowed <= {m.strip() for m in response.headers["allow"].split(",")}


@pytest.mark.parametrize("params", [{"colour": "red"}, {"limits": "5"}, {"Type": "Sensor"}])
async def test_an_unknown_query_parameter_is_bad_request(
    seeded: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await seeded.get(f"{BASE}/entities", params={"type": "Sensor", **params})

    assert response.status_code == 400, response.text
    body = assert_problem_details(response)
    assert body["type"] == ERRORS + "BadRequestData"
    assert next(iter(params)) in body["detail"]


# -- nothing malformed is a 500 -----------------------------------------------------------

MALFORMED = [
    # bodies
    pytest.param(post("/entities", raw=b'{"id": "urn:a:1", "type": "\xff\xfe"}'), id="bad-utf8"),
    pytest.param(post("/entities", raw=b'{"\xc3\x28": 1}'), id="bad-utf8-key"),
    pytest.param(post("/entities", raw=b"\x00\x00\x00"), id="nul-bytes"),
    pytest.param(post("/entities", raw=b'\xef\xbb\xbf{"id": "urn:a:1", "type": "T"}'), id="bom"),
    pytest.param(post("/entities", raw='{"id": "urn:a:1", "type": "T"}'.encode("utf-16")),
                 id="utf16"),
    pytest.param(post("/entities", raw=b'{"id": "urn:a:1", "type": "\\ud800"}'),
                 id="lone-surrogate"),
    pytest.param(post("/entities", raw=b"[" * 5000 + b"]" * 5000), id="array-5000-deep"),
    pytest.param(post("/entities", raw=b'{"a":' * 5000 + b"1" + b"}" * 5000),
                 id="object-5000-deep"),
    pytest.param(post("/entities", raw=b'{"id":"urn:a:1","type":"T","v":' + b"[" * 5000
                      + b"]" * 5000 + b"}"), id="value-5000-deep"),
    pytest.param(post("/entities", entity(v=nested_array(300))), id="value-300-deep"),
    pytest.param(post("/entities", entity(v=nested_sub_attributes(200))),
                 id="sub-attributes-200-deep"),
    pytest.param(post("/entities", raw=deep_sub_attributes_text(1000)),
                 id="sub-attributes-1000-deep"),
    pytest.param(post("/entities", raw=b'{"id":"urn:a:1","type":"T","v":1e999}'), id="1e999"),
    pytest.param(post("/entities", raw=b'{"id":"urn:a:1","type":"T","v":-1e999}'), id="-1e999"),
    pytest.param(post("/entities", raw=b'{"id":"urn:a:1","type":"T","v":NaN}'), id="NaN"),
    pytest.param(post("/entities", raw=b'{"id":"urn:a:1","type":"T","v":Infinity}'),
                 id="Infinity"),
    pytest.param(post("/entities", raw=b'{"id":"urn:a:1","type":"T","v":' + b"9" * 400 + b"}"),
                 id="400-digit-integer"),
    pytest.param(post("/entities", raw=b'{"id":"urn:a:1","type":"T","v":18446744073709551616}'),
                 id="2**64"),
    pytest.param(post("/entities", raw=b'{"id":"urn:a:1","type":"T","v":-9223372036854775809}'),
                 id="below-int64"),
    pytest.param(post("/entities", raw=b'{"id":"urn:a:1","type":"T","v":1e-400}'),
                 id="underflow"),
    pytest.param(post("/entities", raw=b'{"id":"urn:a:1","id":"urn:a:2","type":"T"}'),
                 id="duplicate-id-key"),
    pytest.param(post("/entities", raw=b'{"id":"urn:a:1","type":"T","v":1,"v":{"x":1}}'),
                 id="duplicate-attribute-key"),
    pytest.param(post("/entities", {"id": "urn:a:1", "type": "T", "a\u0000b": 1}),
                 id="nul-in-name"),
    pytest.param(post("/entities", {"id": "urn:a:1", "type": "T", "": 1}), id="empty-name"),
    pytest.param(post("/entities", {"id": "urn:a:" + "x" * 5000, "type": "T"}), id="long-id"),
    pytest.param(post("/entities", {"id": "urn:a:1", "type": [None, 5, {}]}), id="odd-types"),
    pytest.param(post("/entities", {"id": ["urn:a:1"], "type": "T"}), id="id-array"),
    pytest.param(post("/entities", entity(v={"type": "Property", "value": 1,
                                             "observedAt": "2024-13-45T99:99:99Z"})),
                 id="bad-datetime"),
    pytest.param(post("/entities", entity(v={"type": "Property", "value": 1, "observedAt": 5})),
                 id="numeric-datetime"),
    pytest.param(post("/entities", entity(v={"type": "Property", "value": 1,
                                             "observedAt": "9999-12-31T23:59:59-23:59"})),
                 id="datetime-overflow-high"),
    pytest.param(post("/entities", entity(v={"type": "Property", "value": 1,
                                             "observedAt": "0001-01-01T00:00:00+23:59"})),
                 id="datetime-overflow-low"),
    pytest.param(get("/entities", type="T", q="v.observedAt>9999-12-31T23:59:59-23:59"),
                 id="q-datetime-overflow"),
    pytest.param(post("/entities", entity(v={"type": "GeoProperty", "value": {
        "type": "Point", "coordinates": [1e308, -1e308]}})), id="geo-out-of-range"),
    pytest.param(post("/entities", entity(v={"type": "GeoProperty", "value": {
        "type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 0]]]}})), id="geo-degenerate"),
    pytest.param(post("/entities", entity(v={"type": "GeoProperty", "value": {
        "type": "Point", "coordinates": nested_array(200)}})), id="geo-deep"),
    pytest.param(post("/entities", entity(v={"type": "LanguageProperty",
                                             "languageMap": {"en": {"x": 1}}})), id="bad-langmap"),
    pytest.param(post("/entities", entity(v={"type": "VocabProperty", "vocab": [1, None]})),
                 id="bad-vocab"),
    pytest.param(post("/entities", entity(v={"type": "ListRelationship",
                                             "objectList": [{"object": 5}]})), id="bad-objlist"),
    pytest.param(post("/entities", {**entity(), "scope": ["/a/../b", 7]}), id="bad-scope"),
    pytest.param(post("/entities", entity(v={"type": "Property", "value": 1, "datasetId": {}})),
                 id="bad-dataset-id"),
    pytest.param(Call("PATCH", f"{BASE}/entities/{SENSOR}", body=[1, 2]), id="merge-array"),
    pytest.param(Call("PATCH", f"{BASE}/entities/{SENSOR}/attrs/temperature", body="x"),
                 id="partial-update-string"),
    pytest.param(Call("PUT", f"{BASE}/entities/{SENSOR}", body={"id": 5, "type": "Sensor"}),
                 id="replace-odd-id"),
    # batches and POST queries
    pytest.param(post("/entityOperations/create", [[], None, "x", {"id": {}}]),
                 id="batch-odd-items"),
    pytest.param(post("/entityOperations/update", [{"id": ["urn:a:1"]}, {"id": SENSOR, "": 1}]),
                 id="batch-update-odd"),
    pytest.param(post("/entityOperations/delete", [[SENSOR], {"id": SENSOR}]),
                 id="batch-delete-odd"),
    pytest.param(post("/entityOperations/query", {"type": "Query", "entities": [{"type": 42}]}),
                 id="query-numeric-type"),
    pytest.param(post("/entityOperations/query", {"type": "Query",
                                                  "entities": [{"type": ["A", "B"]}]}),
                 id="query-array-type"),
    pytest.param(post("/entityOperations/query", {"type": "Query", "entities": [{"id": 42}]}),
                 id="query-numeric-id"),
    pytest.param(post("/entityOperations/query", {"type": "Query", "attrs": [42]}),
                 id="query-numeric-attr"),
    pytest.param(post("/entityOperations/query", {"type": "Query", "q": ["x"]}), id="query-q-list"),
    pytest.param(post("/entityOperations/query", {"type": "Query", "geoQ": {
        "geometry": "Point", "georel": "near;maxDistance==1", "coordinates": {"x": 1}}}),
                 id="query-geo-object"),
    pytest.param(post("/jsonldContexts", {"@context": nested_array(200, {})},
                      **{"Content-Type": "application/ld+json"}), id="context-deep"),
    # query strings
    pytest.param(get("/entities", type="T", limit="abc"), id="limit-text"),
    pytest.param(get("/entities", type="T", limit="99999999999"), id="limit-huge"),
    pytest.param(get("/entities", type="T", offset="-5"), id="offset-negative"),
    pytest.param(get("/entities", type="T", limit="0"), id="limit-zero"),
    pytest.param(get("/entities", type="T", q="(" * 5000 + "a==1" + ")" * 5000), id="q-deep"),
    pytest.param(get("/entities", type="T", q='a=="unterminated'), id="q-unterminated"),
    pytest.param(get("/entities", type="T", q="a==1e999"), id="q-1e999"),
    pytest.param(get("/entities", type="T", q="a~=(?P<"), id="q-bad-regex"),
    pytest.param(get("/entities", type="T", q="a[[[==1"), id="q-brackets"),
    pytest.param(get("/entities", type="T", q="a..b==1..2..3"), id="q-dots"),
    pytest.param(get("/entities", type="T", scopeQ="/a/../b"), id="scope-dots"),
    pytest.param(get("/entities", type="(" * 5000 + "T" + ")" * 5000), id="type-deep"),
    pytest.param(get("/entities", type=",;|"), id="type-operators"),
    pytest.param(get("/entities", idPattern="["), id="idpattern-bad"),
    pytest.param(get("/entities", id=",,,not a uri"), id="id-list-odd"),
    pytest.param(get("/entities", type="T", attrs="a b,<x>"), id="attrs-odd"),
    pytest.param(get("/entities", type="T", pick="id", omit="type"), id="pick-and-omit"),
    pytest.param(get("/entities", type="T", options="keyValues,bogus"), id="options-bogus"),
    pytest.param(get("/entities", type="T", format="xml"), id="format-bogus"),
    pytest.param(get("/entities", type="T", georel="near;maxDistance==1e999", geometry="Point",
                     coordinates="[0,0]"), id="georel-huge"),
    pytest.param(get("/entities", type="T", georel="near;maxDistance==1", geometry="Point",
                     coordinates="[NaN,0]"), id="coordinates-nan"),
    pytest.param(get("/entities", type="T", georel="within", geometry="Polygon",
                     coordinates="[[[0,0],[1,1],[1,0]]]"), id="polygon-open"),
    pytest.param(get("/entities", type="T", georel="near;maxDistance==1", geometry="Point",
                     coordinates="[" * 5000 + "]" * 5000), id="coordinates-deep"),
    pytest.param(get(f"/entities/{SENSOR}", geometryProperty="a b"), id="geometry-property-odd"),
    pytest.param(get(f"/entities/{SENSOR}", lang="\u00e9;q=x,,,"), id="lang-odd"),
    # headers
    pytest.param(Call("GET", f"{BASE}/entities", params={"type": "T"},
                      headers={"Accept": "application/json;q=abc"}), id="accept-bad-q"),
    pytest.param(Call("GET", f"{BASE}/entities", params={"type": "T"},
                      headers={"Accept": ";;;,,,;q=;"}), id="accept-garbage"),
    pytest.param(Call("GET", f"{BASE}/entities", params={"type": "T"},
                      headers={"Accept": "*/*;q=0"}), id="accept-nothing"),
    pytest.param(Call("POST", f"{BASE}/entities", headers={"Content-Type": ";;;"}, raw=b"{}"),
                 id="content-type-garbage"),
    pytest.param(Call("POST", f"{BASE}/entities",
                      headers={"Content-Type": "application/json; charset=utf-16"},
                      raw='{"id": "urn:a:1", "type": "T"}'.encode("utf-16")), id="charset-utf16"),
    pytest.param(Call("POST", f"{BASE}/entities",
                      headers={"Content-Type": "application/ld+json"},
                      body=[{"@context": 5}]), id="ld-json-odd-context"),
    pytest.param(Call("GET", f"{BASE}/types", headers={"Link": "<"}), id="link-unclosed"),
    pytest.param(Call("GET", f"{BASE}/types", headers={"Link": "<>; rel=" + CONTEXT_REL}),
                 id="link-empty-url"),
    pytest.param(Call("GET", f"{BASE}/types",
                      headers={"Link": ",".join(["<a>; rel=x"] * 2000)}), id="link-long"),
    pytest.param(Call("GET", f"{BASE}/types",
                      headers={"Link": '<urn:x>; rel="' + CONTEXT_REL + '"'}), id="link-urn"),
    pytest.param(Call("GET", f"{BASE}/types", headers={"NGSILD-Tenant": "\x7f"}),
                 id="tenant-del-char"),
    pytest.param(Call("GET", f"{BASE}/types", headers={"NGSILD-Tenant": b"\xff\xfe"}),
                 id="tenant-latin1"),
    # paths
    pytest.param(get("/entities/%00"), id="path-nul"),
    pytest.param(get("/entities/urn:%FF%FE"), id="path-bad-utf8"),
    pytest.param(get("/entities/"), id="path-empty-id"),
    pytest.param(get(f"/entities/{SENSOR}/attrs/%00"), id="path-nul-attr"),
    pytest.param(Call("DELETE", f"{BASE}/entities/{SENSOR}/attrs/a%20b"), id="path-space-attr"),
    pytest.param(get("/types/%28"), id="path-type-paren"),
    pytest.param(get("/attributes/" + "a" * 5000), id="path-long-attr"),
    pytest.param(get("/jsonldContexts/%00"), id="path-nul-context"),
]  # fmt: skip


@pytest.mark.parametrize("call", MALFORMED)
async def test_no_malformed_request_is_a_500(seeded: httpx.AsyncClient, call: Call) -> None:
    response = await call.send(seeded)

    assert response.status_code != 500, response.text
    if response.status_code >= 400:
        body = assert_problem_details(response)
        assert body["type"] != ERRORS + "InternalError"
    health = await seeded.get("/health")
    assert health.json() == {"status": "ok"}
