"""Tenant isolation: what one tenant holds is invisible and unreachable from every other.

Tenant ``roubaix`` holds entities of a type and an attribute no one else uses, a
subscription and history. From tenant ``carouge`` (which exists: it holds its own data)
and from the default tenant every operation on them must miss, and leave them unchanged.
Both stores.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.receivers import HttpReceiver
from tests.security.support import BASE, assert_problem, digest

OWNER, OTHER = "roubaix", "carouge"
SECRET = "urn:ngsi-ld:Secret:1"
SECOND = "urn:ngsi-ld:Secret:2"
TYPES = "Secret,Public"
AT = "2026-12-01T08:00:00Z"
NOTIFY_GRACE = 0.7  # seconds; the notifier answers in milliseconds, PostgreSQL polls at 0.5 s


def tenant(name: str) -> dict[str, str]:
    """The NGSILD-Tenant header of a tenant ("" is the default tenant: no header)."""
    return {"NGSILD-Tenant": name} if name else {}


def secret(entity_id: str, value: int) -> dict[str, Any]:
    """An entity of the owner's private type, with its private attribute."""
    return {"id": entity_id, "type": "Secret",
            "secretCode": {"type": "Property", "value": value, "observedAt": AT}}  # fmt: skip


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as running:
        yield running


async def given_owner_data(client: httpx.AsyncClient, receiver: HttpReceiver) -> str:
    """The owner's subscription, entities and history; the other tenants' own data.

    Returns the subscription id; the owner's writes notify 3 entities."""
    subscription = {"type": "Subscription", "entities": [{"type": "Secret"}],
                    "notification": {"endpoint": {"uri": receiver.url_for("/owner")}}}  # fmt: skip
    made = await client.post(f"{BASE}/subscriptions", json=subscription, headers=tenant(OWNER))
    assert made.status_code == 201, made.text
    for name, entity in ((OWNER, secret(SECRET, 1)), (OWNER, secret(SECOND, 2)),
                         (OTHER, {"id": "urn:ngsi-ld:Public:1", "type": "Public"}),
                         ("", {"id": "urn:ngsi-ld:Public:2", "type": "Public"})):  # fmt: skip
        created = await client.post(f"{BASE}/entities", json=entity, headers=tenant(name))
        assert created.status_code == 201, created.text
    patched = await client.patch(
        f"{BASE}/entities/{SECRET}/attrs", json={"secretCode": {"value": 3}}, headers=tenant(OWNER)
    )
    assert patched.status_code == 204, patched.text
    return made.headers["Location"].rsplit("/", 1)[1]


async def owner_state(client: httpx.AsyncClient, subscription_id: str) -> tuple[Any, ...]:
    """Everything of the owner's that other tenants must not change."""
    headers = tenant(OWNER)
    history = await client.get(f"{BASE}/temporal/entities/{SECRET}", headers=headers)
    sub = await client.get(f"{BASE}/subscriptions/{subscription_id}", headers=headers)
    assert history.status_code == 200 and sub.status_code == 200
    status = {"timesSent", "timesFailed", "lastNotification", "lastSuccess", "lastFailure"}
    definition = {k: v for k, v in sub.json().items() if k != "notification"}
    notification = {k: v for k, v in sub.json()["notification"].items() if k not in status}
    return await digest(client, TYPES, OWNER), history.json(), definition, notification


@pytest.mark.parametrize("intruder", [OTHER, ""], ids=["other-tenant", "default-tenant"])
async def test_owner_data_is_invisible_and_unreachable(
    client: httpx.AsyncClient, receiver: HttpReceiver, intruder: str
) -> None:
    sub_id = await given_owner_data(client, receiver)
    await receiver.wait_for_entities(3, path="/owner")
    before = await owner_state(client, sub_id)
    h = tenant(intruder)
    one = f"{BASE}/entities/{SECRET}"

    async def missing(method: str, url: str, **kwargs: Any) -> None:
        response = await client.request(method, url, headers=h, **kwargs)
        assert_problem(response, 404, "ResourceNotFound")

    # reads
    await missing("GET", one)
    await missing("GET", f"{BASE}/types/Secret")
    await missing("GET", f"{BASE}/attributes/secretCode")
    await missing("GET", f"{BASE}/subscriptions/{sub_id}")
    await missing("GET", f"{BASE}/temporal/entities/{SECRET}")
    for params in ({"type": "Secret"}, {"type": TYPES, "idPattern": ".*"}, {"type": TYPES,
                   "attrs": "secretCode"}, {"type": TYPES, "q": "secretCode>0"}):  # fmt: skip
        listed = await client.get(f"{BASE}/entities", params=params, headers=h)
        assert listed.status_code == 200 and all("Secret" not in e["id"] for e in listed.json())
    query = {"type": "Query", "entities": [{"type": "Secret"}]}
    queried = await client.post(f"{BASE}/entityOperations/query", headers=h, json=query)
    assert queried.status_code == 200 and queried.json() == []
    types = (await client.get(f"{BASE}/types", headers=h)).json()
    assert "Secret" not in str(types) and "Public" in str(types)
    attributes = (await client.get(f"{BASE}/attributes", headers=h)).json()
    assert "secretCode" not in str(attributes)
    subs = await client.get(f"{BASE}/subscriptions", headers=h)
    assert subs.status_code == 200 and subs.json() == []
    temporal = await client.get(f"{BASE}/temporal/entities", params={"type": "Secret"}, headers=h)
    assert temporal.status_code == 200 and temporal.json() == []
    # writes aimed at the owner's entities, subscription and history
    await missing("PATCH", f"{one}/attrs", json={"secretCode": {"value": 9}})
    await missing("POST", f"{one}/attrs", json={"more": {"value": 9}})
    await missing("PATCH", f"{one}/attrs/secretCode", json={"value": 9})
    await missing("PUT", f"{one}/attrs/secretCode", json={"value": 9})
    await missing("DELETE", f"{one}/attrs/secretCode")
    await missing("PATCH", one, json={"secretCode": {"value": 9}})
    await missing("PUT", one, json={"type": "Secret", "secretCode": {"value": 9}})
    await missing("DELETE", one)
    await missing("PATCH", f"{BASE}/subscriptions/{sub_id}", json={"q": "secretCode>100"})
    await missing("DELETE", f"{BASE}/subscriptions/{sub_id}")
    await missing("DELETE", f"{BASE}/temporal/entities/{SECRET}")
    await missing("DELETE", f"{BASE}/temporal/entities/{SECRET}/attrs/secretCode")
    for op, body in (("update", [secret(SECRET, 9)]), ("merge", [secret(SECRET, 9)]),
                     ("delete", [SECRET, SECOND])):  # fmt: skip
        batch = await client.post(f"{BASE}/entityOperations/{op}", json=body, headers=h)
        assert batch.status_code == 207, batch.text
        assert batch.json()["success"] == [] and len(batch.json()["errors"]) == len(body)
        assert {e["error"]["status"] for e in batch.json()["errors"]} == {404}
    # the same ids are free in the intruder's tenant: creating them touches nothing of the owner
    created = await client.post(f"{BASE}/entities", json=secret(SECRET, 9), headers=h)
    assert created.status_code == 201, created.text
    upsert = await client.post(
        f"{BASE}/entityOperations/upsert", json=[secret(SECOND, 9)], headers=h
    )
    assert upsert.status_code == 201, upsert.text
    assert await owner_state(client, sub_id) == before
    await asyncio.sleep(NOTIFY_GRACE)  # a leaked notification would arrive by now
    owner_ids = sorted(d["id"] for r in receiver.accepted for d in r.json()["data"])
    assert owner_ids == [SECRET, SECRET, SECOND], "the owner heard another tenant's writes"


async def test_notifications_stay_in_their_tenant(
    client: httpx.AsyncClient, receiver: HttpReceiver
) -> None:
    """Same type, same ids, one subscription per tenant: each hears only its own tenant."""
    for name, path in ((OWNER, "/owner"), (OTHER, "/other"), ("", "/default")):
        subscription = {"type": "Subscription", "entities": [{"type": "Secret"}],
                        "notification": {"endpoint": {"uri": receiver.url_for(path)}}}  # fmt: skip
        made = await client.post(f"{BASE}/subscriptions", json=subscription, headers=tenant(name))
        assert made.status_code == 201, made.text
    for value, name in enumerate((OWNER, OTHER, "", OTHER)):
        entity = secret(f"urn:ngsi-ld:Secret:{value}", value)
        created = await client.post(f"{BASE}/entities", json=entity, headers=tenant(name))
        assert created.status_code == 201, created.text
    await receiver.wait_for_entities(4)
    await asyncio.sleep(NOTIFY_GRACE)  # a notification sent to the wrong tenant would be here
    heard: dict[str, list[tuple[str, Any, str | None]]] = {}
    for request in receiver.accepted:
        for entity in request.json()["data"]:
            value = entity["secretCode"]["value"]
            heard.setdefault(request.path, []).append(
                (entity["id"], value, request.headers.get("ngsild-tenant"))
            )
    assert sorted(heard["/owner"]) == [("urn:ngsi-ld:Secret:0", 0, OWNER)]
    assert sorted(heard["/other"]) == [
        ("urn:ngsi-ld:Secret:1", 1, OTHER),
        ("urn:ngsi-ld:Secret:3", 3, OTHER),
    ]
    assert sorted(heard["/default"]) == [("urn:ngsi-ld:Secret:2", 2, None)]
    assert receiver.notified_entities() == 4
