"""The store interface: the only door between the broker and a database.

Contract (every backend passes the same tests, see ``tests/store``):

* Documents are the stored entity documents described in ``broker/entities.py``; the store
  never interprets them beyond what queries need, and returns them as it got them.
* Tenants are isolated: every call names its tenant and sees nothing of the others. A
  tenant exists once something was written to it; ``""`` is the default tenant, which
  always exists.
* ``write`` runs each :class:`Mutation` atomically against the current document (read,
  transform, write in one transaction); a mutation's error affects only that item. The
  call returns after the changes are durable (committed), in input order.
* ``query`` evaluates every filter in the database (never by fetching broadly and
  filtering in the caller) in a stable order (insertion order), so pages never skip or
  repeat entities, at any offset.
* Every applied mutation appends the history records its ``history`` function derives
  from before/after, in the same transaction: history never disagrees with the state.
* When a tenant has subscriptions (stored, or in-process ones announced with
  ``capture_changes``), each applied mutation also appends a change row (an outbox) in the
  same transaction; ``claim_changes`` hands each change to exactly one claimer.
* User input only ever reaches SQL as bound parameters.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agilecity.broker.geo import GeoQuery
from agilecity.broker.query import Node
from agilecity.broker.temporal import Aggregate, HistoryRecord, history_records
from agilecity.errors import AgileCityError

Doc = dict[str, Any]

#: A transformation of the current document (None if absent) into the new one (None to
#: delete). It may raise an AgileCityError, which fails that item alone.
Mutation = Callable[[Doc | None], Doc | None]

#: Derives the history records of one applied mutation from its before/after documents.
HistoryFunction = Callable[[Doc | None, Doc | None], list[HistoryRecord]]


@dataclass
class WriteResult:
    """The outcome of one mutation: before/after documents, or the error it raised."""

    entity_id: str
    before: Doc | None = None
    after: Doc | None = None
    error: AgileCityError | None = None
    #: True when the write left a change for the notifier (the tenant has subscribers).
    recorded: bool = False

    @property
    def ok(self) -> bool:
        """True when the mutation was applied."""
        return self.error is None


@dataclass(frozen=True)
class EntitySelector:
    """One alternative of POST /entityOperations/query's ``entities``: all members hold."""

    id: str | None = None
    id_pattern: str | None = None
    types: Node | None = None


@dataclass
class EntityQuery:
    """A compiled-ready entity query; names are already expanded to IRIs.

    ``selectors`` (if any) are alternatives: an entity matches when one of them holds.
    """

    selectors: tuple[EntitySelector, ...] = ()
    ids: tuple[str, ...] = ()
    id_pattern: str | None = None
    types: Node | None = None
    q: Node | None = None
    scope_q: Node | None = None
    geo: GeoQuery | None = None
    attrs_any: tuple[str, ...] = ()
    limit: int = 20
    offset: int = 0
    count: bool = False


@dataclass
class TypeSummary:
    """One entity type: how many entities have it and which attributes (with kinds)."""

    type: str
    entity_count: int
    attributes: dict[str, set[str]] = field(default_factory=dict)


@dataclass
class AttributeSummary:
    """One attribute name: entities having it, its kinds and the types it appears in."""

    attr: str
    entity_count: int
    kinds: set[str] = field(default_factory=set)
    types: set[str] = field(default_factory=set)


@dataclass
class ContextRecord:
    """A JSON-LD context the broker serves or has cached."""

    local_id: str
    url: str
    kind: str  # "Hosted", "Cached" or "ImplicitlyCreated"
    body: dict[str, Any]
    created_at: str
    last_usage: str | None = None
    hits: int = 0


@dataclass
class Record:
    """A small configuration document of one kind, per tenant (devices, device groups, ...)."""

    kind: str
    tenant: str
    key: str
    doc: dict[str, Any]


@dataclass
class AuditEntry:
    """One write through the API: who, in which role and tenant, what, when, with what result."""

    at: str
    actor: str
    role: str
    tenant: str
    method: str
    path: str
    status: int


@dataclass
class AuditQuery:
    """A slice of the audit log: time range [since, until), actor, tenant; newest first."""

    since: str | None = None
    until: str | None = None
    actor: str | None = None
    tenant: str | None = None
    limit: int = 100
    offset: int = 0


@dataclass
class HistoryRow:
    """One stored attribute instance of the history."""

    entity_id: str
    attr: str
    instance_id: str
    instance: dict[str, Any]
    modified_at: str
    deleted_at: str | None = None


@dataclass
class HistoryQuery:
    """Which history to read: entities, attributes, a time range on one time property."""

    entity_ids: tuple[str, ...]
    attrs: tuple[str, ...] = ()
    time_property: str = "observedAt"  # observedAt, createdAt or modifiedAt
    since: str | None = None  # inclusive
    until: str | None = None  # exclusive
    last_n: int | None = None


@dataclass
class Change:
    """One outbox row: an applied mutation, for subscriptions."""

    seq: int
    tenant: str
    entity_id: str
    before: Doc | None
    after: Doc | None


class Store(ABC):
    """One async interface over SQLite and PostgreSQL."""

    @abstractmethod
    async def open(self) -> None:
        """Connect and apply schema migrations."""

    @abstractmethod
    async def close(self) -> None:
        """Finish pending writes and release connections."""

    @abstractmethod
    async def tenant_exists(self, tenant: str) -> bool:
        """True for the default tenant and for any tenant written to."""

    @abstractmethod
    async def write(
        self,
        tenant: str,
        items: list[tuple[str, Mutation]],
        history: HistoryFunction = history_records,
    ) -> list[WriteResult]:
        """Apply mutations atomically per item, durably, in order; creates the tenant."""

    @abstractmethod
    async def get(self, tenant: str, entity_id: str) -> Doc | None:
        """The document of one entity, or None."""

    @abstractmethod
    async def query(self, tenant: str, query: EntityQuery) -> tuple[list[Doc], int | None]:
        """One page of matching documents, and the total count when ``query.count``."""

    @abstractmethod
    async def type_summaries(self, tenant: str) -> list[TypeSummary]:
        """Every entity type present in the tenant, sorted by type IRI."""

    @abstractmethod
    async def attribute_summaries(self, tenant: str) -> list[AttributeSummary]:
        """Every attribute name present in the tenant, sorted by IRI."""

    @abstractmethod
    async def put_context(self, record: ContextRecord) -> None:
        """Insert or replace a context record (contexts are shared by all tenants)."""

    @abstractmethod
    async def list_contexts(self) -> list[ContextRecord]:
        """Every stored context record, oldest first."""

    @abstractmethod
    async def delete_context(self, local_id: str) -> bool:
        """Remove a context; False if it did not exist."""

    # -- records (configuration documents) -----------------------------------------------

    @abstractmethod
    async def put_record(self, record: Record, *, create: bool) -> None:
        """Store a record; with ``create`` an existing (kind, tenant, key) raises
        AlreadyExistsError, without it the record is inserted or replaced."""

    @abstractmethod
    async def get_record(self, kind: str, tenant: str, key: str) -> Record | None:
        """One record, or None."""

    @abstractmethod
    async def list_records(self, kind: str | None, tenant: str | None = None) -> list[Record]:
        """Records of a kind (every kind for None), of one tenant or all (None), sorted."""

    @abstractmethod
    async def delete_record(self, kind: str, tenant: str, key: str) -> bool:
        """Remove a record; False if it did not exist."""

    # -- audit log -----------------------------------------------------------------------

    @abstractmethod
    async def append_audit(self, entries: list[AuditEntry]) -> None:
        """Append audit entries (in one transaction)."""

    @abstractmethod
    async def read_audit(self, query: AuditQuery) -> list[AuditEntry]:
        """Audit entries matching the query, newest first."""

    # -- history -----------------------------------------------------------------------

    @abstractmethod
    async def read_history(self, tenant: str, query: HistoryQuery) -> list[HistoryRow]:
        """Instances in time order (per entity and attribute); deleted ones excluded."""

    @abstractmethod
    async def aggregate_history(
        self,
        tenant: str,
        query: HistoryQuery,
        periods: list[tuple[str, str]],
        step_ms: int | None = None,
        methods: frozenset[str] = frozenset(),
    ) -> dict[tuple[str, str, str, int], Aggregate]:
        """(entity, attribute, datasetId, period index) -> aggregate, computed in the DB.

        ``step_ms`` says the periods all last that many milliseconds (so the period of an
        instance can be computed rather than searched); ``methods`` names the aggregation
        methods wanted (the costly distinctCount and stddev are computed only then).
        """

    @abstractmethod
    async def history_range(
        self, tenant: str, query: HistoryQuery
    ) -> tuple[str | None, str | None]:
        """Earliest and latest time (of the query's time property) among matching instances."""

    @abstractmethod
    async def list_tenants(self) -> list[str]:
        """Every tenant that exists, the default one ("") first."""

    @abstractmethod
    async def history_types(self, tenant: str, entity_id: str) -> list[str] | None:
        """The types an entity had (also after its deletion), None if it never existed."""

    @abstractmethod
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
        """Replace one instance (replacement) or delete instances; returns rows touched.

        With only entity_id: the entity's whole history; with attr: that attribute's
        instances (of dataset_id when given); with instance_id: that one instance.
        """

    @abstractmethod
    async def dump_history(self, tenant: str, after: int, limit: int) -> list[dict[str, Any]]:
        """Raw history rows after a position, in order, for export (``position`` key)."""

    @abstractmethod
    async def load_history(self, tenant: str, rows: list[dict[str, Any]]) -> None:
        """Insert exported history rows as they were (import)."""

    @abstractmethod
    async def purge_history(self, tenant: str, older_than: str) -> int:
        """Delete history modified before a time (retention); returns rows deleted."""

    # -- subscriptions and the change outbox -------------------------------------------

    @abstractmethod
    async def put_subscription(self, tenant: str, doc: Doc, *, create: bool) -> None:
        """Store a subscription document (AlreadyExists when create and the id is taken)."""

    @abstractmethod
    async def update_subscription_status(
        self, tenant: str, subscription_id: str, counters: dict[str, int], stamps: dict[str, str]
    ) -> None:
        """Add counters to, and set stamps on, a subscription's notification status."""

    @abstractmethod
    async def get_subscription(self, tenant: str, subscription_id: str) -> Doc | None:
        """One subscription document."""

    @abstractmethod
    async def list_subscriptions(self, tenant: str | None) -> list[Doc]:
        """Subscriptions of a tenant (all tenants with None), oldest first."""

    @abstractmethod
    async def delete_subscription(self, tenant: str, subscription_id: str) -> bool:
        """Remove a subscription; False if it did not exist."""

    @abstractmethod
    def capture_changes(self, tenant: str, enabled: bool) -> None:
        """Record changes of a tenant for in-process subscribers (besides stored ones)."""

    @abstractmethod
    async def subscription_version(self) -> int:
        """A counter bumped by every subscription change (processes reload on change)."""

    @abstractmethod
    async def claim_changes(self, limit: int) -> list[Change]:
        """Take up to limit unclaimed changes in commit order; each is handed out once."""

    @abstractmethod
    async def ack_changes(self, seqs: list[int]) -> None:
        """Forget changes whose notifications were handed to delivery."""

    @abstractmethod
    async def matches_filter(self, doc: Doc, q: Node | None, scope_q: Node | None) -> bool:
        """Evaluate q and scopeQ on one document with the same SQL as queries."""


@dataclass(frozen=True)
class IndexedParts:
    """What a store's index tables hold of one entity document (empty for no entity).

    Equal parts before and after a write mean its index rows can stay as they are.
    """

    types: tuple[str, ...] = ()
    kinds: frozenset[tuple[str, str]] = frozenset()
    shapes: tuple[tuple[str, Any], ...] = ()

    @staticmethod
    def of(doc: Doc | None) -> IndexedParts:
        if doc is None:
            return _NOTHING_INDEXED
        kinds = set()
        shapes = []
        for attr, instances in doc["attrs"].items():
            for inst in instances:
                kinds.add((attr, inst["type"]))
                if inst["type"] == "GeoProperty":
                    shapes.append((attr, inst["value"]))
        return IndexedParts(tuple(doc["type"]), frozenset(kinds), tuple(shapes))

    @property
    def attrs(self) -> set[str]:
        return {attr for attr, _ in self.kinds}

    def type_kinds(self) -> set[tuple[str, str, str]]:
        return {(t, attr, kind) for t in self.types for attr, kind in self.kinds}


_NOTHING_INDEXED = IndexedParts()
