"""Regression tests of the 5xx schemathesis found (``tests/security/test_openapi.py``), on
both stores; the notification stall it found is tested in ``tests/broker/test_notifier.py``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from tests.security.support import BASE, assert_problem


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("PUT", "/iot/services?apikey=k%00"),
        ("DELETE", "/iot/services?apikey=k%00"),
        ("PUT", "/iot/services?apikey=k&resource=/iot/d%00"),
        ("DELETE", "/iot/services?apikey=k&resource=/iot/d%00"),
        ("GET", "/iot/devices/d%00"),
        ("PUT", "/iot/devices/d%00"),
        ("DELETE", "/iot/devices/d%00"),
        ("GET", "/audit?actor=a%00"),
        ("GET", "/audit?tenant=t%00"),
    ],
)
async def test_a_nul_in_an_iot_agent_key_or_an_audit_filter_is_a_400(
    client_factory: Callable[..., Any], method: str, url: str
) -> None:
    async with client_factory(gateway=True, mqtt_port=1) as client:
        response = await client.request(method, url, json={"entity_type": "Spot"})
    assert response.status_code == 400, response.text
    if url.startswith("/iot/"):
        assert response.json()["name"] == "BAD_REQUEST"


@pytest.mark.parametrize(
    "url",
    ["/iot/services?limit=²", "/iot/devices?offset=³", "/audit?limit=²", "/audit?offset=١",
     "/audit?offset=99999999999999999999"],  # beyond a bigint: a 500 on PostgreSQL
)  # fmt: skip
async def test_a_non_ascii_digit_or_a_huge_page_parameter_is_a_400(
    client_factory: Callable[..., Any], url: str
) -> None:
    # str.isdigit() holds for '²' and '١', which int() then refused: a 500
    async with client_factory(gateway=True, mqtt_port=1) as client:
        response = await client.get(url)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize("number", ["1e20", "-1e19", "1.5e300"])
async def test_a_number_beyond_64_bits_is_refused_and_leaves_the_entity_readable(
    client_factory: Callable[..., Any], number: str
) -> None:
    # PostgreSQL's jsonb gave 1e20 back as the integer 100000000000000000000, which orjson
    # cannot write: the entity answered 500 to every later read and write
    entity = '{"id": "urn:ngsi-ld:Spot:big", "type": "Spot", "a": {"type": "Property", "value": 1}}'
    patch = f'{{"a": {{"type": "Property", "value": {number}}}}}'
    headers = {"Content-Type": "application/json"}
    async with client_factory() as client:
        assert (await client.post(f"{BASE}/entities", content=entity, headers=headers)).is_success
        url = f"{BASE}/entities/urn:ngsi-ld:Spot:big"
        response = await client.patch(f"{url}/attrs", content=patch, headers=headers)
        assert_problem(response, 400, "BadRequestData")
        assert (await client.get(url)).json()["a"]["value"] == 1
