"""Notification delivery against real receivers (clauses 5.2.12, 5.3.1, 7.2 of CIM 009 v1.8).

Every test runs the real app (HTTP API, store, notifier) and receives notifications on a
real HTTP server (``tests.receivers.HttpReceiver``), on the real Mosquitto broker
(``MqttCollector``) or through an in-process Python callback. Covered: the Notification
payload, every notificationTrigger, watchedAttributes/q/scopeQ/geoQ and entity selectors,
the representation options (format, attributes, sysAttrs, showChanges, lang, accept,
@context), receiverInfo and tenant headers, tenant isolation, periodic notifications,
throttling, expiry, pausing, retries through a receiver outage, per-endpoint isolation,
the bounded queue, MQTT, callbacks, and that a write never waits for a receiver.

Negative checks ("this notifies nothing") use a :class:`Witness`: a subscription of its
own whose notification proves the dispatcher got past every earlier change, after which
``notifier.drain()`` waits for the queued notifications. No fixed sleeps: every wait polls
with a generous deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from tests.receivers import HttpReceiver, MqttCollector, wait_until

from agilecity.app import build_app
from agilecity.broker.broker import Broker
from agilecity.broker.context import core_term_map
from agilecity.settings import Settings

ENTITIES = "/ngsi-ld/v1/entities"
SUBSCRIPTIONS = "/ngsi-ld/v1/subscriptions"
CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"
CORE_LINK = f'<{CORE_CONTEXT}>; rel="{CONTEXT_REL}"; type="application/ld+json"'
TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
E1 = "urn:ngsi-ld:T:1"
E2 = "urn:ngsi-ld:T:2"
PERSON_1 = "urn:ngsi-ld:Person:1"
PERSON_2 = "urn:ngsi-ld:Person:2"
SQUARE = [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]

Json = dict[str, Any]


class Timestamp:
    """Equal to any NGSI-LD DateTime string (for exact comparisons of whole bodies)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and TIMESTAMP_RE.fullmatch(other) is not None

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "<any timestamp>"


TS = Timestamp()


def prop(value: Any, **members: Any) -> Json:
    """A normalized Property."""
    return {"type": "Property", "value": value, **members}


def rel(target: str) -> Json:
    """A normalized Relationship."""
    return {"type": "Relationship", "object": target}


def point(lon: float, lat: float) -> Json:
    """A GeoProperty holding a Point."""
    return {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}


def in_seconds(seconds: float) -> str:
    """An NGSI-LD DateTime that many seconds from now."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def subscription(uri: str, **members: Any) -> Json:
    """A Subscription on entities of type T notifying ``uri``.

    ``members`` override the top level; ``notification`` members are merged in, and an
    ``endpoint`` given there is merged with the uri.
    """
    notification = dict(members.pop("notification", {}))
    endpoint = {"uri": uri, **notification.pop("endpoint", {})}
    return {
        "type": "Subscription",
        "entities": [{"type": "T"}],
        **members,
        "notification": {**notification, "endpoint": endpoint},
    }


def tenant_headers(tenant: str) -> dict[str, str]:
    return {"NGSILD-Tenant": tenant} if tenant else {}


def data_of(receiver: HttpReceiver) -> list[list[Json]]:
    """The ``data`` member of every notification delivered to the receiver, in order."""
    return [body["data"] for body in receiver.bodies()]


# -- the running platform ------------------------------------------------------------------


@dataclass
class City:
    """The app under test with its lifespan running, and an HTTP client on it."""

    app: Starlette
    client: httpx.AsyncClient

    @property
    def broker(self) -> Broker:
        broker: Broker = self.app.state.broker
        return broker

    async def subscribe(
        self, payload: Json, *, tenant: str = "", headers: dict[str, str] | None = None
    ) -> str:
        """POST /subscriptions (201 expected); the new subscription's id."""
        response = await self.client.post(
            SUBSCRIPTIONS, json=payload, headers={**tenant_headers(tenant), **(headers or {})}
        )
        assert response.status_code == 201, response.text
        return response.headers["Location"].rpartition("/")[2]

    async def subscription(self, sub_id: str, *, tenant: str = "") -> Json:
        response = await self.client.get(
            f"{SUBSCRIPTIONS}/{sub_id}", headers=tenant_headers(tenant)
        )
        assert response.status_code == 200, response.text
        body: Json = response.json()
        return body

    async def wait_subscription(
        self, sub_id: str, ready: Callable[[Json], bool], *, timeout: float = 10.0
    ) -> Json:
        """Poll GET /subscriptions/{id} until ``ready(subscription)``; the last one read."""
        last: Json = {}

        async def check() -> bool:
            nonlocal last
            last = await self.subscription(sub_id)
            return ready(last)

        deadline = time.monotonic() + timeout
        while not await check():
            if time.monotonic() > deadline:
                raise AssertionError(f"subscription never reached the state: {last}")
            await asyncio.sleep(0.05)
        return last

    async def create(
        self,
        entity_id: str,
        *,
        entity_type: str = "T",
        tenant: str = "",
        headers: dict[str, str] | None = None,
        **attrs: Any,
    ) -> None:
        entity = {"id": entity_id, "type": entity_type, **attrs}
        response = await self.client.post(
            ENTITIES, json=entity, headers={**tenant_headers(tenant), **(headers or {})}
        )
        assert response.status_code == 201, response.text

    async def update(self, entity_id: str, *, tenant: str = "", **attrs: Any) -> None:
        """PATCH /entities/{id}/attrs (existing attributes)."""
        response = await self.client.patch(
            f"{ENTITIES}/{entity_id}/attrs", json=attrs, headers=tenant_headers(tenant)
        )
        assert response.status_code == 204, response.text

    async def append(self, entity_id: str, **attrs: Any) -> None:
        """POST /entities/{id}/attrs (new attributes)."""
        response = await self.client.post(f"{ENTITIES}/{entity_id}/attrs", json=attrs)
        assert response.status_code == 204, response.text

    async def delete_attribute(self, entity_id: str, attr: str) -> None:
        response = await self.client.delete(f"{ENTITIES}/{entity_id}/attrs/{attr}")
        assert response.status_code == 204, response.text

    async def delete(self, entity_id: str) -> None:
        response = await self.client.delete(f"{ENTITIES}/{entity_id}")
        assert response.status_code == 204, response.text

    async def entity(self, entity_id: str, **params: str) -> Json:
        response = await self.client.get(f"{ENTITIES}/{entity_id}", params=params)
        assert response.status_code == 200, response.text
        body: Json = response.json()
        return body


CityFactory = Callable[..., contextlib.AbstractAsyncContextManager[City]]


@pytest.fixture
def city_factory(settings_factory: Callable[..., Settings]) -> CityFactory:
    """``async with city_factory(**setting_overrides) as city``: a running app."""

    @contextlib.asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[City]:
        settings = settings_factory(**{"allow_private_notification_urls": True, **overrides})
        app = build_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield City(app, client)

    return make


@pytest.fixture
async def city(city_factory: CityFactory) -> AsyncIterator[City]:
    async with city_factory() as running:
        yield running


@pytest.fixture
def receivers() -> Iterator[Callable[[], HttpReceiver]]:
    """A factory of started HTTP receivers, all stopped at the end of the test."""
    started: list[HttpReceiver] = []

    def make() -> HttpReceiver:
        receiver = HttpReceiver().start()
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        receiver.stop()


@pytest.fixture
def receiver(receivers: Callable[[], HttpReceiver]) -> HttpReceiver:
    return receivers()


@dataclass
class Witness:
    """A subscription of its own, on its own receiver, to know the dispatcher caught up.

    Its subscription is created at the first :meth:`settle`, so that it does not make the
    store record the changes a test makes before it subscribes.
    """

    city: City
    receiver: HttpReceiver
    count: int = field(default=0)

    async def settle(self) -> None:
        """Return once every change committed so far was matched and its notifications,
        if any, were delivered (changes are dispatched in commit order)."""
        if self.count == 0:
            await self.city.subscribe(
                {
                    "type": "Subscription",
                    "entities": [{"type": "Witness"}],
                    "notificationTrigger": ["entityCreated"],
                    "notification": {"endpoint": {"uri": self.receiver.url}},
                }
            )
        self.count += 1
        await self.city.create(
            f"urn:ngsi-ld:Witness:{self.count}", entity_type="Witness", n=prop(1)
        )
        await self.receiver.wait_for(self.count)
        await self.city.broker.notifier.drain()


@pytest.fixture
def witness(city: City, receivers: Callable[[], HttpReceiver]) -> Witness:
    return Witness(city, receivers())


# -- the Notification payload ----------------------------------------------------------------


async def test_a_notification_is_posted_as_a_notification_payload(
    city: City, receiver: HttpReceiver
) -> None:
    await city.create(E1, temperature=prop(20))
    sub_id = await city.subscribe(subscription(receiver.url))
    before = datetime.now(UTC)
    await city.update(E1, temperature=prop(21))

    (request,) = await receiver.wait_for(1)
    assert request.method == "POST"
    assert request.path == "/notify"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["link"] == CORE_LINK
    assert "ngsild-tenant" not in request.headers
    body = request.json()
    assert set(body) == {"id", "type", "subscriptionId", "notifiedAt", "data"}
    assert body["id"].startswith("urn:ngsi-ld:Notification:")
    assert len(body["id"]) > len("urn:ngsi-ld:Notification:")
    assert body["type"] == "Notification"
    assert body["subscriptionId"] == sub_id
    assert body["notifiedAt"] == TS
    notified = datetime.fromisoformat(body["notifiedAt"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= notified <= datetime.now(UTC) + timedelta(seconds=1)
    assert body["data"] == [{"id": E1, "type": "T", "temperature": prop(21)}]


async def test_each_notification_has_its_own_id(city: City, receiver: HttpReceiver) -> None:
    await city.create(E1, temperature=prop(20))
    await city.subscribe(subscription(receiver.url))
    for value in (21, 22, 23):
        await city.update(E1, temperature=prop(value))
    requests = await receiver.wait_for(3)
    assert len({r.json()["id"] for r in requests}) == 3
    assert [d[0]["temperature"]["value"] for d in data_of(receiver)] == [21, 22, 23]


# -- notification triggers -------------------------------------------------------------------

BASE = {"id": E1, "type": "T"}
T20 = {**BASE, "temperature": prop(20)}
T21 = {**BASE, "temperature": prop(21)}
T21_H50 = {**T21, "humidity": prop(50)}
DELETED = {**BASE, "deletedAt": TS}


async def _lifecycle(city: City) -> None:
    """Create, update, add an attribute, delete it, delete the entity."""
    await city.create(E1, temperature=prop(20))
    await city.update(E1, temperature=prop(21))
    await city.append(E1, humidity=prop(50))
    await city.delete_attribute(E1, "humidity")
    await city.delete(E1)


async def _attribute_changes(city: City) -> None:
    """On an entity that already exists: update, add an attribute, delete it."""
    await city.update(E1, temperature=prop(21))
    await city.append(E1, humidity=prop(50))
    await city.delete_attribute(E1, "humidity")


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        pytest.param("entityCreated", [T20], id="entityCreated"),
        pytest.param("entityUpdated", [T21, T21_H50, T21], id="entityUpdated"),
        pytest.param("entityDeleted", [DELETED], id="entityDeleted"),
    ],
)
async def test_entity_triggers_fire_on_their_event_only(
    city: City, receiver: HttpReceiver, witness: Witness, trigger: str, expected: list[Json]
) -> None:
    await city.subscribe(subscription(receiver.url, notificationTrigger=[trigger]))
    await _lifecycle(city)
    await witness.settle()
    assert data_of(receiver) == [[item] for item in expected]


async def test_entity_deleted_carries_only_id_type_and_deleted_at(
    city: City, receiver: HttpReceiver
) -> None:
    await city.create(E1, temperature=prop(20))
    await city.subscribe(subscription(receiver.url, notificationTrigger=["entityDeleted"]))
    before = datetime.now(UTC) - timedelta(seconds=1)
    await city.delete(E1)
    (request,) = await receiver.wait_for(1)
    (item,) = request.json()["data"]
    assert set(item) == {"id", "type", "deletedAt"}
    assert item["id"] == E1 and item["type"] == "T"
    deleted_at = datetime.fromisoformat(item["deletedAt"].replace("Z", "+00:00"))
    assert before <= deleted_at <= datetime.now(UTC) + timedelta(seconds=1)


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        pytest.param("attributeCreated", [T21_H50], id="attributeCreated"),
        pytest.param("attributeUpdated", [T21], id="attributeUpdated"),
    ],
)
async def test_attribute_triggers_fire_on_their_event_only(
    city: City, receiver: HttpReceiver, witness: Witness, trigger: str, expected: list[Json]
) -> None:
    await city.create(E1, temperature=prop(20))
    await city.subscribe(subscription(receiver.url, notificationTrigger=[trigger]))
    await _attribute_changes(city)
    await witness.settle()
    assert data_of(receiver) == [[item] for item in expected]


async def test_attribute_deleted_fires_when_an_attribute_is_deleted_only(
    city: City, receiver: HttpReceiver, witness: Witness
) -> None:
    await city.create(E1, temperature=prop(20))
    await city.subscribe(subscription(receiver.url, notificationTrigger=["attributeDeleted"]))
    await _attribute_changes(city)
    await witness.settle()
    (data,) = data_of(receiver)
    (item,) = data
    # How the deleted attribute itself is shown is not asserted here; the rest is exact.
    assert {k: v for k, v in item.items() if k != "humidity"} == T21


async def test_default_triggers_are_attribute_created_and_updated(
    city: City, receiver: HttpReceiver, witness: Witness
) -> None:
    await city.create(E1, temperature=prop(20))
    sub_id = await city.subscribe(subscription(receiver.url))
    await _attribute_changes(city)
    await city.delete(E1)
    await witness.settle()
    assert data_of(receiver) == [[T21], [T21_H50]]
    assert "notificationTrigger" not in await city.subscription(sub_id)


async def test_several_triggers_combine(
    city: City, receiver: HttpReceiver, witness: Witness
) -> None:
    await city.subscribe(
        subscription(receiver.url, notificationTrigger=["entityCreated", "entityDeleted"])
    )
    await _lifecycle(city)
    await witness.settle()
    assert data_of(receiver) == [[T20], [DELETED]]


# -- what a subscription selects -------------------------------------------------------------


async def test_watched_attributes_ignore_updates_of_other_attributes(
    city: City, receiver: HttpReceiver, witness: Witness
) -> None:
    await city.create(E1, temperature=prop(20), humidity=prop(50))
    await city.subscribe(subscription(receiver.url, watchedAttributes=["temperature"]))
    await city.update(E1, humidity=prop(60))
    await city.update(E1, temperature=prop(21))
    await city.update(E1, humidity=prop(70))
    await witness.settle()
    assert data_of(receiver) == [[{**T21, "humidity": prop(60)}]]


async def test_watched_attributes_alone_select_entities_of_any_type(
    city: City, receiver: HttpReceiver, witness: Witness
) -> None:
    await city.create(E1, temperature=prop(20))
    await city.create("urn:ngsi-ld:U:1", entity_type="U", temperature=prop(20), humidity=prop(1))
    payload = subscription(receiver.url, watchedAttributes=["humidity"])
    del payload["entities"]
    await city.subscribe(payload)
    await city.update(E1, temperature=prop(21))
    await city.update("urn:ngsi-ld:U:1", humidity=prop(2))
    await witness.settle()
    assert data_of(receiver) == [
        [{"id": "urn:ngsi-ld:U:1", "type": "U", "temperature": prop(20), "humidity": prop(2)}]
    ]


async def test_q_filters_the_entity_after_the_change(
    city: City, receiver: HttpReceiver, witness: Witness
) -> None:
    await city.create(E1, temperature=prop(20))
    await city.subscribe(subscription(receiver.url, q="temperature>25"))
    await city.update(E1, temperature=prop(22))
    await city.update(E1, temperature=prop(30))
    await city.update(E1, temperature=prop(24))
    await witness.settle()
    assert data_of(receiver) == [[{**BASE, "temperature": prop(30)}]]


async def test_scope_q_filters_on_the_entity_scope(
    city: City, receiver: HttpReceiver, witness: Witness
) -> None:
    await city.create(E1, scope="/city/north", temperature=prop(20))
    await city.create(E2, scope="/city/south", temperature=prop(20))
    await city.subscribe(subscription(receiver.url, scopeQ="/city/north"))
    await city.update(E2, temperature=prop(21))
    await city.update(E1, temperature=prop(21))
    await witness.settle()
    assert data_of(receiver) == [[{**T21, "scope": "/city/north"}]]


async def test_geo_q_filters_on_the_geoproperty(
    city: City, receiver: HttpReceiver, witness: Witness
) -> None:
    await city.create(E1, location=point(0.5, 0.5), temperature=prop(20))
    await city.create(E2, location=point(5, 5), temperature=prop(20))
    geo_q = {"georel": "within", "geometry": "Polygon", "coordinates": SQUARE}
    await city.subscribe(subscription(receiver.url, geoQ=geo_q))
    await city.update(E2, temperature=prop(21))
    await city.update(E1, temperature=prop(21))
    await witness.settle()
    assert data_of(receiver) == [[{**T21, "location": point(0.5, 0.5)}]]


async def test_geo_q_on_another_geoproperty(
    city: City, receiver: HttpReceiver, witness: Witness
) -> None:
    await city.create(E1, location=point(5, 5), area=point(0.5, 0.5), temperature=prop(20))
    await city.create(E2, location=point(0.5, 0.5), area=point(5, 5), temperature=prop(20))
    geo_q = {"georel": "within", "geometry": "Polygon", "coordinates": SQUARE,
             "geoproperty": "area"}  # fmt: skip
    await city.subscribe(subscription(receiver.url, geoQ=geo_q))
    await city.update(E2, temperature=prop(21))
    await city.update(E1, temperature=prop(21))
    await witness.settle()
    assert [item["id"] for (item,) in data_of(receiver)] == [E1]


async def test_id_pattern_selects_entities_by_id(
    city: City, receiver: HttpReceiver, witness: Witness
) -> None:
    north, south = "urn:ngsi-ld:T:north-1", "urn:ngsi-ld:T:south-1"
    await city.create(north, temperature=prop(20))
    await city.create(south, temperature=prop(20))
    await city.subscribe(
        subscription(receiver.url, entities=[{"type": "T", "idPattern": "^urn:ngsi-ld:T:north-"}])
    )
    await city.update(south, temperature=prop(21))
    await city.update(north, temperature=prop(21))
    await witness.settle()
    assert data_of(receiver) == [[{"id": north, "type": "T", "temperature": prop(21)}]]


async def test_entity_id_selects_one_entity(
    city: City, receiver: HttpReceiver, witness: Witness
) -> None:
    await city.create(E1, temperature=prop(20))
    await city.create(E2, temperature=prop(20))
    await city.subscribe(subscription(receiver.url, entities=[{"type": "T", "id": E2}]))
    await city.update(E1, temperature=prop(21))
    await city.update(E2, temperature=prop(21))
    await witness.settle()
    assert data_of(receiver) == [[{"id": E2, "type": "T", "temperature": prop(21)}]]


async def test_the_entity_type_selects(
    city: City, receiver: HttpReceiver, witness: Witness
) -> None:
    await city.create("urn:ngsi-ld:U:1", entity_type="U", temperature=prop(20))
    await city.create(E1, temperature=prop(20))
    await city.subscribe(subscription(receiver.url))
    await city.update("urn:ngsi-ld:U:1", temperature=prop(21))
    await city.update(E1, temperature=prop(21))
    await witness.settle()
    assert data_of(receiver) == [[T21]]


async def test_a_type_expression_selects_entities_with_either_type(
    city: City, receiver: HttpReceiver, witness: Witness
) -> None:
    await city.create("urn:ngsi-ld:U:1", entity_type="U", temperature=prop(20))
    await city.create("urn:ngsi-ld:V:1", entity_type="V", temperature=prop(20))
    await city.create(E1, temperature=prop(20))
    await city.subscribe(subscription(receiver.url, entities=[{"type": "T|U"}]))
    for entity_id in ("urn:ngsi-ld:V:1", "urn:ngsi-ld:U:1", E1):
        await city.update(entity_id, temperature=prop(21))
    await witness.settle()
    notified = [item["id"] for data in data_of(receiver) for item in data]
    assert notified == ["urn:ngsi-ld:U:1", E1]  # in one notification or two, in order


# -- representation of the data ------------------------------------------------------------

RICH: Json = {"temperature": prop(20, unitCode="CEL"), "owner": rel(PERSON_1)}
RICH_UPDATE: Json = {"temperature": prop(21, unitCode="CEL")}


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        pytest.param(
            "normalized",
            {**BASE, "temperature": prop(21, unitCode="CEL"), "owner": rel(PERSON_1)},
            id="normalized",
        ),
        pytest.param(
            "concise",
            {
                **BASE,
                "temperature": {"value": 21, "unitCode": "CEL"},
                "owner": {"object": PERSON_1},
            },
            id="concise",
        ),
        pytest.param("keyValues", {**BASE, "temperature": 21, "owner": PERSON_1}, id="keyValues"),
    ],
)
async def test_notification_formats(
    city: City, receiver: HttpReceiver, fmt: str, expected: Json
) -> None:
    await city.create(E1, **RICH)
    await city.subscribe(subscription(receiver.url, notification={"format": fmt}))
    await city.update(E1, **RICH_UPDATE)
    (request,) = await receiver.wait_for(1)
    assert request.json()["data"] == [expected]
    # The same representation a GET with that option gives.
    options = {} if fmt == "normalized" else {"options": fmt}
    assert expected == await city.entity(E1, **options)


async def test_attributes_project_the_notified_entity(city: City, receiver: HttpReceiver) -> None:
    await city.create(E1, **RICH, humidity=prop(50))
    await city.subscribe(subscription(receiver.url, notification={"attributes": ["temperature"]}))
    await city.update(E1, **RICH_UPDATE)
    await city.update(E1, humidity=prop(51))  # not projected, but still a change of E1
    await receiver.wait_for(2)
    expected = {**BASE, "temperature": prop(21, unitCode="CEL")}
    assert data_of(receiver) == [[expected], [expected]]


async def test_sys_attrs_add_the_system_timestamps(city: City, receiver: HttpReceiver) -> None:
    await city.create(E1, **RICH)
    await city.subscribe(subscription(receiver.url, notification={"sysAttrs": True}))
    await city.update(E1, **RICH_UPDATE)
    (request,) = await receiver.wait_for(1)
    (item,) = request.json()["data"]
    assert item == {
        **BASE,
        "createdAt": TS,
        "modifiedAt": TS,
        "temperature": prop(21, unitCode="CEL", createdAt=TS, modifiedAt=TS),
        "owner": {**rel(PERSON_1), "createdAt": TS, "modifiedAt": TS},
    }
    assert item == await city.entity(E1, options="sysAttrs")
    assert item["modifiedAt"] > item["createdAt"]


async def test_without_sys_attrs_no_system_timestamps(city: City, receiver: HttpReceiver) -> None:
    await city.create(E1, **RICH)
    await city.subscribe(subscription(receiver.url, notification={"sysAttrs": False}))
    await city.update(E1, **RICH_UPDATE)
    (request,) = await receiver.wait_for(1)
    assert "createdAt" not in request.body.decode()


async def test_show_changes_adds_the_previous_values(city: City, receiver: HttpReceiver) -> None:
    await city.create(E1, **RICH)
    await city.subscribe(subscription(receiver.url, notification={"showChanges": True}))
    await city.update(E1, temperature=prop(21, unitCode="CEL"), owner=rel(PERSON_2))
    (request,) = await receiver.wait_for(1)
    assert request.json()["data"] == [
        {
            **BASE,
            "temperature": prop(21, unitCode="CEL", previousValue=20),
            "owner": {**rel(PERSON_2), "previousObject": PERSON_1},
        }
    ]


async def test_show_changes_leaves_unchanged_attributes_alone(
    city: City, receiver: HttpReceiver
) -> None:
    await city.create(E1, **RICH)
    await city.subscribe(subscription(receiver.url, notification={"showChanges": True}))
    await city.update(E1, temperature=prop(21, unitCode="CEL"))
    (request,) = await receiver.wait_for(1)
    (item,) = request.json()["data"]
    assert item["owner"] == rel(PERSON_1)


async def test_show_changes_in_concise_keeps_the_previous_value(
    city: City, receiver: HttpReceiver
) -> None:
    await city.create(E1, humidity=prop(50))
    await city.subscribe(
        subscription(receiver.url, notification={"showChanges": True, "format": "concise"})
    )
    await city.update(E1, humidity=prop(60))
    (request,) = await receiver.wait_for(1)
    assert request.json()["data"] == [{**BASE, "humidity": {"value": 60, "previousValue": 50}}]


async def test_lang_picks_one_language_of_a_language_property(
    city: City, receiver: HttpReceiver
) -> None:
    names = {"en": "Town hall", "fr": "Hôtel de ville"}
    await city.create(E1, name={"type": "LanguageProperty", "languageMap": names})
    await city.subscribe(subscription(receiver.url, lang="fr"))
    await city.update(
        E1, name={"type": "LanguageProperty", "languageMap": {**names, "de": "Rathaus"}}
    )
    (request,) = await receiver.wait_for(1)
    assert request.json()["data"] == [
        {**BASE, "name": {"type": "Property", "value": "Hôtel de ville", "lang": "fr"}}
    ]


async def test_accept_ld_json_puts_the_context_in_the_body(
    city: City, receiver: HttpReceiver
) -> None:
    await city.create(E1, temperature=prop(20))
    await city.subscribe(
        subscription(receiver.url, notification={"endpoint": {"accept": "application/ld+json"}})
    )
    await city.update(E1, temperature=prop(21))
    (request,) = await receiver.wait_for(1)
    assert request.headers["content-type"] == "application/ld+json"
    assert "link" not in request.headers
    body = request.json()
    assert body["@context"] == CORE_CONTEXT
    assert body["data"] == [T21]


async def test_accept_json_sends_the_context_in_a_link_header(
    city: City, receiver: HttpReceiver
) -> None:
    await city.create(E1, temperature=prop(20))
    await city.subscribe(
        subscription(receiver.url, notification={"endpoint": {"accept": "application/json"}})
    )
    await city.update(E1, temperature=prop(21))
    (request,) = await receiver.wait_for(1)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["link"] == CORE_LINK
    assert "@context" not in request.json()


@pytest.mark.parametrize("accept", ["application/json", "application/ld+json"])
async def test_the_subscription_context_compacts_the_notification(
    city: City, receivers: Callable[[], HttpReceiver], accept: str
) -> None:
    """Terms come out as the subscriber's @context names them, and that context is sent."""
    receiver, server = receivers(), receivers()
    context_url = server.url_for("/context.jsonld")
    server.documents["/context.jsonld"] = {
        "@context": {
            "temp": "https://example.org/vocab/temperature",
            "Sensor": "https://example.org/vocab/Sensor",
        }
    }
    link = {"Link": f'<{context_url}>; rel="{CONTEXT_REL}"; type="application/ld+json"'}
    sensor = "urn:ngsi-ld:Sensor:1"
    await city.create(sensor, entity_type="Sensor", headers=link, temp=prop(20))
    payload = subscription(receiver.url, entities=[{"type": "Sensor"}],
                           notification={"endpoint": {"accept": accept}})  # fmt: skip
    await city.subscribe(payload, headers=link)
    response = await city.client.patch(
        f"{ENTITIES}/{sensor}/attrs", json={"temp": prop(21)}, headers=link
    )
    assert response.status_code == 204, response.text
    (request,) = await receiver.wait_for(1)
    body = request.json()
    assert body["data"] == [{"id": sensor, "type": "Sensor", "temp": prop(21)}]
    if accept == "application/ld+json":
        assert body["@context"] == context_url
    else:
        assert request.headers["link"] == (
            f'<{context_url}>; rel="{CONTEXT_REL}"; type="application/ld+json"'
        )


async def test_an_inline_subscription_context_is_sent_with_the_notification(
    city: City, receiver: HttpReceiver
) -> None:
    inline = {"temp": "https://example.org/vocab/temperature"}
    ld = {"Content-Type": "application/ld+json"}
    sensor = {"id": "urn:ngsi-ld:T:9", "type": "T", "temp": prop(20), "@context": inline}
    assert (await city.client.post(ENTITIES, json=sensor, headers=ld)).status_code == 201
    payload = subscription(
        receiver.url, notification={"endpoint": {"accept": "application/ld+json"}}
    )
    await city.subscribe({**payload, "@context": inline}, headers=ld)
    patch = {"temp": prop(21), "@context": inline}
    response = await city.client.patch(f"{ENTITIES}/urn:ngsi-ld:T:9/attrs", json=patch, headers=ld)
    assert response.status_code == 204, response.text
    (request,) = await receiver.wait_for(1)
    body = request.json()
    assert body["data"] == [{"id": "urn:ngsi-ld:T:9", "type": "T", "temp": prop(21)}]
    context = body["@context"]
    items = context if isinstance(context, list) else [context]
    assert inline in items or any(isinstance(i, dict) and i.get("temp") == inline["temp"]
                                  for i in items)  # fmt: skip


async def test_receiver_info_arrives_as_http_headers(city: City, receiver: HttpReceiver) -> None:
    await city.create(E1, temperature=prop(20))
    info = [{"key": "X-Api-Key", "value": "s3cret"}, {"key": "X-Correlation", "value": "abc-1"}]
    await city.subscribe(
        subscription(receiver.url, notification={"endpoint": {"receiverInfo": info}})
    )
    await city.update(E1, temperature=prop(21))
    (request,) = await receiver.wait_for(1)
    assert request.headers["x-api-key"] == "s3cret"
    assert request.headers["x-correlation"] == "abc-1"
    assert request.json()["data"] == [T21]


# -- tenants ---------------------------------------------------------------------------------


async def test_a_tenant_subscription_sends_the_tenant_header(
    city: City, receiver: HttpReceiver
) -> None:
    await city.create(E1, tenant="city-a", temperature=prop(20))
    await city.subscribe(subscription(receiver.url), tenant="city-a")
    await city.update(E1, tenant="city-a", temperature=prop(21))
    (request,) = await receiver.wait_for(1)
    assert request.headers["ngsild-tenant"] == "city-a"
    assert request.json()["data"] == [T21]


async def test_tenants_are_isolated(
    city: City, receivers: Callable[[], HttpReceiver], witness: Witness
) -> None:
    a, b = receivers(), receivers()
    for tenant in ("city-a", "city-b", ""):
        await city.create(E1, tenant=tenant, temperature=prop(20))
    await city.subscribe(subscription(a.url), tenant="city-a")
    await city.subscribe(subscription(b.url), tenant="city-b")
    await city.update(E1, tenant="city-b", temperature=prop(2))
    await city.update(E1, tenant="city-a", temperature=prop(1))
    await city.update(E1, temperature=prop(0))  # the default tenant: nobody's
    await witness.settle()
    assert data_of(a) == [[{**BASE, "temperature": prop(1)}]]
    assert data_of(b) == [[{**BASE, "temperature": prop(2)}]]
    assert [r.headers["ngsild-tenant"] for r in a.accepted] == ["city-a"]
    assert [r.headers["ngsild-tenant"] for r in b.accepted] == ["city-b"]


# -- time: periodic, throttling, expiry, pausing ----------------------------------------------


async def test_time_interval_sends_current_entities_periodically(
    city: City, receiver: HttpReceiver
) -> None:
    await city.create(E1, temperature=prop(20))
    await city.create(E2, temperature=prop(30))
    await city.subscribe(subscription(receiver.url, timeInterval=1))
    started = time.monotonic()
    first, second = (await receiver.wait_for(2, timeout=6))[:2]
    assert second.received_at - started < 4.5
    assert second.received_at - first.received_at > 0.5
    for request in (first, second):
        body = request.json()
        assert body["type"] == "Notification"
        assert sorted(body["data"], key=lambda e: e["id"]) == [
            {**BASE, "temperature": prop(20)},
            {"id": E2, "type": "T", "temperature": prop(30)},
        ]
    await city.update(E1, temperature=prop(25))
    await wait_until(
        lambda: any(
            {"id": E1, "type": "T", "temperature": prop(25)} in data for data in data_of(receiver)
        ),
        6,
        lambda: f"no periodic notification carried the new value: {data_of(receiver)}",
    )


async def test_throttling_coalesces_changes_within_the_window(
    city: City, receiver: HttpReceiver, witness: Witness
) -> None:
    window = 1.0
    await city.create(E1, temperature=prop(0))
    await city.subscribe(subscription(receiver.url, throttling=window))
    await city.update(E1, temperature=prop(1))
    (first,) = await receiver.wait_for(1)
    for value in (2, 3, 4, 5):
        await city.update(E1, temperature=prop(value))
    second = (await receiver.wait_for(2, timeout=10))[1]
    assert second.received_at - first.received_at >= window - 0.3
    await city.update(E1, temperature=prop(6))
    third = (await receiver.wait_for(3, timeout=10))[2]
    assert third.received_at - second.received_at >= window - 0.3
    await witness.settle()
    assert [[e["temperature"]["value"] for e in data] for data in data_of(receiver)] == [
        [1],
        [5],
        [6],
    ]


async def test_an_expired_subscription_notifies_nothing(
    city: City, receiver: HttpReceiver, witness: Witness
) -> None:
    await city.create(E1, temperature=prop(20))
    sub_id = await city.subscribe(subscription(receiver.url, expiresAt=in_seconds(1.5)))
    assert (await city.subscription(sub_id))["status"] == "active"
    await city.update(E1, temperature=prop(21))
    await receiver.wait_for(1)
    expired = await city.wait_subscription(sub_id, lambda s: s["status"] == "expired")
    assert expired["isActive"] is True
    await city.update(E1, temperature=prop(22))
    await witness.settle()
    assert data_of(receiver) == [[T21]]


async def test_a_paused_subscription_notifies_nothing_until_resumed(
    city: City, receiver: HttpReceiver, witness: Witness
) -> None:
    await city.create(E1, temperature=prop(20))
    sub_id = await city.subscribe(subscription(receiver.url))
    url = f"{SUBSCRIPTIONS}/{sub_id}"
    assert (await city.client.patch(url, json={"isActive": False})).status_code == 204
    paused = await city.subscription(sub_id)
    assert (paused["status"], paused["isActive"]) == ("paused", False)
    await city.update(E1, temperature=prop(21))
    await witness.settle()
    assert receiver.requests == []
    assert (await city.client.patch(url, json={"isActive": True})).status_code == 204
    assert (await city.subscription(sub_id))["status"] == "active"
    await city.update(E1, temperature=prop(22))
    await witness.settle()
    assert data_of(receiver) == [[{**BASE, "temperature": prop(22)}]]


async def test_a_subscription_created_paused_notifies_nothing(
    city: City, receiver: HttpReceiver, witness: Witness
) -> None:
    await city.create(E1, temperature=prop(20))
    sub_id = await city.subscribe(subscription(receiver.url, isActive=False))
    assert (await city.subscription(sub_id))["status"] == "paused"
    await city.update(E1, temperature=prop(21))
    await witness.settle()
    assert receiver.requests == []


async def test_a_deleted_subscription_notifies_nothing(
    city: City, receiver: HttpReceiver, witness: Witness
) -> None:
    await city.create(E1, temperature=prop(20))
    sub_id = await city.subscribe(subscription(receiver.url))
    await city.update(E1, temperature=prop(21))
    await receiver.wait_for(1)
    assert (await city.client.delete(f"{SUBSCRIPTIONS}/{sub_id}")).status_code == 204
    await city.update(E1, temperature=prop(22))
    await witness.settle()
    assert data_of(receiver) == [[T21]]


async def test_a_patched_q_applies_to_the_next_changes(
    city: City, receiver: HttpReceiver, witness: Witness
) -> None:
    await city.create(E1, temperature=prop(20))
    sub_id = await city.subscribe(subscription(receiver.url, q="temperature>100"))
    await city.update(E1, temperature=prop(21))
    await witness.settle()  # matched against the subscription as it was
    patch = await city.client.patch(f"{SUBSCRIPTIONS}/{sub_id}", json={"q": "temperature<100"})
    assert patch.status_code == 204
    await city.update(E1, temperature=prop(22))
    await witness.settle()
    assert data_of(receiver) == [[{**BASE, "temperature": prop(22)}]]


# -- delivery robustness -----------------------------------------------------------------------


async def test_an_outage_of_the_receiver_loses_nothing(city: City, receiver: HttpReceiver) -> None:
    await city.create(E1, temperature=prop(0))
    receiver.stop()
    sub_id = await city.subscribe(subscription(receiver.url))
    for value in range(1, 21):
        await city.update(E1, temperature=prop(value))

    failing = await city.wait_subscription(sub_id, lambda s: s["notification"]["timesFailed"] > 0)
    assert failing["notification"]["status"] == "failed"
    assert failing["notification"]["lastFailure"] == TS
    assert failing["notification"]["timesSent"] == 0

    receiver.start()  # the same port
    requests = await receiver.wait_for(20, timeout=20)
    values = [r.json()["data"][0]["temperature"]["value"] for r in requests]
    assert values == list(range(1, 21))

    final = await city.wait_subscription(sub_id, lambda s: s["notification"]["timesSent"] >= 20)
    status = final["notification"]
    assert status["timesSent"] == 20 == len(receiver.accepted)
    assert status["status"] == "ok"
    assert status["timesFailed"] >= 1
    assert status["lastSuccess"] == TS and status["lastFailure"] == TS
    assert status["lastSuccess"] > status["lastFailure"]
    assert status["lastNotification"] == status["lastSuccess"]
    assert final["status"] == "active"


async def test_an_error_status_is_retried_until_accepted(
    city: City, receiver: HttpReceiver
) -> None:
    await city.create(E1, temperature=prop(20))
    receiver.status = 500
    sub_id = await city.subscribe(subscription(receiver.url))
    await city.update(E1, temperature=prop(21))
    await receiver.wait_for_attempts(2)
    assert receiver.accepted == []
    receiver.status = 200
    (request,) = await receiver.wait_for(1)
    assert request.json()["data"] == [T21]
    final = await city.wait_subscription(sub_id, lambda s: s["notification"]["timesSent"] == 1)
    assert final["notification"]["timesFailed"] >= 2
    assert final["notification"]["status"] == "ok"


async def test_a_slow_endpoint_does_not_delay_another(
    city: City, receivers: Callable[[], HttpReceiver]
) -> None:
    slow, fast = receivers(), receivers()
    slow.delay = 2.0
    await city.create(E1, temperature=prop(0))
    await city.subscribe(subscription(slow.url))
    await city.subscribe(subscription(fast.url))
    for value in (1, 2, 3):
        await city.update(E1, temperature=prop(value))
        written = time.monotonic()
        requests = await fast.wait_for(value, timeout=5)
        assert requests[-1].received_at - written < 0.5, f"notification {value} was late"
        assert requests[-1].json()["data"][0]["temperature"]["value"] == value
    assert len(slow.requests) == 1  # still busy with the first one


async def test_a_full_queue_counts_the_dropped_notifications(
    city_factory: CityFactory, receiver: HttpReceiver
) -> None:
    async with city_factory(notification_queue_size=2) as city:
        await city.create(E1, temperature=prop(0))
        receiver.stop()
        sub_id = await city.subscribe(subscription(receiver.url))
        await city.update(E1, temperature=prop(1))
        # The first notification is being retried (out of the queue) ...
        await city.wait_subscription(sub_id, lambda s: s["notification"]["timesFailed"] > 0)
        for value in range(2, 8):  # ... 2 and 3 fill the queue, 4 to 7 do not fit
            await city.update(E1, temperature=prop(value))
        full = await city.wait_subscription(
            sub_id, lambda s: s["notification"].get("timesDropped", 0) >= 4
        )
        assert full["notification"]["timesDropped"] == 4
        receiver.start()
        await receiver.wait_for(3, timeout=20)
        final = await city.wait_subscription(sub_id, lambda s: s["notification"]["timesSent"] == 3)
        assert final["notification"]["timesDropped"] == 4
        assert len(receiver.accepted) == 3


async def test_a_write_never_waits_for_a_hanging_receiver(
    city: City, receiver: HttpReceiver
) -> None:
    receiver.delay = 5.0
    await city.create(E1, temperature=prop(0))
    await city.subscribe(subscription(receiver.url))
    for value in (1, 2):
        started = time.monotonic()
        await city.update(E1, temperature=prop(value))
        assert time.monotonic() - started < 1.0
    await receiver.wait_for_attempts(1)  # the notification is out, the receiver sits on it
    started = time.monotonic()
    await city.update(E1, temperature=prop(3))
    assert time.monotonic() - started < 1.0
    assert (await city.entity(E1))["temperature"] == prop(3)


# -- MQTT --------------------------------------------------------------------------------------


async def test_mqtt_endpoint_publishes_metadata_and_body(city: City) -> None:
    async with MqttCollector() as mqtt:
        await city.create(E1, temperature=prop(20))
        info = [{"key": "X-Api-Key", "value": "s3cret"}]
        sub_id = await city.subscribe(
            subscription(mqtt.url, notification={"endpoint": {"receiverInfo": info}})
        )
        await city.update(E1, temperature=prop(21))
        (message,) = await mqtt.wait_for(1)
    assert message.topic == mqtt.topic
    assert message.qos == 0
    payload = message.json()
    assert set(payload) == {"metadata", "body"}
    assert payload["metadata"] == {
        "Content-Type": "application/json",
        "Link": CORE_LINK,
        "X-Api-Key": "s3cret",
    }
    body = payload["body"]
    assert body["id"].startswith("urn:ngsi-ld:Notification:")
    assert body["type"] == "Notification"
    assert body["subscriptionId"] == sub_id
    assert body["notifiedAt"] == TS
    assert body["data"] == [T21]
    final = await city.wait_subscription(sub_id, lambda s: s["notification"]["timesSent"] == 1)
    assert final["notification"]["status"] == "ok"


async def test_mqtt_notifier_info_sets_the_qos(city: City) -> None:
    async with MqttCollector() as mqtt:
        await city.create(E1, temperature=prop(20))
        info = [{"key": "MQTT-QoS", "value": "1"}]
        await city.subscribe(
            subscription(
                mqtt.url,
                notification={"endpoint": {"notifierInfo": info, "accept": "application/ld+json"}},
            )
        )
        for value in (21, 22):
            await city.update(E1, temperature=prop(value))
        messages = await mqtt.wait_for(2)
    assert [m.qos for m in messages] == [1, 1]
    payloads = [m.json() for m in messages]
    assert [p["metadata"] for p in payloads] == [{"Content-Type": "application/ld+json"}] * 2
    assert [p["body"]["@context"] for p in payloads] == [CORE_CONTEXT] * 2
    assert [p["body"]["data"][0]["temperature"]["value"] for p in payloads] == [21, 22]


# -- in-process callbacks ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["function", "coroutine"])
async def test_an_in_process_callback_receives_notifications_until_cancelled(
    city: City, witness: Witness, kind: str
) -> None:
    received: list[Json] = []
    committed: list[Any] = []
    temperature = core_term_map().expand("temperature")

    def function(notification: Json) -> None:
        received.append(notification)

    async def coroutine(notification: Json) -> None:
        # The write is committed before anyone hears of it.
        doc = await city.broker.retrieve_entity("", E1)
        committed.append(doc["attrs"][temperature][0]["value"])
        received.append(notification)

    await city.create(E1, temperature=prop(20))
    cancel = city.broker.subscriptions.subscribe(
        "",
        {"entities": [{"type": "T"}]},
        function if kind == "function" else coroutine,
        core_term_map(),
    )
    await city.update(E1, temperature=prop(21))
    await wait_until(lambda: len(received) >= 1, 10, lambda: "the callback was never called")
    (notification,) = received
    assert notification["id"].startswith("urn:ngsi-ld:Notification:")
    assert notification["type"] == "Notification"
    assert notification["notifiedAt"] == TS
    assert notification["data"] == [T21]
    if kind == "coroutine":
        assert committed == [21]

    # An in-process subscription is not an API resource.
    listed = (await city.client.get(SUBSCRIPTIONS)).json()
    assert notification["subscriptionId"] not in [s["id"] for s in listed]
    lookup = await city.client.get(f"{SUBSCRIPTIONS}/{notification['subscriptionId']}")
    assert lookup.status_code == 404

    cancel()
    await city.update(E1, temperature=prop(22))
    await witness.settle()
    assert len(received) == 1


async def test_an_in_process_callback_sees_other_tenants_not(city: City, witness: Witness) -> None:
    received: list[Json] = []
    await city.create(E1, temperature=prop(0))
    await city.create(E1, tenant="city-a", temperature=prop(0))
    cancel = city.broker.subscriptions.subscribe(
        "city-a", {"entities": [{"type": "T"}]}, received.append, core_term_map()
    )
    try:
        await city.update(E1, temperature=prop(1))
        await city.update(E1, tenant="city-a", temperature=prop(2))
        await witness.settle()
        await wait_until(lambda: len(received) >= 1, 10, lambda: "no notification")
        assert [n["data"] for n in received] == [[{**BASE, "temperature": prop(2)}]]
    finally:
        cancel()


# -- shutdown ----------------------------------------------------------------------------------


async def test_stopping_right_after_a_write_does_not_hang(
    settings_factory: Callable[..., Settings], receiver: HttpReceiver
) -> None:
    """Regression: the dispatcher used ``asyncio.wait_for``, which on Python 3.11 swallows a
    cancellation arriving as the wake-up event fires, so shutting down just after a write
    could hang for ever (3 or 4 times out of 5 in this scenario)."""
    for attempt in range(5):
        app = build_app(settings_factory(allow_private_notification_urls=True))
        broker: Broker = app.state.broker
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        elapsed = float("inf")
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                city = City(app, client)
                entity_id = f"urn:ngsi-ld:T:{attempt}"
                await city.create(entity_id, temperature=prop(0))
                # A subscription that matches nothing: no delivery is in flight at the stop.
                await city.subscribe(subscription(receiver.url, entities=[{"type": "None"}]))
                await city.update(entity_id, temperature=prop(1))
            started = time.monotonic()
            # stop() suppresses CancelledError while it awaits its tasks, so the timeout
            # may not raise: the elapsed time tells.
            async with asyncio.timeout(3):
                await lifespan.__aexit__(None, None, None)
            elapsed = time.monotonic() - started
        finally:
            if elapsed > 2.9:  # stop what the aborted shutdown left running
                await broker.notifier.stop()
                with contextlib.suppress(Exception):
                    await broker.store.close()
        assert elapsed < 2.9, f"shutdown {attempt} did not finish"


async def test_stopping_while_a_delivery_ignores_cancellation_does_not_hang(
    settings_factory: Callable[..., Settings],
) -> None:
    app = build_app(settings_factory())
    broker: Broker = app.state.broker
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    entered = asyncio.Event()

    async def stubborn(notification: Json) -> None:
        entered.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(30)  # the cancellation is lost, as in the HTTP stack

    elapsed = float("inf")
    try:
        await broker.create_entity("", {"id": E1, "type": "T", **RICH}, core_term_map())
        broker.subscriptions.subscribe("", {"entities": [{"type": "T"}]}, stubborn, core_term_map())
        await broker.merge_entity("", E1, {"temperature": prop(21)}, core_term_map())
        async with asyncio.timeout(10):
            await entered.wait()
        started = time.monotonic()
        async with asyncio.timeout(2):
            await lifespan.__aexit__(None, None, None)
        elapsed = time.monotonic() - started
    finally:
        if elapsed > 1.9:  # stop what the aborted shutdown left running
            await broker.notifier.stop()
            with contextlib.suppress(Exception):
                await broker.store.close()
    assert elapsed < 1.9, "the shutdown did not finish"


async def test_a_temporal_delete_of_an_absent_entity_does_not_stall_notifications(
    city: City, receiver: HttpReceiver
) -> None:
    # It wrote a change with neither a before nor an after; the dispatcher failed on it and
    # retried it for ever, so no later change was ever notified (found by schemathesis).
    await city.subscribe(subscription(receiver.url))
    absent = await city.client.delete("/ngsi-ld/v1/temporal/entities/urn:ngsi-ld:T:absent")
    assert absent.status_code == 404, absent.text
    await city.create(E1, temperature=prop(20))
    (request,) = await receiver.wait_for(1)
    assert [e["id"] for e in request.json()["data"]] == [E1]


async def test_what_waits_for_a_slow_receiver_goes_in_one_notification_in_order(
    city: City, receiver: HttpReceiver
) -> None:
    """One POST per change would leave a receiver slower than the updates ever further
    behind; the waiting changes of distinct entities are sent together, in order, and a
    second change of an entity already in the batch starts the next notification."""
    ids = [f"urn:ngsi-ld:T:batch{i}" for i in range(6)]
    for entity_id in ids:
        await city.create(entity_id, temperature=prop(0))
    await city.subscribe(subscription(receiver.url))
    receiver.delay = 0.5
    await city.update(ids[0], temperature=prop(1))
    await receiver.wait_for_attempts(1)  # the receiver sits on the first notification
    for entity_id in ids[1:]:
        await city.update(entity_id, temperature=prop(1))
    await city.update(ids[1], temperature=prop(2))
    await receiver.wait_for(3, timeout=10)
    batches = [[(e["id"], e["temperature"]["value"]) for e in data] for data in data_of(receiver)]
    assert batches == [
        [(ids[0], 1)],
        [(entity_id, 1) for entity_id in ids[1:]],
        [(ids[1], 2)],
    ]
