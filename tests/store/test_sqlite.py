"""The SQLite store's contract: atomic mutations, group commit, durability, isolation."""

from __future__ import annotations

import asyncio
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
