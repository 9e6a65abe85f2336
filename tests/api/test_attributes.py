"""The NGSI-LD attribute endpoints over HTTP (clause 6.6 and 6.7).

Append (POST /entities/{id}/attrs, options=noOverwrite), update (PATCH .../attrs), partial
update, replace and delete of one attribute (.../attrs/{attr}, datasetId, deleteAll), with
the UpdateResult body of 207 answers and the ProblemDetails of errors.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

ENTITIES = "/ngsi-ld/v1/entities"
CONTEXTS = "/ngsi-ld/v1/jsonldContexts"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"
ENTITY_ID = "urn:ngsi-ld:Vehicle:V1"
UNKNOWN_ID = "urn:ngsi-ld:Vehicle:nobody"
GPS = "urn:ngsi-ld:Dataset:gps"
RADAR = "urn:ngsi-ld:Dataset:radar"
OBSERVED = "2024-03-01T10:00:00.000Z"
SPEED = {
    "type": "Property",
    "value": 80,
    "unitCode": "KMH",
    "observedAt": OBSERVED,
    "accuracy": {"type": "Property", "value": 0.5},
}


# -- helpers -------------------------------------------------------------------------------


def prop(value: Any, **members: Any) -> dict[str, Any]:
    """A normalized Property."""
    return {"type": "Property", "value": value, **members}


def attrs_url(entity_id: str = ENTITY_ID, attr: str | None = None) -> str:
    base = f"{ENTITIES}/{entity_id}/attrs"
    return base if attr is None else f"{base}/{attr}"


def link(url: str) -> dict[str, str]:
    return {"Link": f'<{url}>; rel="{CONTEXT_REL}"; type="application/ld+json"'}


def assert_problem(response: httpx.Response, status: int, error_type: str) -> None:
    """The response is a ProblemDetails with that status and ETSI NGSI-LD error type."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == ERRORS + error_type
    assert body["title"]


def assert_no_content(response: httpx.Response) -> None:
    assert response.status_code == 204, response.text
    assert response.content == b""


async def given_entity(client: httpx.AsyncClient, **attrs: Any) -> dict[str, Any]:
    """Create the test entity with these attributes and return its payload."""
    payload = {"id": ENTITY_ID, "type": "Vehicle", **attrs}
    response = await client.post(ENTITIES, json=payload)
    assert response.status_code == 201, response.text
    return payload


async def attributes(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    """The attributes of the test entity (GET, without id and type)."""
    response = await client.get(f"{ENTITIES}/{ENTITY_ID}", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body.pop("id") == ENTITY_ID
    body.pop("type")
    return body


def assert_update_result(
    response: httpx.Response, updated: list[str], not_updated: list[str]
) -> None:
    """A 207 answer carrying an UpdateResult with these attribute names."""
    assert response.status_code == 207, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"updated", "notUpdated"}
    assert body["updated"] == updated
    assert [item["attributeName"] for item in body["notUpdated"]] == not_updated
    for item in body["notUpdated"]:
        assert isinstance(item["reason"], str) and item["reason"]


# -- append: POST /entities/{id}/attrs -----------------------------------------------------


async def test_append_adds_new_attributes_and_overwrites_existing_ones(
    client: httpx.AsyncClient,
) -> None:
    await given_entity(client, speed=SPEED, colour="red")
    response = await client.post(attrs_url(), json={"speed": 95, "fuel": {"value": "diesel"}})
    assert_no_content(response)
    assert await attributes(client) == {
        "speed": prop(95),
        "colour": prop("red"),
        "fuel": prop("diesel"),
    }


async def test_append_with_no_overwrite_keeps_existing_attributes_and_answers_207(
    client: httpx.AsyncClient,
) -> None:
    await given_entity(client, speed=SPEED)
    response = await client.post(
        attrs_url(), params={"options": "noOverwrite"}, json={"speed": 95, "fuel": "diesel"}
    )
    assert_update_result(response, updated=["fuel"], not_updated=["speed"])
    assert await attributes(client) == {"speed": SPEED, "fuel": prop("diesel")}


async def test_append_with_no_overwrite_and_only_new_attributes_is_204(
    client: httpx.AsyncClient,
) -> None:
    await given_entity(client, speed=SPEED)
    response = await client.post(
        attrs_url(), params={"options": "noOverwrite"}, json={"fuel": "diesel"}
    )
    assert_no_content(response)
    assert (await attributes(client))["fuel"] == prop("diesel")


@pytest.mark.parametrize("options", [{}, {"options": "noOverwrite"}], ids=["plain", "noOverwrite"])
async def test_append_of_a_new_dataset_id_adds_an_instance(
    client: httpx.AsyncClient, options: dict[str, str]
) -> None:
    await given_entity(client, speed=SPEED)
    response = await client.post(
        attrs_url(), params=options, json={"speed": prop(82, datasetId=GPS)}
    )
    assert_no_content(response)
    assert (await attributes(client))["speed"] == [SPEED, prop(82, datasetId=GPS)]


async def test_append_to_an_unknown_entity_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post(attrs_url(UNKNOWN_ID), json={"speed": 1})
    assert_problem(response, 404, "ResourceNotFound")


async def test_append_of_invalid_data_is_400_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    await given_entity(client, speed=SPEED)
    response = await client.post(
        attrs_url(), json={"fuel": "diesel", "owner": {"type": "Relationship", "object": "Bob"}}
    )
    assert_problem(response, 400, "BadRequestData")
    assert await attributes(client) == {"speed": SPEED}


# -- update: PATCH /entities/{id}/attrs ----------------------------------------------------


async def test_update_of_existing_attributes_is_204(client: httpx.AsyncClient) -> None:
    await given_entity(client, speed=SPEED, colour="red")
    response = await client.patch(attrs_url(), json={"speed": 95, "colour": "blue"})
    assert_no_content(response)
    assert await attributes(client) == {"speed": prop(95), "colour": prop("blue")}


async def test_update_reports_a_missing_attribute_and_still_updates_the_others(
    client: httpx.AsyncClient,
) -> None:
    await given_entity(client, speed=SPEED, colour="red")
    response = await client.patch(attrs_url(), json={"colour": "blue", "fuel": "diesel"})
    assert_update_result(response, updated=["colour"], not_updated=["fuel"])
    assert await attributes(client) == {"speed": SPEED, "colour": prop("blue")}


async def test_update_of_an_unknown_dataset_id_is_reported(client: httpx.AsyncClient) -> None:
    await given_entity(client, speed=SPEED)
    response = await client.patch(attrs_url(), json={"speed": prop(1, datasetId=GPS)})
    assert_update_result(response, updated=[], not_updated=["speed"])
    assert await attributes(client) == {"speed": SPEED}


async def test_update_of_an_unknown_entity_is_404(client: httpx.AsyncClient) -> None:
    response = await client.patch(attrs_url(UNKNOWN_ID), json={"speed": 1})
    assert_problem(response, 404, "ResourceNotFound")


# -- partial update: PATCH /entities/{id}/attrs/{attr} -------------------------------------


PARTIAL_UPDATES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "value": ({"value": 5}, {**SPEED, "value": 5}),
    "typed-value": ({"type": "Property", "value": 5}, {**SPEED, "value": 5}),
    "observedAt": (
        {"observedAt": "2024-03-02T12:00:00+01:00"},
        {**SPEED, "observedAt": "2024-03-02T11:00:00.000Z"},
    ),
    "unitCode": ({"unitCode": "MPH"}, {**SPEED, "unitCode": "MPH"}),
    "sub-attribute": ({"accuracy": {"value": 0.9}}, {**SPEED, "accuracy": prop(0.9)}),
    "new-sub-attribute": ({"source": "radar"}, {**SPEED, "source": prop("radar")}),
    "value-and-unitCode": (
        {"value": 5, "unitCode": "MPH"},
        {**SPEED, "value": 5, "unitCode": "MPH"},
    ),
}


@pytest.mark.parametrize(
    ("fragment", "expected"), PARTIAL_UPDATES.values(), ids=PARTIAL_UPDATES.keys()
)
async def test_partial_update_changes_only_the_given_members(
    client: httpx.AsyncClient, fragment: dict[str, Any], expected: dict[str, Any]
) -> None:
    await given_entity(client, speed=SPEED, colour="red")
    assert_no_content(await client.patch(attrs_url(attr="speed"), json=fragment))
    assert await attributes(client) == {"speed": expected, "colour": prop("red")}


async def test_partial_update_with_a_dataset_id_addresses_that_instance(
    client: httpx.AsyncClient,
) -> None:
    instances = [SPEED, prop(82, datasetId=GPS), prop(79, datasetId=RADAR)]
    await given_entity(client, speed=instances)
    response = await client.patch(attrs_url(attr="speed"), json={"value": 83, "datasetId": GPS})
    assert_no_content(response)
    assert (await attributes(client))["speed"] == [SPEED, prop(83, datasetId=GPS), instances[2]]


async def test_partial_update_moves_the_attribute_modified_at(client: httpx.AsyncClient) -> None:
    await given_entity(client, speed=SPEED)
    before = (await attributes(client, options="sysAttrs"))["speed"]
    await anyio.sleep(0.01)  # let the millisecond clock move on
    assert_no_content(await client.patch(attrs_url(attr="speed"), json={"value": 5}))
    after = (await attributes(client, options="sysAttrs"))["speed"]
    assert after["createdAt"] == before["createdAt"]
    assert after["modifiedAt"] > before["modifiedAt"]
    assert after["value"] == 5


@pytest.mark.parametrize(
    ("entity_id", "attr", "fragment"),
    [
        (ENTITY_ID, "fuel", {"value": "diesel"}),
        (UNKNOWN_ID, "speed", {"value": 5}),
        (ENTITY_ID, "speed", {"value": 5, "datasetId": RADAR}),
    ],
    ids=["missing-attribute", "missing-entity", "missing-dataset-id"],
)
async def test_partial_update_of_something_missing_is_404(
    client: httpx.AsyncClient, entity_id: str, attr: str, fragment: dict[str, Any]
) -> None:
    await given_entity(client, speed=SPEED)
    response = await client.patch(attrs_url(entity_id, attr), json=fragment)
    assert_problem(response, 404, "ResourceNotFound")
    assert await attributes(client) == {"speed": SPEED}


async def test_partial_update_with_invalid_data_is_400(client: httpx.AsyncClient) -> None:
    await given_entity(client, speed=SPEED)
    response = await client.patch(attrs_url(attr="speed"), json={"observedAt": "soon"})
    assert_problem(response, 400, "BadRequestData")
    assert await attributes(client) == {"speed": SPEED}


# -- replace: PUT /entities/{id}/attrs/{attr} ----------------------------------------------


async def test_replace_attribute_swaps_the_whole_attribute(client: httpx.AsyncClient) -> None:
    await given_entity(client, speed=SPEED, colour="red")
    before = (await attributes(client, options="sysAttrs"))["speed"]
    response = await client.put(attrs_url(attr="speed"), json={"type": "Property", "value": 7})
    assert_no_content(response)
    assert await attributes(client) == {"speed": prop(7), "colour": prop("red")}
    after = (await attributes(client, options="sysAttrs"))["speed"]
    assert after["createdAt"] == before["createdAt"]


async def test_replace_attribute_can_change_its_kind(client: httpx.AsyncClient) -> None:
    await given_entity(client, owner="Alice")
    relationship = {"type": "Relationship", "object": "urn:ngsi-ld:Person:Alice"}
    assert_no_content(await client.put(attrs_url(attr="owner"), json=relationship))
    assert await attributes(client) == {"owner": relationship}


@pytest.mark.parametrize(
    ("entity_id", "attr"),
    [(ENTITY_ID, "fuel"), (UNKNOWN_ID, "speed")],
    ids=["missing-attribute", "missing-entity"],
)
async def test_replace_of_a_missing_attribute_is_404(
    client: httpx.AsyncClient, entity_id: str, attr: str
) -> None:
    await given_entity(client, speed=SPEED)
    response = await client.put(attrs_url(entity_id, attr), json=prop("diesel"))
    assert_problem(response, 404, "ResourceNotFound")
    assert await attributes(client) == {"speed": SPEED}


# -- delete: DELETE /entities/{id}/attrs/{attr} --------------------------------------------


MULTI = [SPEED, prop(82, datasetId=GPS), prop(79, datasetId=RADAR)]


async def test_delete_attribute_removes_it(client: httpx.AsyncClient) -> None:
    await given_entity(client, speed=SPEED, colour="red")
    assert_no_content(await client.delete(attrs_url(attr="speed")))
    assert await attributes(client) == {"colour": prop("red")}


@pytest.mark.parametrize(
    ("params", "left"),
    [
        ({}, [MULTI[1], MULTI[2]]),
        ({"datasetId": GPS}, [MULTI[0], MULTI[2]]),
        ({"deleteAll": "false", "datasetId": RADAR}, [MULTI[0], MULTI[1]]),
        ({"deleteAll": "true"}, None),
    ],
    ids=["default-instance-only", "one-dataset-id", "deleteAll-false", "deleteAll"],
)
async def test_delete_attribute_instances(
    client: httpx.AsyncClient, params: dict[str, str], left: list[dict[str, Any]] | None
) -> None:
    await given_entity(client, speed=MULTI, colour="red")
    assert_no_content(await client.delete(attrs_url(attr="speed"), params=params))
    expected: dict[str, Any] = {"colour": prop("red")}
    if left is not None:
        expected["speed"] = left
    assert await attributes(client) == expected


async def test_deleting_the_last_instance_removes_the_attribute(
    client: httpx.AsyncClient,
) -> None:
    await given_entity(client, speed=[prop(82, datasetId=GPS)], colour="red")
    assert_no_content(await client.delete(attrs_url(attr="speed"), params={"datasetId": GPS}))
    assert await attributes(client) == {"colour": prop("red")}


@pytest.mark.parametrize(
    ("entity_id", "attr", "params"),
    [
        (ENTITY_ID, "fuel", {}),
        (ENTITY_ID, "speed", {"datasetId": "urn:ngsi-ld:Dataset:other"}),
        (UNKNOWN_ID, "speed", {}),
    ],
    ids=["missing-attribute", "missing-dataset-id", "missing-entity"],
)
async def test_delete_of_something_missing_is_404(
    client: httpx.AsyncClient, entity_id: str, attr: str, params: dict[str, str]
) -> None:
    await given_entity(client, speed=MULTI)
    response = await client.delete(attrs_url(entity_id, attr), params=params)
    assert_problem(response, 404, "ResourceNotFound")
    assert (await attributes(client))["speed"] == MULTI


async def test_delete_of_the_default_instance_when_there_is_none_is_404(
    client: httpx.AsyncClient,
) -> None:
    await given_entity(client, speed=MULTI[1:])
    response = await client.delete(attrs_url(attr="speed"))
    assert_problem(response, 404, "ResourceNotFound")
    assert (await attributes(client))["speed"] == MULTI[1:]


@pytest.mark.parametrize(
    "params", [{"deleteAll": "maybe"}, {"datasetId": "gps"}], ids=["deleteAll-maybe", "datasetId"]
)
async def test_delete_with_a_bad_parameter_is_400(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    await given_entity(client, speed=MULTI)
    response = await client.delete(attrs_url(attr="speed"), params=params)
    assert_problem(response, 400, "BadRequestData")
    assert (await attributes(client))["speed"] == MULTI


# -- @context ------------------------------------------------------------------------------


async def test_attribute_names_in_the_path_follow_the_link_context(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        CONTEXTS,
        json={"@context": {"speed": "https://example.org/vocab/speed"}},
        headers={"Content-Type": "application/ld+json"},
    )
    assert response.status_code == 201, response.text
    context = link(response.headers["location"])
    await given_entity(client, colour="red")
    assert_no_content(await client.post(attrs_url(), json={"speed": 80}, headers=context))
    assert await attributes(client) == {
        "colour": prop("red"),
        "https://example.org/vocab/speed": prop(80),
    }
    response = await client.patch(attrs_url(attr="speed"), json={"value": 5}, headers=context)
    assert_no_content(response)
    assert_problem(await client.delete(attrs_url(attr="speed")), 404, "ResourceNotFound")
    assert_no_content(await client.delete(attrs_url(attr="speed"), headers=context))
    assert await attributes(client) == {"colour": prop("red")}


# -- NGSI-LD null inside an attribute ------------------------------------------------------


async def test_partial_update_with_null_members_removes_them(client: httpx.AsyncClient) -> None:
    await given_entity(client, speed=SPEED)
    fragment = {"unitCode": "urn:ngsi-ld:null", "accuracy": "urn:ngsi-ld:null"}
    assert_no_content(await client.patch(attrs_url(attr="speed"), json=fragment))
    assert await attributes(client) == {"speed": prop(80, observedAt=OBSERVED)}


async def test_merge_patch_with_a_null_sub_attribute_removes_only_it(
    client: httpx.AsyncClient,
) -> None:
    await given_entity(client, speed=SPEED)
    patch = {"speed": {"value": 90, "accuracy": None}}
    response = await client.patch(f"{ENTITIES}/{ENTITY_ID}", json=patch)
    assert_no_content(response)
    expected = prop(90, unitCode="KMH", observedAt=OBSERVED)
    assert await attributes(client) == {"speed": expected}


async def test_creating_with_a_null_sub_attribute_is_refused(client: httpx.AsyncClient) -> None:
    payload = {"id": ENTITY_ID, "type": "Vehicle", "speed": {"value": 1, "accuracy": None}}
    assert_problem(await client.post(ENTITIES, json=payload), 400, "BadRequestData")
