"""The temporal API operations (ETSI GS CIM 009 clause 5.7 and 5.6.12-19) over the history.

Queries select entities with the same machinery as ``/entities`` (current state), then read
or aggregate their history in the database. Temporal writes add instances to the history
and keep the current state at the latest instance of each attribute.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from agilecity.broker.context import TermMap
from agilecity.broker.entities import (
    PRINCIPAL,
    Doc,
    Instance,
    check_uri,
    expand_name,
    parse_instance,
    parse_types,
)
from agilecity.broker.operations import append_attributes
from agilecity.broker.representation import RenderOptions, render_instance
from agilecity.broker.temporal import (
    TemporalParams,
    all_instances,
    periods,
)
from agilecity.broker.timeutil import format_datetime, now_iso, parse_datetime
from agilecity.errors import BadRequestDataError, ResourceNotFoundError
from agilecity.store.base import HistoryQuery, HistoryRow

if TYPE_CHECKING:
    from agilecity.broker.broker import Broker, QueryParams

#: Member names of the simplified temporal representation (temporalValues), per kind.
TEMPORAL_VALUES = {
    "Property": "values",
    "GeoProperty": "values",
    "Relationship": "objects",
    "LanguageProperty": "languageMaps",
    "VocabProperty": "vocabs",
    "JsonProperty": "jsons",
    "ListProperty": "valueLists",
    "ListRelationship": "objectsLists",
}


@dataclass
class TemporalResult:
    """Temporal entities ready to serialise, and the entity count when asked."""

    entities: list[dict[str, Any]]
    count: int | None = None


class History:
    """Temporal queries and writes, bound to a Broker."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.store = broker.store

    # -- queries -----------------------------------------------------------------------

    def _history_query(
        self, ids: list[str], attrs: list[str], params: TemporalParams
    ) -> HistoryQuery:
        since, until = params.bounds()
        return HistoryQuery(
            entity_ids=tuple(ids),
            attrs=tuple(attrs),
            time_property=params.timeproperty,
            since=since,
            until=until,
            last_n=params.last_n,
        )

    async def query(
        self,
        tenant: str,
        selection: QueryParams,
        params: TemporalParams,
        terms: TermMap,
        options: RenderOptions,
    ) -> TemporalResult:
        """GET /temporal/entities: a page of entities with their attributes' history."""
        params.validate()
        docs, count = await self.broker.query_entities(tenant, selection, terms)
        attrs = [expand_name(terms, a) for a in selection.attrs]
        heads = [(d["id"], d["type"]) for d in docs]
        return TemporalResult(
            await self._render(tenant, heads, attrs, params, terms, options), count
        )

    async def retrieve(
        self,
        tenant: str,
        entity_id: str,
        attrs: list[str],
        params: TemporalParams,
        terms: TermMap,
        options: RenderOptions,
        visible_types: frozenset[str] | None = None,
    ) -> dict[str, Any]:
        """GET /temporal/entities/{id} (also for an entity deleted since)."""
        from agilecity.broker.broker import is_visible

        check_uri(entity_id, "entity id")
        params.validate()
        await self.broker.require_tenant(tenant)
        types = await self.store.history_types(tenant, entity_id)
        if types is None or not is_visible(types, visible_types):
            raise ResourceNotFoundError(f"no temporal entity {entity_id}")
        expanded = [expand_name(terms, a) for a in attrs]
        rendered = await self._render(
            tenant, [(entity_id, types)], expanded, params, terms, options
        )
        return rendered[0]

    async def _render(
        self,
        tenant: str,
        heads: list[tuple[str, list[str]]],
        attrs: list[str],
        params: TemporalParams,
        terms: TermMap,
        options: RenderOptions,
    ) -> list[dict[str, Any]]:
        ids = [h[0] for h in heads]
        query = self._history_query(ids, attrs, params)
        out: dict[str, dict[str, Any]] = {}
        for entity_id, types in heads:
            compact = [terms.compact(t) for t in types]
            out[entity_id] = {"id": entity_id, "type": compact[0] if len(compact) == 1 else compact}
        if params.aggregated:
            await self._aggregate(tenant, query, params, terms, out)
        else:
            rows = await self.store.read_history(tenant, query)
            for row in rows:
                self._add_row(out[row.entity_id], row, params, terms, options)
        for entity in out.values():
            for name, value in entity.items():
                if isinstance(value, dict):  # series keyed by datasetId
                    series = list(value.values())
                    entity[name] = series[0] if len(series) == 1 else series
        return [out[i] for i in ids]

    def _add_row(
        self,
        entity: dict[str, Any],
        row: HistoryRow,
        params: TemporalParams,
        terms: TermMap,
        options: RenderOptions,
    ) -> None:
        name = terms.compact(row.attr)
        inst = row.instance
        if options.format == "keyValues":  # options=temporalValues (simplified temporal)
            member = TEMPORAL_VALUES[inst["type"]]
            series = entity.setdefault(name, {})
            key = inst.get("datasetId") or ""
            target = series.setdefault(key, {"type": inst["type"], member: []})
            if key:
                target["datasetId"] = key
            value = render_instance(inst, terms, RenderOptions())[PRINCIPAL[inst["type"]]]
            target[member].append([value, inst.get(params.timeproperty, row.modified_at)])
            return
        rendered = render_instance(inst, terms, options, bare=False)
        rendered["instanceId"] = row.instance_id
        entity.setdefault(name, []).append(rendered)

    async def _aggregate(
        self,
        tenant: str,
        query: HistoryQuery,
        params: TemporalParams,
        terms: TermMap,
        out: dict[str, dict[str, Any]],
    ) -> None:
        since, until = query.since, query.until
        if since is None or until is None:
            low, high = await self.store.history_range(tenant, query)
            if low is None or high is None:
                return
            since = since or low
            until = until or format_datetime(parse_datetime(high) + timedelta(milliseconds=1))
        spans = periods(since, until, params.aggr_period)
        duration = params.aggr_period
        step = None if duration.months or duration.is_zero else round(duration.seconds * 1000)
        found = await self.store.aggregate_history(
            tenant, query, spans, step, frozenset(params.aggr_methods)
        )
        for (entity_id, attr, dataset, index), aggregate in sorted(found.items()):
            name = terms.compact(attr)
            series = out[entity_id].setdefault(name, {})
            target = series.setdefault(dataset, {"type": "Property"})
            if dataset:
                target["datasetId"] = dataset
            start, end = spans[index]
            for method in params.aggr_methods:
                target.setdefault(method, []).append([aggregate.value(method), start, end])

    # -- writes ------------------------------------------------------------------------

    def _instances(
        self, payload: dict[str, Any], terms: TermMap, now: str
    ) -> dict[str, list[Instance]]:
        attrs: dict[str, list[Instance]] = {}
        points = self.broker.limits.max_geometry_points
        for name, raw in payload.items():
            if name in ("id", "type", "@context", "scope", "createdAt", "modifiedAt"):
                continue
            items = raw if isinstance(raw, list) else [raw]
            attrs[expand_name(terms, name)] = [
                parse_instance(item, terms, now, name=name, max_points=points) for item in items
            ]
        return attrs

    async def upsert(
        self, tenant: str, payload: object, terms: TermMap, *, entity_id: str | None = None
    ) -> bool:
        """POST /temporal/entities (and .../{id}/attrs): add instances; True if created."""
        if not isinstance(payload, dict):
            raise BadRequestDataError("a temporal entity must be a JSON object")
        target = entity_id or check_uri(payload.get("id"), "entity id")
        now = now_iso()
        instances = self._instances(payload, terms, now)
        latest = {iri: _latest_per_dataset(items) for iri, items in instances.items()}
        types = parse_types(terms, payload["type"]) if "type" in payload else None
        created: list[bool] = []

        def mutation(old: Doc | None) -> Doc:
            if old is None:
                if entity_id is not None:
                    raise ResourceNotFoundError(f"entity {target} does not exist")
                if types is None:
                    raise BadRequestDataError("a new temporal entity needs a type")
                created.append(True)
                return {"id": target, "type": types, "createdAt": now, "modifiedAt": now,
                        "attrs": latest}  # fmt: skip
            newer = {
                iri: kept for iri, items in latest.items()
                if (kept := [i for i in items if _is_newer(i, old["attrs"].get(iri, []))])
            }  # fmt: skip
            doc, _ = append_attributes(old, newer, now, overwrite=True)
            return doc

        def history(before: Doc | None, after: Doc | None) -> list[Any]:
            return all_instances(after, instances) if after is not None else []

        (result,) = await self.store.write(tenant, [(target, mutation)], history)
        if result.error is not None:
            raise result.error
        if result.recorded:
            self.broker.notifier.wake()
        return bool(created)

    async def modify_instance(
        self, tenant: str, entity_id: str, attr: str, instance_id: str, payload: object,
        terms: TermMap,
    ) -> None:  # fmt: skip
        """PATCH /temporal/entities/{id}/attrs/{attr}/{instanceId}."""
        check_uri(entity_id, "entity id")
        check_uri(instance_id, "instanceId")
        points = self.broker.limits.max_geometry_points
        instance = parse_instance(payload, terms, now_iso(), name=attr, max_points=points)
        touched = await self.store.edit_history(
            tenant, entity_id, attr=expand_name(terms, attr), instance_id=instance_id,
            replacement=instance,
        )  # fmt: skip
        if not touched:
            raise ResourceNotFoundError(f"no instance {instance_id} of {attr!r} in {entity_id}")

    async def delete(
        self,
        tenant: str,
        entity_id: str,
        terms: TermMap,
        *,
        attr: str | None = None,
        instance_id: str | None = None,
        dataset_id: str | None = None,
        delete_all: bool = False,
    ) -> None:
        """DELETE a temporal entity, one of its attributes, or one instance."""
        check_uri(entity_id, "entity id")
        await self.broker.require_tenant(tenant)
        iri = expand_name(terms, attr) if attr is not None else None
        if iri is not None and instance_id is None and dataset_id is None and not delete_all:
            dataset_id = ""  # the default instance's history only
        touched = await self.store.edit_history(
            tenant, entity_id, attr=iri, instance_id=instance_id, dataset_id=dataset_id
        )
        if attr is None:
            results = await self.store.write(tenant, [(entity_id, lambda old: None)], _no_history)
            touched += 1 if results[0].before is not None else 0
        if not touched:
            raise ResourceNotFoundError(f"nothing of {entity_id} matches in the history")


def _no_history(before: Doc | None, after: Doc | None) -> list[Any]:
    return []


def _is_newer(instance: Instance, current: list[Instance]) -> bool:
    """True unless the current instance of the same dataset was observed later."""
    for existing in current:
        if existing.get("datasetId") == instance.get("datasetId"):
            return bool(instance.get("observedAt", "") >= existing.get("observedAt", ""))
    return True


def _latest_per_dataset(instances: list[Instance]) -> list[Instance]:
    latest: dict[str | None, Instance] = {}
    for inst in instances:
        key = inst.get("datasetId")
        current = latest.get(key)
        if current is None or inst.get("observedAt", "") >= current.get("observedAt", ""):
            latest[key] = inst
    return list(latest.values())
