"""The PostgreSQL + PostGIS store: the scale path, shared by several API processes.

Same contract as the SQLite store. Writes run in one transaction per call with the
entity rows locked (``SELECT ... FOR UPDATE``), so concurrent processes serialise per
entity; the change outbox is claimed with ``FOR UPDATE SKIP LOCKED`` so each change is
handed to exactly one process. The history is range-partitioned by month of recording.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from agilecity.broker.query import Node
from agilecity.broker.temporal import Aggregate, history_records, numeric_value
from agilecity.errors import AgileCityError, AlreadyExistsError, InternalError
from agilecity.store.base import (
    AttributeSummary,
    AuditEntry,
    AuditQuery,
    Change,
    ContextRecord,
    Doc,
    EntityQuery,
    HistoryFunction,
    HistoryQuery,
    HistoryRow,
    IndexedParts,
    Mutation,
    Record,
    Store,
    TypeSummary,
    WriteResult,
)
from agilecity.store.postgres_schema import MIGRATIONS
from agilecity.store.sql import (
    PostgresQueryCompiler,
    audit_filter,
    history_where,
    records_filter,
)

_MARK = re.compile(r"\?")
CLAIM_TIMEOUT = "60 seconds"  # a claim older than this (a crashed process) is handed out again


def pg(sql: str) -> str:
    """The compiler's ``?`` placeholders as psycopg's ``%s``."""
    return _MARK.sub("%s", sql)


def _json(doc: Doc | None) -> Jsonb | None:
    return None if doc is None else Jsonb(doc)


def query_statements(tenant: str, query: EntityQuery) -> tuple[str, str, list[Any]]:
    """The count and page statements of an entity query and their shared parameters (the
    page's take LIMIT and OFFSET after them)."""
    compiler = PostgresQueryCompiler(tenant)
    where, params = compiler.compile(query)
    where, source, order = pg(where), compiler.source, compiler.order
    counting = f"SELECT count(*) FROM {source} WHERE {where}"
    page = f"SELECT e.doc FROM {source} WHERE {where} ORDER BY {order} LIMIT %s OFFSET %s"
    return counting, page, params


class PostgresStore(Store):
    """PostgreSQL 15+ with PostGIS 3."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url.replace("postgres://", "postgresql://", 1)
        self.pool = AsyncConnectionPool(
            self.url, min_size=min_size, max_size=max_size, open=False, kwargs={"autocommit": True}
        )
        self._capturing: set[str] = set()

    async def open(self) -> None:
        """Open the pool and apply pending migrations."""
        await self.pool.open(wait=True, timeout=10)
        await self.migrate()

    async def migrate(self) -> int:
        """Apply schema migrations not yet applied (also ``agilecity db upgrade``)."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(4242001)")
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version int NOT NULL)")
            row = await (await conn.execute("SELECT max(version) FROM schema_version")).fetchone()
            current = (row[0] if row else None) or 0
            for version, script in enumerate(MIGRATIONS, start=1):
                if version > current:
                    await conn.execute(script)
                    await conn.execute("INSERT INTO schema_version VALUES (%s)", (version,))
            await self._ensure_partitions(conn)
        return len(MIGRATIONS)

    @staticmethod
    async def _ensure_partitions(conn: psycopg.AsyncConnection[Any]) -> None:
        now = datetime.now(UTC)
        for offset in range(3):  # this month and the next two
            month = now.month - 1 + offset
            start = datetime(now.year + month // 12, month % 12 + 1, 1)
            end_month = month + 1
            end = datetime(now.year + end_month // 12, end_month % 12 + 1, 1)
            name = f"history_{start:%Y_%m}"
            exists = await (await conn.execute("SELECT to_regclass(%s)", (name,))).fetchone()
            if exists and exists[0] is None:
                await conn.execute(
                    f"CREATE TABLE {name} PARTITION OF history "
                    f"FOR VALUES FROM ('{start:%Y-%m}') TO ('{end:%Y-%m}')"
                )

    async def close(self) -> None:
        """Close the pool."""
        await self.pool.close()

    async def _fetch(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[Any]:
        async with self.pool.connection() as conn:
            return await (await conn.execute(sql, params)).fetchall()

    # -- entities ----------------------------------------------------------------------

    async def tenant_exists(self, tenant: str) -> bool:
        """True for the default tenant and any tenant written to."""
        if tenant == "":
            return True
        return bool(await self._fetch("SELECT 1 FROM tenants WHERE name = %s", (tenant,)))

    async def list_tenants(self) -> list[str]:
        """Every tenant, the default one first."""
        rows = await self._fetch("SELECT name FROM tenants WHERE name <> '' ORDER BY name")
        return ["", *[r[0] for r in rows]]

    async def get(self, tenant: str, entity_id: str) -> Doc | None:
        """One entity's document."""
        rows = await self._fetch(
            "SELECT doc FROM entities WHERE tenant = %s AND id = %s", (tenant, entity_id)
        )
        return rows[0][0] if rows else None

    async def query(self, tenant: str, query: EntityQuery) -> tuple[list[Doc], int | None]:
        """A page of matching documents in insertion order, with the count if asked."""
        counting, page, params = query_statements(tenant, query)
        async with self.pool.connection() as conn:
            total = None
            if query.count:
                cursor = await conn.execute(counting, params)
                row = await cursor.fetchone()
                total = int(row[0]) if row else 0
            docs: list[Doc] = []
            if query.limit > 0:
                cursor = await conn.execute(page, [*params, query.limit, query.offset])
                docs = [r[0] for r in await cursor.fetchall()]
        return docs, total

    async def type_summaries(self, tenant: str) -> list[TypeSummary]:
        """Entity types with counts and their attributes' kinds."""
        summaries = {
            t: TypeSummary(t, c)
            for t, c in await self._fetch(
                "SELECT type, count(*) FROM entity_types WHERE tenant = %s GROUP BY type "
                'ORDER BY type COLLATE "C"',
                (tenant,),
            )
        }
        for type_, attr, kind in await self._fetch(
            "SELECT DISTINCT t.type, a.attr, a.kind FROM entity_types t "
            "JOIN entity_attrs a ON a.pk = t.pk WHERE t.tenant = %s",
            (tenant,),
        ):
            summaries[type_].attributes.setdefault(attr, set()).add(kind)
        return list(summaries.values())

    async def attribute_summaries(self, tenant: str) -> list[AttributeSummary]:
        """Attributes with entity counts, kinds and the types they appear in."""
        summaries = {
            a: AttributeSummary(a, c)
            for a, c in await self._fetch(
                "SELECT attr, count(DISTINCT pk) FROM entity_attrs WHERE tenant = %s "
                'GROUP BY attr ORDER BY attr COLLATE "C"',
                (tenant,),
            )
        }
        for attr, kind, type_ in await self._fetch(
            "SELECT DISTINCT a.attr, a.kind, t.type FROM entity_attrs a "
            "JOIN entity_types t ON t.pk = a.pk WHERE a.tenant = %s",
            (tenant,),
        ):
            summaries[attr].kinds.add(kind)
            summaries[attr].types.add(type_)
        return list(summaries.values())

    async def write(
        self,
        tenant: str,
        items: list[tuple[str, Mutation]],
        history: HistoryFunction = history_records,
    ) -> list[WriteResult]:
        """Apply mutations in one transaction, rows locked; returns once committed."""
        try:
            # Pipeline mode: statements whose results nobody waits for (index rows, history,
            # the temporal entity) go to the server together instead of one round trip each.
            async with self.pool.connection() as conn, conn.pipeline(), conn.transaction():
                capture = tenant in self._capturing or bool(
                    await (
                        await conn.execute(
                            "SELECT 1 FROM subscriptions WHERE tenant = %s LIMIT 1", (tenant,)
                        )
                    ).fetchone()
                )
                results = []
                for entity_id, mutation in items:
                    result = await self._apply(conn, tenant, entity_id, mutation)
                    results.append(result)
                    if not result.ok:
                        continue
                    await self._append_history(conn, tenant, history(result.before, result.after))
                    await self._track(conn, tenant, entity_id, result.before, result.after)
                    if capture:
                        await conn.execute(
                            "INSERT INTO changes (tenant, entity_id, before, after) "
                            "VALUES (%s, %s, %s, %s)",
                            (tenant, entity_id, _json(result.before), _json(result.after)),
                        )
                        result.recorded = True
                if any(r.ok for r in results) and tenant:
                    await conn.execute(
                        "INSERT INTO tenants (name) VALUES (%s) ON CONFLICT DO NOTHING", (tenant,)
                    )
                if capture:
                    await conn.execute("NOTIFY agilecity_changes")
        except psycopg.Error as exc:
            raise InternalError("the database write failed") from exc
        return results

    async def _apply(
        self, conn: psycopg.AsyncConnection[Any], tenant: str, entity_id: str, mutation: Mutation
    ) -> WriteResult:
        while True:
            row = await (
                await conn.execute(
                    "SELECT pk, doc FROM entities WHERE tenant = %s AND id = %s FOR UPDATE",
                    (tenant, entity_id),
                )
            ).fetchone()
            before = row[1] if row else None
            try:
                after = mutation(before)
            except AgileCityError as exc:
                return WriteResult(entity_id, before=before, error=exc)
            if after is None:
                if row is not None:
                    await conn.execute("DELETE FROM entities WHERE pk = %s", (row[0],))
                return WriteResult(entity_id, before=before)
            if row is None:
                inserted = await (
                    await conn.execute(
                        "INSERT INTO entities (tenant, id, doc) VALUES (%s, %s, %s) "
                        "ON CONFLICT (tenant, id) DO NOTHING RETURNING pk",
                        (tenant, entity_id, Jsonb(after)),
                    )
                ).fetchone()
                if inserted is None:
                    continue  # another process created it meanwhile: lock it and try again
                pk = inserted[0]
            else:
                pk = row[0]
                await conn.execute("UPDATE entities SET doc = %s WHERE pk = %s", (Jsonb(after), pk))
                if IndexedParts.of(before) == IndexedParts.of(after):
                    return WriteResult(entity_id, before=before, after=after)  # index rows hold
                for table in ("entity_types", "entity_attrs", "geo_shapes"):
                    await conn.execute(f"DELETE FROM {table} WHERE pk = %s", (pk,))
            await self._side_rows(conn, tenant, pk, after)
            return WriteResult(entity_id, before=before, after=after)

    @staticmethod
    async def _side_rows(
        conn: psycopg.AsyncConnection[Any], tenant: str, pk: int, doc: Doc
    ) -> None:
        async with conn.cursor() as cursor:
            await cursor.executemany(
                "INSERT INTO entity_types VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                [(tenant, t, pk) for t in doc["type"]],
            )
            attrs = [
                (tenant, attr, inst["type"], pk)
                for attr, instances in doc["attrs"].items()
                for inst in instances
            ]
            await cursor.executemany(
                "INSERT INTO entity_attrs VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING", attrs
            )
            shapes = [
                (pk, attr, orjson.dumps(inst["value"]).decode())
                for attr, instances in doc["attrs"].items()
                for inst in instances
                if inst["type"] == "GeoProperty"
            ]
            await cursor.executemany(
                "INSERT INTO geo_shapes (pk, attr, geom) "
                "VALUES (%s, %s, ST_SetSRID(ST_GeomFromGeoJSON(%s), 4326))",
                shapes,
            )

    # -- contexts ----------------------------------------------------------------------

    async def put_context(self, record: ContextRecord) -> None:
        """Insert or replace a context record."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO contexts VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (local_id) "
                "DO UPDATE SET url = excluded.url, kind = excluded.kind, body = excluded.body, "
                "last_usage = excluded.last_usage, hits = excluded.hits",
                (record.local_id, record.url, record.kind, Jsonb(record.body),
                 record.created_at, record.last_usage, record.hits),
            )  # fmt: skip

    async def list_contexts(self) -> list[ContextRecord]:
        """Every stored context."""
        rows = await self._fetch(
            "SELECT local_id, url, kind, body, created_at, last_usage, hits FROM contexts "
            "ORDER BY created_at, local_id"
        )
        return [ContextRecord(*r) for r in rows]

    async def append_audit(self, entries: list[AuditEntry]) -> None:
        """Append audit entries in one transaction."""
        rows = [(e.at, e.actor, e.role, e.tenant, e.method, e.path, e.status) for e in entries]
        async with self.pool.connection() as conn, conn.cursor() as cursor:
            await cursor.executemany(
                "INSERT INTO audit (at, actor, role, tenant, method, path, status) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                rows,
            )

    async def read_audit(self, query: AuditQuery) -> list[AuditEntry]:
        """Audit entries, newest first."""
        tail, params = audit_filter(query, "%s")
        rows = await self._fetch(
            "SELECT at, actor, role, tenant, method, path, status FROM audit" + tail, params
        )
        return [AuditEntry(*row) for row in rows]

    async def put_record(self, record: Record, *, create: bool) -> None:
        """Store a record (AlreadyExistsError with create when it exists)."""
        conflict = "NOTHING" if create else "UPDATE SET doc = excluded.doc"
        rows = await self._fetch(
            f"INSERT INTO records VALUES (%s, %s, %s, %s) "
            f"ON CONFLICT (kind, tenant, key) DO {conflict} RETURNING 1",
            (record.kind, record.tenant, record.key, Jsonb(record.doc)),
        )
        if not rows:
            raise AlreadyExistsError(f"{record.kind} {record.key!r} already exists")

    async def get_record(self, kind: str, tenant: str, key: str) -> Record | None:
        """One record, or None."""
        rows = await self._fetch(
            "SELECT doc FROM records WHERE kind = %s AND tenant = %s AND key = %s",
            (kind, tenant, key),
        )
        return Record(kind, tenant, key, rows[0][0]) if rows else None

    async def list_records(self, kind: str | None, tenant: str | None = None) -> list[Record]:
        """Records of a kind (every kind for None), by kind, tenant, key."""
        sql, params = records_filter(kind, tenant, "%s")
        rows = await self._fetch(f"SELECT kind, tenant, key, doc FROM records{sql}", params)
        return [Record(k, t, key, d) for k, t, key, d in rows]

    async def delete_record(self, kind: str, tenant: str, key: str) -> bool:
        """Remove a record."""
        rows = await self._fetch(
            "DELETE FROM records WHERE kind = %s AND tenant = %s AND key = %s RETURNING 1",
            (kind, tenant, key),
        )
        return bool(rows)

    async def delete_context(self, local_id: str) -> bool:
        """Remove a context record."""
        rows = await self._fetch(
            "DELETE FROM contexts WHERE local_id = %s RETURNING 1", (local_id,)
        )
        return bool(rows)

    # -- history -----------------------------------------------------------------------

    @staticmethod
    async def _append_history(
        conn: psycopg.AsyncConnection[Any], tenant: str, records: list[Any]
    ) -> None:
        if not records:
            return
        async with conn.cursor() as cursor:
            await cursor.executemany(
                "INSERT INTO history (tenant, entity_id, attr, dataset_id, instance_id, instance, "
                "num, observed_at, created_at, modified_at, deleted_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (tenant, r.entity_id, r.attr, r.dataset_id, r.instance_id, Jsonb(r.instance),
                     numeric_value(r.instance), r.instance.get("observedAt"),
                     r.instance.get("createdAt"), r.modified_at, r.deleted_at)
                    for r in records
                ],
            )  # fmt: skip

    @staticmethod
    async def _track(
        conn: psycopg.AsyncConnection[Any],
        tenant: str,
        entity_id: str,
        before: Doc | None,
        after: Doc | None,
    ) -> None:
        if after is not None:
            await conn.execute(
                "INSERT INTO temporal_entities VALUES (%s, %s, %s, NULL) ON CONFLICT (tenant, id) "
                "DO UPDATE SET types = excluded.types, deleted_at = NULL "
                # unchanged (most writes): no new row version
                "WHERE temporal_entities.types IS DISTINCT FROM excluded.types "
                "OR temporal_entities.deleted_at IS NOT NULL",
                (tenant, entity_id, Jsonb(after["type"])),
            )
        elif before is not None:
            await conn.execute(
                "UPDATE temporal_entities SET deleted_at = now()::text "
                "WHERE tenant = %s AND id = %s",
                (tenant, entity_id),
            )

    async def read_history(self, tenant: str, query: HistoryQuery) -> list[HistoryRow]:
        """Instances in time order; with last_n only the newest n per entity and attribute."""
        if not query.entity_ids:
            return []
        where, params, column = _history_where(tenant, query)
        order = f'coalesce({column}, modified_at) COLLATE "C", hid'
        if query.last_n is not None:
            sql = (
                "SELECT entity_id, attr, instance_id, instance, modified_at FROM ("
                "SELECT *, row_number() OVER (PARTITION BY entity_id, attr "
                f"ORDER BY {order.replace(', hid', ' DESC, hid DESC')}) AS rn "
                f"FROM history WHERE {where}) AS h WHERE rn <= %s "
                f"ORDER BY entity_id, attr, {order}"
            )
            params = [*params, query.last_n]
        else:
            sql = (
                "SELECT entity_id, attr, instance_id, instance, modified_at FROM history "
                f"WHERE {where} ORDER BY entity_id, attr, {order}"
            )
        return [HistoryRow(*r) for r in await self._fetch(sql, params)]

    async def history_range(
        self, tenant: str, query: HistoryQuery
    ) -> tuple[str | None, str | None]:
        """Earliest and latest time among matching instances."""
        if not query.entity_ids:
            return None, None
        where, params, column = _history_where(tenant, query)
        rows = await self._fetch(
            f'SELECT min({column} COLLATE "C"), max({column} COLLATE "C") FROM history '
            f"WHERE {where}",
            params,
        )
        return rows[0][0], rows[0][1]

    async def aggregate_history(
        self,
        tenant: str,
        query: HistoryQuery,
        periods: list[tuple[str, str]],
        step_ms: int | None = None,
        methods: frozenset[str] = frozenset(),
    ) -> dict[tuple[str, str, str, int], Aggregate]:
        """Aggregates per entity, attribute, dataset and period, computed by PostgreSQL."""
        if not query.entity_ids or not periods:
            return {}
        where, params, column = _history_where(tenant, query)
        if step_ms is not None:
            # date_part (double precision) instead of extract (numeric, slow arithmetic);
            # canonical times have whole milliseconds, which round() recovers exactly.
            millis = "round(date_part('epoch', {}::timestamptz) * 1000)::bigint"
            bucketed = (
                "SELECT entity_id, attr, dataset_id, instance, num, "
                f"({millis.format(column)} - {millis.format('%s')}) / %s AS idx "
                f"FROM history WHERE {where} AND {column} >= %s AND {column} < %s"
            )
            first, last = periods[0][0], periods[-1][1]
            bucket_params: list[Any] = [first, step_ms, *params, first, last]
        else:
            bucketed = (
                "WITH periods(idx, p_start, p_end) AS "
                "(SELECT * FROM unnest(%s::int[], %s::text[], %s::text[])) "
                "SELECT entity_id, attr, dataset_id, instance, num, p.idx AS idx "
                f'FROM history h JOIN periods p ON {column} COLLATE "C" >= p.p_start '
                f'AND {column} COLLATE "C" < p.p_end WHERE {where}'
            )
            bucket_params = [
                list(range(len(periods))), [p[0] for p in periods], [p[1] for p in periods],
                *params,
            ]  # fmt: skip
        distinct = (
            "count(DISTINCT instance -> 'value')"
            if not methods or "distinctCount" in methods
            else "NULL::bigint"
        )
        if not methods or "stddev" in methods:
            # Two passes (deviations from the period's mean) keep stddev exact.
            source = (
                "SELECT *, num - avg(num) OVER (PARTITION BY entity_id, attr, dataset_id, idx) "
                f"AS dev FROM ({bucketed}) AS bucketed"
            )
            deviations = "sum(dev * dev)"
        else:
            source, deviations = bucketed, "NULL::float8"
        sql = (
            f"SELECT entity_id, attr, dataset_id, idx, count(*), {distinct}, count(num), "
            f"sum(num), min(num), max(num), sum(num * num), {deviations} "
            f"FROM ({source}) AS deviations GROUP BY entity_id, attr, dataset_id, idx"
        )
        result = {}
        for row in await self._fetch(sql, bucket_params):
            result[(row[0], row[1], row[2], int(row[3]))] = Aggregate(
                count=row[4], distinct=row[5], numeric_count=row[6], total=row[7],
                minimum=row[8], maximum=row[9], sum_squares=row[10],
                squared_deviations=row[11],
            )  # fmt: skip
        return result

    async def history_types(self, tenant: str, entity_id: str) -> list[str] | None:
        """The types of an entity that exists or existed."""
        rows = await self._fetch(
            "SELECT types FROM temporal_entities WHERE tenant = %s AND id = %s",
            (tenant, entity_id),
        )
        return rows[0][0] if rows else None

    async def edit_history(
        self,
        tenant: str,
        entity_id: str,
        *,
        attr: str | None = None,
        instance_id: str | None = None,
        dataset_id: str | None = None,
        replacement: dict[str, Any] | None = None,
    ) -> int:
        """Replace or delete history instances."""
        where = "tenant = %s AND entity_id = %s"
        params: list[Any] = [tenant, entity_id]
        for column, value in (("attr", attr), ("instance_id", instance_id),
                              ("dataset_id", dataset_id)):  # fmt: skip
            if value is not None:
                where += f" AND {column} = %s"
                params.append(value)
        async with self.pool.connection() as conn, conn.transaction():
            if replacement is not None:
                cursor = await conn.execute(
                    f"UPDATE history SET instance = %s, observed_at = %s, num = %s WHERE {where}",
                    [Jsonb(replacement), replacement.get("observedAt"),
                     numeric_value(replacement), *params],
                )  # fmt: skip
            else:
                cursor = await conn.execute(f"DELETE FROM history WHERE {where}", params)
                if attr is None and instance_id is None:
                    await conn.execute(
                        "DELETE FROM temporal_entities WHERE tenant = %s AND id = %s",
                        (tenant, entity_id),
                    )
            return cursor.rowcount

    async def dump_history(self, tenant: str, after: int, limit: int) -> list[dict[str, Any]]:
        """Raw history rows after a position."""
        rows = await self._fetch(
            "SELECT h.hid, h.entity_id, h.attr, h.dataset_id, h.instance_id, h.instance, "
            "h.observed_at, h.created_at, h.modified_at, h.deleted_at, t.types FROM history h "
            "LEFT JOIN temporal_entities t ON t.tenant = h.tenant AND t.id = h.entity_id "
            "WHERE h.tenant = %s AND h.hid > %s ORDER BY h.hid LIMIT %s",
            (tenant, after, limit),
        )
        keys = ("position", "entity_id", "attr", "dataset_id", "instance_id", "instance",
                "observed_at", "created_at", "modified_at", "deleted_at", "types")  # fmt: skip
        return [dict(zip(keys, row, strict=True)) for row in rows]

    async def load_history(self, tenant: str, rows: list[dict[str, Any]]) -> None:
        """Insert exported history rows."""
        async with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO history (tenant, entity_id, attr, dataset_id, instance_id, instance, "
                "num, observed_at, created_at, modified_at, deleted_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [(tenant, r["entity_id"], r["attr"], r["dataset_id"], r["instance_id"],
                  Jsonb(r["instance"]), numeric_value(r["instance"]), r["observed_at"],
                  r["created_at"], r["modified_at"], r["deleted_at"]) for r in rows],
            )  # fmt: skip
            await cur.executemany(
                "INSERT INTO temporal_entities VALUES (%s, %s, %s, NULL) ON CONFLICT DO NOTHING",
                [(tenant, r["entity_id"], Jsonb(r["types"])) for r in rows if r.get("types")],
            )

    async def purge_history(self, tenant: str, older_than: str) -> int:
        """Retention: delete history recorded before a time."""
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "DELETE FROM history WHERE tenant = %s AND modified_at < %s", (tenant, older_than)
            )
            return cursor.rowcount

    # -- subscriptions and changes ------------------------------------------------------

    async def put_subscription(self, tenant: str, doc: Doc, *, create: bool) -> None:
        """Insert (create) or replace a subscription document."""
        async with self.pool.connection() as conn, conn.transaction():
            if create:
                inserted = await (
                    await conn.execute(
                        "INSERT INTO subscriptions (tenant, id, doc) VALUES (%s, %s, %s) "
                        "ON CONFLICT DO NOTHING RETURNING 1",
                        (tenant, doc["id"], Jsonb(doc)),
                    )
                ).fetchone()
                if inserted is None:
                    raise AlreadyExistsError(f"subscription {doc['id']} already exists")
            else:
                await conn.execute(
                    "UPDATE subscriptions SET doc = %s WHERE tenant = %s AND id = %s",
                    (Jsonb(doc), tenant, doc["id"]),
                )
            if tenant:
                await conn.execute(
                    "INSERT INTO tenants (name) VALUES (%s) ON CONFLICT DO NOTHING", (tenant,)
                )
            await conn.execute("UPDATE subscription_version SET version = version + 1")

    async def update_subscription_status(
        self, tenant: str, subscription_id: str, counters: dict[str, int], stamps: dict[str, str]
    ) -> None:
        """Add counters and set stamps under a row lock (processes never lose increments)."""
        async with self.pool.connection() as conn, conn.transaction():
            row = await (
                await conn.execute(
                    "SELECT doc FROM subscriptions WHERE tenant = %s AND id = %s FOR UPDATE",
                    (tenant, subscription_id),
                )
            ).fetchone()
            if row is None:
                return
            doc = row[0]
            notification = doc["notification"]
            for key, value in counters.items():
                notification[key] = notification.get(key, 0) + value
            notification.update(stamps)
            await conn.execute(
                "UPDATE subscriptions SET doc = %s WHERE tenant = %s AND id = %s",
                (Jsonb(doc), tenant, subscription_id),
            )

    async def get_subscription(self, tenant: str, subscription_id: str) -> Doc | None:
        """One subscription document."""
        rows = await self._fetch(
            "SELECT doc FROM subscriptions WHERE tenant = %s AND id = %s",
            (tenant, subscription_id),
        )
        return rows[0][0] if rows else None

    async def list_subscriptions(self, tenant: str | None) -> list[Doc]:
        """Subscriptions in creation order."""
        if tenant is None:
            rows = await self._fetch("SELECT tenant, doc FROM subscriptions ORDER BY seq")
        else:
            rows = await self._fetch(
                "SELECT tenant, doc FROM subscriptions WHERE tenant = %s ORDER BY seq", (tenant,)
            )
        return [{**r[1], "_tenant": r[0]} for r in rows]

    async def delete_subscription(self, tenant: str, subscription_id: str) -> bool:
        """Remove a subscription."""
        async with self.pool.connection() as conn, conn.transaction():
            cursor = await conn.execute(
                "DELETE FROM subscriptions WHERE tenant = %s AND id = %s",
                (tenant, subscription_id),
            )
            await conn.execute("UPDATE subscription_version SET version = version + 1")
            return cursor.rowcount > 0

    async def subscription_version(self) -> int:
        """A counter bumped by every subscription change (processes reload on change)."""
        rows = await self._fetch("SELECT version FROM subscription_version")
        return int(rows[0][0])

    def capture_changes(self, tenant: str, enabled: bool) -> None:
        """Record changes of a tenant for in-process subscribers."""
        if enabled:
            self._capturing.add(tenant)
        else:
            self._capturing.discard(tenant)

    async def claim_changes(self, limit: int) -> list[Change]:
        """Claim unclaimed (or abandoned) changes with SKIP LOCKED: each goes to one process."""
        rows = await self._fetch(
            "UPDATE changes SET claimed_at = now() WHERE seq IN (SELECT seq FROM changes "
            f"WHERE claimed_at IS NULL OR claimed_at < now() - interval '{CLAIM_TIMEOUT}' "
            "ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED) "
            "RETURNING seq, tenant, entity_id, before, after",
            (limit,),
        )
        return [Change(*r) for r in sorted(rows)]

    async def ack_changes(self, seqs: list[int]) -> None:
        """Delete handled changes."""
        if seqs:
            await self._fetch("DELETE FROM changes WHERE seq = ANY(%s) RETURNING 1", (seqs,))

    async def matches_filter(self, doc: Doc, q: Node | None, scope_q: Node | None) -> bool:
        """Evaluate q and scopeQ on one document with the query compiler's SQL."""
        if q is None and scope_q is None:
            return True
        where, params = PostgresQueryCompiler("").filter(q, scope_q)
        sql = f"SELECT 1 FROM (SELECT %s::jsonb AS doc) e WHERE {pg(where)}"
        return bool(await self._fetch(sql, [Jsonb(doc), *params]))


def _history_where(tenant: str, query: HistoryQuery) -> tuple[str, list[Any], str]:
    where, params, column = history_where(tenant, query)
    return pg(where), params, column
