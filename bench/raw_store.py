"""The store ceiling: the benchmark entities inserted with the database driver alone.

``count`` template entities (bench/template.py) serialized with orjson and inserted into a
plain table (id TEXT PRIMARY KEY, doc TEXT on SQLite / jsonb on PostgreSQL) with
executemany, 1,000 rows per transaction: what the database and its driver allow on this
machine, with no indexes beyond the key, no history, no notifications. Building the Python
dicts is not timed (the broker receives them parsed); serializing and inserting are.
SQLite uses the broker's settings (WAL, synchronous=NORMAL).

    python bench/raw_store.py sqlite:////tmp/raw.sqlite 100000
    python bench/raw_store.py postgresql://postgres@127.0.0.1:5432/agilecity_bench 100000

Prints ``entities/s seconds`` on one line. run.py runs it pinned to the server's core.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from template import entity, seed_id

BATCH = 1000
TABLE = "bench_raw"


def rows(count: int) -> Iterator[list[dict[str, Any]]]:
    """The template entities in batches of 1,000 (untimed)."""
    for start in range(0, count, BATCH):
        yield [entity(seed_id("raw", i), i) for i in range(start, min(count, start + BATCH))]


def timed_batches(count: int, insert: Callable[[list[tuple[str, str]]], None]) -> float:
    """Seconds spent serializing and inserting (``insert`` commits one batch)."""
    spent = 0.0
    for batch in rows(count):
        began = time.perf_counter()
        insert([(doc["id"], orjson.dumps(doc).decode()) for doc in batch])
        spent += time.perf_counter() - began
    return spent


def sqlite_insert(path: str, count: int) -> float:
    """Seconds to insert ``count`` entities into a fresh SQLite table."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"DROP TABLE IF EXISTS {TABLE}")
    db.execute(f"CREATE TABLE {TABLE} (id TEXT PRIMARY KEY, doc TEXT NOT NULL)")

    def insert(batch: list[tuple[str, str]]) -> None:
        db.execute("BEGIN")
        db.executemany(f"INSERT INTO {TABLE} VALUES (?, ?)", batch)
        db.execute("COMMIT")

    try:
        return timed_batches(count, insert)
    finally:
        db.execute(f"DROP TABLE {TABLE}")
        db.close()


def postgres_insert(url: str, count: int) -> float:
    """Seconds to insert ``count`` entities into a fresh PostgreSQL table (psycopg 3)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f"DROP TABLE IF EXISTS {TABLE}")
        db.execute(f"CREATE TABLE {TABLE} (id text PRIMARY KEY, doc jsonb NOT NULL)")

        def insert(batch: list[tuple[str, str]]) -> None:
            with db.transaction(), db.cursor() as cursor:
                cursor.executemany(f"INSERT INTO {TABLE} VALUES (%s, %s::jsonb)", batch)

        try:
            return timed_batches(count, insert)
        finally:
            db.execute(f"DROP TABLE {TABLE}")


def main() -> int:
    url, count = sys.argv[1], int(sys.argv[2])
    if url.startswith("sqlite:///"):
        seconds = sqlite_insert(url[len("sqlite:///") :], count)
    else:
        seconds = postgres_insert(url, count)
    print(f"{count / seconds:.1f} {seconds:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
