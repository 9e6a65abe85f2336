"""The injection corpus (tests/data/injection.txt) through every parameter of every endpoint.

For each hostile string, on each store: no 5xx (but LdContextNotAvailable when the string
was given as a remote @context, the spec's answer), every 4xx a ProblemDetails, no CR or LF
in any response header, and the entities unchanged by every read and every refused write.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from tests.security.support import BASE, assert_problem, digest

CORPUS = Path(__file__).resolve().parents[1] / "data" / "injection.txt"
ENTITY = "urn:ngsi-ld:Spot:1"
TYPES = "Spot,Other"
NOW = "2026-12-01T00:00:00Z"
POINT = {"type": "Point", "coordinates": [3.17, 50.69]}
SEED = [
    {"id": ENTITY, "type": "Spot", "name": {"type": "Property", "value": "a", "observedAt": NOW},
     "location": {"type": "GeoProperty", "value": POINT}, "scope": "/Roubaix"},
    {"id": "urn:ngsi-ld:Other:1", "type": "Other", "rel": {"type": "Relationship",
                                                         "object": ENTITY}},
]  # fmt: skip
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[rnt\\])")
W = {"id": "urn:x:w", "type": "Spot"}  # the entity the write sweep creates or touches
ClientFactory = Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1)
    return {"r": "\r", "n": "\n", "t": "\t", "\\": "\\"}.get(code) or chr(int(code[1:], 16))


def load_corpus() -> list[str]:
    """The hostile strings, escapes decoded and @long expanded."""
    strings = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        if line == "@empty":
            strings.append("")
        elif line.startswith("@long "):
            _, count, text = line.split(" ", 2)
            strings.append(text * int(count))
        else:
            strings.append(_ESCAPE.sub(_unescape, line))
    return strings


HOSTILE = load_corpus()


@dataclass
class Call:
    """One request of the sweep; ``as_context`` when the string is used as a remote @context."""

    method: str
    url: str
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    headers: dict[str, bytes | str] = field(default_factory=dict)
    as_context: bool = False
    content: bytes | None = None


def reads(p: str) -> list[Call]:
    """Every read with the string in a path segment, a query parameter or a header."""
    seg, raw = quote(p, safe=""), quote(p, safe="/%")
    geo = {"georel": "near;maxDistance==100", "geometry": "Point", "coordinates": "[3.17,50.69]"}
    calls = [Call("GET", f"{BASE}/{path}") for s in (seg, raw) for path in (
        f"entities/{s}", f"entities/{ENTITY}/attrs/{s}", f"types/{s}", f"attributes/{s}",
        f"subscriptions/{s}", f"temporal/entities/{s}", f"jsonldContexts/{s}")]  # fmt: skip
    for name in ("attrs", "pick", "omit", "options", "format", "lang"):
        calls.append(Call("GET", f"{BASE}/entities/{ENTITY}", {name: p}))
    for name in ("id", "idPattern", "attrs", "pick", "omit", "q", "scopeQ", "options",
                 "format", "limit", "offset", "count", "lang", "geoproperty"):  # fmt: skip
        calls.append(Call("GET", f"{BASE}/entities", {"type": "Spot", name: p}))
    calls.append(Call("GET", f"{BASE}/entities", {"type": p}))
    for name in ("georel", "geometry", "coordinates", "geoproperty"):
        calls.append(Call("GET", f"{BASE}/entities", {"type": "Spot", **geo, name: p}))
    temporal = {"type": "Spot", "timerel": "after", "timeAt": NOW}
    for name, extra in (("timerel", {}), ("timeAt", {}), ("endTimeAt", {"timerel": "between"}),
                        ("lastN", {}), ("timeproperty", {}), ("idPattern", {}), ("q", {}),
                        ("aggrMethods", {"options": "aggregatedValues"}),
                        ("aggrPeriodDuration", {"options": "aggregatedValues",
                                                "aggrMethods": "sum"})):  # fmt: skip
        calls.append(Call("GET", f"{BASE}/temporal/entities", {**temporal, **extra, name: p}))
    calls.append(Call("GET", f"{BASE}/temporal/entities/{ENTITY}", {"timerel": p, "timeAt": p}))
    calls += [
        Call("GET", f"{BASE}/types", {"details": p}),
        Call("GET", f"{BASE}/subscriptions", {"limit": p, "offset": p}),
        Call("GET", f"{BASE}/jsonldContexts", {"kind": p}),
    ]
    header = p.encode("utf-8")
    for name in ("NGSILD-Tenant", "Accept", "Link"):
        calls.append(Call("GET", f"{BASE}/entities", {"type": "Spot"}, headers={name: header},
                          as_context=name == "Link"))  # fmt: skip
    link = f'<{p}>; rel="http://www.w3.org/ns/json-ld#context"'.encode()
    calls.append(Call("GET", f"{BASE}/entities", {"type": "Spot"}, headers={"Link": link},
                      as_context=True))  # fmt: skip
    query = f"{BASE}/entityOperations/query"
    for body in (
        {"q": p},
        {"scopeQ": p},
        {"attrs": [p]},
        {"entities": [{"type": p}]},
        {"entities": [{"type": "Spot", "idPattern": p}]},
        {"entities": [{"type": "Spot", "id": p}]},
        {"geoQ": {"georel": p, "geometry": "Point", "coordinates": [3, 50]}},
        {"geoQ": {"georel": "within", "geometry": "Polygon", "coordinates": p}},
    ):
        calls.append(Call("POST", query, body={"type": "Query", **body}))
    return calls


def writes(p: str) -> list[Call]:
    """Every write with the string in an id, a name, a value, a header or a path segment."""
    seg = quote(p, safe="")
    entities = f"{BASE}/entities"
    calls = [Call("POST", entities, body=body) for body in (
        {"id": p, "type": "Spot"}, {"id": "urn:x:w", "type": p}, {**W, p: 1}, {**W, "name": p},
        {**W, "name": {"type": p, "value": 1}}, {**W, "name": {"value": 1, "observedAt": p}},
        {**W, "name": {"value": 1, "unitCode": p, "datasetId": p}},
        {**W, "name": {"value": 1, p: {"value": 2}}},
        {**W, "rel": {"type": "Relationship", "object": p}},
        {**W, "location": {"type": "GeoProperty", "value": {"type": p, "coordinates": p}}},
        {**W, "scope": p},
    )]  # fmt: skip
    calls.append(
        Call(
            "POST",
            entities,
            body={"id": "urn:x:c", "type": "Spot", "@context": p},
            headers={"Content-Type": "application/ld+json"},
            as_context=True,
        )
    )
    calls.append(
        Call(
            "POST",
            entities,
            headers={"Content-Type": p.encode()},
            content=json.dumps({"id": "urn:x:ct", "type": "Spot"}).encode(),
        )
    )
    calls.append(Call("POST", entities, body={"id": "urn:x:t", "type": "Spot"},
                      headers={"NGSILD-Tenant": p.encode()}))  # fmt: skip
    one = f"{entities}/{ENTITY}"
    calls += [
        Call("PATCH", f"{one}/attrs", body={p: 1}),
        Call("POST", f"{one}/attrs", body={"name": {"value": 1, "datasetId": p}}),
        Call("PATCH", f"{one}/attrs/{seg}", body={"value": 1}),
        Call("PUT", f"{one}/attrs/{seg}", body={"value": 1}),
        Call("DELETE", f"{one}/attrs/{seg}"),
        Call("DELETE", f"{one}/attrs/name", {"datasetId": p, "deleteAll": p}),
        Call("PATCH", one, body={"name": {"value": 2}}, params={"options": p}),
        Call("PUT", f"{entities}/{seg}", body={"type": "Spot"}),
        Call("PATCH", f"{entities}/{seg}", body={"name": 1}),
        Call("DELETE", f"{entities}/{seg}"),
    ]
    ops = f"{BASE}/entityOperations"
    calls += [
        Call("POST", f"{ops}/create", body=[{"id": p, "type": "Spot"}]),
        Call("POST", f"{ops}/upsert", body=[{**W, "x": 1}], params={"options": p}),
        Call("POST", f"{ops}/update", body=[{"id": p, "type": "Spot", "x": 1}]),
        Call("POST", f"{ops}/merge", body=[{"id": ENTITY, "type": p}]),
        Call("POST", f"{ops}/delete", body=[p]),
    ]  # fmt: skip
    subscription = {"type": "Subscription", "entities": [{"type": "Spot"}],
                    "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}}}  # fmt: skip
    subs = f"{BASE}/subscriptions"
    endpoint = {"endpoint": {"uri": p}}
    calls += [Call("POST", subs, body={**subscription, **extra}) for extra in (
        {"id": p}, {"q": p}, {"scopeQ": p}, {"watchedAttributes": [p]},
        {"notification": endpoint}, {"notification": {**endpoint, "attributes": [p]}},
        {"entities": [{"type": "Spot", "idPattern": p}]}, {"expiresAt": p},
    )]  # fmt: skip
    calls += [Call("PATCH", f"{subs}/{seg}", body={"q": "a==1"}), Call("DELETE", f"{subs}/{seg}")]
    temporal = f"{BASE}/temporal/entities"
    calls += [
        Call("POST", temporal, body={**W, "id": p, "n": {"value": 1, "observedAt": NOW}}),
        Call("POST", temporal, body={**W, "n": {"value": 1, "observedAt": p}}),
        Call("DELETE", f"{temporal}/{seg}"),
        Call("DELETE", f"{temporal}/{ENTITY}/attrs/{seg}"),
        Call("PATCH", f"{temporal}/{ENTITY}/attrs/name/{seg}", body={"value": 3}),
        Call("POST", f"{BASE}/jsonldContexts", body={"@context": {p: "http://x.example/" + p}}),
    ]  # fmt: skip
    return calls


async def send(client: httpx.AsyncClient, call: Call) -> httpx.Response | None:
    """Send one call of the sweep and check what every answer must satisfy."""
    content = call.content
    headers = dict(call.headers)
    if content is None and call.body is not None:
        content = json.dumps(call.body).encode()
        headers.setdefault("Content-Type", "application/json")
    try:
        response = await client.request(
            call.method, call.url, params=call.params, content=content, headers=headers
        )
    except httpx.InvalidURL:  # over httpx's URL length: no server can be sent this
        assert len(call.url) + sum(len(v) for v in call.params.values()) > 60_000
        return None
    where = (call.method, call.url[:120], {k: v[:60] for k, v in call.params.items()})
    for name, value in response.headers.raw:
        assert b"\r" not in name + value and b"\n" not in name + value, where
    assert b"set-cookie" not in {name.lower() for name, _ in response.headers.raw}, where
    if response.status_code >= 500:
        allowed = call.as_context and response.status_code == 503
        assert allowed, (where, response.status_code, response.text[:300])
        assert_problem(response, 503, "LdContextNotAvailable")
    elif response.status_code >= 400:
        assert_problem(response, response.status_code)
    return response


@pytest.mark.parametrize("hostile", HOSTILE, ids=[f"{i:02d}" for i in range(len(HOSTILE))])
async def test_hostile_strings_everywhere(client_factory: ClientFactory, hostile: str) -> None:
    # Private addresses refused: the sweep must not reach anything, even on loopback.
    async with client_factory(
        allow_private_context_urls=False, allow_private_notification_urls=False
    ) as client:
        created = await client.post(f"{BASE}/entityOperations/create", json=SEED)
        assert created.status_code == 201, created.text
        before = await digest(client, TYPES)
        responses = [await send(client, call) for call in reads(hostile)]
        statuses = [r.status_code for r in responses if r is not None]
        assert await digest(client, TYPES) == before, "a read changed the store"
        assert any(400 <= s < 500 for s in statuses)  # the sweep does reach the validators
        current = before
        for call in writes(hostile):
            response = await send(client, call)
            if response is None:
                continue
            now = await digest(client, TYPES)
            if response.status_code >= 400:
                assert now == current, (
                    "a refused write changed the store",
                    call.method,
                    call.url[:80],
                )
            current = now
