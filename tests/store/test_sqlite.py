"""The SQLite store's contract: atomic mutations, group commit, durability, isolation."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from agilecity.errors import AlreadyExistsError, InternalError
from agilecity.store.base import Doc, EntityQuery
from agilecity.store.sqlite import SQLiteStore


def doc(entity_id: str, value: Any = 1, type_: str = "https://example.org/T") -> Doc:
    instance = {"type": "Property", "value": value, "createdAt": "x", "modifiedAt": "x"}
    return {
        "id": entity_id,
        "type": [type_],
        "createdAt": "2026-01-01T00:00:00.000Z",
        "modifiedAt": "2026-01-01T00:00:00.000Z",
        "attrs": {"https://example.org/v": [instance]},
    }


def put(new: Doc) -> Any:
    return lambda old: new


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    s = SQLiteStore(f"sqlite:///{tmp_path}/store.sqlite")
    await s.open()
    yield s
    await s.close()


async def test_concurrent_writes_are_all_committed_and_survive_reopen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store.sqlite"
    first = SQLiteStore(url)
    await first.open()
    ids = [f"urn:e:{i}" for i in range(300)]
    results = await asyncio.gather(*(first.write("", [(i, put(doc(i)))]) for i in ids))
    assert all(r[0].ok and r[0].before is None for r in results)
    await first.close()
    second = SQLiteStore(url)
    await second.open()
    docs, total = await second.query("", EntityQuery(limit=1000, count=True))
    assert total == 300
    assert [d["id"] for d in docs] == ids  # insertion order, none lost
    await second.close()


async def test_a_failing_mutation_fails_alone(store: SQLiteStore) -> None:
    def refuse(old: Doc | None) -> Doc:
        raise AlreadyExistsError("no")

    results = await store.write(
        "", [("urn:a", put(doc("urn:a"))), ("urn:b", refuse), ("urn:c", put(doc("urn:c")))]
    )
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, AlreadyExistsError)
    assert await store.get("", "urn:b") is None
    assert (await store.get("", "urn:c")) == doc("urn:c")


async def test_a_crashing_job_is_rolled_back_without_spoiling_concurrent_jobs(
    store: SQLiteStore,
) -> None:
    def crash(old: Doc | None) -> Doc:
        raise RuntimeError("bug")

    bad = store.write("", [("urn:x", put(doc("urn:x"))), ("urn:y", crash)])
    good = store.write("", [("urn:z", put(doc("urn:z")))])
    outcome = await asyncio.gather(bad, good, return_exceptions=True)
    assert isinstance(outcome[0], InternalError)
    assert await store.get("", "urn:x") is None  # the whole failed job is undone
    assert await store.get("", "urn:z") == doc("urn:z")


async def test_mutation_sees_the_current_document_and_none_deletes(store: SQLiteStore) -> None:
    await store.write("", [("urn:a", put(doc("urn:a", 1)))])
    seen: list[Doc | None] = []

    def bump(old: Doc | None) -> Doc:
        seen.append(old)
        return doc("urn:a", 2)

    (result,) = await store.write("", [("urn:a", bump)])
    assert seen == [doc("urn:a", 1)] and result.before == doc("urn:a", 1)
    (deleted,) = await store.write("", [("urn:a", lambda old: None)])
    assert deleted.ok and deleted.after is None
    assert await store.get("", "urn:a") is None
    assert await store.type_summaries("") == []


async def test_tenants_are_isolated(store: SQLiteStore) -> None:
    assert await store.tenant_exists("")
    assert not await store.tenant_exists("roubaix")
    await store.write("roubaix", [("urn:a", put(doc("urn:a", "r")))])
    await store.write("carouge", [("urn:a", put(doc("urn:a", "c")))])
    assert await store.tenant_exists("roubaix")
    assert (await store.get("roubaix", "urn:a"))["attrs"]["https://example.org/v"][0][
        "value"
    ] == "r"
    assert (await store.get("carouge", "urn:a"))["attrs"]["https://example.org/v"][0][
        "value"
    ] == "c"
    assert await store.get("", "urn:a") is None
    assert (await store.query("", EntityQuery(count=True)))[1] == 0


async def test_hostile_ids_are_only_data(store: SQLiteStore) -> None:
    hostile = "urn:x:'); DROP TABLE entities; --"
    await store.write("", [(hostile, put(doc(hostile)))])
    docs, _ = await store.query("", EntityQuery(ids=(hostile,)))
    assert [d["id"] for d in docs] == [hostile]


async def test_type_summaries_count_entities_and_attribute_kinds(store: SQLiteStore) -> None:
    await store.write("", [(f"urn:{i}", put(doc(f"urn:{i}"))) for i in range(3)])
    (summary,) = await store.type_summaries("")
    assert summary.type == "https://example.org/T"
    assert summary.entity_count == 3
    assert summary.attributes == {"https://example.org/v": {"Property"}}


def geo_doc(entity_id: str, types: list[str], attrs: dict[str, str]) -> Doc:
    """A document with the given types and attributes of the given kinds."""
    base = doc(entity_id)
    base["type"] = types
    base["attrs"] = {
        name: [{"type": kind, "value": {"type": "Point", "coordinates": [3.1, 50.6]}}
               if kind == "GeoProperty" else {"type": kind, "value": 1}]
        for name, kind in attrs.items()
    }  # fmt: skip
    return base


async def summaries(store: SQLiteStore) -> tuple[Any, ...]:
    types = {(s.type, s.entity_count, str(sorted(s.attributes.items())))
             for s in await store.type_summaries("")}  # fmt: skip
    attrs = {(a.attr, a.entity_count, str(sorted(a.kinds)), str(sorted(a.types)))
             for a in await store.attribute_summaries("")}  # fmt: skip
    return types, attrs


async def test_attribute_counts_follow_creates_updates_and_deletes(store: SQLiteStore) -> None:
    await store.write("", [
        ("urn:1", put(geo_doc("urn:1", ["T"], {"a": "Property", "loc": "GeoProperty"}))),
        ("urn:2", put(geo_doc("urn:2", ["T", "U"], {"a": "Relationship"}))),
    ])  # fmt: skip
    await store.write("", [("urn:3", put(geo_doc("urn:3", ["U"], {"b": "Property"})))])
    types, attrs = await summaries(store)
    assert ("T", 2, str([("a", {"Property", "Relationship"}), ("loc", {"GeoProperty"})])) in types
    assert ("a", 2, str(["Property", "Relationship"]), str(["T", "U"])) in attrs
    assert ("b", 1, str(["Property"]), str(["U"])) in attrs
    # urn:1 loses "loc" and "a" changes kind; urn:3 goes; urn:2 only changes a value.
    await store.write("", [
        ("urn:1", put(geo_doc("urn:1", ["T"], {"a": "Relationship"}))),
        ("urn:2", put(geo_doc("urn:2", ["T", "U"], {"a": "Relationship"}))),
        ("urn:3", lambda old: None),
    ])  # fmt: skip
    types, attrs = await summaries(store)
    assert types == {("T", 2, str([("a", {"Relationship"})])),
                     ("U", 1, str([("a", {"Relationship"})]))}  # fmt: skip
    assert attrs == {("a", 2, str(["Relationship"]), str(["T", "U"]))}


async def test_a_failed_job_leaves_the_counts_as_they_were(store: SQLiteStore) -> None:
    def crash(old: Doc | None) -> Doc:
        raise RuntimeError("bug")

    bad = store.write("", [("urn:x", put(geo_doc("urn:x", ["T"], {"x": "Property"}))),
                           ("urn:y", crash)])  # fmt: skip
    good = store.write("", [("urn:z", put(geo_doc("urn:z", ["T"], {"z": "Property"})))])
    await asyncio.gather(bad, good, return_exceptions=True)
    assert {a.attr for a in await store.attribute_summaries("")} == {"z"}


async def test_a_version_1_database_is_migrated_with_its_counts(tmp_path: Path) -> None:
    """Version 1 kept one entity_attrs row per entity and attribute; opening converts them
    (version 2), and replaces the history index by the one aggregations read (version 3)."""
    url = f"sqlite:///{tmp_path}/old.sqlite"
    store = SQLiteStore(url)
    await store.open()
    await store.write("", [
        ("urn:1", put(geo_doc("urn:1", ["T"], {"a": "Property", "loc": "GeoProperty"}))),
        ("urn:2", put(geo_doc("urn:2", ["T", "U"], {"a": "Relationship"}))),
    ])  # fmt: skip
    expected = await summaries(store)
    await store.close()
    with sqlite3.connect(f"{tmp_path}/old.sqlite") as conn:  # as version 1 left it
        conn.executescript("""
            DROP TABLE attr_counts; DROP TABLE type_attr_counts; DROP INDEX history_series;
            CREATE INDEX history_observed ON history (tenant, entity_id, attr, observed_at);
            CREATE TABLE entity_attrs (tenant TEXT NOT NULL, attr TEXT NOT NULL,
                kind TEXT NOT NULL, pk INTEGER NOT NULL, PRIMARY KEY (tenant, attr, kind, pk));
            INSERT INTO entity_attrs SELECT '', 'a', 'Property', pk FROM entities
                WHERE id = 'urn:1';
            INSERT INTO entity_attrs SELECT '', 'loc', 'GeoProperty', pk FROM entities
                WHERE id = 'urn:1';
            INSERT INTO entity_attrs SELECT '', 'a', 'Relationship', pk FROM entities
                WHERE id = 'urn:2';
            UPDATE schema_version SET version = 1;
        """)
    store = SQLiteStore(url)
    await store.open()
    try:
        assert await summaries(store) == expected
        await store.write("", [("urn:1", lambda old: None)])
        assert {a.attr for a in await store.attribute_summaries("")} == {"a"}
    finally:
        await store.close()
    with sqlite3.connect(f"{tmp_path}/old.sqlite") as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone() == (3,)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "entity_attrs" not in tables
        assert "history_series" in tables and "history_observed" not in tables


async def test_the_wal_is_copied_into_the_file_in_the_background(tmp_path: Path) -> None:
    """No commit checkpoints (wal_autocheckpoint=0): the background checkpointer copies the
    WAL into the database file while the store runs, and empties it on close."""
    path = tmp_path / "wal.sqlite"
    store = SQLiteStore(f"sqlite:///{path}")
    await store.open()
    try:
        empty = path.stat().st_size
        await store.write("", [(f"urn:{i}", put(doc(f"urn:{i}", "x" * 500))) for i in range(300)])
        assert Path(f"{path}-wal").stat().st_size > 150_000  # written to the WAL first
        for _ in range(50):  # the checkpointer runs every 0.5 s after a commit
            if path.stat().st_size > empty + 150_000:
                break
            await asyncio.sleep(0.1)
        assert path.stat().st_size > empty + 150_000, "the WAL was not copied while running"
    finally:
        await store.close()
    wal = Path(f"{path}-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # the last connection removes it
