"""The SQLite store's schema, its migrations, its connections and its index rows.

The entity documents live in ``entities``; ``entity_types``, ``geo_shapes``/``geo_rtree``
and the attribute counts behind /types and /attributes are derived from them by
``update_index`` inside the same write, so they never disagree with the documents.
"""

from __future__ import annotations

import sqlite3
from collections import Counter

import orjson

from agilecity.broker import regex
from agilecity.broker.geo import bounding_box, matches_json
from agilecity.broker.timeutil import canonical_or_none
from agilecity.store.base import IndexedParts

SCHEMA_VERSION = 3
SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tenants (name TEXT PRIMARY KEY, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entities (
    pk INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    doc TEXT NOT NULL,
    UNIQUE (tenant, id)
);
CREATE INDEX IF NOT EXISTS entities_tenant_pk ON entities (tenant, pk);
CREATE TABLE IF NOT EXISTS entity_types (
    tenant TEXT NOT NULL, type TEXT NOT NULL, pk INTEGER NOT NULL,
    PRIMARY KEY (tenant, type, pk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entity_types_pk ON entity_types (pk);
CREATE TABLE IF NOT EXISTS attr_counts (
    tenant TEXT NOT NULL, attr TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (tenant, attr)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS type_attr_counts (
    tenant TEXT NOT NULL, type TEXT NOT NULL, attr TEXT NOT NULL, kind TEXT NOT NULL,
    n INTEGER NOT NULL, PRIMARY KEY (tenant, type, attr, kind)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS geo_shapes (
    gid INTEGER PRIMARY KEY, pk INTEGER NOT NULL, attr TEXT NOT NULL, geometry TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS geo_shapes_pk ON geo_shapes (pk);
CREATE VIRTUAL TABLE IF NOT EXISTS geo_rtree USING rtree (gid, min_x, max_x, min_y, max_y);
CREATE TABLE IF NOT EXISTS subscriptions (
    tenant TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY, tenant TEXT NOT NULL, entity_id TEXT NOT NULL,
    before TEXT, after TEXT, claimed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS contexts (
    local_id TEXT PRIMARY KEY, url TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
    body TEXT NOT NULL, created_at TEXT NOT NULL, last_usage TEXT, hits INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, role TEXT NOT NULL,
    tenant TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, status INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL, tenant TEXT NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (kind, tenant, key)
);
"""

# The scripts that bring a database of the previous version to each version.
# Version 1 kept one row per entity and attribute (entity_attrs) only to answer /types
# and /attributes; version 2 keeps counts, which a write group updates once.
_MIGRATE_TO_2 = """
BEGIN IMMEDIATE;
INSERT INTO attr_counts SELECT tenant, attr, count(DISTINCT pk) FROM entity_attrs
    GROUP BY tenant, attr;
INSERT INTO type_attr_counts SELECT a.tenant, t.type, a.attr, a.kind, count(DISTINCT a.pk)
    FROM entity_attrs a JOIN entity_types t ON t.pk = a.pk
    GROUP BY a.tenant, t.type, a.attr, a.kind;
DROP TABLE entity_attrs;
UPDATE schema_version SET version = 2;
COMMIT;
"""
# Version 3 replaces history_observed by history_series (sqlite_history.SCHEMA, built
# when the schema is applied on open), which also holds what aggregations read.
_MIGRATE_TO_3 = """
BEGIN IMMEDIATE;
DROP INDEX IF EXISTS history_observed;
UPDATE schema_version SET version = 3;
COMMIT;
"""
MIGRATIONS = {2: _MIGRATE_TO_2, 3: _MIGRATE_TO_3}


def connect(path: str) -> sqlite3.Connection:
    """A connection in WAL mode with the functions the compiled queries call."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=10000")
    # Checkpoints run in their own thread (sqlite_wal.Checkpointer), never inside a
    # commit: an automatic checkpoint would make the committing write wait for fsync.
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.create_function("regexp", 2, regex.search, deterministic=True)  # RE2: linear time
    conn.create_function("ac_geo", 2, matches_json, deterministic=True)
    conn.create_function("ac_datetime", 1, canonical_or_none, deterministic=True)
    return conn


def update_index(
    conn: sqlite3.Connection,
    tenant: str,
    counts: Counter[tuple[str, ...]],
    pk: int,
    old: IndexedParts,
    new: IndexedParts,
) -> None:
    """Bring the index rows of one entity from its old to its new state.

    Only what changed is written: an update of values touches none of them. The
    attribute counts of /types and /attributes add up per job and reach the tables
    once per write group (``apply_counts``)."""
    if old.types != new.types:
        if old.types:
            conn.execute("DELETE FROM entity_types WHERE pk = ?", (pk,))
        conn.executemany(
            "INSERT OR IGNORE INTO entity_types VALUES (?, ?, ?)",
            [(tenant, t, pk) for t in new.types],
        )
    if old.shapes != new.shapes:
        if old.shapes:
            gids = [(r[0],) for r in conn.execute("SELECT gid FROM geo_shapes WHERE pk = ?", (pk,))]
            conn.executemany("DELETE FROM geo_rtree WHERE gid = ?", gids)
            conn.execute("DELETE FROM geo_shapes WHERE pk = ?", (pk,))
        for attr, geometry in new.shapes:
            min_x, min_y, max_x, max_y = bounding_box(geometry)
            cursor = conn.execute(
                "INSERT INTO geo_shapes (pk, attr, geometry) VALUES (?, ?, ?)",
                (pk, attr, orjson.dumps(geometry).decode()),
            )
            conn.execute(
                "INSERT INTO geo_rtree VALUES (?, ?, ?, ?, ?)",
                (cursor.lastrowid, min_x, max_x, min_y, max_y),
            )
    if old.types != new.types or old.kinds != new.kinds:
        for attr in new.attrs - old.attrs:
            counts[(tenant, attr)] += 1
        for attr in old.attrs - new.attrs:
            counts[(tenant, attr)] -= 1
        old_pairs, new_pairs = old.type_kinds(), new.type_kinds()
        for type_, attr, kind in new_pairs - old_pairs:
            counts[(tenant, type_, attr, kind)] += 1
        for type_, attr, kind in old_pairs - new_pairs:
            counts[(tenant, type_, attr, kind)] -= 1


def apply_counts(conn: sqlite3.Connection, counts: Counter[tuple[str, ...]]) -> None:
    """Add a write group's attribute count changes to the summary tables."""
    attrs = [(*k, n) for k, n in counts.items() if n and len(k) == 2]
    pairs = [(*k, n) for k, n in counts.items() if n and len(k) == 4]
    conn.executemany(
        "INSERT INTO attr_counts VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n",
        attrs,
    )
    conn.executemany(
        "INSERT INTO type_attr_counts VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT DO UPDATE SET n = n + excluded.n",
        pairs,
    )
    conn.executemany(
        "DELETE FROM attr_counts WHERE tenant = ? AND attr = ? AND n <= 0",
        [k[:2] for k in attrs if k[2] < 0],
    )
    conn.executemany(
        "DELETE FROM type_attr_counts WHERE tenant = ? AND type = ? AND attr = ? "
        "AND kind = ? AND n <= 0",
        [k[:4] for k in pairs if k[4] < 0],
    )
