"""How entities are rendered: formats, system attributes, projection, languages, media types.

Normalized, concise and keyValues (simplified) bodies are spelled out in full for every
attribute kind, as are the GeoJSON Features (clause 4.5.16); the rest covers sysAttrs,
pick/omit (clause 4.21), lang (clause 4.15) and content negotiation (Accept, Link header,
@context in the body) on GET /entities/{id} and GET /entities.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

BASE = "/ngsi-ld/v1"
ENTITIES = f"{BASE}/entities"
CREATE = f"{BASE}/entityOperations/create"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
SYS_MEMBERS = ("createdAt", "modifiedAt")

SIMPLE, RICH, MULTI, SCOPED = (f"urn:ngsi-ld:Thing:{n}" for n in range(1, 5))
STREET = "urn:ngsi-ld:Street:1"
GPS = "urn:ngsi-ld:Dataset:gps"
POINT = {"type": "Point", "coordinates": [3.17, 50.69]}
ENTRANCE = {"type": "Point", "coordinates": [3.1702, 50.6901]}
ADDRESS = {"city": "Roubaix", "zip": "59100"}
NAMES = {"fr": "Bonjour", "en": "Hello"}
CONFIG = {"mode": "eco", "levels": [1, 2]}


def entities() -> list[dict[str, Any]]:
    """The payloads, in creation order; observedAt is given without milliseconds."""
    return [
        {
            "id": SIMPLE,
            "type": "Thing",
            "temperature": {
                "type": "Property",
                "value": 21.5,
                "unitCode": "CEL",
                "observedAt": "2024-03-01T10:00:00Z",
                "accuracy": {"type": "Property", "value": 0.3},
            },
            "label": {"type": "Property", "value": "hello"},
            "address": {"type": "Property", "value": ADDRESS},
            "tags": {"type": "Property", "value": ["a", "b"]},
            "refStreet": {
                "type": "Relationship",
                "object": STREET,
                "since": {"type": "Property", "value": 2020},
            },
            "location": {"type": "GeoProperty", "value": POINT},
            "entrance": {"type": "GeoProperty", "value": ENTRANCE},
        },
        {
            "id": RICH,
            "type": "Thing",
            "name": {"type": "LanguageProperty", "languageMap": NAMES},
            "category": {"type": "VocabProperty", "vocab": "commercial"},
            "config": {"type": "JsonProperty", "json": CONFIG},
            "series": {"type": "ListProperty", "valueList": [1, 2, 3]},
        },
        {
            "id": MULTI,
            "type": "Thing",
            "speed": [
                {"type": "Property", "value": 10, "datasetId": GPS},
                {"type": "Property", "value": 12},
            ],
        },
        {
            "id": SCOPED,
            "type": ["Thing", "Marker"],
            "scope": ["/Roubaix/Centre"],
            "label": {"type": "Property", "value": "scoped"},
        },
    ]


# The expected renderings, written out by hand.

NORMALIZED_SIMPLE = {
    "id": SIMPLE,
    "type": "Thing",
    "temperature": {
        "type": "Property",
        "value": 21.5,
        "unitCode": "CEL",
        "observedAt": "2024-03-01T10:00:00.000Z",
        "accuracy": {"type": "Property", "value": 0.3},
    },
    "label": {"type": "Property", "value": "hello"},
    "address": {"type": "Property", "value": ADDRESS},
    "tags": {"type": "Property", "value": ["a", "b"]},
    "refStreet": {
        "type": "Relationship",
        "object": STREET,
        "since": {"type": "Property", "value": 2020},
    },
    "location": {"type": "GeoProperty", "value": POINT},
    "entrance": {"type": "GeoProperty", "value": ENTRANCE},
}
CONCISE_SIMPLE = {
    "id": SIMPLE,
    "type": "Thing",
    "temperature": {
        "value": 21.5,
        "unitCode": "CEL",
        "observedAt": "2024-03-01T10:00:00.000Z",
        "accuracy": 0.3,
    },
    "label": "hello",
    "address": {"value": ADDRESS},  # a bare object would read as an attribute
    "tags": ["a", "b"],
    "refStreet": {"object": STREET, "since": 2020},
    "location": POINT,
    "entrance": ENTRANCE,
}
KEY_VALUES_SIMPLE = {
    "id": SIMPLE,
    "type": "Thing",
    "temperature": 21.5,
    "label": "hello",
    "address": ADDRESS,
    "tags": ["a", "b"],
    "refStreet": STREET,
    "location": POINT,
    "entrance": ENTRANCE,
}
NORMALIZED_RICH = {
    "id": RICH,
    "type": "Thing",
    "name": {"type": "LanguageProperty", "languageMap": NAMES},
    "category": {"type": "VocabProperty", "vocab": "commercial"},
    "config": {"type": "JsonProperty", "json": CONFIG},
    "series": {"type": "ListProperty", "valueList": [1, 2, 3]},
}
CONCISE_RICH = {
    "id": RICH,
    "type": "Thing",
    "name": {"languageMap": NAMES},
    "category": {"vocab": "commercial"},
    "config": {"json": CONFIG},
    "series": {"valueList": [1, 2, 3]},
}
NORMALIZED_MULTI = {
    "id": MULTI,
    "type": "Thing",
    "speed": [
        {"type": "Property", "value": 10, "datasetId": GPS},
        {"type": "Property", "value": 12},
    ],
}


# -- helpers -----------------------------------------------------------------------------------


@pytest.fixture
async def things(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """The default client with the four Thing entities created."""
    payload = entities()
    response = await client.post(CREATE, json=payload)
    assert response.status_code == 201, response.text
    assert response.json() == [e["id"] for e in payload]
    return client


async def fetch(
    client: httpx.AsyncClient, entity_id: str, headers: dict[str, str] | None = None, **params: Any
) -> Any:
    response = await client.get(f"{ENTITIES}/{entity_id}", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def query(client: httpx.AsyncClient, **params: Any) -> Any:
    response = await client.get(ENTITIES, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def assert_problem(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == ERRORS + error
    assert isinstance(body["title"], str) and body["title"]


def members(data: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair at any depth of a JSON document."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield key, value
            yield from members(value)
    elif isinstance(data, list):
        for item in data:
            yield from members(item)


def without_sys_attrs(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: without_sys_attrs(v) for k, v in data.items() if k not in SYS_MEMBERS}
    if isinstance(data, list):
        return [without_sys_attrs(i) for i in data]
    return data


# -- formats -----------------------------------------------------------------------------------

FORMAT_CASES = [
    pytest.param(SIMPLE, {}, NORMALIZED_SIMPLE, id="normalized-default"),
    pytest.param(SIMPLE, {"options": "normalized"}, NORMALIZED_SIMPLE, id="options-normalized"),
    pytest.param(SIMPLE, {"format": "normalized"}, NORMALIZED_SIMPLE, id="format-normalized"),
    pytest.param(SIMPLE, {"options": "keyValues"}, KEY_VALUES_SIMPLE, id="options-keyValues"),
    pytest.param(SIMPLE, {"options": "simplified"}, KEY_VALUES_SIMPLE, id="options-simplified"),
    pytest.param(SIMPLE, {"format": "keyValues"}, KEY_VALUES_SIMPLE, id="format-keyValues"),
    pytest.param(SIMPLE, {"format": "simplified"}, KEY_VALUES_SIMPLE, id="format-simplified"),
    pytest.param(SIMPLE, {"options": "concise"}, CONCISE_SIMPLE, id="options-concise"),
    pytest.param(SIMPLE, {"format": "concise"}, CONCISE_SIMPLE, id="format-concise"),
    pytest.param(RICH, {}, NORMALIZED_RICH, id="rich-normalized"),
    pytest.param(RICH, {"options": "concise"}, CONCISE_RICH, id="rich-concise"),
    pytest.param(MULTI, {}, NORMALIZED_MULTI, id="multi-attribute-normalized"),
]


@pytest.mark.parametrize(("entity_id", "params", "expected"), FORMAT_CASES)
async def test_retrieve_renders_the_requested_format(
    things: httpx.AsyncClient, entity_id: str, params: dict[str, str], expected: dict[str, Any]
) -> None:
    assert await fetch(things, entity_id, **params) == expected


@pytest.mark.parametrize(("entity_id", "params", "expected"), FORMAT_CASES)
async def test_query_renders_the_requested_format(
    things: httpx.AsyncClient, entity_id: str, params: dict[str, str], expected: dict[str, Any]
) -> None:
    assert await query(things, id=entity_id, **params) == [expected]


async def test_format_parameter_wins_over_options(things: httpx.AsyncClient) -> None:
    body = await fetch(things, SIMPLE, options="keyValues", format="concise")
    assert body == CONCISE_SIMPLE


@pytest.mark.parametrize(
    ("attr", "expected"),
    [
        pytest.param(
            "name",
            {"languageMap": NAMES},
            id="LanguageProperty",
        ),
        pytest.param(
            "category",
            {"vocab": "commercial"},
            id="VocabProperty",
        ),
    ],
)
async def test_key_values_of_language_and_vocab_properties(
    things: httpx.AsyncClient, attr: str, expected: Any
) -> None:
    body = await fetch(things, RICH, options="keyValues")
    assert body[attr] == expected


async def test_key_values_picks_the_default_instance(things: httpx.AsyncClient) -> None:
    body = await fetch(things, MULTI, options="keyValues")
    assert body == {"id": MULTI, "type": "Thing", "speed": 12}


@pytest.mark.parametrize(
    "entity_id",
    [
        SIMPLE,
        RICH,
        pytest.param(
            MULTI,
        ),
        SCOPED,
    ],
)
async def test_concise_is_lossless(things: httpx.AsyncClient, entity_id: str) -> None:
    """A concise body posted back creates the same entity: concise is lossless."""
    concise = await fetch(things, entity_id, options="concise")
    copy_id = entity_id + ":copy"
    response = await things.post(ENTITIES, json={**concise, "id": copy_id})
    assert response.status_code == 201, response.text
    original = await fetch(things, entity_id)
    assert await fetch(things, copy_id) == {**original, "id": copy_id}


# -- system attributes -------------------------------------------------------------------------


async def test_sys_attrs_adds_timestamps_everywhere(things: httpx.AsyncClient) -> None:
    body = await fetch(things, SIMPLE, options="sysAttrs")
    assert without_sys_attrs(body) == NORMALIZED_SIMPLE
    holders = [
        body,
        body["temperature"],
        body["temperature"]["accuracy"],
        body["label"],
        body["refStreet"],
        body["refStreet"]["since"],
        body["location"],
    ]
    for holder in holders:
        for member in SYS_MEMBERS:
            assert TIMESTAMP.match(holder[member]), (member, holder)
    assert body["createdAt"] <= body["modifiedAt"]


async def test_sys_attrs_in_concise_keep_the_value_member(things: httpx.AsyncClient) -> None:
    body = await fetch(things, SIMPLE, options="concise,sysAttrs")
    assert without_sys_attrs(body)["temperature"] == {
        **CONCISE_SIMPLE["temperature"],
        "accuracy": {"value": 0.3},  # no longer a bare value once it carries timestamps
    }
    assert set(body["label"]) == {"value", *SYS_MEMBERS}
    assert body["label"]["value"] == "hello"


async def test_no_sys_attrs_by_default(things: httpx.AsyncClient) -> None:
    for params in ({}, {"options": "concise"}, {"options": "keyValues"}):
        for entity_id in (SIMPLE, RICH, MULTI):
            body = await fetch(things, entity_id, **params)
            keys = {key for key, _ in members(body)}
            assert not keys & set(SYS_MEMBERS), (entity_id, params)


# -- projection: attrs, pick, omit -------------------------------------------------------------

LABEL = {"type": "Property", "value": "hello"}
REF_STREET = NORMALIZED_SIMPLE["refStreet"]


def simple_without(*names: str) -> dict[str, Any]:
    return {k: v for k, v in NORMALIZED_SIMPLE.items() if k not in names}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({"attrs": "label"}, {"id": SIMPLE, "type": "Thing", "label": LABEL},
                     id="attrs"),
        pytest.param({"pick": "label,refStreet"}, {"label": LABEL, "refStreet": REF_STREET},
                     id="pick"),
        pytest.param({"pick": "id,type"}, {"id": SIMPLE, "type": "Thing"}, id="pick-id-type"),
        pytest.param({"pick": "id"}, {"id": SIMPLE}, id="pick-id"),
        pytest.param({"pick": "id,label"}, {"id": SIMPLE, "label": LABEL}, id="pick-id-label"),
        pytest.param({"pick": "id,unknown"}, {"id": SIMPLE}, id="pick-unknown-attribute"),
        pytest.param({"pick": "id,label", "options": "keyValues"}, {"id": SIMPLE, "label": "hello"},
                     id="pick-keyValues"),
        pytest.param({"omit": "label,location"}, simple_without("label", "location"), id="omit"),
        pytest.param({"omit": "type"}, simple_without("type"), id="omit-type"),
        pytest.param(
            {"omit": "id,type"}, simple_without("id", "type"), id="omit-id",
        ),
    ],
)  # fmt: skip
async def test_projection(
    things: httpx.AsyncClient, params: dict[str, str], expected: dict[str, Any]
) -> None:
    assert await fetch(things, SIMPLE, **params) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({}, {"id": SCOPED, "type": ["Thing", "Marker"], "scope": "/Roubaix/Centre",
                          "label": {"type": "Property", "value": "scoped"}}, id="all-members"),
        pytest.param({"pick": "id,scope"}, {"id": SCOPED, "scope": "/Roubaix/Centre"},
                     id="pick-scope"),
        pytest.param({"pick": "id,type"}, {"id": SCOPED, "type": ["Thing", "Marker"]},
                     id="pick-id-type"),
        pytest.param({"omit": "scope,label"}, {"id": SCOPED, "type": ["Thing", "Marker"]},
                     id="omit-scope"),
    ],
)  # fmt: skip
async def test_projection_of_scope(
    things: httpx.AsyncClient, params: dict[str, str], expected: dict[str, Any]
) -> None:
    assert await fetch(things, SCOPED, **params) == expected


async def test_query_attrs_projects_and_selects(things: httpx.AsyncClient) -> None:
    body = await query(things, type="Thing", attrs="label")
    assert body == [
        {"id": SIMPLE, "type": "Thing", "label": LABEL},
        {"id": SCOPED, "type": ["Thing", "Marker"], "scope": "/Roubaix/Centre",
         "label": {"type": "Property", "value": "scoped"}},
    ]  # fmt: skip


async def test_query_pick_id_lists_ids(things: httpx.AsyncClient) -> None:
    body = await query(things, type="Thing", pick="id", idPattern=".*:[123]$")
    assert body == [{"id": SIMPLE}, {"id": RICH}, {"id": MULTI}]


async def test_pick_and_omit_exclude_each_other(things: httpx.AsyncClient) -> None:
    response = await things.get(f"{ENTITIES}/{SIMPLE}", params={"pick": "label", "omit": "tags"})
    assert_problem(response, 400, "BadRequestData")


# -- languages ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({"lang": "fr"}, {"type": "Property", "value": "Bonjour", "lang": "fr"},
                     id="fr"),
        pytest.param({"lang": "en"}, {"type": "Property", "value": "Hello", "lang": "en"},
                     id="en"),
        pytest.param({"lang": "en-GB"}, {"type": "Property", "value": "Hello", "lang": "en"},
                     id="region-falls-back-to-language"),
        pytest.param({"lang": "de,fr"}, {"type": "Property", "value": "Bonjour", "lang": "fr"},
                     id="first-available-of-a-list"),
        pytest.param({"lang": "fr", "options": "keyValues"}, "Bonjour", id="fr-keyValues"),
        pytest.param({"lang": "fr", "options": "concise"}, {"value": "Bonjour", "lang": "fr"},
                     id="fr-concise"),
        pytest.param({"lang": "*"}, {"type": "LanguageProperty", "languageMap": NAMES}, id="all"),
        pytest.param({"lang": "*", "options": "concise"}, {"languageMap": NAMES},
                     id="all-concise"),
        pytest.param({}, {"type": "LanguageProperty", "languageMap": NAMES}, id="no-lang"),
    ],
)  # fmt: skip
async def test_lang_filters_language_properties(
    things: httpx.AsyncClient, params: dict[str, str], expected: Any
) -> None:
    assert (await fetch(things, RICH, **params))["name"] == expected


async def test_lang_leaves_other_attributes_alone(things: httpx.AsyncClient) -> None:
    assert await fetch(things, SIMPLE, lang="fr") == NORMALIZED_SIMPLE
    body = await fetch(things, RICH, lang="fr")
    assert {k: v for k, v in body.items() if k != "name"} == {
        k: v for k, v in NORMALIZED_RICH.items() if k != "name"
    }


# -- media types -------------------------------------------------------------------------------


CORE_LINK = f'<{CORE_CONTEXT}>; rel="{CONTEXT_REL}"; type="application/ld+json"'
#: One entity two ways: retrieval, and a query returning it.
TARGETS = [(f"{ENTITIES}/{SIMPLE}", {}), (ENTITIES, {"id": SIMPLE})]


@pytest.mark.parametrize(
    "accept",
    [None, "application/json", "*/*", "application/*", "text/csv, application/json;q=0.5"],
)
async def test_json_carries_the_context_in_a_link_header(
    things: httpx.AsyncClient, accept: str | None
) -> None:
    headers = {} if accept is None else {"Accept": accept}
    for url, params in TARGETS:
        response = await things.get(url, params=params, headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].split(";")[0] == "application/json"
        assert response.headers["link"] == CORE_LINK
        assert "@context" not in {key for key, _ in members(response.json())}


async def test_json_ld_carries_the_context_in_the_body(things: httpx.AsyncClient) -> None:
    headers = {"Accept": "application/ld+json"}
    response = await things.get(f"{ENTITIES}/{SIMPLE}", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == "application/ld+json"
    assert "link" not in response.headers
    assert response.json() == {**NORMALIZED_SIMPLE, "@context": CORE_CONTEXT}
    response = await things.get(ENTITIES, params={"type": "Thing"}, headers=headers)
    assert response.status_code == 200, response.text
    contexts = [e.pop("@context") for e in response.json()]
    assert contexts == [CORE_CONTEXT] * 4


async def test_json_ld_preferred_by_quality(things: httpx.AsyncClient) -> None:
    headers = {"Accept": "application/json;q=0.4, application/ld+json;q=0.9"}
    response = await things.get(f"{ENTITIES}/{SIMPLE}", headers=headers)
    assert response.headers["content-type"].split(";")[0] == "application/ld+json"
    assert response.json()["@context"] == CORE_CONTEXT


@pytest.mark.parametrize("accept", ["text/csv", "application/xml", "application/json;q=0"])
async def test_unsupported_accept_is_not_acceptable(things: httpx.AsyncClient, accept: str) -> None:
    for url, params in TARGETS:
        response = await things.get(url, params=params, headers={"Accept": accept})
        assert response.status_code == 406, response.text
        assert response.json()["type"].startswith(ERRORS)


# -- GeoJSON -----------------------------------------------------------------------------------

GEO = {"Accept": "application/geo+json"}


def feature(entity: dict[str, Any], geometry: Any) -> dict[str, Any]:
    properties = {k: v for k, v in entity.items() if k != "id"}
    return {"id": entity["id"], "type": "Feature", "geometry": geometry, "properties": properties}


async def geo_get(client: httpx.AsyncClient, url: str, **params: Any) -> Any:
    response = await client.get(url, params=params, headers=GEO)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == "application/geo+json"
    return response.json()


async def test_geojson_collection_uses_location(things: httpx.AsyncClient) -> None:
    body = await geo_get(things, ENTITIES, id=f"{SIMPLE},{RICH}")
    assert body == {
        "type": "FeatureCollection",
        "features": [feature(NORMALIZED_SIMPLE, POINT), feature(NORMALIZED_RICH, None)],
    }


async def test_geojson_geometry_from_another_geoproperty(things: httpx.AsyncClient) -> None:
    body = await geo_get(things, ENTITIES, id=SIMPLE, geometryProperty="entrance")
    assert body == {"type": "FeatureCollection", "features": [feature(NORMALIZED_SIMPLE, ENTRANCE)]}


async def test_geojson_geometry_property_that_is_not_geo(things: httpx.AsyncClient) -> None:
    body = await geo_get(things, ENTITIES, id=SIMPLE, geometryProperty="label")
    assert body["features"][0]["geometry"] is None


async def test_geojson_single_entity_is_a_feature(things: httpx.AsyncClient) -> None:
    assert await geo_get(things, f"{ENTITIES}/{SIMPLE}") == feature(NORMALIZED_SIMPLE, POINT)
    body = await geo_get(things, f"{ENTITIES}/{SIMPLE}", geometryProperty="entrance")
    assert body == feature(NORMALIZED_SIMPLE, ENTRANCE)


async def test_geojson_properties_follow_the_format(things: httpx.AsyncClient) -> None:
    body = await geo_get(things, f"{ENTITIES}/{SIMPLE}", options="keyValues")
    assert body == feature(KEY_VALUES_SIMPLE, POINT)
    body = await geo_get(things, f"{ENTITIES}/{SIMPLE}", options="concise", pick="id,label")
    assert body == {"id": SIMPLE, "type": "Feature", "geometry": POINT,
                    "properties": {"label": "hello"}}  # fmt: skip


async def test_geojson_of_a_query_with_filters(things: httpx.AsyncClient) -> None:
    body = await geo_get(things, ENTITIES, type="Thing", q="label", options="keyValues")
    assert [f["id"] for f in body["features"]] == [SIMPLE, SCOPED]
    assert [f["geometry"] for f in body["features"]] == [POINT, None]


# -- invalid representation parameters ---------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"options": "fancy"}, id="unknown-option"),
        pytest.param({"options": "keyValues,fancy"}, id="unknown-option-in-list"),
        pytest.param({"format": "xml"}, id="unknown-format"),
        pytest.param({"format": ""}, id="empty-format"),
        pytest.param({"pick": "bad name"}, id="bad-pick-name"),
        pytest.param({"omit": "a;b"}, id="bad-omit-name"),
    ],
)
async def test_invalid_representation_parameters(
    things: httpx.AsyncClient, params: dict[str, str]
) -> None:
    for url, target_params in TARGETS:
        response = await things.get(url, params={**target_params, **params})
        assert_problem(response, 400, "BadRequestData")
