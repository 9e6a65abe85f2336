"""The in-process Broker: every NGSI-LD context-information operation as a Python call.

The HTTP adapter (``api/ngsi_ld.py``), the device gateway and the city services all go
through this class, so they share one set of rules and run unchanged on every store.
Operations take already-parsed JSON payloads and a :class:`TermMap`; they return domain
values and raise from ``agilecity.errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from agilecity.broker import operations as ops
from agilecity.broker.context import TermMap, core_term_map
from agilecity.broker.contexts import ContextRegistry
from agilecity.broker.entities import (
    Doc,
    check_uri,
    expand_name,
    expand_query,
    parse_attribute,
    parse_attributes,
    parse_entity,
    parse_instance,
    parse_scope,
    parse_types,
)
from agilecity.broker.geo import DEFAULT_MAX_GEOMETRY_POINTS, parse_geo_query
from agilecity.broker.history import History
from agilecity.broker.notifier import DeliveryPolicy, Notifier
from agilecity.broker.query import (
    And,
    Node,
    Or,
    TypeName,
    parse_q,
    parse_scope_q,
    parse_type_expression,
)
from agilecity.broker.regex import DEFAULT_MAX_REGEX_LENGTH, check_pattern
from agilecity.broker.subscription_service import Subscriptions
from agilecity.broker.timeutil import format_datetime, now_iso, parse_datetime
from agilecity.errors import (
    AgileCityError,
    AlreadyExistsError,
    BadRequestDataError,
    NonexistentTenantError,
    ResourceNotFoundError,
    TooManyResultsError,
)
from agilecity.store.base import (
    AttributeSummary,
    EntityQuery,
    EntitySelector,
    Mutation,
    Record,
    Store,
    TypeSummary,
    WriteResult,
)

log = logging.getLogger("agilecity.broker")
_TENANT = re.compile(r"^[A-Za-z0-9_.:\-/]{1,128}$")


@dataclass(frozen=True)
class Retention:
    """History retention in days (0 keeps everything), with per-tenant overrides."""

    days: int = 0
    per_tenant: dict[str, int] = field(default_factory=dict)
    interval: float = 3600.0

    @property
    def enabled(self) -> bool:
        """True when some tenant has a retention period."""
        return self.days > 0 or any(d > 0 for d in self.per_tenant.values())

    def days_for(self, tenant: str) -> int:
        """The retention of one tenant."""
        return self.per_tenant.get(tenant, self.days)


@dataclass(frozen=True)
class Limits:
    """Request limits the broker enforces whatever the entry point."""

    default_page_size: int = 20
    max_page_size: int = 1000
    max_batch_entities: int = 1000
    max_regex_length: int = DEFAULT_MAX_REGEX_LENGTH
    max_geometry_points: int = DEFAULT_MAX_GEOMETRY_POINTS


@dataclass(frozen=True)
class SelectorParams:
    """One ``entities`` item of a Query: id, idPattern and type (a type expression)."""

    id: str | None = None
    id_pattern: str | None = None
    type: str | None = None


@dataclass
class QueryParams:
    """The query parameters of GET /entities or the body of POST /entityOperations/query."""

    selectors: list[SelectorParams] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    id_pattern: str | None = None
    type: str | None = None
    attrs: list[str] = field(default_factory=list)
    q: str | None = None
    scope_q: str | None = None
    georel: str | None = None
    geometry: str | None = None
    coordinates: Any = None
    geoproperty: str | None = None
    limit: int | None = None
    offset: int = 0
    count: bool = False
    visible_types: frozenset[str] | None = None  # None: every type; else only these (public)


@dataclass
class BatchResult:
    """NGSI-LD BatchOperationResult, plus which ids were newly created (for upsert)."""

    success: list[str] = field(default_factory=list)
    errors: list[tuple[str, AgileCityError]] = field(default_factory=list)
    created: list[str] = field(default_factory=list)


def check_tenant(tenant: str) -> str:
    """Validate an NGSILD-Tenant value ("" is the default tenant)."""
    if tenant and not _TENANT.match(tenant):
        raise BadRequestDataError(f"invalid tenant name {tenant!r}")
    return tenant


class Broker:
    """The NGSI-LD context broker over one store.

    ``subscriptions`` and ``history`` hold the subscription and temporal operations;
    ``start``/``stop`` run the notification dispatcher and the history retention job.
    """

    def __init__(
        self,
        store: Store,
        contexts: ContextRegistry,
        limits: Limits,
        *,
        delivery: DeliveryPolicy | None = None,
        allow_private_endpoints: bool = False,
        retention: Retention | None = None,
    ) -> None:
        self.store = store
        self.contexts = contexts
        self.limits = limits
        self.notifier = Notifier(self, delivery or DeliveryPolicy())
        self.subscriptions = Subscriptions(self, allow_private_endpoints=allow_private_endpoints)
        self.history = History(self)
        self.retention = retention or Retention()
        self._retention_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load subscriptions and start delivering notifications (store already open)."""
        await self.subscriptions.load()
        await self.notifier.start()
        if self.retention.enabled:
            self._retention_task = asyncio.create_task(self._purge_forever())

    async def stop(self) -> None:
        """Stop background work and save subscription status."""
        if self._retention_task is not None:
            self._retention_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention_task
        await self.notifier.stop()

    async def purge_history(self) -> int:
        """Apply the history retention of every tenant once; returns instances deleted."""
        deleted = 0
        now = parse_datetime(now_iso())
        for tenant in await self.store.list_tenants():
            days = self.retention.days_for(tenant)
            if days > 0:
                cutoff = format_datetime(now - timedelta(days=days))
                deleted += await self.store.purge_history(tenant, cutoff)
        return deleted

    async def _purge_forever(self) -> None:
        while True:
            try:
                await self.purge_history()
            except Exception:
                log.exception("history retention purge failed")
            await asyncio.sleep(self.retention.interval)

    async def record_measures(
        self,
        tenant: str,
        item: dict[str, Any],
        statics: dict[str, Any],
        terms: TermMap,
    ) -> tuple[int, bool]:
        """Device measures into an entity (created with ``statics`` if new), idempotently.

        ``item`` is ``{"id", "type", <attr>: {... "observedAt"}}``. A measure not newer than
        its attribute's current ``observedAt`` is a redelivered or stale frame and is
        skipped, so at-least-once delivery never doubles history nor moves a value back in
        time. Returns the attributes written and whether the entity was created.
        """
        now = now_iso()
        fresh = parse_attributes(item, terms, now)
        created = parse_entity({**statics, **item}, terms, now)
        written, new = [0], [False]

        def record(old: Doc | None) -> Doc:
            if old is None:
                written[0], new[0] = len(fresh), True
                return created
            newer = {}
            for iri, instances in fresh.items():
                stored = old["attrs"].get(iri, [])
                latest = {i.get("datasetId"): i.get("observedAt") or "" for i in stored}
                kept = [i for i in instances if _is_newer_than(i, latest)]
                if kept:
                    newer[iri] = kept
            written[0] = len(newer)
            if not newer:
                return old
            doc, _ = ops.append_attributes(old, newer, now, overwrite=True)
            return doc

        await self._write_one(tenant, created["id"], record)
        return written[0], new[0]

    # -- configuration records (device provisioning, keys, service state) -------------

    async def put_record(self, record: Record, *, create: bool) -> None:
        """Store a configuration record (AlreadyExists with ``create`` if it exists)."""
        check_tenant(record.tenant)
        await self.store.put_record(record, create=create)

    async def get_record(self, kind: str, tenant: str, key: str) -> Record | None:
        """One configuration record, or None."""
        return await self.store.get_record(kind, tenant, key)

    async def list_records(self, kind: str | None, tenant: str | None = None) -> list[Record]:
        """Configuration records of a kind, of one tenant or of all."""
        return await self.store.list_records(kind, tenant)

    async def delete_record(self, kind: str, tenant: str, key: str) -> bool:
        """Remove a configuration record; False if there was none."""
        return await self.store.delete_record(kind, tenant, key)

    # -- helpers -----------------------------------------------------------------------

    async def require_tenant(self, tenant: str) -> None:
        """Raise NonexistentTenant unless the tenant exists (reads never create one)."""
        check_tenant(tenant)
        if not await self.store.tenant_exists(tenant):
            raise NonexistentTenantError(f"tenant {tenant!r} does not exist")

    async def _write_one(self, tenant: str, entity_id: str, mutation: Mutation) -> WriteResult:
        check_tenant(tenant)
        (result,) = await self.store.write(tenant, [(entity_id, mutation)])
        if result.error is not None:
            raise result.error
        if result.recorded:
            self.notifier.wake()
        return result

    @property
    def _points(self) -> int:
        """The most coordinate positions a geometry of a payload or query may have."""
        return self.limits.max_geometry_points

    @staticmethod
    def _existing(doc: Doc | None, entity_id: str) -> Doc:
        if doc is None:
            raise ResourceNotFoundError(f"entity {entity_id} does not exist")
        return doc

    # -- entities ----------------------------------------------------------------------

    async def create_entity(self, tenant: str, payload: object, terms: TermMap) -> str:
        """Create one entity; AlreadyExists if its id is taken."""
        doc = parse_entity(payload, terms, now_iso(), max_points=self._points)

        def create(old: Doc | None) -> Doc:
            if old is not None:
                raise AlreadyExistsError(f"entity {doc['id']} already exists")
            return doc

        await self._write_one(tenant, doc["id"], create)
        return str(doc["id"])

    async def retrieve_entity(
        self, tenant: str, entity_id: str, visible_types: frozenset[str] | None = None
    ) -> Doc:
        """The stored document of one entity (not found when its types are not visible)."""
        check_uri(entity_id, "entity id")
        await self.require_tenant(tenant)
        doc = self._existing(await self.store.get(tenant, entity_id), entity_id)
        if not is_visible(doc["type"], visible_types):
            raise ResourceNotFoundError(f"entity {entity_id} not found")
        return doc

    async def replace_entity(
        self, tenant: str, entity_id: str, payload: object, terms: TermMap
    ) -> None:
        """PUT /entities/{id}: replace all of an entity but its id."""
        check_uri(entity_id, "entity id")
        if isinstance(payload, dict) and payload.get("id", entity_id) != entity_id:
            raise BadRequestDataError("the payload id differs from the entity id in the path")
        now = now_iso()
        new = parse_entity(
            {**_as_dict(payload), "id": entity_id}, terms, now, max_points=self._points
        )
        await self._write_one(
            tenant,
            entity_id,
            lambda old: ops.replace_entity(self._existing(old, entity_id), new, now),
        )

    async def merge_entity(
        self, tenant: str, entity_id: str, payload: object, terms: TermMap
    ) -> None:
        """PATCH /entities/{id}: merge attributes; NGSI-LD null deletes."""
        check_uri(entity_id, "entity id")
        mutation = self._merge_mutation(entity_id, _as_dict(payload), terms, now_iso())
        await self._write_one(tenant, entity_id, mutation)

    def _merge_mutation(
        self, entity_id: str, payload: dict[str, Any], terms: TermMap, now: str
    ) -> Mutation:
        if payload.get("id", entity_id) != entity_id:
            raise BadRequestDataError("the payload id differs from the entity id")
        attrs = parse_attributes(payload, terms, now, allow_null=True, max_points=self._points)
        types = parse_types(terms, payload["type"]) if "type" in payload else None
        scope = parse_scope(payload["scope"]) if "scope" in payload else None

        def merge(old: Doc | None) -> Doc:
            return ops.merge_entity(
                self._existing(old, entity_id), attrs, now, types=types, scope=scope
            )

        return merge

    async def delete_entity(self, tenant: str, entity_id: str) -> None:
        """DELETE /entities/{id}."""
        check_uri(entity_id, "entity id")
        await self.require_tenant(tenant)
        await self._write_one(
            tenant, entity_id, lambda old: self._existing(old, entity_id) and None
        )

    # -- attributes --------------------------------------------------------------------

    async def append_attributes(
        self, tenant: str, entity_id: str, payload: object, terms: TermMap, *, overwrite: bool
    ) -> ops.UpdateResult:
        """POST /entities/{id}/attrs."""
        check_uri(entity_id, "entity id")
        now = now_iso()
        attrs = parse_attributes(
            _as_dict(payload), terms, now, allow_null=True, max_points=self._points
        )
        report = ops.UpdateResult()

        def append(old: Doc | None) -> Doc:
            doc, found = ops.append_attributes(
                self._existing(old, entity_id), attrs, now, overwrite=overwrite
            )
            report.updated, report.not_updated = found.updated, found.not_updated
            return doc

        await self._write_one(tenant, entity_id, append)
        return report

    async def update_attributes(
        self, tenant: str, entity_id: str, payload: object, terms: TermMap
    ) -> ops.UpdateResult:
        """PATCH /entities/{id}/attrs: only attributes that exist are updated."""
        check_uri(entity_id, "entity id")
        now = now_iso()
        attrs = parse_attributes(
            _as_dict(payload), terms, now, allow_null=True, max_points=self._points
        )
        report = ops.UpdateResult()

        def update(old: Doc | None) -> Doc:
            doc, found = ops.update_attributes(self._existing(old, entity_id), attrs, now)
            report.updated, report.not_updated = found.updated, found.not_updated
            return doc

        await self._write_one(tenant, entity_id, update)
        return report

    async def partial_update_attribute(
        self, tenant: str, entity_id: str, attr: str, payload: object, terms: TermMap
    ) -> None:
        """PATCH /entities/{id}/attrs/{attr}: replace the members the fragment gives."""
        check_uri(entity_id, "entity id")
        iri = expand_name(terms, attr)
        fragment = _as_dict(payload)
        now = now_iso()
        keep_value = not any(
            m in fragment
            for m in ("value", "object", "languageMap", "vocab", "json", "valueList", "objectList")
        )
        raw = dict(fragment)
        if keep_value:
            raw["value"] = 0  # placeholder principal, dropped again by the operation
            raw.pop("type", None)
        instance = parse_instance(
            raw, terms, now, name=attr, allow_null=True, max_points=self._points
        )
        await self._write_one(
            tenant,
            entity_id,
            lambda old: ops.partial_update_attribute(
                self._existing(old, entity_id), iri, instance, keep_value, now, attr
            ),
        )

    async def replace_attribute(
        self, tenant: str, entity_id: str, attr: str, payload: object, terms: TermMap
    ) -> None:
        """PUT /entities/{id}/attrs/{attr}."""
        check_uri(entity_id, "entity id")
        iri = expand_name(terms, attr)
        now = now_iso()
        instances = parse_attribute(payload, terms, now, name=attr, max_points=self._points)
        await self._write_one(
            tenant,
            entity_id,
            lambda old: ops.replace_attribute(
                self._existing(old, entity_id), iri, instances, now, attr
            ),
        )

    async def delete_attribute(
        self,
        tenant: str,
        entity_id: str,
        attr: str,
        terms: TermMap,
        *,
        dataset_id: str | None = None,
        delete_all: bool = False,
    ) -> None:
        """DELETE /entities/{id}/attrs/{attr} (one datasetId, or all with deleteAll)."""
        check_uri(entity_id, "entity id")
        if dataset_id is not None:
            check_uri(dataset_id, "datasetId")
        iri = expand_name(terms, attr)
        await self.require_tenant(tenant)
        now = now_iso()
        await self._write_one(
            tenant,
            entity_id,
            lambda old: ops.delete_attribute(
                self._existing(old, entity_id), iri, dataset_id, delete_all, now, attr
            ),
        )

    # -- batch -------------------------------------------------------------------------

    def _batch_items(self, payload: object) -> list[Any]:
        if not isinstance(payload, list):
            raise BadRequestDataError("a batch operation needs a JSON array")
        if not payload:
            raise BadRequestDataError("the batch is empty")
        if len(payload) > self.limits.max_batch_entities:
            raise BadRequestDataError(
                f"a batch holds at most {self.limits.max_batch_entities} entities"
            )
        return payload

    async def _run_batch(
        self, tenant: str, prepared: list[tuple[str, Mutation | AgileCityError]]
    ) -> BatchResult:
        check_tenant(tenant)
        result = BatchResult()
        items = [(i, m) for i, m in prepared if not isinstance(m, AgileCityError)]
        written = await self.store.write(tenant, items) if items else []
        if any(r.recorded for r in written):
            self.notifier.wake()
        outcomes = iter(written)
        for entity_id, mutation in prepared:
            if isinstance(mutation, AgileCityError):
                result.errors.append((entity_id, mutation))
                continue
            outcome = next(outcomes)
            if outcome.error is not None:
                result.errors.append((entity_id, outcome.error))
            else:
                result.success.append(entity_id)
                if outcome.before is None and outcome.after is not None:
                    result.created.append(entity_id)
        return result

    @staticmethod
    def _entity_id(item: object) -> str:
        raw = item.get("id") if isinstance(item, dict) else None
        return raw if isinstance(raw, str) else ""

    async def batch_create(self, tenant: str, payload: object, terms: TermMap) -> BatchResult:
        """POST /entityOperations/create."""
        now = now_iso()
        prepared: list[tuple[str, Mutation | AgileCityError]] = []
        for item in self._batch_items(payload):
            try:
                doc = parse_entity(item, terms, now, max_points=self._points)
                prepared.append((doc["id"], _creator(doc)))
            except AgileCityError as exc:
                prepared.append((self._entity_id(item), exc))
        return await self._run_batch(tenant, _no_duplicates(prepared))

    async def batch_upsert(
        self, tenant: str, payload: object, terms: TermMap, *, replace: bool
    ) -> BatchResult:
        """POST /entityOperations/upsert (options=replace, the default, or update)."""
        now = now_iso()
        prepared: list[tuple[str, Mutation | AgileCityError]] = []
        for item in self._batch_items(payload):
            try:
                doc = parse_entity(item, terms, now, max_points=self._points)
                if replace:
                    prepared.append((doc["id"], _replacer(doc, now)))
                else:
                    prepared.append((doc["id"], _upserter(doc, now)))
            except AgileCityError as exc:
                prepared.append((self._entity_id(item), exc))
        return await self._run_batch(tenant, _no_duplicates(prepared))

    async def batch_update(
        self, tenant: str, payload: object, terms: TermMap, *, overwrite: bool
    ) -> BatchResult:
        """POST /entityOperations/update: append attributes to existing entities."""
        now = now_iso()
        prepared: list[tuple[str, Mutation | AgileCityError]] = []
        for item in self._batch_items(payload):
            try:
                entity_id = check_uri(_as_dict(item).get("id"), "entity id")
                attrs = parse_attributes(
                    _as_dict(item), terms, now, allow_null=True, max_points=self._points
                )
                prepared.append((entity_id, _appender(entity_id, attrs, now, overwrite)))
            except AgileCityError as exc:
                prepared.append((self._entity_id(item), exc))
        return await self._run_batch(tenant, prepared)

    async def batch_merge(self, tenant: str, payload: object, terms: TermMap) -> BatchResult:
        """POST /entityOperations/merge."""
        now = now_iso()
        prepared: list[tuple[str, Mutation | AgileCityError]] = []
        for item in self._batch_items(payload):
            try:
                entity_id = check_uri(_as_dict(item).get("id"), "entity id")
                prepared.append((entity_id, self._merge_mutation(entity_id, item, terms, now)))
            except AgileCityError as exc:
                prepared.append((self._entity_id(item), exc))
        return await self._run_batch(tenant, prepared)

    async def batch_delete(self, tenant: str, payload: object) -> BatchResult:
        """POST /entityOperations/delete: an array of entity ids."""
        prepared: list[tuple[str, Mutation | AgileCityError]] = []
        for item in self._batch_items(payload):
            try:
                entity_id = check_uri(item, "entity id")
                prepared.append((entity_id, _deleter(entity_id)))
            except AgileCityError as exc:
                prepared.append((item if isinstance(item, str) else "", exc))
        return await self._run_batch(tenant, prepared)

    # -- queries -----------------------------------------------------------------------

    def build_query(self, params: QueryParams, terms: TermMap) -> EntityQuery:
        """Parse and expand query parameters into a store query (validating them all)."""
        texts = [params.id_pattern, params.type, params.q, params.scope_q, params.georel,
                 params.geometry, params.geoproperty, *params.ids, *params.attrs]  # fmt: skip
        if any(isinstance(t, str) and "\x00" in t for t in texts):
            raise BadRequestDataError("query parameters must not contain the NUL character")
        limit = self.limits.default_page_size if params.limit is None else params.limit
        if limit < 0 or params.offset < 0:
            raise BadRequestDataError("limit and offset must not be negative")
        if limit > self.limits.max_page_size:
            raise TooManyResultsError(
                f"limit {limit} exceeds the maximum page size {self.limits.max_page_size}"
            )
        if limit == 0 and not params.count:
            raise BadRequestDataError("limit=0 is only allowed together with count=true")
        max_regex = self.limits.max_regex_length
        if params.id_pattern is not None:
            check_pattern(params.id_pattern, "idPattern", max_regex)
        geo = parse_geo_query(
            params.georel,
            params.geometry,
            params.coordinates,
            params.geoproperty,
            max_points=self._points,
        )
        if geo is not None:
            geo = dataclasses.replace(geo, geoproperty=expand_name(terms, geo.geoproperty))
        types = expand_query(parse_type_expression(params.type), terms) if params.type else None
        if params.visible_types is not None:
            visible: Node = Or(tuple(TypeName(t) for t in sorted(type_iris(params.visible_types))))
            types = visible if types is None else And((types, visible))
        return EntityQuery(
            selectors=tuple(_selector(s, terms, max_regex) for s in params.selectors),
            ids=tuple(check_uri(i, "id") for i in params.ids),
            id_pattern=params.id_pattern,
            types=types,
            q=expand_query(parse_q(params.q, max_regex), terms) if params.q else None,
            scope_q=parse_scope_q(params.scope_q) if params.scope_q else None,
            geo=geo,
            attrs_any=tuple(expand_name(terms, a) for a in params.attrs),
            limit=limit,
            offset=params.offset,
            count=params.count,
        )

    async def query_entities(
        self, tenant: str, params: QueryParams, terms: TermMap
    ) -> tuple[list[Doc], int | None]:
        """GET /entities and POST /entityOperations/query: a page of documents (+ count)."""
        query = self.build_query(params, terms)
        await self.require_tenant(tenant)
        return await self.store.query(tenant, query)

    # -- discovery ---------------------------------------------------------------------

    async def type_summaries(self, tenant: str) -> list[TypeSummary]:
        """GET /types: every entity type in the tenant."""
        await self.require_tenant(tenant)
        return await self.store.type_summaries(tenant)

    async def type_summary(self, tenant: str, type_name: str, terms: TermMap) -> TypeSummary:
        """GET /types/{type}."""
        iri = expand_name(terms, type_name, "entity type")
        for summary in await self.type_summaries(tenant):
            if summary.type == iri:
                return summary
        raise ResourceNotFoundError(f"no entity of type {type_name!r}")

    async def attribute_summaries(self, tenant: str) -> list[AttributeSummary]:
        """GET /attributes: every attribute in the tenant."""
        await self.require_tenant(tenant)
        return await self.store.attribute_summaries(tenant)

    async def attribute_summary(self, tenant: str, attr: str, terms: TermMap) -> AttributeSummary:
        """GET /attributes/{attr}."""
        iri = expand_name(terms, attr)
        for summary in await self.attribute_summaries(tenant):
            if summary.attr == iri:
                return summary
        raise ResourceNotFoundError(f"no attribute {attr!r}")


def _is_newer_than(instance: dict[str, Any], latest: dict[str | None, str]) -> bool:
    """Whether a measured instance is newer than the stored one of its datasetId."""
    return (instance.get("observedAt") or "~") > latest.get(instance.get("datasetId"), "")


@functools.lru_cache(maxsize=32)
def type_iris(names: frozenset[str]) -> frozenset[str]:
    """Type names (expanded with the core context) or IRIs, as IRIs."""
    core = core_term_map()
    return frozenset(n if ":" in n else expand_name(core, n) for n in names)


def is_visible(types: list[str], visible_types: frozenset[str] | None) -> bool:
    """Whether an entity of these type IRIs may be shown (``None`` shows every type)."""
    return visible_types is None or bool(set(types) & type_iris(visible_types))


def _selector(params: SelectorParams, terms: TermMap, max_regex_length: int) -> EntitySelector:
    if params.id_pattern is not None:
        check_pattern(params.id_pattern, "entities[].idPattern", max_regex_length)
    types = parse_type_expression(params.type) if params.type is not None else None
    return EntitySelector(
        id=check_uri(params.id, "entities[].id") if params.id is not None else None,
        id_pattern=params.id_pattern,
        types=expand_query(types, terms) if types is not None else None,
    )


def _as_dict(payload: object) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise BadRequestDataError("the payload must be a JSON object")
    return payload


def _no_duplicates(
    prepared: list[tuple[str, Mutation | AgileCityError]],
) -> list[tuple[str, Mutation | AgileCityError]]:
    seen: set[str] = set()
    result: list[tuple[str, Mutation | AgileCityError]] = []
    for entity_id, mutation in prepared:
        if entity_id in seen and not isinstance(mutation, AgileCityError):
            mutation = BadRequestDataError(f"entity {entity_id} appears twice in the batch")
        seen.add(entity_id)
        result.append((entity_id, mutation))
    return result


def _creator(doc: Doc) -> Mutation:
    def create(old: Doc | None) -> Doc:
        if old is not None:
            raise AlreadyExistsError(f"entity {doc['id']} already exists")
        return doc

    return create


def _replacer(doc: Doc, now: str) -> Mutation:
    return lambda old: doc if old is None else ops.replace_entity(old, doc, now)


def _upserter(doc: Doc, now: str) -> Mutation:
    def upsert(old: Doc | None) -> Doc:
        if old is None:
            return doc
        merged, _ = ops.append_attributes(old, doc["attrs"], now, overwrite=True)
        merged["type"] = list(dict.fromkeys([*merged["type"], *doc["type"]]))
        if "scope" in doc:
            merged["scope"] = doc["scope"]
        return merged

    return upsert


def _appender(entity_id: str, attrs: dict[str, Any], now: str, overwrite: bool) -> Mutation:
    def append(old: Doc | None) -> Doc:
        if old is None:
            raise ResourceNotFoundError(f"entity {entity_id} does not exist")
        doc, report = ops.append_attributes(old, attrs, now, overwrite=overwrite)
        if report.not_updated and not report.updated:
            reasons = "; ".join(f"{a}: {r}" for a, r in report.not_updated)
            raise BadRequestDataError(f"no attribute was updated ({reasons})")
        return doc

    return append


def _deleter(entity_id: str) -> Mutation:
    def delete(old: Doc | None) -> None:
        if old is None:
            raise ResourceNotFoundError(f"entity {entity_id} does not exist")
        return None

    return delete
