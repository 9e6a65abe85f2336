"""The in-process Broker API: the same operations as HTTP, from Python."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from agilecity.app import build_broker
from agilecity.broker.broker import Broker, QueryParams
from agilecity.broker.context import core_term_map
from agilecity.errors import AlreadyExistsError, NonexistentTenantError
from agilecity.settings import Settings
from agilecity.store.sqlite import SQLiteStore

SPOT = {
    "id": "urn:ngsi-ld:ParkingSpot:1",
    "type": "ParkingSpot",
    "status": {"type": "Property", "value": "free"},
    "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [3.17, 50.69]}},
}


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    settings = Settings.load({"db": f"sqlite:///{tmp_path}/b.sqlite"}, env={})
    store = SQLiteStore(settings.db)
    broker = build_broker(settings, store)
    await store.open()
    await broker.contexts.load()
    yield broker
    await store.close()


async def test_create_query_merge_through_python(broker: Broker) -> None:
    terms = core_term_map()
    assert await broker.create_entity("", SPOT, terms) == SPOT["id"]
    with pytest.raises(AlreadyExistsError):
        await broker.create_entity("", SPOT, terms)
    await broker.merge_entity("", SPOT["id"], {"status": {"value": "occupied"}}, terms)
    docs, count = await broker.query_entities(
        "", QueryParams(type="ParkingSpot", q='status=="occupied"', count=True), terms
    )
    assert count == 1
    assert docs[0]["attrs"][terms.expand("status")][0]["value"] == "occupied"


async def test_reading_an_unknown_tenant_is_refused(broker: Broker) -> None:
    with pytest.raises(NonexistentTenantError):
        await broker.query_entities("nowhere", QueryParams(type="T"), core_term_map())


async def test_contexts_preloaded_from_a_folder_are_used_without_fetching(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "contexts"
    folder.mkdir()
    url = "https://city.example/ctx.jsonld"  # never reachable from the tests
    (folder / "ctx.jsonld").write_bytes(
        orjson.dumps({"@context": {"occupancy": "https://city.example/vocab/occupancy"}})
    )
    (folder / "index.json").write_bytes(orjson.dumps({"ctx.jsonld": url}))
    settings = Settings.load({"db": f"sqlite:///{tmp_path}/c.sqlite"}, env={})
    store = SQLiteStore(settings.db)
    broker = build_broker(settings, store)
    await store.open()
    try:
        await broker.contexts.load(str(folder))
        terms = await broker.contexts.term_map([url])
        assert terms.expand("occupancy") == "https://city.example/vocab/occupancy"
        assert [r.kind for r in broker.contexts.records()] == ["Cached"]
    finally:
        await store.close()
