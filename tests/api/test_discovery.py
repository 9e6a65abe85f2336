"""Discovery of entity types and attributes: /types and /attributes (clauses 5.7.5-5.7.10).

The answers describe what is stored now: a type or attribute is listed while at least one
entity has it, with names compacted by the request's @context.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

BASE = "/ngsi-ld/v1"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
LOCATION = "https://uri.etsi.org/ngsi-ld/location"
CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"


def prop(value: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value}


def rel(target: str) -> dict[str, Any]:
    return {"type": "Relationship", "object": target}


POINT = {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [3.17, 50.69]}}

#: Inserted in an order that is not the alphabetical one, to see that lists are sorted.
ENTITIES = [
    {"id": "urn:ngsi-ld:Sensor:s1", "type": "Sensor", "name": prop("s1"),
     "temperature": prop(21.5), "state": prop("ok"), "location": POINT},
    {"id": "urn:ngsi-ld:Building:b1", "type": "Building", "name": prop("Town hall"),
     "state": rel("urn:ngsi-ld:Status:open")},
    {"id": "urn:ngsi-ld:Building:b2", "type": "Building", "name": prop("Library")},
    {"id": "urn:ngsi-ld:Avenue:a1", "type": "Avenue", "name": prop("Avenue Jean Lebas")},
]  # fmt: skip


async def seed(client: httpx.AsyncClient) -> None:
    for entity in ENTITIES:
        response = await client.post(f"{BASE}/entities", json=entity)
        assert response.status_code == 201, response.text


async def get_json(client: httpx.AsyncClient, path: str, **params: str) -> Any:
    response = await client.get(f"{BASE}{path}", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def assert_not_found(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text
    body = response.json()
    assert body["type"] == ERRORS + "ResourceNotFound"
    assert isinstance(body["title"], str) and body["title"]


# -- /types -------------------------------------------------------------------------------


async def test_types_lists_every_type_sorted(client: httpx.AsyncClient) -> None:
    await seed(client)

    body = await get_json(client, "/types")

    assert set(body) == {"id", "type", "typeList"}
    assert body["id"].startswith("urn:ngsi-ld:EntityTypeList:")
    assert len(body["id"]) > len("urn:ngsi-ld:EntityTypeList:")
    assert body["type"] == "EntityTypeList"
    assert body["typeList"] == ["Avenue", "Building", "Sensor"]


async def test_types_of_an_empty_broker_is_an_empty_list(client: httpx.AsyncClient) -> None:
    body = await get_json(client, "/types")

    assert body["type"] == "EntityTypeList"
    assert body["typeList"] == []


async def test_types_details_gives_entity_type_objects(client: httpx.AsyncClient) -> None:
    await seed(client)

    body = await get_json(client, "/types", details="true")

    assert body == [
        {"id": VOCAB + "Avenue", "type": "EntityType", "typeName": "Avenue",
         "attributeNames": ["name"]},
        {"id": VOCAB + "Building", "type": "EntityType", "typeName": "Building",
         "attributeNames": ["name", "state"]},
        {"id": VOCAB + "Sensor", "type": "EntityType", "typeName": "Sensor",
         "attributeNames": ["location", "name", "state", "temperature"]},
    ]  # fmt: skip


async def test_types_details_false_is_the_plain_list(client: httpx.AsyncClient) -> None:
    await seed(client)

    body = await get_json(client, "/types", details="false")

    assert body["type"] == "EntityTypeList"
    assert body["typeList"] == ["Avenue", "Building", "Sensor"]


@pytest.mark.parametrize("name", ["Building", VOCAB + "Building"])
async def test_type_info_counts_entities_and_details_attributes(
    client: httpx.AsyncClient, name: str
) -> None:
    await seed(client)

    body = await get_json(client, f"/types/{name}")

    assert {k: v for k, v in body.items() if k != "attributeDetails"} == {
        "id": VOCAB + "Building",
        "type": "EntityTypeInfo",
        "typeName": "Building",
        "entityCount": 2,
    }
    details = sorted(body["attributeDetails"], key=lambda a: a["attributeName"])
    assert details == [
        {"id": VOCAB + "name", "type": "Attribute", "attributeName": "name",
         "attributeTypes": ["Property"]},
        {"id": VOCAB + "state", "type": "Attribute", "attributeName": "state",
         "attributeTypes": ["Relationship"]},
    ]  # fmt: skip


async def test_type_info_lists_every_kind_of_each_attribute(client: httpx.AsyncClient) -> None:
    await seed(client)
    extra = {"id": "urn:ngsi-ld:Sensor:s2", "type": "Sensor", "state": rel("urn:ngsi-ld:X:1")}
    assert (await client.post(f"{BASE}/entities", json=extra)).status_code == 201

    body = await get_json(client, "/types/Sensor")

    assert body["entityCount"] == 2
    kinds = {a["attributeName"]: a["attributeTypes"] for a in body["attributeDetails"]}
    assert kinds == {
        "location": ["GeoProperty"],
        "name": ["Property"],
        "state": ["Property", "Relationship"],
        "temperature": ["Property"],
    }


@pytest.mark.parametrize("name", ["Bicycle", "sensor", "urn:ngsi-ld:Sensor"])
async def test_unknown_type_is_404(client: httpx.AsyncClient, name: str) -> None:
    await seed(client)

    assert_not_found(await client.get(f"{BASE}/types/{name}"))


# -- /attributes --------------------------------------------------------------------------


async def test_attributes_lists_every_attribute_sorted(client: httpx.AsyncClient) -> None:
    await seed(client)

    body = await get_json(client, "/attributes")

    assert set(body) == {"id", "type", "attributeList"}
    assert body["id"].startswith("urn:ngsi-ld:AttributeList:")
    assert body["type"] == "AttributeList"
    assert sorted(body["attributeList"]) == ["location", "name", "state", "temperature"]
    default_vocab = [a for a in body["attributeList"] if a != "location"]
    assert default_vocab == sorted(default_vocab)


async def test_attributes_details_gives_attribute_objects(client: httpx.AsyncClient) -> None:
    await seed(client)

    body = await get_json(client, "/attributes", details="true")

    assert sorted(body, key=lambda a: a["attributeName"]) == [
        {"id": LOCATION, "type": "Attribute", "attributeName": "location",
         "typeNames": ["Sensor"]},
        {"id": VOCAB + "name", "type": "Attribute", "attributeName": "name",
         "typeNames": ["Avenue", "Building", "Sensor"]},
        {"id": VOCAB + "state", "type": "Attribute", "attributeName": "state",
         "typeNames": ["Building", "Sensor"]},
        {"id": VOCAB + "temperature", "type": "Attribute", "attributeName": "temperature",
         "typeNames": ["Sensor"]},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("name", {"id": VOCAB + "name", "attributeName": "name", "attributeCount": 4,
                              "attributeTypes": ["Property"],
                              "typeNames": ["Avenue", "Building", "Sensor"]}, id="name"),
        pytest.param("state", {"id": VOCAB + "state", "attributeName": "state",
                                "attributeCount": 2, "attributeTypes": ["Property", "Relationship"],
                                "typeNames": ["Building", "Sensor"]}, id="state"),
        pytest.param("location", {"id": LOCATION, "attributeName": "location",
                                  "attributeCount": 1, "attributeTypes": ["GeoProperty"],
                                  "typeNames": ["Sensor"]}, id="core-term"),
        pytest.param(VOCAB + "temperature", {"id": VOCAB + "temperature",
                                             "attributeName": "temperature", "attributeCount": 1,
                                             "attributeTypes": ["Property"],
                                             "typeNames": ["Sensor"]}, id="full-iri"),
    ],
)  # fmt: skip
async def test_attribute_info(
    client: httpx.AsyncClient, name: str, expected: dict[str, Any]
) -> None:
    await seed(client)

    body = await get_json(client, f"/attributes/{name}")

    assert body == {"type": "Attribute", **expected}


@pytest.mark.parametrize("name", ["humidity", "Name", "id"])
async def test_unknown_attribute_is_404(client: httpx.AsyncClient, name: str) -> None:
    await seed(client)

    assert_not_found(await client.get(f"{BASE}/attributes/{name}"))


@pytest.mark.parametrize("path", ["/types", "/attributes"])
async def test_details_must_be_a_boolean(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(f"{BASE}{path}", params={"details": "yes"})

    assert response.status_code == 400, response.text
    assert response.json()["type"] == ERRORS + "BadRequestData"


# -- discovery follows the data -----------------------------------------------------------


async def test_a_type_disappears_with_its_last_entity(client: httpx.AsyncClient) -> None:
    await seed(client)

    response = await client.delete(f"{BASE}/entities/urn:ngsi-ld:Building:b1")
    assert response.status_code == 204
    assert (await get_json(client, "/types/Building"))["entityCount"] == 1
    assert (await get_json(client, "/types"))["typeList"] == ["Avenue", "Building", "Sensor"]

    response = await client.delete(f"{BASE}/entities/urn:ngsi-ld:Building:b2")
    assert response.status_code == 204
    assert (await get_json(client, "/types"))["typeList"] == ["Avenue", "Sensor"]
    assert_not_found(await client.get(f"{BASE}/types/Building"))
    details = await get_json(client, "/types", details="true")
    assert [t["typeName"] for t in details] == ["Avenue", "Sensor"]


async def test_attributes_follow_deletions(client: httpx.AsyncClient) -> None:
    await seed(client)

    response = await client.delete(f"{BASE}/entities/urn:ngsi-ld:Sensor:s1")
    assert response.status_code == 204

    assert sorted((await get_json(client, "/attributes"))["attributeList"]) == ["name", "state"]
    assert_not_found(await client.get(f"{BASE}/attributes/temperature"))
    assert_not_found(await client.get(f"{BASE}/attributes/location"))
    state = await get_json(client, "/attributes/state")
    assert state["attributeCount"] == 1
    assert state["attributeTypes"] == ["Relationship"]
    assert state["typeNames"] == ["Building"]


async def test_attributes_follow_attribute_deletion(client: httpx.AsyncClient) -> None:
    await seed(client)

    response = await client.delete(f"{BASE}/entities/urn:ngsi-ld:Sensor:s1/attrs/temperature")
    assert response.status_code == 204, response.text

    assert "temperature" not in (await get_json(client, "/attributes"))["attributeList"]
    sensor = await get_json(client, "/types/Sensor")
    assert "temperature" not in [a["attributeName"] for a in sensor["attributeDetails"]]


# -- the request's @context ---------------------------------------------------------------


async def host_context(client: httpx.AsyncClient, terms: dict[str, str]) -> str:
    """Host a context document on the broker; return its URL (usable in Link, no fetch)."""
    response = await client.post(
        f"{BASE}/jsonldContexts",
        json={"@context": terms},
        headers={"Content-Type": "application/ld+json"},
    )
    assert response.status_code == 201, response.text
    return response.headers["location"]


def link(url: str) -> dict[str, str]:
    return {"Link": f'<{url}>; rel="{CONTEXT_REL}"; type="application/ld+json"'}


async def test_names_are_compacted_with_the_request_context(client: httpx.AsyncClient) -> None:
    await seed(client)
    url = await host_context(client, {"Gebaeude": VOCAB + "Building", "Name": VOCAB + "name"})

    types = await client.get(f"{BASE}/types", headers=link(url))
    info = await client.get(f"{BASE}/types/Gebaeude", headers=link(url))
    attribute = await client.get(f"{BASE}/attributes/Name", headers=link(url))

    assert types.status_code == info.status_code == attribute.status_code == 200
    assert "Gebaeude" in types.json()["typeList"]
    assert info.json()["typeName"] == "Gebaeude"
    assert "Name" in [a["attributeName"] for a in info.json()["attributeDetails"]]
    assert attribute.json()["attributeName"] == "Name"
    assert "Gebaeude" in attribute.json()["typeNames"]


@pytest.mark.parametrize(
    "path",
    [
        "/types",
        "/types?details=true",
        "/types/Gebaeude",
        "/attributes",
        "/attributes?details=true",
        pytest.param(
            "/attributes/name",
        ),
    ],
)
async def test_responses_link_the_request_context(client: httpx.AsyncClient, path: str) -> None:
    await seed(client)
    url = await host_context(client, {"Gebaeude": VOCAB + "Building"})

    response = await client.get(f"{BASE}{path}", headers=link(url))

    assert response.status_code == 200, response.text
    assert response.headers["link"].startswith(f"<{url}>")
    assert CONTEXT_REL in response.headers["link"]
