"""The subscription resources over HTTP (clause 5.8 / 6.10-6.11 of CIM 009 v1.8).

Create (201 + Location, generated ids, 409 for a taken id), list (creation order, limit,
offset, count), retrieve (404 for an unknown id), update (204, members merged, pause and
resume), delete (204, then 404), tenants, persistence across a restart, and the
validation of every part of a Subscription (400 BadRequestData). Delivery itself is
tested in ``tests/broker/test_notifier.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

SUBSCRIPTIONS = "/ngsi-ld/v1/subscriptions"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
# Never contacted: these tests write no entity, so nothing is ever notified.
ENDPOINT = "http://127.0.0.1:9/notify"
PUBLIC_ENDPOINT = "http://8.8.8.8/notify"  # a public address literal (no DNS needed)
CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
CORE_LINK = (
    f'<{CORE_CONTEXT}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
)

Json = dict[str, Any]
ClientFactory = Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]


class Timestamp:
    """Equal to any NGSI-LD DateTime string (for exact comparisons of whole bodies)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and TIMESTAMP_RE.fullmatch(other) is not None

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "<any timestamp>"


TS = Timestamp()


def subscription(**members: Any) -> Json:
    """A valid Subscription on entities of type T (``members`` override; None removes)."""
    payload: Json = {
        "type": "Subscription",
        "entities": [{"type": "T"}],
        "notification": {"endpoint": {"uri": ENDPOINT}},
        **members,
    }
    return {k: v for k, v in payload.items() if v is not None}


def sub_url(sub_id: str) -> str:
    return f"{SUBSCRIPTIONS}/{sub_id}"


def in_seconds(seconds: float) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def assert_problem(response: httpx.Response, status: int, error_type: str) -> Json:
    """The response is a ProblemDetails with that status and ETSI NGSI-LD error type."""
    assert response.status_code == status, response.text
    body: Json = response.json()
    assert body["type"] == ERRORS + error_type
    assert isinstance(body["title"], str) and body["title"]
    return body


async def create(client: httpx.AsyncClient, payload: Json, **kwargs: Any) -> str:
    """POST /subscriptions, 201 expected; the id the Location names."""
    response = await client.post(SUBSCRIPTIONS, json=payload, **kwargs)
    assert response.status_code == 201, response.text
    location = response.headers["Location"]
    assert location.startswith(SUBSCRIPTIONS + "/")
    return location[len(SUBSCRIPTIONS) + 1 :]


async def retrieve(client: httpx.AsyncClient, sub_id: str, **kwargs: Any) -> Json:
    response = await client.get(sub_url(sub_id), **kwargs)
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


@pytest.fixture
async def api(client_factory: ClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    """A client on a broker that accepts notification endpoints on loopback."""
    async with client_factory(allow_private_notification_urls=True) as client:
        yield client


# -- create ----------------------------------------------------------------------------------


async def test_create_answers_201_with_the_location_of_a_generated_id(
    api: httpx.AsyncClient,
) -> None:
    response = await api.post(SUBSCRIPTIONS, json=subscription())
    assert response.status_code == 201, response.text
    assert response.content == b""
    match = re.fullmatch(
        re.escape(SUBSCRIPTIONS) + r"/(urn:ngsi-ld:Subscription:\S+)", response.headers["Location"]
    )
    assert match is not None, response.headers["Location"]
    other = await create(api, subscription())
    assert other != match.group(1)


async def test_a_created_subscription_reads_back_with_its_status(api: httpx.AsyncClient) -> None:
    sub_id = "urn:ngsi-ld:Subscription:read-back"
    payload = subscription(
        id=sub_id,
        description="temperatures of T",
        watchedAttributes=["temperature"],
        q="temperature>20",
        notification={"endpoint": {"uri": ENDPOINT, "accept": "application/json"},
                      "format": "keyValues", "attributes": ["temperature"]},
    )  # fmt: skip
    assert await create(api, payload) == sub_id
    response = await api.get(sub_url(sub_id))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "id": sub_id,
        "type": "Subscription",
        "description": "temperatures of T",
        "entities": [{"type": "T"}],
        "watchedAttributes": ["temperature"],
        "q": "temperature>20",
        "notification": {
            "endpoint": {"uri": ENDPOINT, "accept": "application/json"},
            "format": "keyValues",
            "attributes": ["temperature"],
            "timesSent": 0,
            "timesFailed": 0,
        },
        "status": "active",
        "isActive": True,
        "createdAt": TS,
        "modifiedAt": TS,
    }


async def test_a_taken_id_is_409_already_exists(api: httpx.AsyncClient) -> None:
    sub_id = "urn:ngsi-ld:Subscription:twice"
    await create(api, subscription(id=sub_id, description="first"))
    response = await api.post(SUBSCRIPTIONS, json=subscription(id=sub_id, description="second"))
    assert_problem(response, 409, "AlreadyExists")
    assert (await retrieve(api, sub_id))["description"] == "first"


async def test_the_same_id_in_another_tenant_is_another_subscription(
    api: httpx.AsyncClient,
) -> None:
    sub_id = "urn:ngsi-ld:Subscription:shared"
    await create(api, subscription(id=sub_id))
    await create(api, subscription(id=sub_id), headers={"NGSILD-Tenant": "city-a"})


async def test_read_only_members_in_the_payload_are_ignored(api: httpx.AsyncClient) -> None:
    sub_id = await create(api, subscription(status="expired", createdAt="2000-01-01T00:00:00Z"))
    body = await retrieve(api, sub_id)
    assert body["status"] == "active"
    assert body["createdAt"] != "2000-01-01T00:00:00Z"


# -- validation ------------------------------------------------------------------------------

BAD = "BadRequestData"

INVALID = [
    pytest.param(subscription(type=None), id="missing-type"),
    pytest.param(subscription(type="Registration"), id="wrong-type"),
    pytest.param(subscription(id="not a uri"), id="id-not-a-uri"),
    pytest.param(subscription(entities=None), id="no-entities-no-watchedAttributes"),
    pytest.param(subscription(entities=[]), id="empty-entities"),
    pytest.param(subscription(entities=[{"id": "urn:ngsi-ld:T:1"}]), id="entity-without-type"),
    pytest.param(subscription(entities=[{"type": "T", "idPattern": "("}]), id="bad-idPattern"),
    pytest.param(subscription(watchedAttributes=[]), id="empty-watchedAttributes"),
    pytest.param(subscription(notificationTrigger=["entityExploded"]), id="bad-trigger"),
    pytest.param(subscription(notificationTrigger="entityCreated"), id="trigger-not-a-list"),
    pytest.param(subscription(q="temperature>>"), id="bad-q"),
    pytest.param(subscription(q="(temperature==1"), id="unbalanced-q"),
    pytest.param(subscription(scopeQ="no-slash"), id="bad-scopeQ"),
    pytest.param(
        subscription(
            geoQ={"georel": "near;maxDistance==10", "geometry": "Blob", "coordinates": [1, 2]}
        ),
        id="bad-geoQ-geometry",
    ),  # fmt: skip
    pytest.param(
        subscription(geoQ={"georel": "within", "geometry": "Polygon", "coordinates": [1, 2]}),
        id="bad-geoQ-coordinates",
    ),
    pytest.param(subscription(geoQ={"georel": "within"}), id="incomplete-geoQ"),
    pytest.param(subscription(notification=None), id="no-notification"),
    pytest.param(subscription(notification={"format": "normalized"}), id="no-endpoint"),
    pytest.param(
        subscription(notification={"endpoint": {"uri": "ftp://127.0.0.1/notify"}}),
        id="ftp-endpoint",
    ),
    pytest.param(
        subscription(notification={"endpoint": {"uri": "not a url"}}), id="endpoint-not-a-url"
    ),
    pytest.param(
        subscription(notification={"endpoint": {"uri": ENDPOINT, "accept": "text/plain"}}),
        id="bad-accept",
    ),
    pytest.param(
        subscription(notification={"endpoint": {"uri": ENDPOINT}, "format": "verbose"}),
        id="bad-format",
    ),
    pytest.param(
        subscription(notification={"endpoint": {"uri": ENDPOINT}, "attributes": "temperature"}),
        id="attributes-not-a-list",
    ),
    pytest.param(
        subscription(notification={"endpoint": {"uri": ENDPOINT}, "sysAttrs": "yes"}),
        id="sysAttrs-not-a-boolean",
    ),
    pytest.param(
        subscription(
            notification={"endpoint": {"uri": ENDPOINT, "receiverInfo": [{"key": "X-A"}]}}
        ),
        id="receiverInfo-without-value",
    ),  # fmt: skip
    pytest.param(
        subscription(
            notification={
                "endpoint": {
                    "uri": ENDPOINT,
                    "receiverInfo": [{"key": "X-A", "value": "a\r\nX-Injected: 1"}],
                }
            }
        ),
        id="receiverInfo-header-injection",
    ),  # fmt: skip
    pytest.param(subscription(expiresAt="2000-01-01T00:00:00Z"), id="expiresAt-in-the-past"),
    pytest.param(subscription(expiresAt="tomorrow"), id="expiresAt-not-a-datetime"),
    pytest.param(
        subscription(timeInterval=10, watchedAttributes=["temperature"]),
        id="timeInterval-with-watchedAttributes",
    ),
    pytest.param(subscription(timeInterval=10, throttling=5), id="timeInterval-with-throttling"),
    pytest.param(subscription(timeInterval=0), id="timeInterval-zero"),
    pytest.param(subscription(throttling=-1), id="negative-throttling"),
    pytest.param(subscription(isActive="no"), id="isActive-not-a-boolean"),
    pytest.param(subscription(lang=["fr"]), id="lang-not-a-string"),
]


@pytest.mark.parametrize("payload", INVALID)
async def test_an_invalid_subscription_is_400_bad_request_data(
    api: httpx.AsyncClient, payload: Json
) -> None:
    response = await api.post(SUBSCRIPTIONS, json=payload)
    assert_problem(response, 400, BAD)
    listed = await api.get(SUBSCRIPTIONS, params={"count": "true"})
    assert listed.json() == []


async def test_a_subscription_must_be_an_object(api: httpx.AsyncClient) -> None:
    response = await api.post(SUBSCRIPTIONS, json=[subscription()])
    assert_problem(response, 400, BAD)


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:8080/notify",
        "http://localhost/notify",
        "https://10.1.2.3/notify",
        "http://192.168.0.10/notify",
        "http://[::1]/notify",
        "mqtt://127.0.0.1:1883/topic",
    ],
)
async def test_private_endpoints_are_refused_by_default(
    client_factory: ClientFactory, uri: str
) -> None:
    async with client_factory(allow_private_notification_urls=False) as client:
        payload = subscription(notification={"endpoint": {"uri": uri}})
        body = assert_problem(await client.post(SUBSCRIPTIONS, json=payload), 400, BAD)
        assert "non-public" in body["detail"]
        assert (await client.get(SUBSCRIPTIONS)).json() == []


async def test_a_public_endpoint_is_accepted_by_default(client_factory: ClientFactory) -> None:
    async with client_factory(allow_private_notification_urls=False) as client:
        payload = subscription(notification={"endpoint": {"uri": PUBLIC_ENDPOINT}})
        await create(client, payload)


# -- list ------------------------------------------------------------------------------------


async def test_list_in_creation_order_with_limit_offset_and_count(
    api: httpx.AsyncClient,
) -> None:
    ids = [f"urn:ngsi-ld:Subscription:{name}" for name in ("c", "a", "d", "b")]
    for sub_id in ids:
        await create(api, subscription(id=sub_id))
    # An update does not move a subscription in the list.
    assert (await api.patch(sub_url(ids[0]), json={"description": "x"})).status_code == 204

    response = await api.get(SUBSCRIPTIONS)
    assert response.status_code == 200
    assert "NGSILD-Results-Count" not in response.headers
    assert [s["id"] for s in response.json()] == ids
    assert all(s["type"] == "Subscription" for s in response.json())

    page = await api.get(SUBSCRIPTIONS, params={"limit": "2"})
    assert [s["id"] for s in page.json()] == ids[:2]
    page = await api.get(SUBSCRIPTIONS, params={"limit": "2", "offset": "1"})
    assert [s["id"] for s in page.json()] == ids[1:3]
    page = await api.get(SUBSCRIPTIONS, params={"offset": "3"})
    assert [s["id"] for s in page.json()] == ids[3:]
    page = await api.get(SUBSCRIPTIONS, params={"offset": "10"})
    assert page.json() == []

    counted = await api.get(SUBSCRIPTIONS, params={"count": "true", "limit": "1"})
    assert counted.headers["NGSILD-Results-Count"] == "4"
    assert [s["id"] for s in counted.json()] == ids[:1]


async def test_list_items_equal_the_retrieved_subscriptions(api: httpx.AsyncClient) -> None:
    sub_id = await create(api, subscription(description="listed"))
    (listed,) = (await api.get(SUBSCRIPTIONS)).json()
    assert listed == await retrieve(api, sub_id)


@pytest.mark.parametrize(
    "params", [{"limit": "-1"}, {"offset": "-1"}, {"limit": "many"}, {"count": "yes"}]
)
async def test_list_rejects_bad_paging(api: httpx.AsyncClient, params: dict[str, str]) -> None:
    await create(api, subscription())
    assert_problem(await api.get(SUBSCRIPTIONS, params=params), 400, BAD)


async def test_list_beyond_the_maximum_page_size_is_too_many_results(
    client_factory: ClientFactory,
) -> None:
    async with client_factory(
        allow_private_notification_urls=True, default_page_size=5, max_page_size=5
    ) as client:
        await create(client, subscription())
        response = await client.get(SUBSCRIPTIONS, params={"limit": "6"})
        assert_problem(response, 403, "TooManyResults")


# -- retrieve --------------------------------------------------------------------------------


async def test_an_unknown_subscription_is_404(api: httpx.AsyncClient) -> None:
    response = await api.get(sub_url("urn:ngsi-ld:Subscription:nowhere"))
    assert_problem(response, 404, "ResourceNotFound")


async def test_an_expired_subscription_shows_status_expired(api: httpx.AsyncClient) -> None:
    sub_id = await create(api, subscription(expiresAt=in_seconds(0.5)))
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    body = await retrieve(api, sub_id)
    while body["status"] != "expired" and datetime.now(UTC) < deadline:
        await asyncio.sleep(0.05)
        body = await retrieve(api, sub_id)
    assert body["status"] == "expired"
    assert body["isActive"] is True


async def test_retrieve_in_json_ld_carries_the_context(api: httpx.AsyncClient) -> None:
    sub_id = await create(api, subscription())
    as_json = await api.get(sub_url(sub_id))
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.headers["link"] == CORE_LINK
    assert "@context" not in as_json.json()
    as_ld = await api.get(sub_url(sub_id), headers={"Accept": "application/ld+json"})
    assert as_ld.headers["content-type"] == "application/ld+json"
    assert "link" not in as_ld.headers
    body = as_ld.json()
    assert body.pop("@context") == CORE_CONTEXT
    assert body == as_json.json()


# -- update ----------------------------------------------------------------------------------


async def test_patch_merges_members(api: httpx.AsyncClient) -> None:
    sub_id = await create(
        api,
        subscription(description="before", q="temperature>20",
                     notification={"endpoint": {"uri": ENDPOINT}, "attributes": ["temperature"]}),
    )  # fmt: skip
    before = await retrieve(api, sub_id)
    response = await api.patch(
        sub_url(sub_id),
        json={"description": "after", "throttling": 5, "notification": {"format": "keyValues"}},
    )
    assert response.status_code == 204, response.text
    assert response.content == b""
    after = await retrieve(api, sub_id)
    assert after["description"] == "after"
    assert after["throttling"] == 5
    assert after["q"] == "temperature>20"
    assert after["entities"] == [{"type": "T"}]
    assert after["notification"] == {
        "endpoint": {"uri": ENDPOINT},
        "attributes": ["temperature"],
        "format": "keyValues",
        "timesSent": 0,
        "timesFailed": 0,
    }
    assert after["modifiedAt"] >= before["modifiedAt"]


async def test_patch_with_null_removes_a_member(api: httpx.AsyncClient) -> None:
    sub_id = await create(api, subscription(description="gone soon", q="temperature>20"))
    response = await api.patch(
        sub_url(sub_id),
        json={"description": None},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 204, response.text
    after = await retrieve(api, sub_id)
    assert "description" not in after
    assert after["q"] == "temperature>20"


async def test_patch_keeps_created_at(api: httpx.AsyncClient) -> None:
    sub_id = await create(api, subscription())
    created_at = (await retrieve(api, sub_id))["createdAt"]
    assert (await api.patch(sub_url(sub_id), json={"description": "x"})).status_code == 204
    after = await retrieve(api, sub_id)
    assert after.get("createdAt") == created_at
    assert after["modifiedAt"] >= created_at


async def test_pause_and_resume(api: httpx.AsyncClient) -> None:
    sub_id = await create(api, subscription())
    assert (await api.patch(sub_url(sub_id), json={"isActive": False})).status_code == 204
    paused = await retrieve(api, sub_id)
    assert (paused["status"], paused["isActive"]) == ("paused", False)
    assert (await api.patch(sub_url(sub_id), json={"isActive": True})).status_code == 204
    resumed = await retrieve(api, sub_id)
    assert (resumed["status"], resumed["isActive"]) == ("active", True)


async def test_a_subscription_created_inactive_is_paused(api: httpx.AsyncClient) -> None:
    sub_id = await create(api, subscription(isActive=False))
    body = await retrieve(api, sub_id)
    assert (body["status"], body["isActive"]) == ("paused", False)


async def test_patch_of_an_unknown_subscription_is_404(api: httpx.AsyncClient) -> None:
    response = await api.patch(sub_url("urn:ngsi-ld:Subscription:nowhere"), json={"q": "a==1"})
    assert_problem(response, 404, "ResourceNotFound")


@pytest.mark.parametrize(
    "patch",
    [
        pytest.param({"q": "temperature>>"}, id="bad-q"),
        pytest.param({"notificationTrigger": ["sometimes"]}, id="bad-trigger"),
        pytest.param({"expiresAt": "2000-01-01T00:00:00Z"}, id="expiresAt-in-the-past"),
        pytest.param({"timeInterval": 5, "watchedAttributes": ["a"]}, id="timeInterval-watched"),
        pytest.param({"notification": {"endpoint": {"uri": "ftp://x.example/n"}}}, id="ftp"),
        pytest.param({"id": "urn:ngsi-ld:Subscription:other"}, id="another-id"),
        pytest.param({"isActive": "no"}, id="isActive-not-a-boolean"),
    ],
)
async def test_an_invalid_patch_is_400_and_changes_nothing(
    api: httpx.AsyncClient, patch: Json
) -> None:
    sub_id = await create(api, subscription(q="temperature>20"))
    before = await retrieve(api, sub_id)
    assert_problem(await api.patch(sub_url(sub_id), json=patch), 400, BAD)
    assert await retrieve(api, sub_id) == before


async def test_a_patch_to_a_private_endpoint_is_refused_by_default(
    client_factory: ClientFactory,
) -> None:
    async with client_factory(allow_private_notification_urls=False) as client:
        payload = subscription(notification={"endpoint": {"uri": PUBLIC_ENDPOINT}})
        sub_id = await create(client, payload)
        patch = {"notification": {"endpoint": {"uri": "http://127.0.0.1/notify"}}}
        assert_problem(await client.patch(sub_url(sub_id), json=patch), 400, BAD)
        body = await retrieve(client, sub_id)
        assert body["notification"]["endpoint"] == {"uri": PUBLIC_ENDPOINT}


# -- delete ----------------------------------------------------------------------------------


async def test_delete_answers_204_then_the_subscription_is_gone(api: httpx.AsyncClient) -> None:
    keep = await create(api, subscription())
    sub_id = await create(api, subscription())
    response = await api.delete(sub_url(sub_id))
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await api.get(sub_url(sub_id)), 404, "ResourceNotFound")
    assert_problem(await api.delete(sub_url(sub_id)), 404, "ResourceNotFound")
    assert_problem(await api.patch(sub_url(sub_id), json={"q": "a==1"}), 404, "ResourceNotFound")
    assert [s["id"] for s in (await api.get(SUBSCRIPTIONS)).json()] == [keep]


async def test_a_deleted_id_can_be_used_again(api: httpx.AsyncClient) -> None:
    sub_id = "urn:ngsi-ld:Subscription:again"
    await create(api, subscription(id=sub_id, description="first"))
    assert (await api.delete(sub_url(sub_id))).status_code == 204
    await create(api, subscription(id=sub_id, description="second"))
    assert (await retrieve(api, sub_id))["description"] == "second"


# -- tenants and persistence -----------------------------------------------------------------


async def test_subscriptions_belong_to_their_tenant(api: httpx.AsyncClient) -> None:
    tenant_a = {"NGSILD-Tenant": "city-a"}
    sub_id = await create(api, subscription(), headers=tenant_a)
    await create(api, subscription())  # the default tenant
    assert [s["id"] for s in (await api.get(SUBSCRIPTIONS, headers=tenant_a)).json()] == [sub_id]
    assert sub_id not in [s["id"] for s in (await api.get(SUBSCRIPTIONS)).json()]
    assert_problem(await api.get(sub_url(sub_id)), 404, "ResourceNotFound")
    assert_problem(await api.delete(sub_url(sub_id)), 404, "ResourceNotFound")
    assert (await retrieve(api, sub_id, headers=tenant_a))["id"] == sub_id


async def test_listing_in_an_unknown_tenant_is_404_nonexistent_tenant(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get(SUBSCRIPTIONS, headers={"NGSILD-Tenant": "nowhere"})
    assert_problem(response, 404, "NonexistentTenant")


async def test_subscriptions_survive_a_restart(client_factory: ClientFactory) -> None:
    ids = [f"urn:ngsi-ld:Subscription:{n}" for n in ("z", "y")]
    async with client_factory(allow_private_notification_urls=True) as client:
        for sub_id in ids:
            await create(client, subscription(id=sub_id, q="temperature>20"))
        assert (await client.patch(sub_url(ids[1]), json={"isActive": False})).status_code == 204
        before = (await client.get(SUBSCRIPTIONS)).json()
    async with client_factory(allow_private_notification_urls=True) as client:
        after = (await client.get(SUBSCRIPTIONS)).json()
        assert after == before
        assert [s["id"] for s in after] == ids
        assert after[1]["status"] == "paused"
