"""SQLite statements for the history of attribute instances (the temporal store)."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from agilecity.broker.temporal import Aggregate, HistoryRecord
from agilecity.store.base import Doc, HistoryQuery, HistoryRow

SCHEMA = """
CREATE TABLE IF NOT EXISTS history (
    hid INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL, entity_id TEXT NOT NULL, attr TEXT NOT NULL,
    dataset_id TEXT NOT NULL, instance_id TEXT NOT NULL UNIQUE,
    instance TEXT NOT NULL, num REAL,
    observed_at TEXT, created_at TEXT, modified_at TEXT NOT NULL, deleted_at TEXT
);
CREATE INDEX IF NOT EXISTS history_observed ON history (tenant, entity_id, attr, observed_at);
CREATE INDEX IF NOT EXISTS history_modified ON history (tenant, modified_at);
CREATE TABLE IF NOT EXISTS temporal_entities (
    tenant TEXT NOT NULL, id TEXT NOT NULL, types TEXT NOT NULL, deleted_at TEXT,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;
"""
#: The time column for each NGSI-LD time property (a whitelist: never user text in SQL).
TIME_COLUMNS = {
    "observedAt": "observed_at",
    "createdAt": "created_at",
    "modifiedAt": "modified_at",
}


def _number(instance: dict[str, Any]) -> float | None:
    value = instance.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


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
                _number(r.instance),
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
            "DO UPDATE SET types = excluded.types, deleted_at = NULL",
            (tenant, entity_id, orjson.dumps(after["type"]).decode()),
        )
    elif before is not None:
        conn.execute(
            "UPDATE temporal_entities SET deleted_at = datetime('now') WHERE tenant = ? AND id = ?",
            (tenant, entity_id),
        )


def _where(tenant: str, query: HistoryQuery) -> tuple[str, list[Any], str]:
    column = TIME_COLUMNS[query.time_property]
    clauses = ["tenant = ?", "deleted_at IS NULL"]
    params: list[Any] = [tenant]
    clauses.append(f"entity_id IN ({','.join('?' * len(query.entity_ids))})")
    params.extend(query.entity_ids)
    if query.attrs:
        clauses.append(f"attr IN ({','.join('?' * len(query.attrs))})")
        params.extend(query.attrs)
    if query.since is not None or query.until is not None:
        clauses.append(f"{column} IS NOT NULL")
    if query.since is not None:
        clauses.append(f"{column} >= ?")
        params.append(query.since)
    if query.until is not None:
        clauses.append(f"{column} < ?")
        params.append(query.until)
    return " AND ".join(clauses), params, column


def read(conn: sqlite3.Connection, tenant: str, query: HistoryQuery) -> list[HistoryRow]:
    """Instances in time order; with last_n only the newest n per entity and attribute."""
    if not query.entity_ids:
        return []
    where, params, column = _where(tenant, query)
    order = f"coalesce({column}, modified_at), hid"
    if query.last_n is not None:
        sql = (
            "SELECT entity_id, attr, instance_id, instance, modified_at FROM ("
            "SELECT *, row_number() OVER (PARTITION BY entity_id, attr "
            f"ORDER BY {order} DESC) AS rn FROM history WHERE {where}) "
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
    where, params, column = _where(tenant, query)
    row = conn.execute(f"SELECT min({column}), max({column}) FROM history WHERE {where}", params)
    low, high = row.fetchone()
    return low, high


def aggregate(
    conn: sqlite3.Connection, tenant: str, query: HistoryQuery, periods: list[tuple[str, str]]
) -> dict[tuple[str, str, str, int], Aggregate]:
    """Aggregates per entity, attribute, dataset and period, computed by SQLite."""
    if not query.entity_ids or not periods:
        return {}
    where, params, column = _where(tenant, query)
    values = ",".join("(?, ?, ?)" for _ in periods)
    period_params: list[Any] = []
    for index, (start, end) in enumerate(periods):
        period_params.extend([index, start, end])
    sql = (
        f"WITH periods(idx, p_start, p_end) AS (VALUES {values}) "
        "SELECT h.entity_id, h.attr, h.dataset_id, p.idx, count(*), "
        "count(DISTINCT json_extract(h.instance, '$.value')), count(h.num), sum(h.num), "
        "min(h.num), max(h.num), sum(h.num * h.num) "
        f"FROM history h JOIN periods p ON {column} >= p.p_start AND {column} < p.p_end "
        f"WHERE {where} "
        "GROUP BY h.entity_id, h.attr, h.dataset_id, p.idx"
    )
    result: dict[tuple[str, str, str, int], Aggregate] = {}
    for row in conn.execute(sql, [*period_params, *params]):
        result[(row[0], row[1], row[2], row[3])] = Aggregate(
            count=row[4],
            distinct=row[5],
            numeric_count=row[6],
            total=row[7],
            minimum=row[8],
            maximum=row[9],
            sum_squares=row[10],
        )
    return result
