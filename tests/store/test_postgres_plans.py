"""PostgreSQL query plans: a typed geo-query is led by the geometry index.

The type condition once compared ``t.tenant = e.tenant``; PostgreSQL then ran it as a
subplan per geo candidate that read every entity of the type (seconds per query on
100,000 entities). The plan must join the type index instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import psycopg
from tests import conftest

from agilecity.broker.geo import GeoQuery
from agilecity.broker.query import TypeName
from agilecity.store.base import EntityQuery
from agilecity.store.postgres import query_statements

DEFAULT = "https://uri.etsi.org/ngsi-ld/default-context/"
LOCATION = "https://uri.etsi.org/ngsi-ld/location"
CENTRE = (3.18, 50.69)  # Roubaix


def sensor(i: int, type_: str) -> dict[str, Any]:
    """An entity on a 60 x 50 grid of about 70 m steps around the centre."""
    lon, lat = CENTRE[0] + (i % 60 - 30) * 0.001, CENTRE[1] + (i // 60 - 25) * 0.0006
    return {"id": f"urn:ngsi-ld:{type_}:{i}", "type": type_,
            "location": {"type": "GeoProperty",
                         "value": {"type": "Point", "coordinates": [lon, lat]}}}  # fmt: skip


def subplans(node: dict[str, Any]) -> list[str]:
    """The names of the subplans anywhere in an EXPLAIN (FORMAT JSON) plan."""
    found = [node["Subplan Name"]] if "Subplan Name" in node else []
    for child in node.get("Plans", []):
        found += subplans(child)
    return found


async def test_a_typed_geo_query_joins_the_type_index(tmp_path: Path, empty_postgres: str) -> None:
    async with conftest.running_client(
        conftest.test_settings(tmp_path, db=empty_postgres)
    ) as client:
        entities = [sensor(i, "Sensor" if i % 3 else "Other") for i in range(3000)]
        for start in range(0, len(entities), 1000):
            response = await client.post(
                "/ngsi-ld/v1/entityOperations/upsert", json=entities[start : start + 1000]
            )
            assert response.status_code == 201, response.text
        near = {"type": "Sensor", "georel": "near;maxDistance==500", "geometry": "Point",
                "coordinates": f"[{CENTRE[0]},{CENTRE[1]}]", "limit": "20"}  # fmt: skip
        found = await client.get("/ngsi-ld/v1/entities", params=near)
        assert found.status_code == 200, found.text
        assert len(found.json()) == 20 and {e["type"] for e in found.json()} == {"Sensor"}
    query = EntityQuery(
        types=TypeName(DEFAULT + "Sensor"),
        geo=GeoQuery(
            "near", {"type": "Point", "coordinates": list(CENTRE)}, 500.0, geoproperty=LOCATION
        ),  # fmt: skip
    )
    _, page, params = query_statements("", query)
    with psycopg.connect(empty_postgres, autocommit=True) as conn:
        conn.execute("ANALYZE")  # what autovacuum does after a bulk load
        row = conn.execute(f"EXPLAIN (FORMAT JSON) {page}", [*params, 20, 0]).fetchone()
        assert row is not None
        rows = conn.execute(page, [*params, 20, 0]).fetchall()
    plan = row[0] if isinstance(row[0], list) else orjson.loads(row[0])
    assert subplans(plan[0]["Plan"]) == [], plan
    assert [r[0]["id"] for r in rows] == [e["id"] for e in found.json()]
