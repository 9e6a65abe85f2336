"""The NGSI-LD subscription API (/ngsi-ld/v1/subscriptions)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agilecity.api.negotiation import (
    bool_param,
    int_param,
    json_response,
    link_context,
    negotiate,
    tenant_of,
)
from agilecity.api.ngsi_ld import PREFIX, NgsiLdApi, location


class SubscriptionApi:
    """Route handlers of the subscription resources."""

    def __init__(self, api: NgsiLdApi) -> None:
        self.api = api
        self.subscriptions = api.broker.subscriptions

    async def create_subscription(self, request: Request) -> Response:
        """POST /subscriptions: 201 with the Location of the new subscription."""
        data, _, context = await self.api.body_with_context(request)
        sub_id = await self.subscriptions.create(tenant_of(request), data, context)
        return Response(status_code=201, headers=location(f"{PREFIX}/subscriptions/{sub_id}"))

    async def list_subscriptions(self, request: Request) -> Response:
        """GET /subscriptions (limit, offset, count)."""
        media = negotiate(request)
        page, total = await self.subscriptions.list_page(
            tenant_of(request), int_param(request, "limit"), int_param(request, "offset") or 0
        )
        headers = {"NGSILD-Results-Count": str(total)} if bool_param(request, "count") else {}
        return json_response(page, media_type=media, headers=headers)

    async def retrieve_subscription(self, request: Request) -> Response:
        """GET /subscriptions/{id}."""
        media = negotiate(request)
        body = await self.subscriptions.retrieve(tenant_of(request), request.path_params["id"])
        return json_response(body, media_type=media)

    async def update_subscription(self, request: Request) -> Response:
        """PATCH /subscriptions/{id}."""
        data, _, context = await self.api.body_with_context(request, merge_patch=True)
        await self.subscriptions.update(
            tenant_of(request), request.path_params["id"], data, context or link_context(request)
        )
        return Response(status_code=204)

    async def delete_subscription(self, request: Request) -> Response:
        """DELETE /subscriptions/{id}."""
        await self.subscriptions.delete(tenant_of(request), request.path_params["id"])
        return Response(status_code=204)

    def routes(self) -> list[Route]:
        """The Starlette routes of the subscription API."""
        p = f"{PREFIX}/subscriptions"
        return [
            Route(p, self.create_subscription, methods=["POST"]),
            Route(p, self.list_subscriptions, methods=["GET"]),
            Route(f"{p}/{{id:path}}", self.retrieve_subscription, methods=["GET"]),
            Route(f"{p}/{{id:path}}", self.update_subscription, methods=["PATCH"]),
            Route(f"{p}/{{id:path}}", self.delete_subscription, methods=["DELETE"]),
        ]
