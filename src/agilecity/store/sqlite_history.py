"""SQLite statements for the history of attribute instances (the temporal store)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import orjson

from agilecity.broker.temporal import Aggregate, HistoryRecord, numeric_value
from agilecity.store.base import Doc, HistoryQuery, HistoryRow
from agilecity.store.sql import history_where

SCHEMA = """
CREATE TABLE IF NOT EXISTS history (
    hid INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL, entity_id TEXT NOT NULL, attr TEXT NOT NULL,
    dataset_id TEXT NOT NULL, instance_id TEXT NOT NULL UNIQUE,
    instance TEXT NOT NULL, num REAL,
    observed_at TEXT, created_at TEXT, modified_at TEXT NOT NULL, deleted_at TEXT
);
-- Reads by observedAt and aggregations find all they need in this index (no table lookup).
CREATE INDEX IF NOT EXISTS history_series
    ON history (tenant, entity_id, attr, observed_at, deleted_at, dataset_id, num);
CREATE INDEX IF NOT EXISTS history_modified ON history (tenant, modified_at);
CREATE TABLE IF NOT EXISTS temporal_entities (
    tenant TEXT NOT NULL, id TEXT NOT NULL, types TEXT NOT NULL, deleted_at TEXT,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;
"""


def append(conn: sqlite3.Connection, tenant: str, records: list[HistoryRecord]) -> None:
    """Insert history records."""
    conn.executemany(
        "INSERT INTO history (tenant, entity_id, attr, dataset_id, instance_id, instance, num, "
        "observed_at, created_at, modified_at, deleted_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        [
            (
                tenant,
                r.entity_id,
                r.attr,
                r.dataset_id,
                r.instance_id,
                orjson.dumps(r.instance).decode(),
                numeric_value(r.instance),
                r.instance.get("observedAt"),
                r.instance.get("createdAt"),
                r.modified_at,
                r.deleted_at,
            )
            for r in records
        ],
    )


def track_entity(
    conn: sqlite3.Connection, tenant: str, entity_id: str, before: Doc | None, after: Doc | None
) -> None:
    """Keep the types of every entity that ever existed (temporal entities outlive deletion)."""
    if after is not None:
        conn.execute(
            "INSERT INTO temporal_entities VALUES (?, ?, ?, NULL) ON CONFLICT (tenant, id) "
            "DO UPDATE SET types = excluded.types, deleted_at = NULL "
            # unchanged (most writes): no row update, so no page to write
            "WHERE types IS NOT excluded.types OR deleted_at IS NOT NULL",
            (tenant, entity_id, orjson.dumps(after["type"]).decode()),
        )
    elif before is not None:
        conn.execute(
            "UPDATE temporal_entities SET deleted_at = datetime('now') WHERE tenant = ? AND id = ?",
            (tenant, entity_id),
        )


def read(conn: sqlite3.Connection, tenant: str, query: HistoryQuery) -> list[HistoryRow]:
    """Instances in time order; with last_n only the newest n per entity and attribute."""
    if not query.entity_ids:
        return []
    where, params, column = history_where(tenant, query)
    order = f"coalesce({column}, modified_at), hid"
    if query.last_n is not None:
        sql = (
            "SELECT entity_id, attr, instance_id, instance, modified_at FROM ("
            "SELECT *, row_number() OVER (PARTITION BY entity_id, attr "
            f"ORDER BY coalesce({column}, modified_at) DESC, hid DESC) AS rn "
            f"FROM history WHERE {where}) "
            f"WHERE rn <= ? ORDER BY entity_id, attr, {order}"
        )
        params = [*params, query.last_n]
    else:
        sql = (
            "SELECT entity_id, attr, instance_id, instance, modified_at FROM history "
            f"WHERE {where} ORDER BY entity_id, attr, {order}"
        )
    return [
        HistoryRow(r[0], r[1], r[2], orjson.loads(r[3]), r[4]) for r in conn.execute(sql, params)
    ]


def time_range(
    conn: sqlite3.Connection, tenant: str, query: HistoryQuery
) -> tuple[str | None, str | None]:
    """min and max of the time column among matching instances."""
    if not query.entity_ids:
        return None, None
    where, params, column = history_where(tenant, query)
    row = conn.execute(f"SELECT min({column}), max({column}) FROM history WHERE {where}", params)
    low, high = row.fetchone()
    return low, high


def aggregate(
    conn: sqlite3.Connection,
    tenant: str,
    query: HistoryQuery,
    periods: list[tuple[str, str]],
    step_ms: int | None = None,
    methods: frozenset[str] = frozenset(),
) -> dict[tuple[str, str, str, int], Aggregate]:
    """Aggregates per entity, attribute, dataset and period, computed by SQLite.

    One statement per entity and attribute: grouping rows that carry neither (they are
    the statement's constants) sorts half the data. With ``step_ms`` (periods of a fixed
    length) each instance's period is computed arithmetically from its time; otherwise
    instances are joined to the period list.
    """
    if not query.entity_ids or not periods:
        return {}
    first, last = periods[0][0], periods[-1][1]
    if step_ms is not None:
        # Canonical times end in ".fffZ": whole seconds from unixepoch, milliseconds by hand.
        millis = "(unixepoch({0}) * 1000 + CAST(substr({0}, 21, 3) AS INTEGER))"
        origin = conn.execute(f"SELECT {millis.format('?1')}", (first,)).fetchone()[0]
    distinct = (
        "count(DISTINCT json_extract(instance, '$.value'))"
        if not methods or "distinctCount" in methods
        else "NULL"
    )
    stddev = not methods or "stddev" in methods
    result: dict[tuple[str, str, str, int], Aggregate] = {}
    for entity_id, attr in _series(conn, tenant, query):
        one = replace(query, entity_ids=(entity_id,), attrs=(attr,))
        where, params, column = history_where(tenant, one)
        if step_ms is not None:
            bucketed = (
                f"SELECT dataset_id, instance, num, ({millis.format(column)} - ?) / ? AS idx "
                f"FROM history WHERE {where} AND {column} >= ? AND {column} < ?"
            )
            bucket_params: list[Any] = [origin, step_ms, *params, first, last]
        else:
            values = ",".join("(?, ?, ?)" for _ in periods)
            bucketed = (
                f"WITH periods(idx, p_start, p_end) AS (VALUES {values}) "
                "SELECT dataset_id, instance, num, p.idx AS idx "
                f"FROM history h JOIN periods p ON {column} >= p.p_start AND {column} < p.p_end "
                f"WHERE {where}"
            )
            bucket_params = []
            for index, (start, end) in enumerate(periods):
                bucket_params.extend([index, start, end])
            bucket_params.extend(params)
        if stddev:
            # Two passes (deviations from the period's mean) keep stddev exact for large
            # offsets.
            source = (
                "SELECT *, num - avg(num) OVER (PARTITION BY dataset_id, idx) "
                f"AS dev FROM ({bucketed})"
            )
            deviations = "sum(dev * dev)"
        else:
            source, deviations = bucketed, "NULL"
        sql = (
            f"SELECT dataset_id, idx, count(*), {distinct}, count(num), sum(num), "
            f"min(num), max(num), sum(num * num), {deviations} FROM ({source}) "
            "GROUP BY idx, dataset_id"
        )
        for row in conn.execute(sql, bucket_params):
            result[(entity_id, attr, row[0], row[1])] = Aggregate(
                count=row[2],
                distinct=row[3],
                numeric_count=row[4],
                total=row[5],
                minimum=row[6],
                maximum=row[7],
                sum_squares=row[8],
                squared_deviations=row[9],
            )
    return result


# The attributes of an entity in its history, by one index seek each (a skip-scan).
_ATTRIBUTES = """
WITH RECURSIVE seen(attr) AS (
    SELECT min(attr) FROM history WHERE tenant = ?1 AND entity_id = ?2
    UNION ALL
    SELECT (SELECT min(attr) FROM history WHERE tenant = ?1 AND entity_id = ?2 AND attr > seen.attr)
    FROM seen WHERE seen.attr IS NOT NULL
)
SELECT attr FROM seen WHERE attr IS NOT NULL
"""


def _series(conn: sqlite3.Connection, tenant: str, query: HistoryQuery) -> list[tuple[str, str]]:
    """The (entity, attribute) pairs a history query covers, asked or found in the history."""
    pairs: list[tuple[str, str]] = []
    for entity_id in query.entity_ids:
        if query.attrs:
            attrs: Iterable[str] = query.attrs
        else:
            attrs = [r[0] for r in conn.execute(_ATTRIBUTES, (tenant, entity_id))]
        pairs.extend((entity_id, attr) for attr in attrs)
    return pairs


_DUMP_COLUMNS = (
    "entity_id", "attr", "dataset_id", "instance_id", "instance", "observed_at", "created_at",
    "modified_at", "deleted_at",
)  # fmt: skip


def dump(conn: sqlite3.Connection, tenant: str, after: int, limit: int) -> list[dict[str, Any]]:
    """Raw rows (with the entity's types) after a position, for export."""
    rows = conn.execute(
        f"SELECT h.hid, {', '.join('h.' + c for c in _DUMP_COLUMNS)}, t.types FROM history h "
        "LEFT JOIN temporal_entities t ON t.tenant = h.tenant AND t.id = h.entity_id "
        "WHERE h.tenant = ? AND h.hid > ? ORDER BY h.hid LIMIT ?",
        (tenant, after, limit),
    )
    result = []
    for row in rows:
        record = dict(zip(("position", *_DUMP_COLUMNS), row[:-1], strict=True))
        record["instance"] = orjson.loads(record["instance"])
        record["types"] = orjson.loads(row[-1]) if row[-1] else None
        result.append(record)
    return result


def load(conn: sqlite3.Connection, tenant: str, rows: list[dict[str, Any]]) -> None:
    """Insert exported rows as they were."""
    for row in rows:
        conn.execute(
            "INSERT OR IGNORE INTO history (tenant, entity_id, attr, dataset_id, instance_id, "
            "instance, num, observed_at, created_at, modified_at, deleted_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (tenant, row["entity_id"], row["attr"], row["dataset_id"], row["instance_id"],
             orjson.dumps(row["instance"]).decode(), numeric_value(row["instance"]),
             row["observed_at"], row["created_at"], row["modified_at"], row["deleted_at"]),
        )  # fmt: skip
        if row.get("types"):
            conn.execute(
                "INSERT OR IGNORE INTO temporal_entities VALUES (?, ?, ?, NULL)",
                (tenant, row["entity_id"], orjson.dumps(row["types"]).decode()),
            )
