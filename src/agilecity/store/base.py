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
* User input only ever reaches SQL as bound parameters.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agilecity.broker.geo import GeoQuery
from agilecity.broker.query import Node
from agilecity.errors import AgileCityError

Doc = dict[str, Any]

#: A transformation of the current document (None if absent) into the new one (None to
#: delete). It may raise an AgileCityError, which fails that item alone.
Mutation = Callable[[Doc | None], Doc | None]


@dataclass
class WriteResult:
    """The outcome of one mutation: before/after documents, or the error it raised."""

    entity_id: str
    before: Doc | None = None
    after: Doc | None = None
    error: AgileCityError | None = None

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
    async def write(self, tenant: str, items: list[tuple[str, Mutation]]) -> list[WriteResult]:
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
