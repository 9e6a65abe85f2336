"""The city services' HTTP face: ``GET /services`` (what is enabled, with panels) and each
service's routes under ``/services/<name>/``, for the tenant of ``NGSILD-Tenant``."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agilecity.api.access import principal_of
from agilecity.api.negotiation import tenant_of
from agilecity.auth import ForbiddenError, UnauthorizedError
from agilecity.errors import ResourceNotFoundError
from agilecity.services.base import RouteSpec, Service
from agilecity.services.host import ServiceHost


class ServiceApi:
    """Routes of the enabled services."""

    def __init__(self, host: ServiceHost) -> None:
        self.host = host

    def routes(self) -> list[Route]:
        """``/services`` and every route of every built-in service that is enabled."""
        routes = [Route("/services", self.list_services, methods=["GET"])]
        done: set[tuple[str, str]] = set()
        for runner in self.host.runners:
            service = runner.ctx.service
            for spec in service.routes:
                if (service.name, spec.path) not in done:
                    done.add((service.name, spec.path))
                    routes.append(Route(f"/services/{service.name}/{spec.path}",
                                        self._handler(service, spec), methods=["GET"]))  # fmt: skip
        return routes

    async def list_services(self, request: Request) -> Response:
        """GET /services: the services enabled in the tenant, with their dashboard panels."""
        tenant = tenant_of(request)
        body = [
            {"name": r.ctx.service.name, "title": r.ctx.service.title,
             "routes": [f"/services/{r.ctx.service.name}/{s.path}" for s in r.ctx.service.routes],
             "panel": dataclasses.asdict(r.ctx.service.panel) if r.ctx.service.panel else None}
            for r in self.host.runners if r.ctx.tenant == tenant
        ]  # fmt: skip
        return Response(orjson.dumps(body), media_type="application/json")

    def _handler(self, service: Service, spec: RouteSpec) -> Any:
        async def handle(request: Request) -> Response:
            principal, tenant = principal_of(request), tenant_of(request)
            if principal.public and not spec.public:
                raise UnauthorizedError("this service route needs credentials")
            if not principal.may_use(tenant):
                raise ForbiddenError(f"no grant for tenant {tenant or '(default)'!r}")
            ctx = self.host.context(tenant, service.name)
            if ctx is None:
                raise ResourceNotFoundError(f"service {service.name!r} is not enabled here")
            result = await spec.handler(ctx, dict(request.query_params))
            if isinstance(result, tuple):
                text, media_type = result
                return Response(text, media_type=media_type)
            return Response(orjson.dumps(result), media_type="application/json")

        return handle
