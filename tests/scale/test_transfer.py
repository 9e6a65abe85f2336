"""Moving a city from SQLite to PostgreSQL: export, import, identical answers."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from agilecity.app import build_app
from agilecity.broker.broker import QueryParams
from agilecity.broker.context import core_term_map
from agilecity.broker.representation import RenderOptions
from agilecity.broker.temporal import TemporalParams
from agilecity.settings import Settings
from agilecity.store.base import Record
from agilecity.store.postgres import PostgresStore
from agilecity.store.sqlite import SQLiteStore
from agilecity.transfer import checksum, export_city, import_city

TERMS = core_term_map()


async def _fill(store: SQLiteStore) -> None:
    from agilecity.app import build_broker

    broker = build_broker(Settings.load({"db": "sqlite:///unused"}, env={}), store)
    await broker.contexts.load()
    for i in range(30):
        entity = {
            "id": f"urn:ngsi-ld:ParkingSpot:{i}",
            "type": "ParkingSpot",
            "occupancy": {"value": i % 2, "observedAt": f"2026-11-0{1 + i % 9}T08:00:00Z"},
            "location": {"type": "Point", "coordinates": [3.17 + i / 1000, 50.69]},
        }
        await broker.create_entity("roubaix" if i % 3 else "", entity, TERMS)
    for i in range(10):
        await broker.update_attributes(
            "roubaix", f"urn:ngsi-ld:ParkingSpot:{3 * i + 1}",
            {"occupancy": {"value": 5, "observedAt": "2026-11-20T08:00:00Z"}}, TERMS,
        )  # fmt: skip
    await broker.delete_entity("", "urn:ngsi-ld:ParkingSpot:0")  # history outlives it
    group = {"apikey": "k1", "entity_type": "ParkingSpot", "resource": "/iot/d"}
    await store.put_record(Record("iot_group", "roubaix", "/iot/d|k1", group), create=True)


async def _answers(store: SQLiteStore | PostgresStore) -> list[object]:
    from agilecity.app import build_broker

    broker = build_broker(Settings.load({"db": "sqlite:///unused"}, env={}), store)
    await broker.contexts.load()
    answers: list[object] = []
    for tenant in ("", "roubaix"):
        docs, count = await broker.query_entities(
            tenant,
            QueryParams(type="ParkingSpot", q="occupancy>=1", count=True, limit=100,
                        georel="near;maxDistance==2000", geometry="Point",
                        coordinates="[3.18,50.69]"),
            TERMS,
        )  # fmt: skip
        answers.append((count, sorted(checksum(d) for d in docs)))
        history = await broker.history.query(
            tenant, QueryParams(type="ParkingSpot", limit=100), TemporalParams(), TERMS,
            RenderOptions(),
        )  # fmt: skip
        answers.append(
            sorted(
                (e["id"], [(i["value"], i["observedAt"]) for i in e.get("occupancy", [])])
                for e in history.entities
            )
        )
    return answers


async def test_sqlite_export_imports_into_postgresql_with_identical_answers(
    tmp_path: Path, empty_postgres: str
) -> None:
    source = SQLiteStore(f"sqlite:///{tmp_path}/city.sqlite")
    await source.open()
    target = PostgresStore(empty_postgres)
    await target.open()
    try:
        await _fill(source)
        buffer = io.BytesIO()
        exported = await export_city(source, buffer, show=False)
        assert exported.counts["entity"] == 29
        assert exported.counts["history"] == 30 * 2 + 10 * 1  # occupancy + location, 10 updates
        buffer.seek(0)
        imported = await import_city(target, buffer, show=False)
        assert imported.counts == exported.counts
        assert imported.checksums == exported.checksums
        assert await _answers(target) == await _answers(source)
        assert exported.counts["record"] == 1
        assert await target.list_records(None) == await source.list_records(None)
        assert await target.history_types("", "urn:ngsi-ld:ParkingSpot:0") is not None
    finally:
        await source.close()
        await target.close()


async def test_a_truncated_export_is_refused(tmp_path: Path) -> None:
    source = SQLiteStore(f"sqlite:///{tmp_path}/a.sqlite")
    target = SQLiteStore(f"sqlite:///{tmp_path}/b.sqlite")
    await source.open()
    await target.open()
    try:
        await _fill(source)
        buffer = io.BytesIO()
        await export_city(source, buffer, show=False)
        lines = buffer.getvalue().splitlines()
        with pytest.raises(ValueError, match="no summary"):
            await import_city(target, io.BytesIO(b"\n".join(lines[:-1])), show=False)
    finally:
        await source.close()
        await target.close()


def test_app_builds_on_postgresql(empty_postgres: str) -> None:
    app = build_app(Settings.load({"db": empty_postgres}, env={}))
    assert app.state.broker.store.__class__ is PostgresStore
