"""The NGSI-LD entity endpoints over HTTP: create, retrieve, replace, merge-patch, delete.

Covers payload normalization (concise input becomes normalized), every attribute kind,
sub-attributes, observedAt canonicalisation, multi-attributes, system attributes, the
error responses (ProblemDetails with the ETSI error type URI) and @context handling
(Link header, hosted contexts, application/ld+json bodies).
"""

from __future__ import annotations

import re
from typing import Any

import anyio
import httpx
import pytest

ENTITIES = "/ngsi-ld/v1/entities"
CONTEXTS = "/ngsi-ld/v1/jsonldContexts"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"
ENTITY_ID = "urn:ngsi-ld:Vehicle:V1"
SPEED_IRI = "https://example.org/vocab/speed"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
POINT = {"type": "Point", "coordinates": [2.35, 48.85]}
SQUARE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}


# -- helpers -------------------------------------------------------------------------------


def entity(entity_id: str = ENTITY_ID, **attrs: Any) -> dict[str, Any]:
    """An entity payload of type Vehicle with the given attributes."""
    return {"id": entity_id, "type": "Vehicle", **attrs}


def entity_url(entity_id: str = ENTITY_ID) -> str:
    return f"{ENTITIES}/{entity_id}"


def link(url: str) -> dict[str, str]:
    """A Link header naming a user @context."""
    return {"Link": f'<{url}>; rel="{CONTEXT_REL}"; type="application/ld+json"'}


def assert_problem(response: httpx.Response, status: int, error_type: str) -> dict[str, Any]:
    """The response is a ProblemDetails with that status and ETSI NGSI-LD error type."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["type"] == ERRORS + error_type
    assert isinstance(body["title"], str) and body["title"]
    return body


async def create(client: httpx.AsyncClient, payload: Any, **kwargs: Any) -> httpx.Response:
    """POST /entities and check it answered 201."""
    response = await client.post(ENTITIES, json=payload, **kwargs)
    assert response.status_code == 201, response.text
    return response


async def fetch(
    client: httpx.AsyncClient, entity_id: str = ENTITY_ID, **kwargs: Any
) -> dict[str, Any]:
    """GET /entities/{id} and check it answered 200 with a JSON object."""
    response = await client.get(entity_url(entity_id), **kwargs)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def fetch_sys(client: httpx.AsyncClient, entity_id: str = ENTITY_ID) -> dict[str, Any]:
    return await fetch(client, entity_id, params={"options": "sysAttrs"})


async def assert_absent(client: httpx.AsyncClient, entity_id: str = ENTITY_ID) -> None:
    response = await client.get(entity_url(entity_id))
    assert_problem(response, 404, "ResourceNotFound")


async def send_raw(
    client: httpx.AsyncClient, content: bytes | str, content_type: str, **headers: str
) -> httpx.Response:
    """POST /entities with a raw body and Content-Type."""
    return await client.post(
        ENTITIES, content=content, headers={"Content-Type": content_type, **headers}
    )


async def merge(
    client: httpx.AsyncClient, patch: dict[str, Any], content_type: str = "application/json"
) -> httpx.Response:
    """PATCH /entities/{id} (merge-patch) on the test entity."""
    return await client.patch(entity_url(), json=patch, headers={"Content-Type": content_type})


async def host_context(client: httpx.AsyncClient, context: dict[str, Any]) -> str:
    """Host a user @context at the broker and return its URL (the Location header)."""
    response = await client.post(
        CONTEXTS,
        json={"@context": context},
        headers={"Content-Type": "application/ld+json"},
    )
    assert response.status_code == 201, response.text
    location = response.headers["location"]
    assert location.startswith("http") and CONTEXTS in location
    return location


async def tick() -> None:
    """Let the millisecond clock move on, so a later write has a later timestamp."""
    await anyio.sleep(0.01)


# -- create --------------------------------------------------------------------------------


async def test_create_answers_201_with_the_location_of_the_entity(
    client: httpx.AsyncClient,
) -> None:
    response = await create(client, entity(speed={"type": "Property", "value": 80}))
    assert response.headers["location"] == f"/ngsi-ld/v1/entities/{ENTITY_ID}"
    assert response.content == b""


async def test_created_entity_is_retrieved_exactly_as_sent(client: httpx.AsyncClient) -> None:
    payload = entity(
        speed={"type": "Property", "value": 80, "unitCode": "KMH"},
        owner={"type": "Relationship", "object": "urn:ngsi-ld:Person:Alice"},
        location={"type": "GeoProperty", "value": POINT},
    )
    await create(client, payload)
    response = await client.get(entity_url())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert CORE_CONTEXT in response.headers["link"]
    assert response.json() == payload


BOB = "urn:ngsi-ld:Person:Bob"
ADDRESS = {"street": "Main", "number": 3}
CONCISE: dict[str, tuple[Any, dict[str, Any]]] = {
    "bare-number": (80, {"type": "Property", "value": 80}),
    "bare-string": ("red", {"type": "Property", "value": "red"}),
    "bare-bool": (False, {"type": "Property", "value": False}),
    "bare-array": ([1, 2, 3], {"type": "Property", "value": [1, 2, 3]}),
    "bare-object": (ADDRESS, {"type": "Property", "value": ADDRESS}),
    "value": ({"value": 80}, {"type": "Property", "value": 80}),
    "value-unitCode": (
        {"value": 80, "unitCode": "KMH"},
        {"type": "Property", "value": 80, "unitCode": "KMH"},
    ),
    "object": ({"object": BOB}, {"type": "Relationship", "object": BOB}),
    "bare-point": (POINT, {"type": "GeoProperty", "value": POINT}),
    "bare-polygon": (SQUARE, {"type": "GeoProperty", "value": SQUARE}),
    "value-geometry": ({"value": POINT}, {"type": "GeoProperty", "value": POINT}),
    "languageMap": (
        {"languageMap": {"en": "bus"}},
        {"type": "LanguageProperty", "languageMap": {"en": "bus"}},
    ),
    "vocab": ({"vocab": "Diesel"}, {"type": "VocabProperty", "vocab": "Diesel"}),
    "json": ({"json": {"raw": [1]}}, {"type": "JsonProperty", "json": {"raw": [1]}}),
    "valueList": ({"valueList": [3, 1]}, {"type": "ListProperty", "valueList": [3, 1]}),
    "objectList": (
        {"objectList": ["urn:a:1", "urn:a:2"]},
        {"type": "ListRelationship", "objectList": ["urn:a:1", "urn:a:2"]},
    ),
    "sub-attribute": (
        {"value": 80, "accuracy": 0.5},
        {"type": "Property", "value": 80, "accuracy": {"type": "Property", "value": 0.5}},
    ),
}


@pytest.mark.parametrize(("concise", "normalized"), CONCISE.values(), ids=CONCISE.keys())
async def test_concise_input_is_normalized(
    client: httpx.AsyncClient, concise: Any, normalized: dict[str, Any]
) -> None:
    await create(client, entity(attr=concise))
    assert (await fetch(client))["attr"] == normalized


async def test_creating_an_existing_entity_is_409_already_exists(
    client: httpx.AsyncClient,
) -> None:
    await create(client, entity(speed=80))
    response = await client.post(ENTITIES, json=entity(speed=99))
    body = assert_problem(response, 409, "AlreadyExists")
    assert body["type"] == "https://uri.etsi.org/ngsi-ld/errors/AlreadyExists"
    assert (await fetch(client))["speed"]["value"] == 80


BAD_ENTITIES: dict[str, Any] = {
    "not-an-object": [entity()],
    "missing-id": {"type": "Vehicle"},
    "non-uri-id": entity("vehicle 1"),
    "id-without-scheme": entity("V1"),
    "missing-type": {"id": ENTITY_ID},
    "null-type": {"id": ENTITY_ID, "type": None},
    "name-with-space": entity(**{"my speed": 1}),
    "name-with-angle": entity(**{"speed<": 1}),
    "name-with-semicolon": entity(**{"sp;eed": 1}),
    "name-with-equals": entity(**{"sp=eed": 1}),
    "name-with-parenthesis": entity(**{"speed()": 1}),
    "name-with-quote": entity(**{'sp"eed': 1}),
    "bare-null": entity(speed=None),
    "null-value": entity(speed={"type": "Property", "value": None}),
    "ngsi-ld-null-value": entity(speed={"type": "Property", "value": "urn:ngsi-ld:null"}),
    "property-without-value": entity(speed={"type": "Property", "unitCode": "KMH"}),
    "unknown-attribute-type": entity(speed={"type": "Number", "value": 1}),
    "relationship-without-object": entity(owner={"type": "Relationship"}),
    "relationship-with-value-only": entity(owner={"type": "Relationship", "value": "urn:a:b"}),
    "relationship-non-uri-object": entity(owner={"type": "Relationship", "object": "Alice"}),
    "polygon-not-closed": entity(
        area={"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}
    ),
    "latitude-200": entity(location={"type": "Point", "coordinates": [2.0, 200.0]}),
    "longitude-200": entity(
        location={"type": "GeoProperty", "value": {"type": "Point", "coordinates": [200, 1]}}
    ),
    "geoproperty-string": entity(location={"type": "GeoProperty", "value": "48.85,2.35"}),
    "observedAt-text": entity(speed={"value": 1, "observedAt": "yesterday"}),
    "observedAt-month-13": entity(speed={"value": 1, "observedAt": "2024-13-01T00:00:00Z"}),
    "observedAt-date-only": entity(speed={"value": 1, "observedAt": "2024-03-01"}),
    "observedAt-number": entity(speed={"value": 1, "observedAt": 1709287200}),
    "unitCode-empty": entity(speed={"value": 1, "unitCode": ""}),
    "datasetId-non-uri": entity(speed={"value": 1, "datasetId": "gps"}),
    "languageMap-number": entity(
        name={"type": "LanguageProperty", "languageMap": {"en": "bus", "fr": 3}}
    ),
    "languageMap-empty": entity(name={"type": "LanguageProperty", "languageMap": {}}),
    "valueList-not-array": entity(sizes={"type": "ListProperty", "valueList": 3}),
    "objectList-non-uri": entity(route={"type": "ListRelationship", "objectList": ["Paris"]}),
    "json-scalar": entity(raw={"type": "JsonProperty", "json": 3}),
    "duplicate-datasetId": entity(
        speed=[
            {"type": "Property", "value": 1, "datasetId": "urn:ngsi-ld:Dataset:gps"},
            {"type": "Property", "value": 2, "datasetId": "urn:ngsi-ld:Dataset:gps"},
        ]
    ),
    "two-default-instances": entity(speed=[{"value": 1}, {"value": 2}]),
    "null-sub-attribute": entity(speed={"value": 1, "accuracy": None}),
}


@pytest.mark.parametrize("payload", BAD_ENTITIES.values(), ids=BAD_ENTITIES.keys())
async def test_create_rejects_bad_data_with_400(client: httpx.AsyncClient, payload: Any) -> None:
    response = await client.post(ENTITIES, json=payload)
    body = assert_problem(response, 400, "BadRequestData")
    assert body.get("detail")
    await assert_absent(client)


async def test_malformed_json_is_400_invalid_request(client: httpx.AsyncClient) -> None:
    response = await send_raw(client, b'{"id": "urn:a:b", "type": ', "application/json")
    assert_problem(response, 400, "InvalidRequest")


async def test_empty_body_is_400_invalid_request(client: httpx.AsyncClient) -> None:
    response = await send_raw(client, b"", "application/json")
    assert_problem(response, 400, "InvalidRequest")


async def test_text_plain_body_is_415(client: httpx.AsyncClient) -> None:
    response = await send_raw(client, '{"id": "urn:a:b", "type": "T"}', "text/plain")
    assert response.status_code == 415
    assert "content-type" in response.json()["detail"].lower()
    await assert_absent(client, "urn:a:b")


async def test_body_over_max_body_bytes_is_413(client_factory: Any) -> None:
    async with client_factory(max_body_bytes=1000) as client:
        small = await client.post(ENTITIES, json=entity(note="x" * 100))
        assert small.status_code == 201
        response = await client.post(
            ENTITIES, json=entity("urn:ngsi-ld:Vehicle:V2", note="x" * 2000)
        )
        assert response.status_code == 413
        assert response.json()["type"].startswith(ERRORS)
        await assert_absent(client, "urn:ngsi-ld:Vehicle:V2")


async def test_application_json_body_with_context_is_400(client: httpx.AsyncClient) -> None:
    payload = {**entity(speed=80), "@context": CORE_CONTEXT}
    response = await client.post(ENTITIES, json=payload)
    assert_problem(response, 400, "BadRequestData")
    await assert_absent(client)


async def test_json_ld_body_without_context_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        ENTITIES, json=entity(speed=80), headers={"Content-Type": "application/ld+json"}
    )
    assert_problem(response, 400, "BadRequestData")
    await assert_absent(client)


async def test_json_ld_body_with_a_link_header_too_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        ENTITIES,
        json={**entity(speed=80), "@context": CORE_CONTEXT},
        headers={"Content-Type": "application/ld+json", **link(CORE_CONTEXT)},
    )
    assert_problem(response, 400, "BadRequestData")


# -- retrieve ------------------------------------------------------------------------------


async def test_retrieving_an_unknown_entity_is_404_resource_not_found(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(entity_url("urn:ngsi-ld:Vehicle:nobody"))
    body = assert_problem(response, 404, "ResourceNotFound")
    assert "urn:ngsi-ld:Vehicle:nobody" in body["detail"]


async def test_retrieving_with_a_non_uri_id_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get(entity_url("not-a-uri"))
    assert_problem(response, 400, "BadRequestData")


async def test_accept_json_ld_puts_the_context_in_the_body(client: httpx.AsyncClient) -> None:
    await create(client, entity(speed=80))
    response = await client.get(entity_url(), headers={"Accept": "application/ld+json"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/ld+json")
    assert "link" not in response.headers
    body = response.json()
    assert body["@context"] == CORE_CONTEXT
    assert body["speed"] == {"type": "Property", "value": 80}


# -- attribute kinds, sub-attributes, observedAt, multi-attributes --------------------------


ATTRIBUTES: dict[str, dict[str, Any]] = {
    "property-number": {"type": "Property", "value": 21.5},
    "property-string": {"type": "Property", "value": "red"},
    "property-bool": {"type": "Property", "value": True},
    "property-object": {"type": "Property", "value": {"street": "Main", "zip": "75001"}},
    "property-array": {"type": "Property", "value": [1, "two", {"three": 3}]},
    "property-unitCode": {"type": "Property", "value": 80, "unitCode": "KMH"},
    "property-observedAt": {
        "type": "Property",
        "value": 80,
        "observedAt": "2024-03-01T10:00:00.000Z",
    },
    "relationship": {"type": "Relationship", "object": "urn:ngsi-ld:Person:Alice"},
    "geoproperty-point": {"type": "GeoProperty", "value": POINT},
    "geoproperty-polygon": {"type": "GeoProperty", "value": SQUARE},
    "languageproperty": {
        "type": "LanguageProperty",
        "languageMap": {"en": "bus", "fr": "autobus", "de": ["Bus", "Omnibus"]},
    },
    "vocabproperty": {"type": "VocabProperty", "vocab": "Diesel"},
    "vocabproperty-list": {"type": "VocabProperty", "vocab": ["Diesel", "Electric"]},
    "jsonproperty-object": {"type": "JsonProperty", "json": {"type": "Raw", "value": [1, 2]}},
    "jsonproperty-array": {"type": "JsonProperty", "json": [{"a": 1}, {"b": 2}]},
    "listproperty": {"type": "ListProperty", "valueList": [3, "b", 1]},
    "listrelationship": {
        "type": "ListRelationship",
        "objectList": ["urn:ngsi-ld:City:Antwerp", "urn:ngsi-ld:City:Rotterdam"],
    },
    "property-of-property": {
        "type": "Property",
        "value": 80,
        "accuracy": {"type": "Property", "value": 0.5, "unitCode": "KMH"},
    },
    "relationship-of-property": {
        "type": "Property",
        "value": 80,
        "providedBy": {"type": "Relationship", "object": "urn:ngsi-ld:Device:radar1"},
    },
    "property-of-relationship": {
        "type": "Relationship",
        "object": "urn:ngsi-ld:Person:Alice",
        "since": {"type": "Property", "value": "2020-01-01"},
    },
    "nested-sub-attributes": {
        "type": "Property",
        "value": 80,
        "accuracy": {
            "type": "Property",
            "value": 0.5,
            "method": {"type": "Property", "value": "radar"},
        },
    },
}


@pytest.mark.parametrize("attribute", ATTRIBUTES.values(), ids=ATTRIBUTES.keys())
async def test_every_attribute_kind_round_trips_normalized(
    client: httpx.AsyncClient, attribute: dict[str, Any]
) -> None:
    payload = entity(attr=attribute)
    await create(client, payload)
    assert await fetch(client) == payload


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("2024-03-01T10:00:00Z", "2024-03-01T10:00:00.000Z"),
        ("2024-03-01T10:00:00.5Z", "2024-03-01T10:00:00.500Z"),
        ("2024-03-01T10:00:00.123456Z", "2024-03-01T10:00:00.123Z"),
        ("2024-03-01T12:30:00+02:00", "2024-03-01T10:30:00.000Z"),
        ("2024-03-01T00:15:00-05:00", "2024-03-01T05:15:00.000Z"),
        ("2024-03-01T10:00:00+00:00", "2024-03-01T10:00:00.000Z"),
        pytest.param("0999-12-31T23:00:00Z", "0999-12-31T23:00:00.000Z", id="year-below-1000"),
    ],
)
async def test_observed_at_is_canonicalised_to_utc_milliseconds(
    client: httpx.AsyncClient, given: str, canonical: str
) -> None:
    await create(
        client,
        entity(
            speed={"value": 80, "observedAt": given, "accuracy": {"value": 1, "observedAt": given}}
        ),
    )
    speed = (await fetch(client))["speed"]
    assert speed["observedAt"] == canonical
    assert speed["accuracy"]["observedAt"] == canonical


async def test_multi_attribute_instances_are_returned_as_an_array(
    client: httpx.AsyncClient,
) -> None:
    instances = [
        {"type": "Property", "value": 80},
        {"type": "Property", "value": 82, "datasetId": "urn:ngsi-ld:Dataset:gps"},
        {"type": "Property", "value": 79, "datasetId": "urn:ngsi-ld:Dataset:radar"},
    ]
    await create(client, entity(speed=instances))
    assert (await fetch(client))["speed"] == instances


async def test_a_single_instance_with_a_dataset_id_is_returned_as_an_object(
    client: httpx.AsyncClient,
) -> None:
    instance = {"type": "Property", "value": 82, "datasetId": "urn:ngsi-ld:Dataset:gps"}
    await create(client, entity(speed=[instance]))
    assert (await fetch(client))["speed"] == instance


# -- system attributes ---------------------------------------------------------------------


async def test_sys_attrs_adds_created_and_modified_at(client: httpx.AsyncClient) -> None:
    await create(client, entity(speed={"value": 80, "accuracy": 0.5}))
    plain = await fetch(client)
    assert "createdAt" not in plain and "modifiedAt" not in plain["speed"]
    body = await fetch_sys(client)
    speed = body["speed"]
    for holder in (body, speed, speed["accuracy"]):
        assert TIMESTAMP.match(holder["createdAt"]), holder
        assert holder["modifiedAt"] == holder["createdAt"]
    assert speed["createdAt"] == body["createdAt"]


async def test_modified_at_moves_on_after_an_update_while_created_at_stays(
    client: httpx.AsyncClient,
) -> None:
    await create(client, entity(speed=80))
    before = await fetch_sys(client)
    await tick()
    response = await client.patch(f"{entity_url()}/attrs", json={"speed": 90})
    assert response.status_code == 204
    after = await fetch_sys(client)
    assert after["createdAt"] == before["createdAt"]
    assert after["modifiedAt"] > before["modifiedAt"]
    assert after["speed"]["createdAt"] == before["speed"]["createdAt"]
    assert after["speed"]["modifiedAt"] > before["speed"]["modifiedAt"]
    assert after["speed"]["value"] == 90


# -- replace (PUT /entities/{id}) ----------------------------------------------------------


async def test_replace_swaps_all_attributes_and_keeps_created_at(
    client: httpx.AsyncClient,
) -> None:
    await create(client, entity(speed=80, colour="red"))
    before = await fetch_sys(client)
    await tick()
    replacement = entity(fuel={"type": "Property", "value": "diesel"})
    response = await client.put(entity_url(), json=replacement)
    assert response.status_code == 204
    assert response.content == b""
    assert await fetch(client) == replacement
    after = await fetch_sys(client)
    assert after["createdAt"] == before["createdAt"]
    assert after["modifiedAt"] > before["modifiedAt"]


async def test_replace_without_id_in_the_body_uses_the_path(client: httpx.AsyncClient) -> None:
    await create(client, entity(speed=80))
    response = await client.put(entity_url(), json={"type": "Car", "speed": 10})
    assert response.status_code == 204
    assert await fetch(client) == {
        "id": ENTITY_ID,
        "type": "Car",
        "speed": {"type": "Property", "value": 10},
    }


async def test_replacing_an_unknown_entity_is_404(client: httpx.AsyncClient) -> None:
    response = await client.put(entity_url(), json=entity(speed=80))
    assert_problem(response, 404, "ResourceNotFound")
    await assert_absent(client)


async def test_replace_with_a_different_body_id_is_400(client: httpx.AsyncClient) -> None:
    await create(client, entity(speed=80))
    response = await client.put(entity_url(), json=entity("urn:ngsi-ld:Vehicle:other", speed=1))
    assert_problem(response, 400, "BadRequestData")
    assert (await fetch(client))["speed"]["value"] == 80


# -- merge-patch (PATCH /entities/{id}) ----------------------------------------------------


async def test_merge_patch_adds_new_attributes_and_keeps_the_others(
    client: httpx.AsyncClient,
) -> None:
    await create(client, entity(speed=80))
    response = await merge(client, {"colour": "red"})
    assert response.status_code == 204
    assert await fetch(client) == entity(
        speed={"type": "Property", "value": 80},
        colour={"type": "Property", "value": "red"},
    )


async def test_merge_patch_keeps_members_not_given(client: httpx.AsyncClient) -> None:
    speed = {
        "type": "Property",
        "value": 80,
        "unitCode": "KMH",
        "observedAt": "2024-03-01T10:00:00.000Z",
        "accuracy": {"type": "Property", "value": 0.5},
        "providedBy": {"type": "Relationship", "object": "urn:ngsi-ld:Device:radar1"},
    }
    await create(client, entity(speed=speed))
    response = await merge(client, {"speed": {"value": 95, "accuracy": {"value": 0.7}}})
    assert response.status_code == 204
    assert (await fetch(client))["speed"] == {
        **speed,
        "value": 95,
        "accuracy": {"type": "Property", "value": 0.7},
    }


DELETIONS: dict[str, Any] = {
    "ngsi-ld-null": "urn:ngsi-ld:null",
    "json-null": None,
    "object-ngsi-ld-null": {"type": "Relationship", "object": "urn:ngsi-ld:null"},
    "value-ngsi-ld-null": {"type": "Property", "value": "urn:ngsi-ld:null"},
    "concise-value-ngsi-ld-null": {"value": "urn:ngsi-ld:null"},
    "value-json-null": {"type": "Property", "value": None},
}


@pytest.mark.parametrize("deletion", DELETIONS.values(), ids=DELETIONS.keys())
async def test_merge_patch_with_null_deletes_the_attribute(
    client: httpx.AsyncClient, deletion: Any
) -> None:
    await create(client, entity(speed=80, colour="red"))
    response = await merge(client, {"speed": deletion})
    assert response.status_code == 204
    assert await fetch(client) == entity(colour={"type": "Property", "value": "red"})


async def test_merge_patch_accepts_application_merge_patch_json(
    client: httpx.AsyncClient,
) -> None:
    await create(client, entity(speed=80, colour="red"))
    patch = {"speed": 90, "colour": None}
    response = await merge(client, patch, "application/merge-patch+json")
    assert response.status_code == 204
    assert await fetch(client) == entity(speed={"type": "Property", "value": 90})


async def test_merge_patch_of_an_unknown_entity_is_404(client: httpx.AsyncClient) -> None:
    response = await merge(client, {"speed": 90})
    assert_problem(response, 404, "ResourceNotFound")
    await assert_absent(client)


async def test_merge_patch_with_a_different_body_id_is_400(client: httpx.AsyncClient) -> None:
    await create(client, entity(speed=80))
    response = await merge(client, {"id": "urn:ngsi-ld:Vehicle:other", "speed": 90})
    assert_problem(response, 400, "BadRequestData")
    assert (await fetch(client))["speed"]["value"] == 80


async def test_merge_patch_moves_modified_at_only(client: httpx.AsyncClient) -> None:
    await create(client, entity(speed=80))
    before = await fetch_sys(client)
    await tick()
    assert (await merge(client, {"speed": 81})).status_code == 204
    after = await fetch_sys(client)
    assert after["createdAt"] == before["createdAt"]
    assert after["modifiedAt"] > before["modifiedAt"]
    assert after["speed"]["createdAt"] == before["speed"]["createdAt"]


# -- delete --------------------------------------------------------------------------------


async def test_delete_answers_204_then_the_entity_is_gone(client: httpx.AsyncClient) -> None:
    await create(client, entity(speed=80))
    response = await client.delete(entity_url())
    assert response.status_code == 204
    assert response.content == b""
    await assert_absent(client)
    assert_problem(await client.delete(entity_url()), 404, "ResourceNotFound")


async def test_delete_of_an_unknown_entity_is_404(client: httpx.AsyncClient) -> None:
    response = await client.delete(entity_url("urn:ngsi-ld:Vehicle:nobody"))
    assert_problem(response, 404, "ResourceNotFound")


async def test_delete_with_a_non_uri_id_is_400(client: httpx.AsyncClient) -> None:
    assert_problem(await client.delete(entity_url("nobody")), 400, "BadRequestData")


async def test_deleting_one_entity_leaves_the_others(client: httpx.AsyncClient) -> None:
    await create(client, entity(speed=80))
    await create(client, entity("urn:ngsi-ld:Vehicle:V2", speed=60))
    assert (await client.delete(entity_url())).status_code == 204
    assert (await fetch(client, "urn:ngsi-ld:Vehicle:V2"))["speed"]["value"] == 60


# -- @context ------------------------------------------------------------------------------


async def test_link_header_context_expands_attribute_names(client: httpx.AsyncClient) -> None:
    context_url = await host_context(client, {"speed": SPEED_IRI})
    await create(client, entity(speed=80), headers=link(context_url))

    without = await fetch(client)
    assert without[SPEED_IRI] == {"type": "Property", "value": 80}
    assert "speed" not in without

    response = await client.get(entity_url(), headers=link(context_url))
    assert response.status_code == 200
    assert response.json() == entity(speed={"type": "Property", "value": 80})
    assert f"<{context_url}>" in response.headers["link"]


async def test_hosted_context_is_served_back(client: httpx.AsyncClient) -> None:
    context_url = await host_context(client, {"speed": SPEED_IRI})
    local_id = context_url.rsplit("/", 1)[-1]
    response = await client.get(f"{CONTEXTS}/{local_id}")
    assert response.status_code == 200
    assert response.json() == {"@context": {"speed": SPEED_IRI}}


async def test_hosting_a_context_accepts_application_json(client: httpx.AsyncClient) -> None:
    response = await client.post(CONTEXTS, json={"@context": {"speed": SPEED_IRI}})
    assert response.status_code == 201, response.text
    assert CONTEXTS in response.headers["location"]


async def test_link_context_names_also_work_for_other_operations(
    client: httpx.AsyncClient,
) -> None:
    context_url = await host_context(client, {"speed": SPEED_IRI})
    headers = link(context_url)
    await create(client, entity(speed=80), headers=headers)
    response = await client.patch(entity_url(), json={"speed": 90}, headers=headers)
    assert response.status_code == 204
    body = await fetch(client)
    assert body == entity(**{SPEED_IRI: {"type": "Property", "value": 90}})


async def test_inline_context_in_a_json_ld_body(client: httpx.AsyncClient) -> None:
    payload = {**entity(speed=80), "@context": [{"speed": SPEED_IRI}, CORE_CONTEXT]}
    response = await client.post(
        ENTITIES, json=payload, headers={"Content-Type": "application/ld+json"}
    )
    assert response.status_code == 201, response.text
    body = await fetch(client)
    assert body == entity(**{SPEED_IRI: {"type": "Property", "value": 80}})


async def test_json_ld_retrieval_with_a_link_context_returns_it_in_the_body(
    client: httpx.AsyncClient,
) -> None:
    context_url = await host_context(client, {"speed": SPEED_IRI})
    await create(client, entity(speed=80), headers=link(context_url))
    response = await client.get(
        entity_url(), headers={**link(context_url), "Accept": "application/ld+json"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["@context"] == [context_url, CORE_CONTEXT]
    assert body["speed"] == {"type": "Property", "value": 80}


async def test_link_header_without_the_context_rel_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get(
        entity_url(), headers={"Link": '<https://example.org/ctx.jsonld>; rel="alternate"'}
    )
    assert_problem(response, 400, "BadRequestData")
