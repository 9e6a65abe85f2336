"""Moving a city between stores: export to and import from NDJSON, verified by checksums.

One JSON object per line: ``{"kind": "context" | "record" | "subscription" | "entity" |
"history", ...}`` (records are configuration such as device provisioning)
then a last ``{"kind": "summary", ...}`` with the counts and one SHA-256 checksum per
entity, which the import compares with what the target store holds afterwards.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from agilecity.broker.temporal import HistoryRecord
from agilecity.store.base import ContextRecord, Doc, EntityQuery, Record, Store

BATCH = 500
KINDS = ("context", "record", "subscription", "entity", "history")


def checksum(doc: Doc) -> str:
    """A SHA-256 of an entity document in canonical JSON (sorted keys)."""
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


class Progress:
    """A one-line progress display on stderr (a bar when the total is known)."""

    def __init__(self, label: str, total: int | None, stream: IO[str] | None = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.stream = stream or sys.stderr

    def advance(self, count: int = 1) -> None:
        """Count items done and redraw."""
        self.done += count
        if self.total:
            filled = int(30 * self.done / self.total)
            bar = "#" * filled + "-" * (30 - filled)
            self.stream.write(f"\r{self.label:<14} [{bar}] {self.done}/{self.total}")
        else:
            self.stream.write(f"\r{self.label:<14} {self.done}")
        self.stream.flush()

    def finish(self) -> None:
        """End the line."""
        self.stream.write("\n")
        self.stream.flush()


@dataclass
class Summary:
    """What an export wrote (or an import read)."""

    counts: dict[str, int] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)  # "tenant|id" -> sha256


async def _entities(store: Store, tenant: str) -> list[Doc]:
    docs: list[Doc] = []
    offset = 0
    while True:
        page, _ = await store.query(tenant, EntityQuery(limit=BATCH, offset=offset))
        docs.extend(page)
        if len(page) < BATCH:
            return docs
        offset += BATCH


async def export_city(store: Store, out: IO[bytes], show: bool = True) -> Summary:
    """Write every context, record, subscription, entity and history instance of every tenant."""
    summary = Summary(counts=dict.fromkeys(KINDS, 0))

    def emit(record: dict[str, Any]) -> None:
        out.write(orjson.dumps(record) + b"\n")
        summary.counts[record["kind"]] = summary.counts.get(record["kind"], 0) + 1

    for context in await store.list_contexts():
        emit({"kind": "context", "record": context.__dict__})
    for record in await store.list_records(None):
        emit({"kind": "record", "record": record.__dict__})
    for sub in await store.list_subscriptions(None):
        tenant = sub.pop("_tenant")
        emit({"kind": "subscription", "tenant": tenant, "doc": sub})
    for tenant in await store.list_tenants():
        docs = await _entities(store, tenant)
        progress = Progress(f"entities {tenant or '(default)'}", len(docs)) if show else None
        for doc in docs:
            emit({"kind": "entity", "tenant": tenant, "doc": doc})
            summary.checksums[f"{tenant}|{doc['id']}"] = checksum(doc)
            if progress:
                progress.advance()
        if progress:
            progress.finish()
        position = 0
        progress = Progress(f"history {tenant or '(default)'}", None) if show else None
        while True:
            rows = await store.dump_history(tenant, position, BATCH * 4)
            for row in rows:
                position = row.pop("position")
                emit({"kind": "history", "tenant": tenant, "row": row})
            if progress:
                progress.advance(len(rows))
            if len(rows) < BATCH * 4:
                break
        if progress:
            progress.finish()
    out.write(orjson.dumps({"kind": "summary", "counts": summary.counts,
                            "checksums": summary.checksums}) + b"\n")  # fmt: skip
    return summary


def _records(source: IO[bytes]) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(source, start=1):
        if line.strip():
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"line {number} is not JSON: {exc}") from exc


def _no_history(before: Doc | None, after: Doc | None) -> list[HistoryRecord]:
    return []  # history comes from the export itself, instance by instance


async def import_city(store: Store, source: IO[bytes], show: bool = True) -> Summary:
    """Load an export into a store, then verify counts and every entity checksum."""
    expected: dict[str, Any] | None = None
    imported = Summary(counts=dict.fromkeys(KINDS, 0))
    entities: dict[str, list[tuple[str, Doc]]] = {}
    history: dict[str, list[dict[str, Any]]] = {}
    progress = Progress("importing", None) if show else None

    async def flush() -> None:
        for tenant, items in entities.items():
            writes = [(entity_id, _keep(doc)) for entity_id, doc in items]
            for result in await store.write(tenant, writes, _no_history):
                if result.error is not None:
                    raise ValueError(f"entity {result.entity_id}: {result.error.detail}")
        entities.clear()
        for tenant, rows in history.items():
            await store.load_history(tenant, rows)
        history.clear()

    for record in _records(source):
        kind = record.get("kind")
        if kind == "summary":
            expected = record
            continue
        if kind == "context":
            await store.put_context(ContextRecord(**record["record"]))
        elif kind == "record":
            await store.put_record(Record(**record["record"]), create=True)
        elif kind == "subscription":
            await store.put_subscription(record["tenant"], record["doc"], create=True)
        elif kind == "entity":
            entities.setdefault(record["tenant"], []).append((record["doc"]["id"], record["doc"]))
        elif kind == "history":
            history.setdefault(record["tenant"], []).append(record["row"])
        else:
            raise ValueError(f"unknown record kind {kind!r}")
        imported.counts[kind] += 1
        if progress:
            progress.advance()
        if sum(len(v) for v in entities.values()) + sum(len(v) for v in history.values()) >= BATCH:
            await flush()
    await flush()
    if progress:
        progress.finish()
    if expected is None:
        raise ValueError("the export has no summary line: it is incomplete")
    if imported.counts != expected["counts"]:
        raise ValueError(f"counts differ: file says {expected['counts']}, read {imported.counts}")
    for key, digest in expected["checksums"].items():
        tenant, _, entity_id = key.partition("|")
        doc = await store.get(tenant, entity_id)
        if doc is None or checksum(doc) != digest:
            raise ValueError(f"entity {entity_id} (tenant {tenant!r}) differs after import")
        imported.checksums[key] = digest
    return imported


def _keep(doc: Doc) -> Any:
    return lambda old: doc
