"""The FIWARE IoT Agent HTTP API: provisioning (northbound) and device measures (southbound).

Northbound, as the IoT Agent library documents it: ``/iot/services`` (config groups) and
``/iot/devices``, tenant in ``fiware-service`` (or ``NGSILD-Tenant``), the same JSON
fields, errors as ``{"name", "message"}``. Southbound, as the UltraLight and JSON agents:
``/iot/d?k=<apikey>&i=<device>`` (UltraLight 2.0, POST body or GET ``d``) and
``/iot/json?k=&i=`` (JSON), with an optional ``t`` timestamp.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agilecity import __version__
from agilecity.api.negotiation import read_raw_body
from agilecity.broker.timeutil import canonical_or_none
from agilecity.errors import BadRequestDataError, InvalidRequestError
from agilecity.ingest.gateway import FrameRejected, Gateway


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def tenant_of(request: Request) -> str:
    """The FIWARE service (tenant) of a provisioning request; "" is the default tenant."""
    service = request.headers.get("fiware-service") or request.headers.get("ngsild-tenant")
    return (service or "").strip()


class IotAgentApi:
    """HTTP routes of the device gateway."""

    def __init__(self, gateway: Gateway, max_body_bytes: int) -> None:
        self.gateway = gateway
        self.registry = gateway.registry
        self.max_body_bytes = max_body_bytes

    def routes(self) -> list[Route]:
        """The /iot routes."""
        return [
            Route("/iot/about", self.about, methods=["GET"]),
            Route("/iot/services", self.list_groups, methods=["GET"]),
            Route("/iot/services", self.create_groups, methods=["POST"]),
            Route("/iot/services", self.update_group, methods=["PUT"]),
            Route("/iot/services", self.delete_group, methods=["DELETE"]),
            Route("/iot/devices", self.list_devices, methods=["GET"]),
            Route("/iot/devices", self.create_devices, methods=["POST"]),
            Route("/iot/devices/{device_id}", self.retrieve_device, methods=["GET"]),
            Route("/iot/devices/{device_id}", self.update_device, methods=["PUT"]),
            Route("/iot/devices/{device_id}", self.delete_device, methods=["DELETE"]),
            Route("/iot/d", self.receive_ultralight, methods=["GET", "POST"]),
            Route("/iot/json", self.receive_json, methods=["POST"]),
        ]

    async def _body(self, request: Request) -> Any:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            raise InvalidRequestError("provisioning bodies are application/json")
        raw = await read_raw_body(request, self.max_body_bytes)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequestError(f"the body is not valid JSON: {exc.msg}") from None

    async def about(self, request: Request) -> Response:
        """GET /iot/about."""
        return _json({"libVersion": f"agilecity-{__version__}", "version": __version__,
                      "baseRoot": "/", "mqtt": self.gateway.connected})  # fmt: skip

    # -- config groups -----------------------------------------------------------------

    async def list_groups(self, request: Request) -> Response:
        """GET /iot/services."""
        groups = await self.registry.list_groups(tenant_of(request))
        page = _page(request, groups)
        return _json({"count": len(groups), "services": page})

    async def create_groups(self, request: Request) -> Response:
        """POST /iot/services."""
        await self.registry.create_groups(tenant_of(request), await self._body(request))
        await self.gateway.refresh()
        return Response(status_code=201)

    def _group_selector(self, request: Request) -> tuple[str, str]:
        apikey = request.query_params.get("apikey", "")
        if not apikey:
            raise BadRequestDataError("the apikey query parameter is required")
        resource = request.query_params.get("resource", "/iot/d")
        return _key(resource, "resource"), _key(apikey, "apikey")

    async def update_group(self, request: Request) -> Response:
        """PUT /iot/services?resource=&apikey=."""
        resource, apikey = self._group_selector(request)
        changes = await self._body(request)
        await self.registry.update_group(tenant_of(request), resource, apikey, changes)
        await self.gateway.refresh()
        return Response(status_code=204)

    async def delete_group(self, request: Request) -> Response:
        """DELETE /iot/services?resource=&apikey=."""
        resource, apikey = self._group_selector(request)
        await self.registry.delete_group(tenant_of(request), resource, apikey)
        await self.gateway.refresh()
        return Response(status_code=204)

    # -- devices -----------------------------------------------------------------------

    async def list_devices(self, request: Request) -> Response:
        """GET /iot/devices (limit, offset)."""
        devices = await self.registry.list_devices(tenant_of(request))
        return _json({"count": len(devices), "devices": _page(request, devices)})

    async def create_devices(self, request: Request) -> Response:
        """POST /iot/devices."""
        await self.registry.create_devices(tenant_of(request), await self._body(request))
        await self.gateway.refresh()
        return Response(status_code=201)

    async def retrieve_device(self, request: Request) -> Response:
        """GET /iot/devices/{device_id}."""
        device_id = _key(request.path_params["device_id"], "device id")
        return _json(await self.registry.get_device(tenant_of(request), device_id))

    async def update_device(self, request: Request) -> Response:
        """PUT /iot/devices/{device_id}."""
        device_id = _key(request.path_params["device_id"], "device id")
        changes = await self._body(request)
        await self.registry.update_device(tenant_of(request), device_id, changes)
        await self.gateway.refresh()
        return Response(status_code=204)

    async def delete_device(self, request: Request) -> Response:
        """DELETE /iot/devices/{device_id}."""
        device_id = _key(request.path_params["device_id"], "device id")
        await self.registry.delete_device(tenant_of(request), device_id)
        await self.gateway.refresh()
        return Response(status_code=204)

    # -- measures ------------------------------------------------------------------------

    async def _receive(self, request: Request, body: bytes, *, json_only: bool) -> Response:
        apikey = request.query_params.get("k", "")
        device_id = request.query_params.get("i", "")
        if not apikey or not device_id:
            raise BadRequestDataError("the k (API key) and i (device id) parameters are required")
        stamp = request.query_params.get("t")
        timestamp = canonical_or_none(stamp) if stamp else None
        if stamp and timestamp is None:
            raise BadRequestDataError("t must be an ISO 8601 date-time")
        try:
            outcome = await self.gateway.handle(
                apikey, device_id, body, timestamp=timestamp, json_only=json_only
            )
        except FrameRejected as exc:
            body_out = {"name": exc.cause.upper(), "message": exc.detail}
            return _json(body_out, exc.status)
        return _json({"entity": outcome.entity_id, "written": outcome.written,
                      "skipped": outcome.skipped, "rejected": outcome.rejected})  # fmt: skip

    async def receive_ultralight(self, request: Request) -> Response:
        """POST /iot/d (UltraLight body) or GET /iot/d?d=<payload>."""
        if request.method == "GET":
            body = request.query_params.get("d", "").encode()
        else:
            body = await read_raw_body(request, self.max_body_bytes)
        return await self._receive(request, body, json_only=False)

    async def receive_json(self, request: Request) -> Response:
        """POST /iot/json (JSON body)."""
        body = await read_raw_body(request, self.max_body_bytes)
        return await self._receive(request, body, json_only=True)


def _key(value: str, name: str) -> str:
    """A group or device key from the URL; a NUL is refused (PostgreSQL text cannot hold it)."""
    if "\x00" in value:
        raise BadRequestDataError(f"the {name} must not contain the NUL character")
    return value


def _page(request: Request, items: list[Any]) -> list[Any]:
    def number(name: str, default: int) -> int:
        raw = request.query_params.get(name)
        if raw is None:
            return default
        if not (raw.isascii() and raw.isdigit()):  # isdigit() alone holds for '²'; int() not
            raise BadRequestDataError(f"{name} must be a non-negative integer")
        return int(raw)

    offset, limit = number("offset", 0), number("limit", 20)
    return items[offset : offset + limit]
