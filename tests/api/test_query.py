"""Entity queries over HTTP: GET /entities and POST /entityOperations/query.

A small fixture city (buildings, a parking, streets, sensors, vehicles, districts) is
batch-created for each test; every query asserts the EXACT set of returned ids, worked
out by hand from the dataset below (never by asking the broker). Covers type expressions,
id/idPattern/attrs, every q construct (comparisons, ranges, value lists, regex, existence,
boolean logic, sub-attribute and compound paths, arrays, relationships, multi-attributes),
scopeQ, geo-queries, the Query body, pagination and count, and hostile input.

Geometry of the fixture (lon, lat), around P0 = (3.17, 50.69) in Roubaix:
1e-3 degree of latitude is ~111.2 m, 1e-3 degree of longitude here ~70.4 m (cos 50.69 deg).

* Building:1 at P0; its ``entrance`` GeoProperty at (3.1702, 50.6901), ~18 m from P0.
* Parking:1 at (3.17, 50.6909), 100 m north; ``entrance`` at (3.18, 50.695).
* Building:2 at (3.17, 50.6927), 300 m north.
* Building:3 at (3.07, 50.63), ~9.7 km south-west (Lille).
* District:1 square lon 3.165..3.175, lat 50.685..50.695 (contains P0, Building:1/2, Parking:1).
* District:2 square lon 3.172..3.182, lat 50.687..50.697 (overlaps District:1; its west
  edge is 0.002 degree = ~141 m east of P0; contains Parking:1's entrance).
* District:3 square lon 3.05..3.09, lat 50.62..50.64 (~7.9 km away; contains Building:3).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest

BASE = "/ngsi-ld/v1"
ENTITIES = f"{BASE}/entities"
CREATE = f"{BASE}/entityOperations/create"
QUERY = f"{BASE}/entityOperations/query"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
COUNT = "NGSILD-Results-Count"
ClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def urn(kind: str, n: int | str) -> str:
    return f"urn:ngsi-ld:{kind}:{n}"


B1, B2, B3 = urn("Building", 1), urn("Building", 2), urn("Building", 3)
PK1, ST1, ST2 = urn("Parking", 1), urn("Street", 1), urn("Street", 2)
S1, S2, S3, S4, S5, S6 = (urn("Sensor", n) for n in range(1, 7))
V1, V2 = urn("Vehicle", 1), urn("Vehicle", 2)
D1, D2, D3 = urn("District", 1), urn("District", 2), urn("District", 3)
ALL = {B1, B2, B3, PK1, ST1, ST2, S1, S2, S3, S4, S5, S6, V1, V2, D1, D2, D3}
LOCATED = {B1, B2, B3, PK1, D1, D2, D3}
SENSOR_TYPED = {S1, S2, S3, S4, S5, S6, V2}


# -- the fixture city --------------------------------------------------------------------------


def prop(value: Any, **members: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, **members}


def rel(target: str, **members: Any) -> dict[str, Any]:
    return {"type": "Relationship", "object": target, **members}


def geo(kind: str, coordinates: Any) -> dict[str, Any]:
    return {"type": "GeoProperty", "value": {"type": kind, "coordinates": coordinates}}


def square(west: float, south: float, east: float, north: float) -> list[list[list[float]]]:
    return [[[west, south], [east, south], [east, north], [west, north], [west, south]]]


def dt(text: str) -> dict[str, str]:
    """A DateTime Property value in JSON-LD typed-value form."""
    return {"@type": "DateTime", "@value": text}


P0 = [3.17, 50.69]
DISTRICT_1 = square(3.165, 50.685, 3.175, 50.695)
DISTRICT_2 = square(3.172, 50.687, 3.182, 50.697)
DISTRICT_3 = square(3.05, 50.62, 3.09, 50.64)


def city() -> list[dict[str, Any]]:
    """The fixture dataset, in creation order (17 entities)."""
    return [
        {
            "id": B1,
            "type": "Building",
            "scope": "/Roubaix/Centre",
            "name": prop("Hotel de Ville"),
            "floors": prop(5),
            "open": prop(True),
            "address": prop({"city": "Roubaix", "street": "Grand Place", "zip": "59100"}),
            "tags": prop(["historic", "public"]),
            "refStreet": rel(ST1),
            "location": geo("Point", P0),
            "entrance": geo("Point", [3.1702, 50.6901]),
        },
        {
            "id": B2,
            "type": "Building",
            "scope": "/Roubaix/Nord",
            "name": prop("La Piscine"),
            "floors": prop(2),
            "open": prop(False),
            "address": prop({"city": "Roubaix", "street": "Rue de l'Esperance"}),
            "tags": prop(["museum", "public"]),
            "refStreet": rel(ST2),
            "location": geo("Point", [3.17, 50.6927]),
        },
        {
            "id": B3,
            "type": ["Building", "Parking"],
            "scope": "/Lille",
            "name": prop("Euralille"),
            "floors": prop(12),
            "open": prop(True),
            "address": prop({"city": "Lille"}),
            "capacity": prop(400),
            "refStreet": rel(ST1),
            "location": geo("Point", [3.07, 50.63]),
        },
        {
            "id": PK1,
            "type": "Parking",
            "scope": ["/Roubaix/Centre", "/Roubaix/Gare"],
            "name": prop("Parking Gare"),
            "capacity": prop(120),
            "open": prop(True),
            "location": geo("Point", [3.17, 50.6909]),
            "entrance": geo("Point", [3.18, 50.695]),
        },
        {"id": ST1, "type": "Street", "scope": "/Roubaix/Centre", "name": prop("Grand Place")},
        {"id": ST2, "type": "Street", "name": prop("Rue de l'Esperance")},
        {
            "id": S1,
            "type": "Sensor",
            "scope": "/Roubaix/Centre",
            "temperature": prop(21.5, unitCode="CEL", observedAt="2024-03-01T10:00:00Z"),
            "humidity": prop(40),
            "status": prop("ok"),
            "active": prop(True),
            "speed": prop(12.5, accuracy=prop(0.5)),
            "refStreet": rel(ST1),
            "installedAt": prop("2023-05-10T08:00:00Z"),
            "lastService": prop(dt("2024-02-01T08:00:00Z")),
            "readings": prop([10, 20, 30]),
        },
        {
            "id": S2,
            "type": "Sensor",
            "scope": "/Roubaix/Nord",
            "temperature": prop(18, observedAt="2024-03-02T10:00:00Z"),
            "humidity": prop(55),
            "status": prop("maintenance"),
            "active": prop(False),
            "speed": prop(30, accuracy=prop(2)),
            "refStreet": rel(ST2),
            "installedAt": prop("2022-01-01T00:00:00Z"),
            "lastService": prop(dt("2023-11-20T08:00:00Z")),
            "readings": prop([5, 15]),
        },
        {
            "id": S3,
            "type": "Sensor",
            "scope": "/Roubaix",
            # 2024-02-28T22:30:00Z once in UTC
            "temperature": prop(25, observedAt="2024-02-28T23:30:00+01:00"),
            "status": prop("ok"),
            "active": prop(True),
            "speed": prop(0.8),
            "refStreet": rel(ST1),
            "installedAt": prop("2024-01-15T12:30:00Z"),
        },
        {
            "id": S4,
            "type": "Sensor",
            "scope": "/Lille/Centre",
            "temperature": [
                prop(5, observedAt="2024-01-01T00:00:00Z", datasetId=urn("Dataset", "raw")),
                prop(15, observedAt="2024-03-05T00:00:00Z"),
            ],
            "status": prop("error: offline"),
            "active": prop(False),
            "installedAt": prop("2021-06-30T23:59:59Z"),
        },
        {
            "id": S5,
            "type": "Sensor",
            "temperature": prop(-3.5),
            "humidity": prop(80),
            "status": prop("OK"),
            "speed": prop(0.2, accuracy=prop(0.1)),
            "tags": prop(["outdoor", "calibrated"]),
        },
        {
            "id": S6,
            "type": "Sensor",
            "scope": "/Roubaix/Centre/Nord",
            "status": prop("ok"),
            "active": prop(True),
            "tags": prop(["indoor"]),
        },
        {
            "id": V1,
            "type": "Vehicle",
            "scope": "/Roubaix/Centre",
            "speed": prop(50, accuracy=prop(1.5), observedAt="2024-03-01T09:00:00Z"),
            "plate": prop("AB-123-CD"),
            "refStreet": rel(ST1),
            "owner": prop({"name": "Ville de Roubaix", "fleet": {"id": "F1", "size": 12}}),
        },
        {
            "id": V2,
            "type": ["Vehicle", "Sensor"],
            "speed": prop(0, accuracy=prop(0.9)),
            "plate": prop("EF-456-GH"),
            "temperature": prop(30),
            "status": prop("ok"),
            "active": prop(True),
            "refStreet": rel(ST2),
            "owner": prop({"name": "Ilevia", "fleet": {"id": "F2", "size": 200}}),
        },
        {
            "id": D1,
            "type": "District",
            "scope": "/Roubaix",
            "name": prop("Centre"),
            "location": geo("Polygon", DISTRICT_1),
        },
        {"id": D2, "type": "District", "name": prop("Est"), "location": geo("Polygon", DISTRICT_2)},
        {
            "id": D3,
            "type": "District",
            "scope": "/Lille",
            "name": prop("Lille Centre"),
            "location": geo("Polygon", DISTRICT_3),
        },
    ]


# -- helpers -----------------------------------------------------------------------------------


async def create_entities(client: httpx.AsyncClient, entities: list[dict[str, Any]]) -> None:
    response = await client.post(CREATE, json=entities)
    assert response.status_code == 201, response.text
    assert response.json() == [e["id"] for e in entities]


@pytest.fixture
async def city_client(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """The default client with the fixture city created."""
    await create_entities(client, city())
    return client


async def get_entities(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(ENTITIES, params={"limit": 100, **params})
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


def ids_of(entities: Iterable[dict[str, Any]]) -> list[str]:
    return [e["id"] for e in entities]


def assert_ids(found: list[str], expected: set[str]) -> None:
    """Exactly the expected entities, each once."""
    assert len(found) == len(set(found)), f"duplicates in {found}"
    assert set(found) == expected


async def assert_query(
    client: httpx.AsyncClient, params: dict[str, Any], expected: set[str]
) -> None:
    assert_ids(ids_of(await get_entities(client, **params)), expected)


def assert_problem(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["type"] == ERRORS + error
    assert isinstance(body["title"], str) and body["title"]
    return body


def coords(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


EVERYTHING = {"idPattern": ".*"}


async def total(client: httpx.AsyncClient, **params: Any) -> int:
    """NGSILD-Results-Count of a limit=0&count=true query."""
    response = await client.get(ENTITIES, params={**params, "limit": 0, "count": "true"})
    assert response.status_code == 200, response.text
    assert response.json() == []
    return int(response.headers[COUNT])


# -- type, id, idPattern, attrs ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({"type": "Building"}, {B1, B2, B3}, id="single-type"),
        pytest.param({"type": "Parking"}, {B3, PK1}, id="multi-typed-entity-matches-each"),
        pytest.param({"type": "Vehicle"}, {V1, V2}, id="vehicle"),
        pytest.param({"type": "Sensor"}, SENSOR_TYPED, id="sensor-includes-vehicle-sensor"),
        pytest.param({"type": "Building,Street"}, {B1, B2, B3, ST1, ST2}, id="comma-list"),
        pytest.param({"type": "Building|Street"}, {B1, B2, B3, ST1, ST2}, id="pipe-or"),
        pytest.param({"type": "Building;Parking"}, {B3}, id="and"),
        pytest.param({"type": "Sensor;Vehicle"}, {V2}, id="and-2"),
        pytest.param({"type": "(Building;Parking)|Street"}, {B3, ST1, ST2}, id="expression"),
        pytest.param({"type": "Street|(Vehicle;Sensor)"}, {ST1, ST2, V2}, id="expression-2"),
        pytest.param({"type": "Unknown"}, set(), id="unknown-type"),
        pytest.param({"id": f"{S1},{B2}"}, {S1, B2}, id="id-list"),
        pytest.param({"id": f"{S1},{B2}", "type": "Sensor"}, {S1}, id="id-list-and-type"),
        pytest.param({"id": urn("Sensor", 99)}, set(), id="unknown-id"),
        pytest.param({"idPattern": "^urn:ngsi-ld:Sensor:[1-3]$"}, {S1, S2, S3}, id="idPattern"),
        pytest.param({"idPattern": "^urn:ngsi-ld:Street:.*"}, {ST1, ST2}, id="idPattern-2"),
        pytest.param(
            {"idPattern": "^urn:ngsi-ld:(Vehicle|Building):[12]$", "type": "Vehicle"},
            {V1, V2},
            id="idPattern-and-type",
        ),
        pytest.param({"attrs": "humidity"}, {S1, S2, S5}, id="attrs-one"),
        pytest.param({"attrs": "humidity,capacity"}, {S1, S2, S5, B3, PK1}, id="attrs-any-of"),
        pytest.param({"attrs": "plate", "type": "Sensor"}, {V2}, id="attrs-and-type"),
        pytest.param({"attrs": "nothing"}, set(), id="attrs-none-has-it"),
    ],
)
async def test_entity_selection(
    city_client: httpx.AsyncClient, params: dict[str, str], expected: set[str]
) -> None:
    await assert_query(city_client, params, expected)


async def test_attrs_projects_to_the_listed_attributes(city_client: httpx.AsyncClient) -> None:
    body = await get_entities(city_client, attrs="humidity,capacity", type="Sensor,Parking")
    by_id = {e["id"]: e for e in body}
    assert set(by_id) == {S1, S2, S5, B3, PK1}
    assert by_id[S1] == {
        "id": S1,
        "type": "Sensor",
        "scope": "/Roubaix/Centre",
        "humidity": {"type": "Property", "value": 40},
    }
    assert by_id[B3] == {
        "id": B3,
        "type": ["Building", "Parking"],
        "scope": "/Lille",
        "capacity": {"type": "Property", "value": 400},
    }
    assert by_id[S5] == {"id": S5, "type": "Sensor", "humidity": {"type": "Property", "value": 80}}


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"idPattern": "[unclosed"}, id="bad-idPattern"),
        pytest.param({"id": "not a uri"}, id="id-not-uri"),
        pytest.param({"type": "Building'"}, id="type-quote"),
        pytest.param({"type": "(Building"}, id="type-unbalanced"),
        pytest.param({"type": "Building;"}, id="type-dangling-and"),
        pytest.param({"attrs": "bad name"}, id="attrs-space"),
        pytest.param({"type": "Building", "colour": "red"}, id="unknown-parameter"),
    ],
)
async def test_invalid_selection_is_bad_request(
    city_client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    assert_problem(await city_client.get(ENTITIES, params=params), 400, "BadRequestData")


# -- q -----------------------------------------------------------------------------------------

Q_CASES = [
    # numbers
    pytest.param("temperature==18", {S2}, id="num-eq-int"),
    pytest.param("temperature==21.5", {S1}, id="num-eq-float"),
    pytest.param("temperature!=18", {S1, S3, S4, S5, V2}, id="num-ne"),
    pytest.param("temperature>20", {S1, S3, V2}, id="num-gt"),
    pytest.param("temperature>=18", {S1, S2, S3, V2}, id="num-ge-boundary"),
    pytest.param("temperature<0", {S5}, id="num-lt-negative"),
    pytest.param("temperature>-4;temperature<-3", {S5}, id="num-negative-literal"),
    pytest.param("temperature<=15", {S4, S5}, id="num-le-boundary"),
    pytest.param("temperature==10..20", {S2, S4}, id="num-range"),
    pytest.param("floors==2..5", {B1, B2}, id="num-range-inclusive"),
    pytest.param("floors!=2..5", {B3}, id="num-range-negated"),
    pytest.param("humidity==40,80", {S1, S5}, id="num-value-list"),
    pytest.param("humidity!=40,80", {S2}, id="num-value-list-negated"),
    # strings (quoted)
    pytest.param('status=="ok"', {S1, S3, S6, V2}, id="str-eq"),
    pytest.param('status!="ok"', {S2, S4, S5}, id="str-ne"),
    pytest.param('status=="ok","maintenance"', {S1, S2, S3, S6, V2}, id="str-value-list"),
    pytest.param('name>"M"', {PK1, ST2}, id="str-gt"),
    pytest.param('name<="Est"', {D1, D2}, id="str-le-boundary"),
    pytest.param('name=="C".."F"', {B3, D1, D2}, id="str-range"),
    pytest.param('plate=="AB-123-CD"', {V1}, id="str-with-dashes"),
    pytest.param('name=="Rue de l\'Esperance"', {ST2}, id="str-with-quote-and-spaces"),
    pytest.param('temperature=="18"', set(), id="string-never-equals-number"),
    # booleans
    pytest.param("active==true", {S1, S3, S6, V2}, id="bool-true"),
    pytest.param("active==false", {S2, S4}, id="bool-false"),
    pytest.param("active!=true", {S2, S4}, id="bool-ne"),
    pytest.param("open==false", {B2}, id="bool-false-2"),
    # dateTimes as Property values
    pytest.param("installedAt>2023-01-01T00:00:00Z", {S1, S3}, id="dt-gt"),
    pytest.param("installedAt<2022-06-01T00:00:00Z", {S2, S4}, id="dt-lt"),
    pytest.param(
        "installedAt==2021-01-01T00:00:00Z..2022-12-31T23:59:59Z", {S2, S4}, id="dt-range"
    ),
    pytest.param("installedAt==2023-05-10T08:00:00Z", {S1}, id="dt-eq"),
    pytest.param("installedAt<=2022-01-01T00:00:00Z", {S2, S4}, id="dt-le-boundary"),
    pytest.param(
        "installedAt>2024-01-15T13:30:00+01:00",
        set(),
        id="dt-gt-boundary-offset",
    ),  # fmt: skip
    pytest.param("lastService>2024-01-01T00:00:00Z", {S1}, id="dt-typed-value"),
    # sub-attributes: observedAt / unitCode members and sub-properties
    pytest.param("temperature.observedAt>2024-03-01T00:00:00Z", {S1, S2, S4}, id="observedAt"),
    pytest.param(
        "temperature.observedAt<2024-02-29T00:00:00+01:00", {S3, S4}, id="observedAt-offset"
    ),
    pytest.param(
        "temperature.observedAt==2024-02-28T22:30:00Z", {S3}, id="observedAt-eq-normalised"
    ),
    pytest.param('temperature.unitCode=="CEL"', {S1}, id="unitCode"),
    pytest.param("speed.accuracy<1", {S1, S5, V2}, id="sub-property-lt"),
    pytest.param("speed.accuracy==2", {S2}, id="sub-property-eq"),
    pytest.param("speed.accuracy", {S1, S2, S5, V1, V2}, id="sub-property-exists"),
    pytest.param("speed;!speed.accuracy", {S3}, id="sub-property-missing"),
    pytest.param("speed.observedAt", {V1}, id="observedAt-exists"),
    # compound values
    pytest.param('address[city]=="Roubaix"', {B1, B2}, id="compound"),
    pytest.param('address[city]!="Roubaix"', {B3}, id="compound-ne"),
    pytest.param("address[zip]", {B1}, id="compound-member-exists"),
    pytest.param("owner[fleet][size]>100", {V2}, id="compound-nested"),
    pytest.param("owner[name]~=Roubaix", {V1}, id="compound-regex"),
    # arrays: a term matches when any element matches
    pytest.param('tags=="public"', {B1, B2}, id="array-element"),
    pytest.param('tags=="indoor","outdoor"', {S5, S6}, id="array-value-list"),
    pytest.param("readings==20", {S1}, id="array-number"),
    pytest.param("readings>25", {S1}, id="array-number-gt"),
    pytest.param("readings==12..16", {S2}, id="array-range"),
    # regular expressions
    pytest.param("status~=^err", {S4}, id="regex"),
    pytest.param("status~=(?i)^ok$", {S1, S3, S5, S6, V2}, id="regex-inline-flag"),
    pytest.param("status!~=ok", {S2, S4, S5}, id="regex-negated"),
    pytest.param("name~=Centre$", {D1, D3}, id="regex-anchor"),
    pytest.param('plate~="^[A-Z]{2}-[0-9]{3}-"', {V1, V2}, id="regex-quoted"),
    pytest.param("humidity~=4", set(), id="regex-never-matches-numbers"),
    # existence
    pytest.param("humidity", {S1, S2, S5}, id="exists"),
    pytest.param("!temperature", ALL - {S1, S2, S3, S4, S5, V2}, id="not-exists"),
    pytest.param("capacity;!floors", {PK1}, id="exists-and-not-exists"),
    # != never matches an entity lacking the attribute
    pytest.param("humidity!=40", {S2, S5}, id="ne-skips-missing"),
    pytest.param("floors!=5", {B2, B3}, id="ne-skips-missing-2"),
    # relationships
    pytest.param(f"refStreet=={ST1}", {B1, B3, S1, S3, V1}, id="relationship"),
    pytest.param(f'refStreet=="{ST2}"', {B2, S2, V2}, id="relationship-quoted"),
    pytest.param(f"refStreet!={ST1}", {B2, S2, V2}, id="relationship-ne"),
    pytest.param(f"refStreet=={ST1},{ST2}", {B1, B2, B3, S1, S2, S3, V1, V2}, id="rel-list"),
    # multi-attributes: any instance may match
    pytest.param("temperature==5", {S4}, id="multi-instance-dataset"),
    pytest.param("temperature==5;temperature==15", {S4}, id="multi-instance-both"),
    pytest.param("temperature!=5", {S1, S2, S3, S4, S5, V2}, id="multi-instance-ne"),
    pytest.param("temperature.observedAt<2024-02-01T00:00:00Z", {S4}, id="multi-observedAt"),
    # boolean logic and precedence (';' binds tighter than '|')
    pytest.param("temperature>20;humidity", {S1}, id="and"),
    pytest.param("temperature<0|humidity==55", {S2, S5}, id="or"),
    pytest.param("humidity==80|temperature>20;active==true", {S1, S3, S5, V2}, id="precedence"),
    pytest.param("(humidity==80|temperature>20);active==true", {S1, S3, V2}, id="parentheses"),
    pytest.param(
        '((temperature>20|humidity>50);active==true)|plate=="AB-123-CD"',
        {S1, S3, V1, V2},
        id="nested-parentheses",
    ),
    pytest.param(
        " temperature > 20 ; ( humidity | active == true ) ", {S1, S3, V2}, id="whitespace"
    ),
    pytest.param("floors>100|capacity>1000", set(), id="nothing-matches"),
]


@pytest.mark.parametrize(("q", "expected"), Q_CASES)
async def test_q(city_client: httpx.AsyncClient, q: str, expected: set[str]) -> None:
    await assert_query(city_client, {"q": q}, expected)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({"type": "Sensor", "q": "!temperature"}, {S6}, id="type-and-not-exists"),
        pytest.param({"type": "Vehicle", "q": "speed>10"}, {V1}, id="type-and-q"),
        pytest.param({"type": "Building", "q": "floors>3", "attrs": "floors"}, {B1, B3}, id="all"),
        pytest.param({"id": f"{S1},{S2}", "q": "humidity>50"}, {S2}, id="id-and-q"),
        pytest.param(
            {"idPattern": "^urn:ngsi-ld:Sensor:.*$", "q": 'status=="ok"', "scopeQ": "/Roubaix/#"},
            {S1, S3, S6},
            id="idPattern-q-scopeQ",
        ),
    ],
)
async def test_filters_combine_with_and(
    city_client: httpx.AsyncClient, params: dict[str, str], expected: set[str]
) -> None:
    await assert_query(city_client, params, expected)


@pytest.mark.parametrize(
    "q",
    [
        pytest.param("temperature>", id="missing-value"),
        pytest.param("temperature=3", id="single-equals"),
        pytest.param("temperature>1..3", id="range-with-gt"),
        pytest.param("temperature>1,2", id="list-with-gt"),
        pytest.param("temperature==2024-1-31", id="malformed-date"),
        pytest.param('status=="unterminated', id="unterminated-string"),
        pytest.param("!status==ok", id="negated-comparison"),
        pytest.param("status;", id="dangling-and"),
        pytest.param("|status", id="leading-or"),
        pytest.param("address[city", id="unclosed-compound"),
        pytest.param("address[]", id="empty-compound"),
        pytest.param("speed..accuracy", id="empty-sub-attribute"),
    ],
)
async def test_malformed_q_is_bad_request(city_client: httpx.AsyncClient, q: str) -> None:
    assert_problem(await city_client.get(ENTITIES, params={"q": q}), 400, "BadRequestData")


# -- scopeQ ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope_q", "expected"),
    [
        pytest.param("/Roubaix/Centre", {B1, PK1, ST1, S1, V1}, id="exact"),
        pytest.param("/Roubaix", {S3, D1}, id="exact-parent-only"),
        pytest.param("/Lille", {B3, D3}, id="exact-2"),
        pytest.param("/Roubaix/#", {B1, B2, PK1, ST1, S1, S2, S3, S6, V1, D1}, id="descendants"),
        pytest.param("/Roubaix/Centre/#", {B1, PK1, ST1, S1, S6, V1}, id="descendants-2"),
        pytest.param("/Lille/#", {B3, D3, S4}, id="descendants-3"),
        pytest.param("/#", ALL - {ST2, S5, V2, D2}, id="all-scoped"),
        pytest.param("/Roubaix/Centre;/Roubaix/Gare", {PK1}, id="and"),
        pytest.param("/Lille|/Roubaix/Nord", {B2, B3, S2, D3}, id="or"),
        pytest.param("/Nowhere", set(), id="unknown"),
        pytest.param("(/Lille/#|/Roubaix/Gare);/#", {B3, D3, S4, PK1}, id="grouped"),
    ],
)
async def test_scope_q(city_client: httpx.AsyncClient, scope_q: str, expected: set[str]) -> None:
    await assert_query(city_client, {"scopeQ": scope_q}, expected)


@pytest.mark.parametrize("scope_q", ["Roubaix", "/Roubaix/", "/Rou baix", "/Roubaix/#/Centre"])
async def test_malformed_scope_q_is_bad_request(
    city_client: httpx.AsyncClient, scope_q: str
) -> None:
    response = await city_client.get(ENTITIES, params={"scopeQ": scope_q})
    assert_problem(response, 400, "BadRequestData")


# -- geo-queries -------------------------------------------------------------------------------

QW = square(3.168, 50.688, 3.1715, 50.694)  # holds Building:1, Building:2 and Parking:1 only


def geo_params(georel: str, geometry: str, coordinates: Any, **extra: str) -> dict[str, str]:
    return {"georel": georel, "geometry": geometry, "coordinates": coords(coordinates), **extra}


GEO_CASES = [
    pytest.param(
        geo_params("near;maxDistance==500", "Point", P0), {B1, B2, PK1, D1, D2}, id="near-500"
    ),
    pytest.param(
        geo_params("near;maxDistance==200", "Point", P0), {B1, PK1, D1, D2}, id="near-200"
    ),
    pytest.param(
        geo_params("near;maxDistance==500", "Point", P0, type="Building"), {B1, B2},
        id="near-500-building-300m-in",
    ),
    pytest.param(
        geo_params("near;maxDistance==200", "Point", P0, type="Building"), {B1},
        id="near-200-building-300m-out",
    ),
    pytest.param(  # Building:2 is 0.0027 degree north: 0.0027 * 111 195 m = 300.2 m
        geo_params("near;maxDistance==299", "Point", P0, type="Building"), {B1},
        id="near-299-building-just-out",
    ),
    pytest.param(
        geo_params("near;maxDistance==302", "Point", P0, type="Building"), {B1, B2},
        id="near-302-building-just-in",
    ),
    pytest.param(geo_params("near;minDistance==5000", "Point", P0), {B3, D3}, id="near-min"),
    pytest.param(
        geo_params("near;minDistance==200;maxDistance==500", "Point", P0), {B2}, id="near-band"
    ),
    pytest.param(geo_params("within", "Polygon", QW), {B1, B2, PK1}, id="within"),
    pytest.param(geo_params("within", "Polygon", DISTRICT_3), {B3, D3}, id="within-itself"),
    pytest.param(geo_params("contains", "Point", [3.173, 50.69]), {D1, D2}, id="contains"),
    pytest.param(geo_params("contains", "Point", [3.171, 50.689]), {D1}, id="contains-2"),
    pytest.param(
        geo_params("intersects", "LineString", [[3.16, 50.69], [3.18, 50.69]]), {B1, D1, D2},
        id="intersects-line",
    ),
    pytest.param(geo_params("intersects", "Polygon", QW), {B1, B2, PK1, D1}, id="intersects"),
    pytest.param(geo_params("disjoint", "Polygon", QW), {B3, D2, D3}, id="disjoint"),
    pytest.param(
        geo_params("overlaps", "Polygon", square(3.16, 50.689, 3.168, 50.691)), {D1},
        id="overlaps",
    ),
    pytest.param(geo_params("equals", "Point", P0), {B1}, id="equals-point"),
    pytest.param(geo_params("equals", "Polygon", DISTRICT_3), {D3}, id="equals-polygon"),
    pytest.param(
        geo_params("near;maxDistance==50", "Point", P0, geoproperty="entrance"), {B1},
        id="geoproperty-near",
    ),
    pytest.param(
        geo_params("within", "Polygon", DISTRICT_2, geoproperty="entrance"), {PK1},
        id="geoproperty-within",
    ),
    pytest.param(
        geo_params("near;maxDistance==500", "Point", P0, q="floors>3"), {B1}, id="geo-and-q"
    ),
]  # fmt: skip


@pytest.mark.parametrize(("params", "expected"), GEO_CASES)
async def test_geo_query(
    city_client: httpx.AsyncClient, params: dict[str, str], expected: set[str]
) -> None:
    await assert_query(city_client, params, expected)


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"georel": "near;maxDistance==500", "coordinates": "[3.17,50.69]"},
                     id="no-geometry"),
        pytest.param({"geometry": "Point", "coordinates": "[3.17,50.69]"}, id="no-georel"),
        pytest.param({"georel": "within", "geometry": "Point"}, id="no-coordinates"),
        pytest.param({"georel": "near;maxDistance==500", "geometry": "Point",
                      "coordinates": "[3.17,"}, id="coordinates-not-json"),
        pytest.param(geo_params("near;maxDistance==500", "Point", [3.17]), id="one-coordinate"),
        pytest.param(geo_params("near;maxDistance==500", "Point", [200, 50.69]),
                     id="longitude-out-of-range"),
        pytest.param(geo_params("near;maxDistance==500", "Polygon", [[[0, 0], [1, 0], [1, 1]]]),
                     id="open-ring"),
        pytest.param(geo_params("touches", "Point", P0), id="unknown-georel"),
        pytest.param(geo_params("near", "Point", P0), id="near-without-distance"),
        pytest.param(geo_params("near;maxDistance==-5", "Point", P0), id="negative-distance"),
        pytest.param(geo_params("within;maxDistance==5", "Polygon", QW), id="modifier-on-within"),
        pytest.param(geo_params("near;maxDistance==5", "Circle", P0), id="unknown-geometry"),
        pytest.param(geo_params("near;maxDistance==5", "Point", P0, geoproperty="a;b"),
                     id="bad-geoproperty"),
    ],
)  # fmt: skip
async def test_invalid_geo_query_is_bad_request(
    city_client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    assert_problem(await city_client.get(ENTITIES, params=params), 400, "BadRequestData")


# -- POST /entityOperations/query --------------------------------------------------------------

NEAR_500 = {"geometry": "Point", "coordinates": P0, "georel": "near;maxDistance==500"}


@pytest.mark.parametrize(
    ("query", "get_params", "expected"),
    [
        pytest.param(
            {"entities": [{"type": "Sensor"}], "q": "temperature>20"},
            {"type": "Sensor", "q": "temperature>20"},
            {S1, S3, V2},
            id="type-and-q",
        ),
        pytest.param(
            {"entities": [{"type": "Building"}], "geoQ": NEAR_500},
            {"type": "Building", **geo_params("near;maxDistance==500", "Point", P0)},
            {B1, B2},
            id="geoQ",
        ),
        pytest.param(
            {"geoQ": {**NEAR_500, "georel": "near;maxDistance==50", "geoproperty": "entrance"}},
            geo_params("near;maxDistance==50", "Point", P0, geoproperty="entrance"),
            {B1},
            id="geoQ-geoproperty",
        ),
        pytest.param(
            {"entities": [{"type": "Sensor"}], "scopeQ": "/Roubaix/#", "q": "active==true"},
            {"type": "Sensor", "scopeQ": "/Roubaix/#", "q": "active==true"},
            {S1, S3, S6},
            id="scopeQ",
        ),
        pytest.param(
            {"attrs": ["humidity", "capacity"], "q": "humidity>50|capacity>200"},
            {"attrs": "humidity,capacity", "q": "humidity>50|capacity>200"},
            {S2, S5, B3},
            id="attrs-selects",
        ),
        pytest.param(
            {"entities": [{"idPattern": "^urn:ngsi-ld:Sensor:[45]$", "type": "Sensor"}]},
            {"idPattern": "^urn:ngsi-ld:Sensor:[45]$", "type": "Sensor"},
            {S4, S5},
            id="idPattern",
        ),
        pytest.param(
            {"entities": [{"id": S1, "type": "Sensor"}, {"id": S2, "type": "Sensor"}]},
            {"id": f"{S1},{S2}", "type": "Sensor"},
            {S1, S2},
            id="ids",
        ),
        pytest.param(
            {"entities": [{"type": "(Building;Parking)|Street"}]},
            {"type": "(Building;Parking)|Street"},
            {B3, ST1, ST2},
            id="type-expression",
        ),
    ],
)
async def test_post_query_matches_get(
    city_client: httpx.AsyncClient,
    query: dict[str, Any],
    get_params: dict[str, str],
    expected: set[str],
) -> None:
    response = await city_client.post(QUERY, json={"type": "Query", **query})
    assert response.status_code == 200, response.text
    assert_ids(ids_of(response.json()), expected)
    assert response.json() == await get_entities(city_client, **get_params)


async def test_post_query_projects_attrs(city_client: httpx.AsyncClient) -> None:
    response = await city_client.post(
        QUERY,
        json={"type": "Query", "entities": [{"type": "Vehicle"}], "attrs": ["plate"]},
    )
    assert response.status_code == 200, response.text
    assert response.json() == await get_entities(city_client, type="Vehicle", attrs="plate")
    assert response.json() == [
        {"id": V1, "type": "Vehicle", "scope": "/Roubaix/Centre", "plate": prop("AB-123-CD")},
        {"id": V2, "type": ["Vehicle", "Sensor"], "plate": prop("EF-456-GH")},
    ]


async def test_post_query_pages_and_counts(city_client: httpx.AsyncClient) -> None:
    body = {"type": "Query", "entities": [{"type": "Sensor"}]}
    response = await city_client.post(
        QUERY, json=body, params={"limit": 2, "offset": 1, "count": "true"}
    )
    assert response.status_code == 200, response.text
    assert ids_of(response.json()) == [S2, S3]
    assert response.headers[COUNT] == "7"


async def test_post_query_entity_selectors_are_alternatives(
    city_client: httpx.AsyncClient,
) -> None:
    response = await city_client.post(
        QUERY,
        json={"type": "Query", "entities": [{"type": "Building"}, {"id": S1, "type": "Sensor"}]},
    )
    assert response.status_code == 200, response.text
    assert_ids(ids_of(response.json()), {B1, B2, B3, S1})


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"type": "Subscription", "entities": [{"type": "Sensor"}]}, id="wrong-type"),
        pytest.param({"entities": [{"type": "Sensor"}]}, id="no-type"),
        pytest.param([{"type": "Query"}], id="array"),
        pytest.param({"type": "Query", "entities": {"type": "Sensor"}}, id="entities-object"),
        pytest.param({"type": "Query", "entities": ["Sensor"]}, id="selector-string"),
        pytest.param({"type": "Query", "q": 42}, id="q-number"),
        pytest.param({"type": "Query", "q": "temperature>"}, id="q-malformed"),
        pytest.param({"type": "Query", "scopeQ": ["/Roubaix"]}, id="scopeQ-array"),
        pytest.param({"type": "Query", "geoQ": "near"}, id="geoQ-string"),
        pytest.param({"type": "Query", "geoQ": {"georel": "near;maxDistance==5"}},
                     id="geoQ-partial"),
        pytest.param({"type": "Query", "attrs": "name"}, id="attrs-string"),
        pytest.param({"type": "Query", "entities": [{"type": "Bad Type"}]}, id="bad-type-name"),
    ],
)  # fmt: skip
async def test_post_query_rejects_wrong_bodies(city_client: httpx.AsyncClient, body: Any) -> None:
    assert_problem(await city_client.post(QUERY, json=body), 400, "BadRequestData")


async def test_post_query_rejects_non_json(city_client: httpx.AsyncClient) -> None:
    response = await city_client.post(
        QUERY, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 400, "InvalidRequest")


# -- pagination and count ----------------------------------------------------------------------

ITEM_COUNT = 150


def items() -> list[dict[str, Any]]:
    """150 entities whose ids are not in creation order when sorted (37 is prime to 150)."""
    return [
        {"id": urn("Item", f"{i * 37 % ITEM_COUNT:03d}"), "type": "Item", "n": prop(i)}
        for i in range(ITEM_COUNT)
    ]


@pytest.fixture
async def items_client(client: httpx.AsyncClient) -> httpx.AsyncClient:
    entities = items()
    for start in range(0, ITEM_COUNT, 50):
        await create_entities(client, entities[start : start + 50])
    return client


async def test_walking_all_pages_yields_every_entity_once_in_creation_order(
    items_client: httpx.AsyncClient,
) -> None:
    walked: list[str] = []
    pages = 0
    while True:
        page = ids_of(await get_entities(items_client, type="Item", limit=7, offset=len(walked)))
        if not page:
            break
        pages += 1
        assert len(page) == 7 or len(walked) + len(page) == ITEM_COUNT
        walked.extend(page)
    assert pages == 22  # 21 full pages and one of 3
    assert walked == ids_of(items())
    assert sorted(walked) != walked  # the order is creation order, not id order


async def test_limit_and_offset_select_a_window(items_client: httpx.AsyncClient) -> None:
    expected = ids_of(items())
    assert ids_of(await get_entities(items_client, type="Item", limit=5)) == expected[:5]
    window = await get_entities(items_client, type="Item", limit=4, offset=100)
    assert ids_of(window) == expected[100:104]
    assert await get_entities(items_client, type="Item", limit=10, offset=ITEM_COUNT) == []
    tail = await get_entities(items_client, type="Item", limit=10, offset=145)
    assert ids_of(tail) == expected[145:]


async def test_pages_of_a_filtered_query_are_stable(items_client: httpx.AsyncClient) -> None:
    expected = [urn("Item", f"{i * 37 % ITEM_COUNT:03d}") for i in range(100, ITEM_COUNT)]
    walked: list[str] = []
    for offset in range(0, 50, 9):
        page = await get_entities(items_client, type="Item", q="n>=100", limit=9, offset=offset)
        walked.extend(ids_of(page))
    assert walked == expected


async def test_count_sets_the_results_count_header(items_client: httpx.AsyncClient) -> None:
    response = await items_client.get(
        ENTITIES, params={"type": "Item", "limit": 7, "count": "true"}
    )
    assert response.status_code == 200
    assert response.headers[COUNT] == str(ITEM_COUNT)
    assert len(response.json()) == 7
    assert await total(items_client, type="Item") == ITEM_COUNT
    assert await total(items_client, type="Item", q="n<10") == 10
    assert await total(items_client, type="Nothing") == 0


async def test_count_header_is_absent_by_default(items_client: httpx.AsyncClient) -> None:
    response = await items_client.get(ENTITIES, params={"type": "Item"})
    assert COUNT not in response.headers
    response = await items_client.get(ENTITIES, params={"type": "Item", "count": "false"})
    assert COUNT not in response.headers


async def test_limit_zero_needs_count(items_client: httpx.AsyncClient) -> None:
    response = await items_client.get(ENTITIES, params={"type": "Item", "limit": 0})
    assert_problem(response, 400, "BadRequestData")


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"limit": "-1"}, id="negative-limit"),
        pytest.param({"offset": "-1"}, id="negative-offset"),
        pytest.param({"limit": "abc"}, id="limit-text"),
        pytest.param({"limit": "2.5"}, id="limit-decimal"),
        pytest.param({"limit": ""}, id="limit-empty"),
        pytest.param({"offset": "1e3"}, id="offset-exponent"),
        pytest.param({"count": "yes"}, id="count-not-boolean"),
    ],
)
async def test_invalid_paging_parameters_are_bad_request(
    city_client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await city_client.get(ENTITIES, params={"type": "Sensor", **params})
    assert_problem(response, 400, "BadRequestData")


async def test_limit_above_the_maximum_is_too_many_results(
    client_factory: ClientFactory,
) -> None:
    async with client_factory(max_page_size=50) as client:
        await create_entities(client, city())
        response = await client.get(ENTITIES, params={"type": "Sensor", "limit": 51})
        body = assert_problem(response, 403, "TooManyResults")
        assert body["type"] == "https://uri.etsi.org/ngsi-ld/errors/TooManyResults"
        ok = await client.get(ENTITIES, params={"type": "Sensor", "limit": 50})
        assert ok.status_code == 200
        assert_ids(ids_of(ok.json()), SENSOR_TYPED)
        post = await client.post(QUERY, json={"type": "Query"}, params={"limit": 51})
        assert_problem(post, 403, "TooManyResults")


async def test_default_page_size_is_honoured(client_factory: ClientFactory) -> None:
    async with client_factory(default_page_size=5) as client:
        await create_entities(client, city())
        response = await client.get(ENTITIES, params={"type": "Sensor", "count": "true"})
        assert response.status_code == 200
        assert ids_of(response.json()) == [S1, S2, S3, S4, S5]
        assert response.headers[COUNT] == "7"
        second = await client.get(ENTITIES, params={"type": "Sensor", "offset": 5})
        assert ids_of(second.json()) == [S6, V2]


# -- hostile input -----------------------------------------------------------------------------

DEEP = 200


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"q": "status;DROP TABLE entities"}, id="sql-statement"),
        pytest.param({"q": 'status=="ok");DROP TABLE entities;--'}, id="sql-after-paren"),
        pytest.param({"q": "status==ok' OR '1'='1"}, id="sql-unquoted"),
        pytest.param({"q": '(status=="ok"'}, id="unbalanced-open"),
        pytest.param({"q": 'status=="ok")'}, id="unbalanced-close"),
        pytest.param({"q": "((humidity)"}, id="unbalanced-nested"),
        pytest.param({"q": "(" * DEEP + "humidity" + ")" * DEEP}, id="deep-nesting"),
        pytest.param({"q": "|".join(["humidity==1"] * 900)}, id="huge-q"),
        pytest.param({"q": 'name=="' + "x" * 10_000 + '"'}, id="huge-string"),
        pytest.param({"q": "humidity==" + "9" * 10_000}, id="huge-number"),
        pytest.param({"q": "status~=("}, id="invalid-regex"),
        pytest.param({"q": 'status~="[a-"'}, id="invalid-quoted-regex"),
        pytest.param({"q": "status~=" + "(" * 500 + "a" + ")" * 500}, id="regex-too-deep"),
        pytest.param({"q": "status~=a{2,1}"}, id="regex-bad-repeat"),
        pytest.param({"q": 'address[city"]=="x"'}, id="compound-quote"),
        pytest.param({"q": 'address[x"] OR 1=1 --]'}, id="compound-sql"),
        pytest.param({"q": "na\x00me==1"}, id="nul-byte"),
        pytest.param({"idPattern": "(?P<x"}, id="invalid-idPattern"),
        pytest.param({"type": "Building' OR '1'='1"}, id="type-injection"),
        pytest.param({"attrs": 'name" OR 1=1 --'}, id="attrs-injection"),
        pytest.param({"scopeQ": "/Roubaix' OR 1=1 --"}, id="scopeQ-injection"),
        pytest.param({"scopeQ": "(" * DEEP + "/Roubaix" + ")" * DEEP}, id="scopeQ-deep"),
        pytest.param({"type": "(" * DEEP + "Building" + ")" * DEEP}, id="type-deep"),
        pytest.param(
            geo_params("near;maxDistance==1e400", "Point", P0), id="geo-infinite-distance"
        ),
    ],
)
async def test_hostile_input_is_bad_request_and_harmless(
    city_client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await city_client.get(ENTITIES, params=params)
    assert_problem(response, 400, "BadRequestData")
    assert await total(city_client, **EVERYTHING) == len(ALL)
    assert_ids(ids_of(await get_entities(city_client, type="Building")), {B1, B2, B3})


@pytest.mark.parametrize(
    "q",
    [
        pytest.param('name=="x\' OR 1=1 --"', id="quoted-sql"),
        pytest.param('name=="\'; DROP TABLE entities; --"', id="quoted-drop"),
        pytest.param('name=="\\" OR 1=1 --"', id="escaped-quote"),
        pytest.param("name~=.*' OR '1'='1", id="regex-sql"),
    ],
)
async def test_sql_in_values_is_just_data(city_client: httpx.AsyncClient, q: str) -> None:
    """Well-formed terms carrying SQL text are plain values: they match nothing, harm nothing."""
    await assert_query(city_client, {"q": q}, set())
    assert await total(city_client, **EVERYTHING) == len(ALL)


async def test_reasonable_nesting_still_works(city_client: httpx.AsyncClient) -> None:
    q = "(" * 10 + "humidity>50" + ")" * 10 + "|" + "(" * 10 + "floors>10" + ")" * 10
    await assert_query(city_client, {"q": q}, {S2, S5, B3})
