"""Property tests at the HTTP level: random bodies, query strings and paths never give a 5xx.

The app runs in-process on each store; a blocking portal lets hypothesis drive it from a
synchronous test. Every 4xx must be a ProblemDetails.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import anyio.from_thread
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import running_client
from tests.security.support import BASE, assert_problem
from tests.security.test_parsers import JSON, KEYS, TEXTS

from agilecity.settings import Settings

Call = Callable[..., httpx.Response]
EXAMPLES = int(os.environ.get("AGILECITY_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ENTITY = "urn:ngsi-ld:Spot:1"
POINT = {"type": "Point", "coordinates": [3, 50]}
SEED = {"id": ENTITY, "type": "Spot", "name": {"type": "Property", "value": "x"},
        "location": {"type": "GeoProperty", "value": POINT}}  # fmt: skip
WRITES = [
    ("POST", f"{BASE}/entities"),
    ("PUT", f"{BASE}/entities/{ENTITY}"),
    ("PATCH", f"{BASE}/entities/{ENTITY}"),
    ("POST", f"{BASE}/entities/{ENTITY}/attrs"),
    ("PATCH", f"{BASE}/entities/{ENTITY}/attrs"),
    ("PATCH", f"{BASE}/entities/{ENTITY}/attrs/name"),
    ("PUT", f"{BASE}/entities/{ENTITY}/attrs/name"),
    ("POST", f"{BASE}/entityOperations/create"),
    ("POST", f"{BASE}/entityOperations/upsert"),
    ("POST", f"{BASE}/entityOperations/update"),
    ("POST", f"{BASE}/entityOperations/merge"),
    ("POST", f"{BASE}/entityOperations/delete"),
    ("POST", f"{BASE}/entityOperations/query"),
    ("POST", f"{BASE}/subscriptions"),
    ("POST", f"{BASE}/temporal/entities"),
    ("POST", f"{BASE}/temporal/entities/{ENTITY}/attrs"),
]
READS = [f"{BASE}/entities", f"{BASE}/temporal/entities", f"{BASE}/types",
         f"{BASE}/attributes", f"{BASE}/subscriptions", f"{BASE}/entities/{ENTITY}",
         f"{BASE}/temporal/entities/{ENTITY}", f"{BASE}/types/Spot"]  # fmt: skip
PARAMS = ["id", "idPattern", "type", "attrs", "pick", "omit", "q", "scopeQ", "georel",
          "geometry", "coordinates", "geoproperty", "options", "format", "limit", "offset",
          "count", "lang", "timerel", "timeAt", "endTimeAt", "lastN", "aggrMethods",
          "aggrPeriodDuration", "timeproperty", "details", "datasetId", "deleteAll"]  # fmt: skip


def settled(response: httpx.Response, *, with_context: bool = False) -> httpx.Response:
    """The response, checked: no 5xx, and a ProblemDetails for every 4xx.

    A request that names a remote @context may get the spec's LdContextNotAvailable (503)
    when that context cannot be fetched (random text is no http(s) URL)."""
    request = response.request
    if with_context and response.status_code == 503:
        assert_problem(response, 503, "LdContextNotAvailable")
        return response
    assert response.status_code < 500, (request.method, request.url, response.text)
    if response.status_code >= 400:
        assert_problem(response, response.status_code)
    return response


@pytest.fixture
def api(settings_factory: Callable[..., Settings]) -> Iterator[Call]:
    """A synchronous call into the in-process app (one per backend), seeded with one entity."""
    with anyio.from_thread.start_blocking_portal() as portal:
        manager = portal.wrap_async_context_manager(running_client(settings_factory()))
        with manager as client:

            def call(method: str, url: str, **kwargs: Any) -> httpx.Response:
                return portal.call(functools.partial(client.request, method, url, **kwargs))

            assert call("POST", f"{BASE}/entities", json=SEED).status_code == 201
            yield call


@FUZZ
@given(st.sampled_from(WRITES), JSON, st.sampled_from(["application/json", "application/ld+json"]))
def test_random_bodies_never_give_a_server_error(
    api: Call, endpoint: tuple[str, str], body: Any, media: str
) -> None:
    method, url = endpoint
    content = json.dumps(body).encode()  # big integers and NaN too: hostile, not invalid here
    response = api(method, url, content=content, headers={"Content-Type": media})
    settled(response, with_context=media == "application/ld+json" and b'"@context"' in content)


@FUZZ
@given(st.sampled_from(WRITES), st.binary(max_size=60) | TEXTS.map(str.encode))
def test_random_bytes_never_give_a_server_error(
    api: Call, endpoint: tuple[str, str], content: bytes
) -> None:
    method, url = endpoint
    response = settled(
        api(method, url, content=content, headers={"Content-Type": "application/json"})
    )
    assert response.status_code in (200, 201, 204, 207, 400, 404, 409, 413, 422), response.text


@FUZZ
@given(
    st.sampled_from(READS),
    st.dictionaries(st.sampled_from(PARAMS) | st.text(max_size=6), TEXTS, max_size=5),
)
def test_random_query_strings_never_give_a_server_error(
    api: Call, url: str, params: dict[str, str]
) -> None:
    settled(api("GET", url, params=params))


@FUZZ
@given(
    st.sampled_from(["GET", "DELETE", "PATCH"]),
    st.sampled_from(
        [
            "entities/{}",
            "entities/{}/attrs/{}",
            "types/{}",
            "attributes/{}",
            "subscriptions/{}",
            "temporal/entities/{}",
            "jsonldContexts/{}",
            "temporal/entities/{}/attrs/{}/{}",
        ]
    ),  # fmt: skip
    st.lists(TEXTS | st.sampled_from(KEYS), min_size=3, max_size=3),
)
def test_random_paths_never_give_a_server_error(
    api: Call, method: str, template: str, parts: list[str]
) -> None:
    path = template.format(*(quote(p, safe="") or "x" for p in parts))
    settled(api(method, f"{BASE}/{path}", json={"value": 1} if method == "PATCH" else None))
