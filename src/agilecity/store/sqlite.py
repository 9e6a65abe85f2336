"""The embedded SQLite store: WAL, one writer thread with group commit, parallel readers.

Writes from concurrent requests queue up for the single writer thread, which applies as
many as are waiting in one transaction (each under its own SAVEPOINT, so one failure
never spoils the others), commits, and only then resolves each request. Readers use their
own connections from a small thread pool, so queries never wait for writes (WAL).
``synchronous=NORMAL`` in WAL mode keeps every committed write through a crash of the
process (not of the operating system; ``synchronous=FULL`` is a setting away).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from agilecity.broker.query import Node
from agilecity.broker.temporal import Aggregate, history_records, numeric_value
from agilecity.errors import AgileCityError, AlreadyExistsError, InternalError
from agilecity.store import sqlite_history, sqlite_records
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
from agilecity.store.sql import SQLiteQueryCompiler
from agilecity.store.sqlite_schema import (
    MIGRATIONS,
    SCHEMA,
    SCHEMA_VERSION,
    apply_counts,
    connect,
    update_index,
)
from agilecity.store.sqlite_wal import Checkpointer

T = TypeVar("T")
log = logging.getLogger("agilecity.store")
_MAX_GROUP = 256


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:///relative`` or ``sqlite:////absolute`` URL."""
    if not url.startswith("sqlite:///"):
        raise ValueError(f"not a SQLite URL: {url!r}")
    return url[len("sqlite:///") :]


class _WriteJob:
    def __init__(
        self,
        tenant: str,
        items: list[tuple[str, Mutation]],
        history: HistoryFunction = history_records,
    ) -> None:
        self.tenant = tenant
        self.items = items
        self.history = history
        self.results: list[WriteResult] = []
        self.failure: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        #: changes to the /types and /attributes counts, applied once per write group
        self.counts: Counter[tuple[str, ...]] = Counter()
        self.callback: Callable[[], None] | None = None


class SQLiteStore(Store):
    """The embedded default store: one SQLite file in WAL mode."""

    def __init__(self, url: str, *, readers: int = 4) -> None:
        self.path = sqlite_path(url)
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="sqlite-read")
        self._local = threading.local()
        self._jobs: queue.Queue[_WriteJob | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._known_tenants: set[str] = {""}
        self._capturing: set[str] = set()
        # Tenants with subscriptions, read in the writer thread; None = read it again.
        self._subscribed: set[str] | None = None
        self._checkpointer: Checkpointer | None = None
        self._all_connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    async def open(self) -> None:
        """Create the file and schema, then start the writer thread."""
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = connect(self.path)
        conn.executescript(SCHEMA + sqlite_history.SCHEMA)
        # One process owns a SQLite file: changes claimed before a crash are handed out again.
        conn.execute("UPDATE changes SET claimed = 0 WHERE claimed = 1")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        else:
            for version in range(row[0] + 1, SCHEMA_VERSION + 1):
                log.info("migrating %s to schema version %d", self.path, version)
                conn.executescript(MIGRATIONS[version])
        self._known_tenants.update(r[0] for r in conn.execute("SELECT name FROM tenants"))
        if self.path != ":memory:":  # before the writer, which tells it of each commit
            self._checkpointer = Checkpointer(self.path)
            self._checkpointer.start()
        self._writer = threading.Thread(
            target=self._write_loop, args=(conn,), name="sqlite-writer", daemon=True
        )
        self._writer.start()

    async def close(self) -> None:
        """Drain the write queue, stop the writer and close every connection."""
        if self._writer is not None:
            self._jobs.put(None)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        if self._checkpointer is not None:
            await self._checkpointer.stop()
            self._checkpointer = None
        self._readers.shutdown(wait=True)
        with self._lock:
            for conn in self._all_connections:
                conn.close()
            self._all_connections.clear()

    # -- reads -------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
            with self._lock:
                self._all_connections.append(conn)
        return conn

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read in the reader pool (WAL: it never waits for the writer)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, lambda: fn(self._reader()))

    async def tenant_exists(self, tenant: str) -> bool:
        """True for the default tenant and any tenant written to."""
        if tenant in self._known_tenants:
            return True

        def run(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT 1 FROM tenants WHERE name = ?", (tenant,)).fetchone()
            return row is not None

        exists = await self._read(run)
        if exists:
            self._known_tenants.add(tenant)
        return exists

    async def get(self, tenant: str, entity_id: str) -> Doc | None:
        """One entity's document."""

        def run(conn: sqlite3.Connection) -> Doc | None:
            row = conn.execute(
                "SELECT doc FROM entities WHERE tenant = ? AND id = ?", (tenant, entity_id)
            ).fetchone()
            return orjson.loads(row[0]) if row else None

        return run(self._reader())  # one row by key: on the loop, cheaper than a thread hop

    async def query(self, tenant: str, query: EntityQuery) -> tuple[list[Doc], int | None]:
        """A page of matching documents in insertion order, with the count if asked."""
        compiler = SQLiteQueryCompiler(tenant)
        where, params = compiler.compile(query)
        source, order = compiler.source, compiler.order

        def run(conn: sqlite3.Connection) -> tuple[list[Doc], int | None]:
            total: int | None = None
            if query.count:
                sql = f"SELECT count(*) FROM {source} WHERE {where}"
                total = int(conn.execute(sql, params).fetchone()[0])
            docs: list[Doc] = []
            if query.limit > 0:
                rows = conn.execute(
                    f"SELECT e.doc FROM {source} WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
                    [*params, query.limit, query.offset],
                )
                docs = [orjson.loads(r[0]) for r in rows]
            return docs, total

        return await self._read(run)

    async def type_summaries(self, tenant: str) -> list[TypeSummary]:
        """Entity types with counts and their attributes' kinds."""

        def run(conn: sqlite3.Connection) -> list[TypeSummary]:
            summaries: dict[str, TypeSummary] = {}
            for type_, count in conn.execute(
                "SELECT type, count(*) FROM entity_types WHERE tenant = ? GROUP BY type "
                "ORDER BY type",
                (tenant,),
            ):
                summaries[type_] = TypeSummary(type_, count)
            for type_, attr, kind in conn.execute(
                "SELECT type, attr, kind FROM type_attr_counts WHERE tenant = ? AND n > 0",
                (tenant,),
            ):
                summaries[type_].attributes.setdefault(attr, set()).add(kind)
            return list(summaries.values())

        return await self._read(run)

    async def attribute_summaries(self, tenant: str) -> list[AttributeSummary]:
        """Attributes with entity counts, kinds and the types they appear in."""

        def run(conn: sqlite3.Connection) -> list[AttributeSummary]:
            summaries: dict[str, AttributeSummary] = {}
            for attr, count in conn.execute(
                "SELECT attr, n FROM attr_counts WHERE tenant = ? AND n > 0 ORDER BY attr",
                (tenant,),
            ):
                summaries[attr] = AttributeSummary(attr, count)
            for attr, kind, type_ in conn.execute(
                "SELECT attr, kind, type FROM type_attr_counts WHERE tenant = ? AND n > 0",
                (tenant,),
            ):
                summaries[attr].kinds.add(kind)
                summaries[attr].types.add(type_)
            return list(summaries.values())

        return await self._read(run)

    async def list_contexts(self) -> list[ContextRecord]:
        """Every stored context."""

        def run(conn: sqlite3.Connection) -> list[ContextRecord]:
            rows = conn.execute(
                "SELECT local_id, url, kind, body, created_at, last_usage, hits FROM contexts "
                "ORDER BY created_at, local_id"
            )
            return [
                ContextRecord(r[0], r[1], r[2], orjson.loads(r[3]), r[4], r[5], r[6]) for r in rows
            ]

        return await self._read(run)

    # -- history -----------------------------------------------------------------------

    async def read_history(self, tenant: str, query: HistoryQuery) -> list[HistoryRow]:
        """Instances in time order."""
        return await self._read(lambda conn: sqlite_history.read(conn, tenant, query))

    async def aggregate_history(
        self,
        tenant: str,
        query: HistoryQuery,
        periods: list[tuple[str, str]],
        step_ms: int | None = None,
        methods: frozenset[str] = frozenset(),
    ) -> dict[tuple[str, str, str, int], Aggregate]:
        """Aggregates per entity, attribute, dataset and period."""
        return await self._read(
            lambda conn: sqlite_history.aggregate(conn, tenant, query, periods, step_ms, methods)
        )

    async def history_range(
        self, tenant: str, query: HistoryQuery
    ) -> tuple[str | None, str | None]:
        """Earliest and latest time among matching instances."""
        return await self._read(lambda conn: sqlite_history.time_range(conn, tenant, query))

    async def list_tenants(self) -> list[str]:
        """Every tenant written to, the default tenant first."""

        def run(conn: sqlite3.Connection) -> list[str]:
            names = [r[0] for r in conn.execute("SELECT name FROM tenants ORDER BY name")]
            return ["", *[n for n in names if n]]

        return await self._read(run)

    async def history_types(self, tenant: str, entity_id: str) -> list[str] | None:
        """The types of an entity that exists or existed."""

        def run(conn: sqlite3.Connection) -> list[str] | None:
            row = conn.execute(
                "SELECT types FROM temporal_entities WHERE tenant = ? AND id = ?",
                (tenant, entity_id),
            ).fetchone()
            return orjson.loads(row[0]) if row else None

        return await self._read(run)

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
        touched: list[int] = []

        def run(conn: sqlite3.Connection) -> None:
            where = "tenant = ? AND entity_id = ?"
            params: list[Any] = [tenant, entity_id]
            if attr is not None:
                where += " AND attr = ?"
                params.append(attr)
            if instance_id is not None:
                where += " AND instance_id = ?"
                params.append(instance_id)
            if dataset_id is not None:
                where += " AND dataset_id = ?"
                params.append(dataset_id)
            if replacement is not None:
                cursor = conn.execute(
                    f"UPDATE history SET instance = ?, observed_at = ?, num = ? WHERE {where}",
                    [orjson.dumps(replacement).decode(), replacement.get("observedAt"),
                     numeric_value(replacement), *params],
                )  # fmt: skip
            else:
                cursor = conn.execute(f"DELETE FROM history WHERE {where}", params)
                if attr is None and instance_id is None:
                    conn.execute(
                        "DELETE FROM temporal_entities WHERE tenant = ? AND id = ?",
                        (tenant, entity_id),
                    )
            touched.append(cursor.rowcount)

        await self._submit(_RawJob(run))
        return touched[0]

    async def dump_history(self, tenant: str, after: int, limit: int) -> list[dict[str, Any]]:
        """Raw history rows after a position."""
        return await self._read(lambda conn: sqlite_history.dump(conn, tenant, after, limit))

    async def load_history(self, tenant: str, rows: list[dict[str, Any]]) -> None:
        """Insert exported history rows."""
        await self._submit(_RawJob(lambda conn: sqlite_history.load(conn, tenant, rows)))

    async def subscription_version(self) -> int:
        """One process owns a SQLite file: its registry is always current."""
        return 0

    async def purge_history(self, tenant: str, older_than: str) -> int:
        """Retention: delete history modified before a time."""
        deleted: list[int] = []

        def run(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "DELETE FROM history WHERE tenant = ? AND modified_at < ?", (tenant, older_than)
            )
            deleted.append(cursor.rowcount)

        await self._submit(_RawJob(run))
        return deleted[0]

    # -- subscriptions and changes ------------------------------------------------------

    async def put_subscription(self, tenant: str, doc: Doc, *, create: bool) -> None:
        """Insert (create) or replace a subscription document."""
        failed: list[AgileCityError] = []

        def run(conn: sqlite3.Connection) -> None:
            if create:
                exists = conn.execute(
                    "SELECT 1 FROM subscriptions WHERE tenant = ? AND id = ?", (tenant, doc["id"])
                ).fetchone()
                if exists:
                    failed.append(AlreadyExistsError(f"subscription {doc['id']} already exists"))
                    return
                seq = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM subscriptions")
                conn.execute(
                    "INSERT INTO subscriptions VALUES (?, ?, ?, ?)",
                    (tenant, doc["id"], _dump(doc), seq.fetchone()[0]),
                )
            else:
                conn.execute(
                    "UPDATE subscriptions SET doc = ? WHERE tenant = ? AND id = ?",
                    (_dump(doc), tenant, doc["id"]),
                )
            self._subscribed = None
            if tenant not in self._known_tenants:
                conn.execute("INSERT OR IGNORE INTO tenants VALUES (?, datetime('now'))", (tenant,))

        await self._submit(_RawJob(run))
        if failed:
            raise failed[0]
        self._known_tenants.add(tenant)

    async def update_subscription_status(
        self, tenant: str, subscription_id: str, counters: dict[str, int], stamps: dict[str, str]
    ) -> None:
        """Add counters and set stamps in the writer thread (atomic read-modify-write)."""

        def run(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "SELECT doc FROM subscriptions WHERE tenant = ? AND id = ?",
                (tenant, subscription_id),
            ).fetchone()
            if row is None:
                return
            doc = orjson.loads(row[0])
            notification = doc["notification"]
            for key, value in counters.items():
                notification[key] = notification.get(key, 0) + value
            notification.update(stamps)
            conn.execute(
                "UPDATE subscriptions SET doc = ? WHERE tenant = ? AND id = ?",
                (_dump(doc), tenant, subscription_id),
            )

        await self._submit(_RawJob(run))

    async def get_subscription(self, tenant: str, subscription_id: str) -> Doc | None:
        """One subscription document."""

        def run(conn: sqlite3.Connection) -> Doc | None:
            row = conn.execute(
                "SELECT doc FROM subscriptions WHERE tenant = ? AND id = ?",
                (tenant, subscription_id),
            ).fetchone()
            return _load(row[0]) if row else None

        return await self._read(run)

    async def list_subscriptions(self, tenant: str | None) -> list[Doc]:
        """Subscriptions in creation order."""

        def run(conn: sqlite3.Connection) -> list[Doc]:
            if tenant is None:
                rows = conn.execute("SELECT tenant, doc FROM subscriptions ORDER BY seq")
            else:
                rows = conn.execute(
                    "SELECT tenant, doc FROM subscriptions WHERE tenant = ? ORDER BY seq",
                    (tenant,),
                )
            return [{**orjson.loads(r[1]), "_tenant": r[0]} for r in rows]

        return await self._read(run)

    async def delete_subscription(self, tenant: str, subscription_id: str) -> bool:
        """Remove a subscription."""
        deleted: list[bool] = []

        def run(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "DELETE FROM subscriptions WHERE tenant = ? AND id = ?", (tenant, subscription_id)
            )
            deleted.append(cursor.rowcount > 0)
            self._subscribed = None

        await self._submit(_RawJob(run))
        return deleted[0]

    def capture_changes(self, tenant: str, enabled: bool) -> None:
        """Record changes of a tenant for in-process subscribers."""
        if enabled:
            self._capturing.add(tenant)
        else:
            self._capturing.discard(tenant)

    async def claim_changes(self, limit: int) -> list[Change]:
        """Mark up to limit unclaimed changes as claimed and return them in order."""
        claimed: list[Change] = []

        def run(conn: sqlite3.Connection) -> None:
            rows = conn.execute(
                "UPDATE changes SET claimed = 1 WHERE seq IN (SELECT seq FROM changes "
                "WHERE claimed = 0 ORDER BY seq LIMIT ?) "
                "RETURNING seq, tenant, entity_id, before, after",
                (limit,),
            ).fetchall()
            for row in sorted(rows):
                claimed.append(Change(row[0], row[1], row[2], _load(row[3]), _load(row[4])))

        await self._submit(_RawJob(run))
        return claimed

    async def ack_changes(self, seqs: list[int]) -> None:
        """Delete handled changes."""
        if not seqs:
            return

        def run(conn: sqlite3.Connection) -> None:
            conn.executemany("DELETE FROM changes WHERE seq = ?", [(s,) for s in seqs])

        await self._submit(_RawJob(run))

    async def matches_filter(self, doc: Doc, q: Node | None, scope_q: Node | None) -> bool:
        """Evaluate q and scopeQ on one document with the query compiler's SQL."""
        if q is None and scope_q is None:
            return True
        where, params = SQLiteQueryCompiler("").filter(q, scope_q)
        sql = f"SELECT 1 FROM (SELECT ? AS doc) e WHERE {where}"
        values = [_dump(doc), *params]
        return await self._read(lambda conn: conn.execute(sql, values).fetchone() is not None)

    # -- writes ------------------------------------------------------------------------

    async def _submit(self, job: _WriteJob) -> None:
        if self._writer is None:
            raise InternalError("the store is not open")
        job.loop = asyncio.get_running_loop()
        finished = job.loop.create_future()
        job.callback = lambda: _resolve(finished)
        self._jobs.put(job)
        await finished
        if job.failure is not None:
            raise InternalError("the database write failed") from job.failure

    async def write(
        self,
        tenant: str,
        items: list[tuple[str, Mutation]],
        history: HistoryFunction = history_records,
    ) -> list[WriteResult]:
        """Apply mutations in the writer thread; returns once committed."""
        job = _WriteJob(tenant, items, history)
        await self._submit(job)
        if any(r.ok for r in job.results):
            self._known_tenants.add(tenant)
        return job.results

    async def put_context(self, record: ContextRecord) -> None:
        """Insert or replace a context record."""

        def mutation(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO contexts VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.local_id,
                    record.url,
                    record.kind,
                    orjson.dumps(record.body).decode(),
                    record.created_at,
                    record.last_usage,
                    record.hits,
                ),
            )

        await self._submit(_RawJob(mutation))

    async def append_audit(self, entries: list[AuditEntry]) -> None:
        """Append audit entries in one transaction."""
        await self._submit(_RawJob(lambda conn: sqlite_records.append_audit(conn, entries)))

    async def read_audit(self, query: AuditQuery) -> list[AuditEntry]:
        """Audit entries, newest first."""
        return await self._read(lambda conn: sqlite_records.read_audit(conn, query))

    async def put_record(self, record: Record, *, create: bool) -> None:
        """Store a record (AlreadyExistsError with create when it exists)."""
        stored: list[bool] = []
        job = _RawJob(lambda conn: stored.append(sqlite_records.put_record(conn, record, create)))
        await self._submit(job)
        if stored and not stored[0]:
            raise AlreadyExistsError(f"{record.kind} {record.key!r} already exists")

    async def get_record(self, kind: str, tenant: str, key: str) -> Record | None:
        """One record, or None."""
        return await self._read(lambda conn: sqlite_records.get_record(conn, kind, tenant, key))

    async def list_records(self, kind: str | None, tenant: str | None = None) -> list[Record]:
        """Records of a kind (every kind for None), by kind, tenant, key."""
        return await self._read(lambda conn: sqlite_records.list_records(conn, kind, tenant))

    async def delete_record(self, kind: str, tenant: str, key: str) -> bool:
        """Remove a record."""
        deleted: list[bool] = []
        job = _RawJob(
            lambda conn: deleted.append(sqlite_records.delete_record(conn, kind, tenant, key))
        )
        await self._submit(job)
        return bool(deleted and deleted[0])

    async def delete_context(self, local_id: str) -> bool:
        """Remove a context record."""
        deleted: list[bool] = []

        def mutation(conn: sqlite3.Connection) -> None:
            cursor = conn.execute("DELETE FROM contexts WHERE local_id = ?", (local_id,))
            deleted.append(cursor.rowcount > 0)

        await self._submit(_RawJob(mutation))
        return bool(deleted and deleted[0])

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            self._all_connections.append(conn)
        stop = False
        while not stop:
            first = self._jobs.get()
            if first is None:
                break
            if self._checkpointer is not None:
                self._checkpointer.restart_if_asked(conn)
            group = [first]
            while len(group) < _MAX_GROUP:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                group.append(job)
            self._run_group(conn, group)

    def _run_group(self, conn: sqlite3.Connection, group: list[_WriteJob]) -> None:
        single = len(group) == 1  # no SAVEPOINT needed: the transaction is the job's own
        counts: Counter[tuple[str, ...]] = Counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in group:
                if single:
                    self._run_job(conn, job)
                    counts.update(job.counts)
                    continue
                conn.execute("SAVEPOINT job")
                try:
                    self._run_job(conn, job)
                    conn.execute("RELEASE job")
                    counts.update(job.counts)
                except Exception as exc:  # a job's own failure must not spoil the group
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    self._subscribed = None
                    job.failure = exc
            if counts:
                apply_counts(conn, counts)
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._subscribed = None
            for job in group:
                job.failure = job.failure or exc
        if self._checkpointer is not None:
            self._checkpointer.committed()
        # Wake each caller's event loop once for the whole group, not once per write.
        by_loop: dict[asyncio.AbstractEventLoop, list[Callable[[], None]]] = {}
        for job in group:
            if job.callback is not None and job.loop is not None:
                by_loop.setdefault(job.loop, []).append(job.callback)
        for loop, callbacks in by_loop.items():
            try:  # the writer thread must outlive any caller (a closed loop, say)
                if not loop.is_closed():
                    loop.call_soon_threadsafe(_call_all, callbacks)
            except Exception:
                log.exception("a write's caller could not be woken")

    def _captures(self, conn: sqlite3.Connection, tenant: str) -> bool:
        """True when writes of this tenant must record changes for notifications."""
        if tenant in self._capturing:
            return True
        if self._subscribed is None:
            rows = conn.execute("SELECT DISTINCT tenant FROM subscriptions")
            self._subscribed = {r[0] for r in rows}
        return tenant in self._subscribed

    def _run_job(self, conn: sqlite3.Connection, job: _WriteJob) -> None:
        if isinstance(job, _RawJob):
            job.fn(conn)
            return
        capture = self._captures(conn, job.tenant)
        for entity_id, mutation in job.items:
            result = self._apply(conn, job, entity_id, mutation)
            job.results.append(result)
            if result.ok:
                sqlite_history.append(conn, job.tenant, job.history(result.before, result.after))
                sqlite_history.track_entity(
                    conn, job.tenant, entity_id, result.before, result.after
                )
                if capture:
                    conn.execute(
                        "INSERT INTO changes (tenant, entity_id, before, after) VALUES (?,?,?,?)",
                        (job.tenant, entity_id, _dump(result.before), _dump(result.after)),
                    )
                    result.recorded = True
        # A tenant comes to exist with its first successful write, not with a failed one.
        if job.tenant not in self._known_tenants and any(r.ok for r in job.results):
            conn.execute("INSERT OR IGNORE INTO tenants VALUES (?, datetime('now'))", (job.tenant,))

    def _apply(
        self, conn: sqlite3.Connection, job: _WriteJob, entity_id: str, mutation: Mutation
    ) -> WriteResult:
        tenant = job.tenant
        row = conn.execute(
            "SELECT pk, doc FROM entities WHERE tenant = ? AND id = ?", (tenant, entity_id)
        ).fetchone()
        before = orjson.loads(row[1]) if row else None
        try:
            after = mutation(before)
        except AgileCityError as exc:
            return WriteResult(entity_id, before=before, error=exc)
        old, new = IndexedParts.of(before), IndexedParts.of(after)
        if after is None:
            if row is not None:
                update_index(conn, tenant, job.counts, row[0], old, new)
                conn.execute("DELETE FROM entities WHERE pk = ?", (row[0],))
            return WriteResult(entity_id, before=before)
        text = orjson.dumps(after).decode()
        if row is None:
            cursor = conn.execute(
                "INSERT INTO entities (tenant, id, doc) VALUES (?, ?, ?)", (tenant, entity_id, text)
            )
            pk: int = cursor.lastrowid or 0
        else:
            pk = int(row[0])
            conn.execute("UPDATE entities SET doc = ? WHERE pk = ?", (text, pk))
        update_index(conn, tenant, job.counts, pk, old, new)
        return WriteResult(entity_id, before=before, after=after)


def _dump(doc: Doc | None) -> str | None:
    return None if doc is None else orjson.dumps(doc).decode()


def _load(text: str | None) -> Doc | None:
    return None if text is None else orjson.loads(text)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():  # a caller cancelled meanwhile
        future.set_result(None)


def _call_all(callbacks: list[Callable[[], None]]) -> None:
    for callback in callbacks:
        callback()


class _RawJob(_WriteJob):
    """A write that is not an entity mutation (contexts)."""

    def __init__(self, fn: Callable[[sqlite3.Connection], None]) -> None:
        super().__init__("", [])
        self.fn = fn
