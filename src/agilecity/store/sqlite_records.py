"""SQLite statements of the records (configuration documents) and the audit log."""

from __future__ import annotations

import sqlite3

import orjson

from agilecity.store.base import AuditEntry, AuditQuery, Record
from agilecity.store.sql import audit_filter, records_filter


def append_audit(conn: sqlite3.Connection, entries: list[AuditEntry]) -> None:
    """Insert audit entries."""
    conn.executemany(
        "INSERT INTO audit (at, actor, role, tenant, method, path, status) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(e.at, e.actor, e.role, e.tenant, e.method, e.path, e.status) for e in entries],
    )


def read_audit(conn: sqlite3.Connection, query: AuditQuery) -> list[AuditEntry]:
    """Audit entries, newest first."""
    tail, params = audit_filter(query, "?")
    sql = "SELECT at, actor, role, tenant, method, path, status FROM audit" + tail
    return [AuditEntry(*row) for row in conn.execute(sql, params)]


def put_record(conn: sqlite3.Connection, record: Record, create: bool) -> bool:
    """Insert (or with ``create`` False, replace) a record; False if it already existed."""
    verb = "INSERT" if create else "INSERT OR REPLACE"
    try:
        conn.execute(
            f"{verb} INTO records VALUES (?, ?, ?, ?)",
            (record.kind, record.tenant, record.key, orjson.dumps(record.doc).decode()),
        )
    except sqlite3.IntegrityError:
        return False
    return True


def get_record(conn: sqlite3.Connection, kind: str, tenant: str, key: str) -> Record | None:
    """One record, or None."""
    row = conn.execute(
        "SELECT doc FROM records WHERE kind = ? AND tenant = ? AND key = ?", (kind, tenant, key)
    ).fetchone()
    return None if row is None else Record(kind, tenant, key, orjson.loads(row[0]))


def list_records(conn: sqlite3.Connection, kind: str | None, tenant: str | None) -> list[Record]:
    """Records of a kind (every kind for None), by kind, tenant, key."""
    sql, params = records_filter(kind, tenant, "?")
    rows = conn.execute(f"SELECT kind, tenant, key, doc FROM records{sql}", params)
    return [Record(k, t, key, orjson.loads(d)) for k, t, key, d in rows]


def delete_record(conn: sqlite3.Connection, kind: str, tenant: str, key: str) -> bool:
    """Remove a record; False if there was none."""
    cursor = conn.execute(
        "DELETE FROM records WHERE kind = ? AND tenant = ? AND key = ?", (kind, tenant, key)
    )
    return cursor.rowcount > 0
