"""The NGSI-LD temporal API (/ngsi-ld/v1/temporal/...) over the Broker's history."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agilecity.api.access import public_types_of
from agilecity.api.negotiation import (
    bool_param,
    int_param,
    json_response,
    negotiate,
    options_of,
    split_list,
    tenant_of,
)
from agilecity.api.ngsi_ld import PREFIX, NgsiLdApi, location
from agilecity.broker.representation import RenderOptions
from agilecity.broker.temporal import TemporalParams, parse_duration
from agilecity.errors import BadRequestDataError

TEMPORAL_PARAMS = frozenset(
    {"timerel", "timeAt", "endTimeAt", "timeproperty", "lastN", "aggrMethods",
     "aggrPeriodDuration"}
)  # fmt: skip
TEMPORAL_OPTIONS = frozenset({"temporalValues", "aggregatedValues", "sysAttrs", "count"})


def temporal_params(request: Request) -> tuple[TemporalParams, RenderOptions]:
    """timerel & co, and the representation (normalized, temporalValues, aggregatedValues)."""
    qp = request.query_params
    options = options_of(request)
    unknown = options - TEMPORAL_OPTIONS
    if unknown:
        raise BadRequestDataError(f"unknown options: {', '.join(sorted(unknown))}")
    fmt = qp.get("format")
    if fmt is not None and fmt not in ("normalized", "temporalValues", "aggregatedValues"):
        raise BadRequestDataError(f"unknown temporal format {fmt!r}")
    simplified = "temporalValues" in options or fmt == "temporalValues"
    aggregated = "aggregatedValues" in options or fmt == "aggregatedValues"
    if simplified and aggregated:
        raise BadRequestDataError("temporalValues and aggregatedValues exclude each other")
    timeproperty = qp.get("timeproperty", "observedAt")
    params = TemporalParams(
        timerel=qp.get("timerel"),
        time_at=qp.get("timeAt"),
        end_time_at=qp.get("endTimeAt"),
        timeproperty=timeproperty,  # type: ignore[arg-type]  # validated below
        last_n=int_param(request, "lastN"),
        aggregated=aggregated,
        aggr_methods=split_list(qp.get("aggrMethods")),
        aggr_period=parse_duration(qp.get("aggrPeriodDuration", "PT0S")),
    ).validate()
    render = RenderOptions(
        format="keyValues" if simplified else "normalized", sys_attrs="sysAttrs" in options
    )
    return params, render


class TemporalApi:
    """Route handlers of the temporal API, sharing the NGSI-LD plumbing."""

    def __init__(self, api: NgsiLdApi) -> None:
        self.api = api
        self.history = api.broker.history

    async def query_temporal(self, request: Request) -> Response:
        """GET /temporal/entities."""
        media = negotiate(request)
        terms = await self.api.terms(request)
        selection = self.api.query_params(request, TEMPORAL_PARAMS)
        params, render = temporal_params(request)
        result = await self.history.query(tenant_of(request), selection, params, terms, render)
        headers = {} if result.count is None else {"NGSILD-Results-Count": str(result.count)}
        return json_response(result.entities, media_type=media, terms=terms, headers=headers)

    async def retrieve_temporal(self, request: Request) -> Response:
        """GET /temporal/entities/{id}."""
        media = negotiate(request)
        terms = await self.api.terms(request)
        params, render = temporal_params(request)
        entity = await self.history.retrieve(
            tenant_of(request),
            request.path_params["id"],
            split_list(request.query_params.get("attrs")),
            params,
            terms,
            render,
            visible_types=public_types_of(request),
        )
        return json_response(entity, media_type=media, terms=terms)

    async def upsert_temporal(self, request: Request) -> Response:
        """POST /temporal/entities: 201 when the entity is new, 204 when instances were added."""
        data, terms = await self.api.body(request)
        created = await self.history.upsert(tenant_of(request), data, terms)
        if created:
            return Response(
                status_code=201, headers=location(f"{PREFIX}/temporal/entities/{data['id']}")
            )
        return Response(status_code=204)

    async def append_temporal(self, request: Request) -> Response:
        """POST /temporal/entities/{id}/attrs."""
        data, terms = await self.api.body(request)
        await self.history.upsert(
            tenant_of(request), data, terms, entity_id=request.path_params["id"]
        )
        return Response(status_code=204)

    async def modify_instance(self, request: Request) -> Response:
        """PATCH /temporal/entities/{id}/attrs/{attr}/{instanceId}."""
        data, terms = await self.api.body(request)
        path = request.path_params
        await self.history.modify_instance(
            tenant_of(request), path["id"], path["attr"], path["instance"], data, terms
        )
        return Response(status_code=204)

    async def delete_instance(self, request: Request) -> Response:
        """DELETE /temporal/entities/{id}/attrs/{attr}/{instanceId}."""
        terms = await self.api.terms(request)
        path = request.path_params
        await self.history.delete(
            tenant_of(request), path["id"], terms, attr=path["attr"], instance_id=path["instance"]
        )
        return Response(status_code=204)

    async def delete_attribute(self, request: Request) -> Response:
        """DELETE /temporal/entities/{id}/attrs/{attr} (datasetId, deleteAll)."""
        terms = await self.api.terms(request)
        path = request.path_params
        await self.history.delete(
            tenant_of(request),
            path["id"],
            terms,
            attr=path["attr"],
            dataset_id=request.query_params.get("datasetId"),
            delete_all=bool_param(request, "deleteAll"),
        )
        return Response(status_code=204)

    async def delete_temporal(self, request: Request) -> Response:
        """DELETE /temporal/entities/{id}: the entity and all its history."""
        terms = await self.api.terms(request)
        await self.history.delete(tenant_of(request), request.path_params["id"], terms)
        return Response(status_code=204)

    def routes(self) -> list[Route]:
        """The Starlette routes of the temporal API."""
        p = f"{PREFIX}/temporal/entities"
        return [
            Route(p, self.query_temporal, methods=["GET"]),
            Route(p, self.upsert_temporal, methods=["POST"]),
            Route(f"{p}/{{id:path}}/attrs/{{attr}}/{{instance:path}}", self.modify_instance,
                  methods=["PATCH"]),
            Route(f"{p}/{{id:path}}/attrs/{{attr}}/{{instance:path}}", self.delete_instance,
                  methods=["DELETE"]),
            Route(f"{p}/{{id:path}}/attrs/{{attr}}", self.delete_attribute, methods=["DELETE"]),
            Route(f"{p}/{{id:path}}/attrs", self.append_temporal, methods=["POST"]),
            Route(f"{p}/{{id:path}}", self.retrieve_temporal, methods=["GET"]),
            Route(f"{p}/{{id:path}}", self.delete_temporal, methods=["DELETE"]),
        ]  # fmt: skip
