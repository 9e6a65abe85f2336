"""The NGSI-LD HTTP API (ETSI GS CIM 009 v1.8, context information) under /ngsi-ld/v1.

Each handler parses the request, calls one Broker operation and renders the result.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agilecity.api.access import public_types_of
from agilecity.api.negotiation import (
    GEO_JSON,
    JSON,
    Body,
    bool_param,
    int_param,
    json_response,
    link_context,
    negotiate,
    options_of,
    read_body,
    render_options,
    split_list,
    strip_contexts,
    tenant_of,
)
from agilecity.broker.broker import BatchResult, Broker, QueryParams, SelectorParams, is_visible
from agilecity.broker.context import ContextSource, TermMap
from agilecity.broker.entities import expand_name
from agilecity.broker.operations import UpdateResult
from agilecity.broker.representation import render_entity, render_feature
from agilecity.errors import BadRequestDataError, ResourceNotFoundError

PREFIX = "/ngsi-ld/v1"


def location(path: str) -> dict[str, str]:
    """A Location header for a path that holds a client's id, as an ASCII URI (RFC 3987):
    non-ASCII, controls, '%', '?' and '#' are percent-encoded, so following it finds the id."""
    return {"Location": quote(path, safe="/:@!$&'()*+,;=-._~")}


class NgsiLdApi:
    """Route handlers bound to one Broker and its limits."""

    def __init__(self, broker: Broker, max_body_bytes: int, max_json_depth: int = 32) -> None:
        self.broker = broker
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth

    async def body(self, request: Request, *, merge_patch: bool = False) -> tuple[Any, TermMap]:
        """The parsed body without @context, and the term map of its context."""
        data, terms, _ = await self.body_with_context(request, merge_patch=merge_patch)
        return data, terms

    async def body_with_context(
        self, request: Request, *, merge_patch: bool = False
    ) -> tuple[Any, TermMap, list[ContextSource] | None]:
        """Like ``body``, also returning the @context sources as the client gave them."""
        body: Body = await read_body(
            request, self.max_body_bytes, max_depth=self.max_json_depth, merge_patch=merge_patch
        )
        terms = await self.broker.contexts.term_map(body.context)
        return strip_contexts(body.data), terms, body.context

    async def terms(self, request: Request) -> TermMap:
        """The term map of the Link header's context (the core context without one)."""
        return await self.broker.contexts.term_map(link_context(request))

    # -- entities ----------------------------------------------------------------------

    async def create_entity(self, request: Request) -> Response:
        """POST /entities."""
        data, terms = await self.body(request)
        entity_id = await self.broker.create_entity(tenant_of(request), data, terms)
        return Response(status_code=201, headers=location(f"{PREFIX}/entities/{entity_id}"))

    async def retrieve_entity(self, request: Request) -> Response:
        """GET /entities/{id}."""
        media = negotiate(request, geo=True)
        terms = await self.terms(request)
        options = render_options(request, terms)
        doc = await self.broker.retrieve_entity(
            tenant_of(request), request.path_params["id"], public_types_of(request)
        )
        if media == GEO_JSON:
            geometry = self._geometry_iri(request, terms)
            feature = render_feature(doc, terms, options, geometry)
            return json_response(feature, media_type=GEO_JSON, terms=terms)
        return json_response(render_entity(doc, terms, options), media_type=media, terms=terms)

    @staticmethod
    def _geometry_iri(request: Request, terms: TermMap) -> str:
        return expand_name(terms, request.query_params.get("geometryProperty", "location"))

    def query_params(self, request: Request, extra: frozenset[str] = frozenset()) -> QueryParams:
        """The entity-selection parameters of a query (unknown parameters refused)."""
        qp = request.query_params
        known = {
            "id", "idPattern", "type", "attrs", "pick", "omit", "q", "scopeQ", "georel",
            "geometry", "coordinates", "geoproperty", "geometryProperty", "lang", "limit",
            "offset", "count", "options", "format", "local", "csf", *extra,
        }  # fmt: skip
        unknown = sorted(set(qp.keys()) - known)
        if unknown:
            raise BadRequestDataError(f"unknown query parameters: {', '.join(unknown)}")
        return QueryParams(
            ids=split_list(qp.get("id")),
            id_pattern=qp.get("idPattern"),
            type=qp.get("type"),
            attrs=split_list(qp.get("attrs")),
            q=qp.get("q"),
            scope_q=qp.get("scopeQ"),
            georel=qp.get("georel"),
            geometry=qp.get("geometry"),
            coordinates=qp.get("coordinates"),
            geoproperty=qp.get("geoproperty"),
            limit=int_param(request, "limit"),
            offset=int_param(request, "offset") or 0,
            count=bool_param(request, "count") or "count" in options_of(request),
            visible_types=public_types_of(request),
        )

    async def query_entities(self, request: Request) -> Response:
        """GET /entities."""
        media = negotiate(request, geo=True)
        terms = await self.terms(request)
        params = self.query_params(request)
        return await self._query_response(request, params, terms, media)

    async def _query_response(
        self,
        request: Request,
        params: QueryParams,
        terms: TermMap,
        media: str,
        attrs: list[str] | None = None,
    ) -> Response:
        options = render_options(request, terms, attrs=attrs)
        docs, total = await self.broker.query_entities(tenant_of(request), params, terms)
        headers = {} if total is None else {"NGSILD-Results-Count": str(total)}
        if media == GEO_JSON:
            geometry = self._geometry_iri(request, terms)
            collection = {
                "type": "FeatureCollection",
                "features": [render_feature(d, terms, options, geometry) for d in docs],
            }
            return json_response(collection, media_type=GEO_JSON, terms=terms, headers=headers)
        body = [render_entity(d, terms, options) for d in docs]
        return json_response(body, media_type=media, terms=terms, headers=headers)

    async def post_query(self, request: Request) -> Response:
        """POST /entityOperations/query: a Query object in the body."""
        media = negotiate(request, geo=True)
        data, terms = await self.body(request)
        if not isinstance(data, dict) or data.get("type") != "Query":
            raise BadRequestDataError('the body must be a Query object ("type": "Query")')
        entities = data.get("entities") or []
        if not isinstance(entities, list):
            raise BadRequestDataError("Query.entities must be an array")
        selectors = [_selector_params(item) for item in entities]
        geo = data.get("geoQ") or {}
        if not isinstance(geo, dict):
            raise BadRequestDataError("Query.geoQ must be an object")
        attrs = data.get("attrs") or []
        if not isinstance(attrs, list) or not all(isinstance(a, str) for a in attrs):
            raise BadRequestDataError("Query.attrs must be an array of attribute names")
        members = {
            "q": data.get("q"),
            "scopeQ": data.get("scopeQ"),
            "georel": geo.get("georel"),
            "geometry": geo.get("geometry"),
            "geoproperty": geo.get("geoproperty"),
        }
        for name, value in members.items():
            if value is not None and not isinstance(value, str):
                raise BadRequestDataError(f"Query member {name} must be a string")
        params = QueryParams(
            selectors=selectors,
            attrs=attrs,
            q=members["q"],
            scope_q=members["scopeQ"],
            georel=members["georel"],
            geometry=members["geometry"],
            coordinates=geo.get("coordinates"),
            geoproperty=members["geoproperty"],
            limit=int_param(request, "limit"),
            offset=int_param(request, "offset") or 0,
            count=bool_param(request, "count"),
            visible_types=public_types_of(request),
        )
        return await self._query_response(request, params, terms, media, attrs=attrs)

    async def replace_entity(self, request: Request) -> Response:
        """PUT /entities/{id}."""
        data, terms = await self.body(request)
        await self.broker.replace_entity(tenant_of(request), request.path_params["id"], data, terms)
        return Response(status_code=204)

    async def merge_entity(self, request: Request) -> Response:
        """PATCH /entities/{id} (merge-patch; NGSI-LD null deletes)."""
        data, terms = await self.body(request, merge_patch=True)
        await self.broker.merge_entity(tenant_of(request), request.path_params["id"], data, terms)
        return Response(status_code=204)

    async def delete_entity(self, request: Request) -> Response:
        """DELETE /entities/{id}."""
        await self.broker.delete_entity(tenant_of(request), request.path_params["id"])
        return Response(status_code=204)

    # -- attributes --------------------------------------------------------------------

    @staticmethod
    def _update_result(result: UpdateResult, terms: TermMap) -> Response:
        if not result.not_updated:
            return Response(status_code=204)
        body = {
            "updated": [terms.compact(a) for a in result.updated],
            "notUpdated": [
                {"attributeName": terms.compact(a), "reason": reason}
                for a, reason in result.not_updated
            ],
        }
        return json_response(body, status=207)

    async def append_attributes(self, request: Request) -> Response:
        """POST /entities/{id}/attrs (options=noOverwrite)."""
        data, terms = await self.body(request)
        overwrite = "noOverwrite" not in options_of(request)
        result = await self.broker.append_attributes(
            tenant_of(request), request.path_params["id"], data, terms, overwrite=overwrite
        )
        return self._update_result(result, terms)

    async def update_attributes(self, request: Request) -> Response:
        """PATCH /entities/{id}/attrs."""
        data, terms = await self.body(request)
        result = await self.broker.update_attributes(
            tenant_of(request), request.path_params["id"], data, terms
        )
        return self._update_result(result, terms)

    async def partial_update_attribute(self, request: Request) -> Response:
        """PATCH /entities/{id}/attrs/{attr}."""
        data, terms = await self.body(request)
        path = request.path_params
        await self.broker.partial_update_attribute(
            tenant_of(request), path["id"], path["attr"], data, terms
        )
        return Response(status_code=204)

    async def replace_attribute(self, request: Request) -> Response:
        """PUT /entities/{id}/attrs/{attr}."""
        data, terms = await self.body(request)
        path = request.path_params
        await self.broker.replace_attribute(
            tenant_of(request), path["id"], path["attr"], data, terms
        )
        return Response(status_code=204)

    async def delete_attribute(self, request: Request) -> Response:
        """DELETE /entities/{id}/attrs/{attr} (datasetId, deleteAll)."""
        terms = await self.terms(request)
        path = request.path_params
        await self.broker.delete_attribute(
            tenant_of(request),
            path["id"],
            path["attr"],
            terms,
            dataset_id=request.query_params.get("datasetId"),
            delete_all=bool_param(request, "deleteAll"),
        )
        return Response(status_code=204)

    # -- batch -------------------------------------------------------------------------

    @staticmethod
    def _batch_response(result: BatchResult, ok_status: int, ok_body: Any = None) -> Response:
        if result.errors:
            body = {
                "success": result.success,
                "errors": [{"entityId": i, "error": e.problem()} for i, e in result.errors],
            }
            return json_response(body, status=207)
        if ok_body is None:
            return Response(status_code=ok_status)
        return json_response(ok_body, status=ok_status)

    async def batch_create(self, request: Request) -> Response:
        """POST /entityOperations/create: 201 with the ids, or 207 with per-entity errors."""
        data, terms = await self.body(request)
        result = await self.broker.batch_create(tenant_of(request), data, terms)
        return self._batch_response(result, 201, result.success)

    async def batch_upsert(self, request: Request) -> Response:
        """POST /entityOperations/upsert: 201 with created ids, 204 if all existed, or 207."""
        data, terms = await self.body(request)
        options = options_of(request)
        if {"update", "replace"} <= options:
            raise BadRequestDataError("options update and replace exclude each other")
        result = await self.broker.batch_upsert(
            tenant_of(request), data, terms, replace="update" not in options
        )
        if result.created and not result.errors:
            return json_response(result.created, status=201)
        return self._batch_response(result, 204)

    async def batch_update(self, request: Request) -> Response:
        """POST /entityOperations/update (options=noOverwrite)."""
        data, terms = await self.body(request)
        overwrite = "noOverwrite" not in options_of(request)
        result = await self.broker.batch_update(
            tenant_of(request), data, terms, overwrite=overwrite
        )
        return self._batch_response(result, 204)

    async def batch_merge(self, request: Request) -> Response:
        """POST /entityOperations/merge."""
        data, terms = await self.body(request)
        result = await self.broker.batch_merge(tenant_of(request), data, terms)
        return self._batch_response(result, 204)

    async def batch_delete(self, request: Request) -> Response:
        """POST /entityOperations/delete: an array of ids."""
        data, _ = await self.body(request)
        result = await self.broker.batch_delete(tenant_of(request), data)
        return self._batch_response(result, 204)

    # -- discovery ---------------------------------------------------------------------

    async def list_types(self, request: Request) -> Response:
        """GET /types (details=true for EntityType objects)."""
        media = negotiate(request)
        terms = await self.terms(request)
        summaries = await self.broker.type_summaries(tenant_of(request))
        visible = public_types_of(request)
        summaries = [s for s in summaries if is_visible([s.type], visible)]
        if bool_param(request, "details"):
            body: Any = [
                {
                    "id": s.type,
                    "type": "EntityType",
                    "typeName": terms.compact(s.type),
                    "attributeNames": sorted(terms.compact(a) for a in s.attributes),
                }
                for s in summaries
            ]
        else:
            body = {
                "id": f"urn:ngsi-ld:EntityTypeList:{uuid.uuid4()}",
                "type": "EntityTypeList",
                "typeList": [terms.compact(s.type) for s in summaries],
            }
        return json_response(body, media_type=media, terms=terms)

    async def retrieve_type(self, request: Request) -> Response:
        """GET /types/{type}: EntityTypeInfo."""
        media = negotiate(request)
        terms = await self.terms(request)
        summary = await self.broker.type_summary(
            tenant_of(request), request.path_params["type"], terms
        )
        if not is_visible([summary.type], public_types_of(request)):
            raise ResourceNotFoundError(f"no entity of type {request.path_params['type']}")
        body = {
            "id": summary.type,
            "type": "EntityTypeInfo",
            "typeName": terms.compact(summary.type),
            "entityCount": summary.entity_count,
            "attributeDetails": [
                {
                    "id": attr,
                    "type": "Attribute",
                    "attributeName": terms.compact(attr),
                    "attributeTypes": sorted(kinds),
                }
                for attr, kinds in sorted(summary.attributes.items())
            ],
        }
        return json_response(body, media_type=media, terms=terms)

    async def list_attributes(self, request: Request) -> Response:
        """GET /attributes (details=true for Attribute objects)."""
        media = negotiate(request)
        terms = await self.terms(request)
        summaries = await self.broker.attribute_summaries(tenant_of(request))
        if bool_param(request, "details"):
            body: Any = [self._attribute(s, terms, count=False) for s in summaries]
        else:
            body = {
                "id": f"urn:ngsi-ld:AttributeList:{uuid.uuid4()}",
                "type": "AttributeList",
                "attributeList": [terms.compact(s.attr) for s in summaries],
            }
        return json_response(body, media_type=media, terms=terms)

    @staticmethod
    def _attribute(summary: Any, terms: TermMap, *, count: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": summary.attr,
            "type": "Attribute",
            "attributeName": terms.compact(summary.attr),
        }
        if count:
            body["attributeCount"] = summary.entity_count
            body["attributeTypes"] = sorted(summary.kinds)
        body["typeNames"] = sorted(terms.compact(t) for t in summary.types)
        return body

    async def retrieve_attribute(self, request: Request) -> Response:
        """GET /attributes/{attr}."""
        media = negotiate(request)
        terms = await self.terms(request)
        summary = await self.broker.attribute_summary(
            tenant_of(request), request.path_params["attr"], terms
        )
        body = self._attribute(summary, terms, count=True)
        return json_response(body, media_type=media, terms=terms)

    # -- @contexts ---------------------------------------------------------------------

    async def list_contexts(self, request: Request) -> Response:
        """GET /jsonldContexts (details=true, kind=Hosted|Cached|ImplicitlyCreated)."""
        kind = request.query_params.get("kind")
        if kind is not None and kind not in ("Hosted", "Cached", "ImplicitlyCreated"):
            raise BadRequestDataError(f"unknown context kind {kind!r}")
        records = self.broker.contexts.records(kind)
        if bool_param(request, "details"):
            body: Any = [
                {
                    "URL": r.url,
                    "localId": r.local_id,
                    "kind": r.kind,
                    "createdAt": r.created_at,
                    "lastUsage": r.last_usage,
                    "numberOfHits": r.hits,
                }
                for r in records
            ]
        else:
            body = [r.url for r in records]
        return json_response(body, media_type=JSON)

    async def add_context(self, request: Request) -> Response:
        """POST /jsonldContexts: host a context document."""
        body = await read_body(
            request, self.max_body_bytes, max_depth=self.max_json_depth, context_document=True
        )
        record = await self.broker.contexts.add_hosted(body.data)
        return Response(status_code=201, headers={"Location": record.url})

    async def retrieve_context(self, request: Request) -> Response:
        """GET /jsonldContexts/{id}: the stored context document."""
        record = self.broker.contexts.find(request.path_params["id"])
        return Response(
            orjson.dumps({"@context": record.body.get("@context", {})}),
            media_type="application/ld+json",
        )

    async def delete_context(self, request: Request) -> Response:
        """DELETE /jsonldContexts/{id} (reload=true re-fetches a cached one)."""
        await self.broker.contexts.delete(
            request.path_params["id"], reload=bool_param(request, "reload")
        )
        return Response(status_code=204)

    def routes(self) -> list[Route]:
        """The Starlette routes of the API."""
        p = PREFIX
        return [
            Route(f"{p}/entities", self.create_entity, methods=["POST"]),
            Route(f"{p}/entities", self.query_entities, methods=["GET"]),
            Route(f"{p}/entities/{{id:path}}/attrs/{{attr}}", self.partial_update_attribute,
                  methods=["PATCH"]),
            Route(f"{p}/entities/{{id:path}}/attrs/{{attr}}", self.replace_attribute,
                  methods=["PUT"]),
            Route(f"{p}/entities/{{id:path}}/attrs/{{attr}}", self.delete_attribute,
                  methods=["DELETE"]),
            Route(f"{p}/entities/{{id:path}}/attrs", self.append_attributes, methods=["POST"]),
            Route(f"{p}/entities/{{id:path}}/attrs", self.update_attributes, methods=["PATCH"]),
            Route(f"{p}/entities/{{id:path}}", self.retrieve_entity, methods=["GET"]),
            Route(f"{p}/entities/{{id:path}}", self.replace_entity, methods=["PUT"]),
            Route(f"{p}/entities/{{id:path}}", self.merge_entity, methods=["PATCH"]),
            Route(f"{p}/entities/{{id:path}}", self.delete_entity, methods=["DELETE"]),
            Route(f"{p}/entityOperations/create", self.batch_create, methods=["POST"]),
            Route(f"{p}/entityOperations/upsert", self.batch_upsert, methods=["POST"]),
            Route(f"{p}/entityOperations/update", self.batch_update, methods=["POST"]),
            Route(f"{p}/entityOperations/merge", self.batch_merge, methods=["POST"]),
            Route(f"{p}/entityOperations/delete", self.batch_delete, methods=["POST"]),
            Route(f"{p}/entityOperations/query", self.post_query, methods=["POST"]),
            Route(f"{p}/types", self.list_types, methods=["GET"]),
            Route(f"{p}/types/{{type:path}}", self.retrieve_type, methods=["GET"]),
            Route(f"{p}/attributes", self.list_attributes, methods=["GET"]),
            Route(f"{p}/attributes/{{attr:path}}", self.retrieve_attribute, methods=["GET"]),
            Route(f"{p}/jsonldContexts", self.list_contexts, methods=["GET"]),
            Route(f"{p}/jsonldContexts", self.add_context, methods=["POST"]),
            Route(f"{p}/jsonldContexts/{{id:path}}", self.retrieve_context, methods=["GET"]),
            Route(f"{p}/jsonldContexts/{{id:path}}", self.delete_context, methods=["DELETE"]),
        ]  # fmt: skip


def _selector_params(item: object) -> SelectorParams:
    """One ``entities`` item of a Query body, type-checked."""
    if not isinstance(item, dict):
        raise BadRequestDataError("each Query.entities item must be an object")
    values: dict[str, str | None] = {}
    for member in ("id", "idPattern", "type"):
        value = item.get(member)
        if value is not None and not isinstance(value, str):
            raise BadRequestDataError(f"Query.entities[].{member} must be a string")
        values[member] = value
    return SelectorParams(id=values["id"], id_pattern=values["idPattern"], type=values["type"])
