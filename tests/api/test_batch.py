"""Batch entity operations under /ngsi-ld/v1/entityOperations (clauses 5.6.7-5.6.10, 5.6.20).

Every operation answers 201/204 when each entity succeeded and 207 with a
BatchOperationResult (``{"success": [ids], "errors": [BatchEntityError]}``) otherwise.
Each entity of a batch is written atomically and independently of the others: an invalid
one never leaves a half-written entity behind, and never stops the valid ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest

BASE = "/ngsi-ld/v1"
OPS = f"{BASE}/entityOperations"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"

JSON_HEADERS = {"Content-Type": "application/json"}

ClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def urn(n: int) -> str:
    return f"urn:ngsi-ld:Sensor:{n:03d}"


def prop(value: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value}


def sensor(n: int, **attrs: Any) -> dict[str, Any]:
    """A normalized Sensor entity with the given attributes."""
    return {"id": urn(n), "type": "Sensor", **attrs}


async def batch(
    client: httpx.AsyncClient, op: str, payload: Any, options: str | None = None
) -> httpx.Response:
    params = {"options": options} if options else None
    return await client.post(
        f"{OPS}/{op}", content=json.dumps(payload), headers=JSON_HEADERS, params=params
    )


async def create(client: httpx.AsyncClient, entity: dict[str, Any]) -> None:
    response = await client.post(f"{BASE}/entities", json=entity)
    assert response.status_code == 201, response.text


async def stored(client: httpx.AsyncClient, entity_id: str) -> dict[str, Any] | None:
    """The entity as GET /entities/{id} returns it, or None when it does not exist."""
    response = await client.get(f"{BASE}/entities/{entity_id}")
    if response.status_code == 404:
        assert response.json()["type"] == ERRORS + "ResourceNotFound"
        return None
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def temp_of(client: httpx.AsyncClient, entity_id: str) -> Any:
    """The value of the temp attribute of an entity that must exist."""
    entity = await stored(client, entity_id)
    assert entity is not None, f"{entity_id} does not exist"
    return entity["temp"]["value"]


async def count_sensors(client: httpx.AsyncClient) -> int:
    response = await client.get(f"{BASE}/entities", params={"type": "Sensor", "limit": "100"})
    assert response.status_code == 200, response.text
    return len(response.json())


def batch_result(response: httpx.Response) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Check a 207 BatchOperationResult; return its success ids and errors by entity id."""
    assert response.status_code == 207, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"success", "errors"}
    errors: dict[str, dict[str, Any]] = {}
    for entry in body["errors"]:
        assert set(entry) == {"entityId", "error"}
        error = entry["error"]
        assert error["type"].startswith(ERRORS)
        assert isinstance(error["title"], str) and error["title"]
        assert entry["entityId"] not in errors, "one error entry per entity"
        errors[entry["entityId"]] = error
    return body["success"], errors


def assert_problem(response: httpx.Response, status: int, error_type: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["type"] == ERRORS + error_type
    assert isinstance(body["title"], str) and body["title"]


#: Entities that parse_entity must reject, with the entityId the error entry should name.
INVALID_ENTITIES = [
    pytest.param({"id": urn(9)}, urn(9), id="no-type"),
    pytest.param({"type": "Sensor"}, "", id="no-id"),
    pytest.param({"id": "not a uri", "type": "Sensor"}, "not a uri", id="id-not-uri"),
    pytest.param(sensor(9, temp={"type": "Nonsense", "value": 1}), urn(9), id="unknown-kind"),
    pytest.param(
        sensor(9, owner={"type": "Relationship", "object": "not a uri"}), urn(9), id="bad-object"
    ),
    pytest.param(sensor(9, temp={"type": "Property"}), urn(9), id="property-without-value"),
    pytest.param(42, "", id="not-an-object"),
]

BAD_BATCH_BODIES = [
    pytest.param(sensor(1), id="object"),
    pytest.param("urn:ngsi-ld:Sensor:001", id="string"),
    pytest.param(42, id="number"),
    pytest.param(None, id="null"),
    pytest.param([], id="empty-array"),
]


# -- create -------------------------------------------------------------------------------


async def test_create_returns_201_with_the_created_ids(client: httpx.AsyncClient) -> None:
    payload = [sensor(1, temp=prop(20.5)), sensor(2, temp=prop(18))]

    response = await batch(client, "create", payload)

    assert response.status_code == 201, response.text
    assert response.json() == [urn(1), urn(2)]
    first, second = await stored(client, urn(1)), await stored(client, urn(2))
    assert first == {"id": urn(1), "type": "Sensor", "temp": prop(20.5)}
    assert second == {"id": urn(2), "type": "Sensor", "temp": prop(18)}


async def test_create_reports_existing_entities_and_creates_the_others(
    client: httpx.AsyncClient,
) -> None:
    await create(client, sensor(1, temp=prop(1)))

    response = await batch(client, "create", [sensor(1, temp=prop(99)), sensor(2, temp=prop(2))])

    success, errors = batch_result(response)
    assert success == [urn(2)]
    assert set(errors) == {urn(1)}
    assert errors[urn(1)]["type"] == ERRORS + "AlreadyExists"
    assert await temp_of(client, urn(1)) == 1
    assert await temp_of(client, urn(2)) == 2


@pytest.mark.parametrize(("invalid", "reported_id"), INVALID_ENTITIES)
async def test_create_reports_invalid_entities_and_creates_the_valid_ones(
    client: httpx.AsyncClient, invalid: Any, reported_id: str
) -> None:
    response = await batch(client, "create", [sensor(1, temp=prop(1)), invalid])

    success, errors = batch_result(response)
    assert success == [urn(1)]
    assert list(errors) == [reported_id]
    assert errors[reported_id]["type"] == ERRORS + "BadRequestData"
    assert await stored(client, urn(1)) == {"id": urn(1), "type": "Sensor", "temp": prop(1)}
    assert await stored(client, urn(9)) is None


async def test_create_reports_an_id_given_twice_in_one_batch(client: httpx.AsyncClient) -> None:
    response = await batch(client, "create", [sensor(1, temp=prop(1)), sensor(1, temp=prop(2))])

    success, errors = batch_result(response)
    assert success == [urn(1)]
    assert errors[urn(1)]["type"] == ERRORS + "BadRequestData"
    assert "twice" in errors[urn(1)]["detail"]
    assert await temp_of(client, urn(1)) == 1


@pytest.mark.parametrize("op", ["create", "upsert", "update", "merge", "delete"])
@pytest.mark.parametrize("body", BAD_BATCH_BODIES)
async def test_every_operation_needs_a_non_empty_array(
    client: httpx.AsyncClient, op: str, body: Any
) -> None:
    response = await batch(client, op, body)

    assert_problem(response, 400, "BadRequestData")
    assert await count_sensors(client) == 0


@pytest.mark.parametrize("op", ["create", "upsert", "update", "merge", "delete"])
async def test_a_batch_above_max_batch_entities_is_refused_whole(
    client_factory: ClientFactory, op: str
) -> None:
    async with client_factory(max_batch_entities=3) as client:
        for n in (1, 2, 3, 4):
            await create(client, sensor(n, temp=prop(0)))
        items: list[Any] = [sensor(n, temp=prop(7)) for n in (1, 2, 3, 4)]
        if op == "delete":
            items = [urn(n) for n in (1, 2, 3, 4)]

        response = await batch(client, op, items)

        assert_problem(response, 400, "BadRequestData")
        assert "3" in response.json()["detail"]
        for n in (1, 2, 3, 4):
            assert await temp_of(client, urn(n)) == 0


async def test_a_batch_of_exactly_max_batch_entities_is_accepted(
    client_factory: ClientFactory,
) -> None:
    async with client_factory(max_batch_entities=3) as client:
        response = await batch(client, "create", [sensor(n) for n in (1, 2, 3)])

        assert response.status_code == 201, response.text
        assert response.json() == [urn(1), urn(2), urn(3)]
        assert await count_sensors(client) == 3


# -- upsert -------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [None, "replace"])
async def test_upsert_replaces_existing_entities_by_default(
    client: httpx.AsyncClient, options: str | None
) -> None:
    await create(client, sensor(1, temp=prop(1), humidity=prop(40)))

    response = await batch(client, "upsert", [sensor(1, temp=prop(2))], options)

    assert response.status_code == 204, response.text
    assert response.content == b""
    assert await stored(client, urn(1)) == {"id": urn(1), "type": "Sensor", "temp": prop(2)}


async def test_upsert_update_merges_into_existing_entities(client: httpx.AsyncClient) -> None:
    await create(client, sensor(1, temp=prop(1), humidity=prop(40)))

    response = await batch(
        client, "upsert", [sensor(1, temp=prop(2), pressure=prop(1013))], "update"
    )

    assert response.status_code == 204, response.text
    assert await stored(client, urn(1)) == {
        "id": urn(1),
        "type": "Sensor",
        "temp": prop(2),
        "humidity": prop(40),
        "pressure": prop(1013),
    }


@pytest.mark.parametrize("options", [None, "replace", "update"])
async def test_upsert_answers_201_with_only_the_created_ids(
    client: httpx.AsyncClient, options: str | None
) -> None:
    await create(client, sensor(1, temp=prop(1)))

    response = await batch(
        client, "upsert", [sensor(1, temp=prop(2)), sensor(2, temp=prop(3))], options
    )

    assert response.status_code == 201, response.text
    assert response.json() == [urn(2)]
    assert await temp_of(client, urn(1)) == 2
    assert await temp_of(client, urn(2)) == 3


@pytest.mark.parametrize(("invalid", "reported_id"), INVALID_ENTITIES)
async def test_upsert_reports_invalid_entities_in_a_207(
    client: httpx.AsyncClient, invalid: Any, reported_id: str
) -> None:
    await create(client, sensor(1, temp=prop(1)))

    response = await batch(client, "upsert", [sensor(1, temp=prop(2)), invalid, sensor(2)])

    success, errors = batch_result(response)
    assert success == [urn(1), urn(2)]
    assert list(errors) == [reported_id]
    assert errors[reported_id]["type"] == ERRORS + "BadRequestData"
    assert await temp_of(client, urn(1)) == 2
    assert await stored(client, urn(2)) == {"id": urn(2), "type": "Sensor"}
    assert await stored(client, urn(9)) is None


async def test_upsert_reports_an_id_given_twice_in_one_batch(client: httpx.AsyncClient) -> None:
    response = await batch(client, "upsert", [sensor(1, temp=prop(1)), sensor(1, temp=prop(2))])

    success, errors = batch_result(response)
    assert success == [urn(1)]
    assert errors[urn(1)]["type"] == ERRORS + "BadRequestData"
    assert await temp_of(client, urn(1)) == 1


async def test_upsert_refuses_update_and_replace_together(client: httpx.AsyncClient) -> None:
    response = await batch(client, "upsert", [sensor(1)], "update,replace")

    assert_problem(response, 400, "BadRequestData")
    assert await stored(client, urn(1)) is None


# -- update -------------------------------------------------------------------------------


async def test_update_overwrites_and_appends_attributes(client: httpx.AsyncClient) -> None:
    await create(client, sensor(1, temp=prop(1), humidity=prop(40)))

    response = await batch(client, "update", [{"id": urn(1), "temp": prop(2), "pressure": prop(3)}])

    assert response.status_code == 204, response.text
    assert await stored(client, urn(1)) == {
        "id": urn(1),
        "type": "Sensor",
        "temp": prop(2),
        "humidity": prop(40),
        "pressure": prop(3),
    }


async def test_update_no_overwrite_keeps_existing_attributes(client: httpx.AsyncClient) -> None:
    await create(client, sensor(1, temp=prop(1)))

    response = await batch(
        client, "update", [{"id": urn(1), "temp": prop(2), "pressure": prop(3)}], "noOverwrite"
    )

    assert response.status_code == 204, response.text
    assert await stored(client, urn(1)) == {
        "id": urn(1),
        "type": "Sensor",
        "temp": prop(1),
        "pressure": prop(3),
    }


async def test_update_reports_unknown_entities_and_updates_the_others(
    client: httpx.AsyncClient,
) -> None:
    await create(client, sensor(1, temp=prop(1)))

    response = await batch(
        client, "update", [{"id": urn(7), "temp": prop(5)}, {"id": urn(1), "temp": prop(5)}]
    )

    success, errors = batch_result(response)
    assert success == [urn(1)]
    assert set(errors) == {urn(7)}
    assert errors[urn(7)]["type"] == ERRORS + "ResourceNotFound"
    assert await temp_of(client, urn(1)) == 5
    assert await stored(client, urn(7)) is None


@pytest.mark.parametrize(
    ("item", "reported_id"),
    [
        pytest.param({"temp": prop(1)}, "", id="no-id"),
        pytest.param({"id": "not a uri", "temp": prop(1)}, "not a uri", id="id-not-uri"),
        pytest.param("urn:ngsi-ld:Sensor:001", "", id="not-an-object"),
    ],
)
async def test_update_reports_items_without_a_valid_id(
    client: httpx.AsyncClient, item: Any, reported_id: str
) -> None:
    await create(client, sensor(1, temp=prop(1)))

    response = await batch(client, "update", [item, {"id": urn(1), "temp": prop(2)}])

    success, errors = batch_result(response)
    assert success == [urn(1)]
    assert errors[reported_id]["type"] == ERRORS + "BadRequestData"
    assert await temp_of(client, urn(1)) == 2


# -- merge --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "null",
    [
        pytest.param(None, id="json-null"),
        pytest.param("urn:ngsi-ld:null", id="ngsi-ld-null"),
        pytest.param(
            {"type": "Relationship", "object": "urn:ngsi-ld:null"}, id="relationship-null"
        ),
        pytest.param({"type": "Property", "value": "urn:ngsi-ld:null"}, id="property-null"),
        pytest.param({"value": None}, id="value-json-null"),
    ],
)
async def test_merge_deletes_null_attributes_and_merges_the_others(
    client: httpx.AsyncClient, null: Any
) -> None:
    await create(client, sensor(1, temp=prop(1), humidity=prop(40), battery=prop(90)))

    response = await batch(
        client, "merge", [{"id": urn(1), "humidity": null, "temp": prop(2), "pressure": prop(3)}]
    )

    assert response.status_code == 204, response.text
    assert await stored(client, urn(1)) == {
        "id": urn(1),
        "type": "Sensor",
        "temp": prop(2),
        "battery": prop(90),
        "pressure": prop(3),
    }


async def test_merge_reports_unknown_entities_and_merges_the_others(
    client: httpx.AsyncClient,
) -> None:
    await create(client, sensor(1, temp=prop(1)))

    response = await batch(
        client, "merge", [{"id": urn(1), "temp": prop(2)}, {"id": urn(8), "temp": prop(2)}]
    )

    success, errors = batch_result(response)
    assert success == [urn(1)]
    assert set(errors) == {urn(8)}
    assert errors[urn(8)]["type"] == ERRORS + "ResourceNotFound"
    assert await temp_of(client, urn(1)) == 2
    assert await stored(client, urn(8)) is None


# -- delete -------------------------------------------------------------------------------


async def test_delete_removes_every_entity(client: httpx.AsyncClient) -> None:
    for n in (1, 2, 3):
        await create(client, sensor(n))

    response = await batch(client, "delete", [urn(1), urn(3)])

    assert response.status_code == 204, response.text
    assert response.content == b""
    assert await stored(client, urn(1)) is None
    assert await stored(client, urn(3)) is None
    assert await stored(client, urn(2)) == {"id": urn(2), "type": "Sensor"}


async def test_delete_reports_unknown_ids_and_deletes_the_others(
    client: httpx.AsyncClient,
) -> None:
    await create(client, sensor(1))

    response = await batch(client, "delete", [urn(5), urn(1)])

    success, errors = batch_result(response)
    assert success == [urn(1)]
    assert set(errors) == {urn(5)}
    assert errors[urn(5)]["type"] == ERRORS + "ResourceNotFound"
    assert await stored(client, urn(1)) is None


@pytest.mark.parametrize(
    ("item", "reported_id"),
    [
        pytest.param("not a uri", "not a uri", id="string"),
        pytest.param(42, "", id="number"),
        pytest.param({"id": "urn:ngsi-ld:Sensor:002"}, "", id="object"),
        pytest.param(None, "", id="null"),
    ],
)
async def test_delete_reports_items_that_are_not_uris(
    client: httpx.AsyncClient, item: Any, reported_id: str
) -> None:
    await create(client, sensor(1))
    await create(client, sensor(2))

    response = await batch(client, "delete", [item, urn(1)])

    success, errors = batch_result(response)
    assert success == [urn(1)]
    assert list(errors) == [reported_id]
    assert errors[reported_id]["type"] == ERRORS + "BadRequestData"
    assert await stored(client, urn(1)) is None
    assert await stored(client, urn(2)) is not None


# -- atomicity per entity -----------------------------------------------------------------

#: Valid attributes first, then one that cannot be parsed: nothing of the entity may land.
HALF_VALID = {
    "temp": prop(99),
    "added": prop("should not be written"),
    "owner": {"type": "Relationship", "object": "not a uri"},
}


async def test_create_never_half_writes_an_invalid_entity(client: httpx.AsyncClient) -> None:
    response = await batch(client, "create", [sensor(1, **HALF_VALID), sensor(2, temp=prop(2))])

    success, errors = batch_result(response)
    assert success == [urn(2)]
    assert set(errors) == {urn(1)}
    assert await stored(client, urn(1)) is None
    assert await temp_of(client, urn(2)) == 2


@pytest.mark.parametrize(("op", "options"), [("upsert", None), ("upsert", "update"),
                                             ("update", None), ("merge", None)])  # fmt: skip
async def test_writes_never_half_apply_an_invalid_entity(
    client: httpx.AsyncClient, op: str, options: str | None
) -> None:
    before = sensor(1, temp=prop(1))
    await create(client, before)
    await create(client, sensor(2, temp=prop(1)))

    response = await batch(client, op, [sensor(1, **HALF_VALID), sensor(2, temp=prop(2))], options)

    success, errors = batch_result(response)
    assert success == [urn(2)]
    assert set(errors) == {urn(1)}
    assert errors[urn(1)]["type"] == ERRORS + "BadRequestData"
    assert await stored(client, urn(1)) == before
    assert await temp_of(client, urn(2)) == 2


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


async def test_a_batch_nesting_beyond_the_limit_is_refused_whole(
    client: httpx.AsyncClient,
) -> None:
    response = await batch(
        client, "create", [sensor(1, deep=prop(_nested(300))), sensor(2, temp=prop(2))]
    )

    assert response.status_code == 400, response.text
    assert "nests deeper" in response.json()["detail"]
    assert (await client.get(f"/ngsi-ld/v1/entities/{urn(2)}")).status_code == 404
