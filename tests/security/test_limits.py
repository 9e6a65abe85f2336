"""Request limits through the API, on both stores: regexes, geometry sizes, the page ceiling."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from tests.security.support import BASE, assert_problem, digest

ENTITIES = f"{BASE}/entities"
QUERY = f"{BASE}/entityOperations/query"
SUBSCRIPTIONS = f"{BASE}/subscriptions"
TEMPORAL = f"{BASE}/temporal/entities"
ClientFactory = Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]


def subscription(**members: Any) -> dict[str, Any]:
    """A valid subscription with these members added or replaced."""
    body: dict[str, Any] = {
        "type": "Subscription",
        "entities": [{"type": "Spot"}],
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/notify"}},
    }
    body.update(members)
    return body


# --- regular expressions ----------------------------------------------------------------------

REFUSED_REGEX = [
    pytest.param(
        "get", ENTITIES, {"type": "Spot", "idPattern": r"^(a)\1$"}, None, "backreferences",
        id="idPattern-backreference",
    ),
    pytest.param(
        "get", ENTITIES, {"type": "Spot", "q": "name~=(?=x)x"}, None, "lookahead",
        id="q-lookahead",
    ),
    pytest.param(
        "get", ENTITIES, {"type": "Spot", "q": "name!~=(?<!x)y"}, None, "lookbehind",
        id="q-negated-lookbehind",
    ),
    pytest.param(
        "post", QUERY, {}, {"type": "Query", "entities": [{"type": "Spot", "idPattern": "(?<=a)"}]},
        "lookbehind", id="query-entities-idPattern",
    ),
    pytest.param(
        "post", QUERY, {}, {"type": "Query", "q": r"name~=(\w)\1"}, "backreferences",
        id="query-q-backreference",
    ),
    pytest.param(
        "post", SUBSCRIPTIONS, {}, subscription(entities=[{"type": "Spot", "idPattern": "(?!a)"}]),
        "lookahead", id="subscription-idPattern",
    ),
    pytest.param(
        "post", SUBSCRIPTIONS, {}, subscription(q="name~=(?P<n>a)"), "named groups",
        id="subscription-q",
    ),
    pytest.param(
        "get", TEMPORAL, {"type": "Spot", "idPattern": r"(x)\1"}, None, "backreferences",
        id="temporal-idPattern",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("method", "url", "params", "body", "fragment"), REFUSED_REGEX)
async def test_patterns_re2_cannot_run_are_bad_request_data(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    params: dict[str, str],
    body: Any,
    fragment: str,
) -> None:
    response = await client.request(method, url, params=params, json=body)
    assert fragment in assert_problem(response, 400, "BadRequestData")


async def test_regex_length_is_a_setting(client_factory: ClientFactory) -> None:
    async with client_factory(max_regex_length=10) as client:
        ok = await client.get(ENTITIES, params={"type": "Spot", "idPattern": "x" * 10})
        assert ok.status_code == 200, ok.text
        for params in ({"idPattern": "x" * 11}, {"q": "name~=" + "x" * 11}):
            response = await client.get(ENTITIES, params={"type": "Spot", **params})
            assert "longer than 10 characters" in assert_problem(response, 400, "BadRequestData")
        sub = await client.post(SUBSCRIPTIONS, json=subscription(q="name~=" + "y" * 11))
        assert "longer than 10 characters" in assert_problem(sub, 400, "BadRequestData")


async def test_a_pathological_pattern_answers_at_once(client: httpx.AsyncClient) -> None:
    """``(a+)+$`` on a long a-run backtracks for hours in Python's re; linear on both stores."""
    run = "a" * 50_000 + "b"
    entity = {"id": "urn:x:" + "a" * 2000 + "b", "type": "Spot", "name": run}
    assert (await client.post(ENTITIES, json=entity)).status_code == 201
    start = time.perf_counter()
    for params in ({"idPattern": "(a+)+$"}, {"q": "name~=(a+)+$"}):
        response = await client.get(ENTITIES, params={"type": "Spot", **params})
        assert response.status_code == 200 and response.json() == [], response.text
    for params in ({"idPattern": "(a+)+b$"}, {"q": "name~=(a+)+b$"}):
        response = await client.get(ENTITIES, params={"type": "Spot", **params})
        assert [e["id"] for e in response.json()] == [entity["id"]]
    assert time.perf_counter() - start < 5.0


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (r"name~=\bdu\b", {"urn:x:1"}),
        (r"name~=\Bor", {"urn:x:1", "urn:x:3"}),
        ("name~=(?i)^gare", {"urn:x:1", "urn:x:2"}),
        ("name~=Nord.Sud", {"urn:x:3"}),  # '.' matches the newline on both stores
        ("name~=[[:digit:]]{2}", {"urn:x:2"}),
        ("name!~=e", {"urn:x:3"}),
    ],
)
async def test_patterns_mean_the_same_on_both_stores(
    client: httpx.AsyncClient, q: str, expected: set[str]
) -> None:
    names = {"urn:x:1": "Gare du Nord", "urn:x:2": "gare 42", "urn:x:3": "Nord\nSud"}
    for entity_id, name in names.items():
        created = await client.post(ENTITIES, json={"id": entity_id, "type": "Spot", "name": name})
        assert created.status_code == 201, created.text
    response = await client.get(ENTITIES, params={"type": "Spot", "q": q})
    assert {e["id"] for e in response.json()} == expected, response.text


# --- geometry size ----------------------------------------------------------------------------


def line(n: int) -> dict[str, Any]:
    """A LineString of n positions."""
    return {"type": "LineString", "coordinates": [[3.0 + i / 1000, 50.0] for i in range(n)]}


def located(entity_id: str, geometry: dict[str, Any]) -> dict[str, Any]:
    """An entity whose location is this geometry."""
    return {"id": entity_id, "type": "Spot", "location": {"type": "GeoProperty", "value": geometry}}


async def test_default_geometry_limit_is_ten_thousand_positions(client: httpx.AsyncClient) -> None:
    ok = await client.post(ENTITIES, json=located("urn:x:ok", line(10_000)))
    assert ok.status_code == 201, ok.text
    response = await client.post(ENTITIES, json=located("urn:x:big", line(10_001)))
    assert "more than 10000 positions" in assert_problem(response, 400, "BadRequestData")


async def test_geometry_limit_applies_to_every_way_in(client_factory: ClientFactory) -> None:
    async with client_factory(max_geometry_points=4) as client:
        assert (await client.post(ENTITIES, json=located("urn:x:1", line(4)))).status_code == 201
        before = await digest(client, "Spot")
        big = line(5)
        coords = str(big["coordinates"]).replace(" ", "")
        geo = {"georel": "intersects", "geometry": "LineString", "coordinates": coords}
        attempts = [
            client.post(ENTITIES, json=located("urn:x:2", big)),
            client.patch(f"{ENTITIES}/urn:x:1/attrs", json={"location": {"value": big}}),
            client.patch(f"{ENTITIES}/urn:x:1/attrs/location", json={"value": big}),
            client.put(f"{ENTITIES}/urn:x:1/attrs/location", json={"value": big}),
            client.post(f"{ENTITIES}/urn:x:1/attrs", json={"area": big}),
            client.patch(f"{ENTITIES}/urn:x:1", json={"location": {"value": big}}),
            client.get(ENTITIES, params={"type": "Spot", **geo}),
            client.post(QUERY, json={"type": "Query", "geoQ": {**geo, "coordinates": coords}}),
            client.post(SUBSCRIPTIONS, json=subscription(geoQ=geo)),
            client.post(TEMPORAL, json=located("urn:x:3", big)),
        ]  # fmt: skip
        for attempt in attempts:
            response = await attempt
            detail = assert_problem(response, 400, "BadRequestData")
            assert "more than 4 positions" in detail, response.request.url
        batch = await client.post(f"{BASE}/entityOperations/create", json=[located("urn:x:4", big)])
        assert batch.status_code == 207 and batch.json()["success"] == [], batch.text
        assert "more than 4 positions" in batch.text
        assert await digest(client, "Spot") == before


# --- the page-size ceiling --------------------------------------------------------------------


async def test_limit_above_the_maximum_is_too_many_results_everywhere(
    client_factory: ClientFactory,
) -> None:
    """Clause 6.3.x: a limit above what the broker serves is TooManyResults (403)."""
    async with client_factory(max_page_size=5, default_page_size=5) as client:
        for url, method in ((ENTITIES, "GET"), (QUERY, "POST"), (SUBSCRIPTIONS, "GET"),
                            (TEMPORAL, "GET")):  # fmt: skip
            body = {"type": "Query", "entities": [{"type": "Spot"}]} if method == "POST" else None
            params = {"type": "Spot"} if url != SUBSCRIPTIONS else {}
            ok = await client.request(method, url, params={**params, "limit": "5"}, json=body)
            assert ok.status_code == 200, (url, ok.text)
            over = await client.request(method, url, params={**params, "limit": "6"}, json=body)
            assert_problem(over, 403, "TooManyResults")
