"""Error rendering for the HTTP API families (NGSI-LD ProblemDetails, RFC 9457 elsewhere)."""

from __future__ import annotations

import logging

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from agilecity.errors import AgileCityError, InternalError, InvalidRequestError

log = logging.getLogger("agilecity.api")
NGSI_LD_PREFIX = "/ngsi-ld/"


IOT_AGENT_PREFIX = "/iot/"
_IOT_AGENT_NAMES = {
    400: "BAD_REQUEST", 404: "DEVICE_NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
    409: "DUPLICATE_DEVICE_ID", 413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_CONTENT_TYPE",
}  # fmt: skip


def iot_agent_response(error: AgileCityError) -> Response:
    """The FIWARE IoT Agent's error shape: ``{"name": "DEVICE_NOT_FOUND", "message": ...}``."""
    name = getattr(error, "iot_name", None) or _IOT_AGENT_NAMES.get(
        error.status, "INTERNAL_ERROR" if error.status >= 500 else "ERROR"
    )
    body = {"name": name, "message": error.detail or error.title}
    return Response(orjson.dumps(body), status_code=error.status, media_type="application/json")


OPEN311_PREFIX = "/open311/"


def open311_response(error: AgileCityError, path: str) -> Response:
    """Open311 GeoReport v2's error shape, ``[{"code": 400, "description": ...}]`` in JSON,
    ``<errors><error><code/><description/></error></errors>`` when the path asks for XML."""
    from agilecity.api.open311_format import render_errors

    response = render_errors(error.status, error.detail or error.title, path.endswith(".xml"))
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def problem_response(error: AgileCityError, request: Request | None = None) -> Response:
    """The error in its API family's shape: IoT Agent and Open311 routes their own, NGSI-LD
    routes ProblemDetails as application/json (as the spec shows), others
    application/problem+json."""
    if request is not None and request.url.path.startswith(IOT_AGENT_PREFIX):
        return iot_agent_response(error)
    if request is not None and request.url.path.startswith(OPEN311_PREFIX):
        return open311_response(error, request.url.path)
    body = error.problem()
    if request is not None:
        body["instance"] = request.url.path
    on_ngsi_ld = request is None or request.url.path.startswith(NGSI_LD_PREFIX)
    media_type = "application/json" if on_ngsi_ld else "application/problem+json"
    return Response(orjson.dumps(body), status_code=error.status, media_type=media_type)


async def handle_agilecity_error(request: Request, exc: Exception) -> Response:
    """Render a domain error raised by any handler."""
    assert isinstance(exc, AgileCityError)
    return problem_response(exc, request)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown route, wrong method) in the same shape."""
    assert isinstance(exc, HTTPException)
    error: AgileCityError
    if exc.status_code == 404:
        from agilecity.errors import ResourceNotFoundError

        error = ResourceNotFoundError(f"no resource at {request.url.path}")
    elif exc.status_code == 405:
        allowed = allowed_methods(request)
        error = InvalidRequestError(
            f"method {request.method} is not allowed here; allowed: {', '.join(allowed)}"
        )
        error.status = 405
        response = problem_response(error, request)
        response.headers["Allow"] = ", ".join(allowed)
        return response
    else:
        error = InvalidRequestError(str(exc.detail))
        error.status = exc.status_code
    return problem_response(error, request)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route accepts for this path (for the Allow header of a 405)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "__none__"})
        if match != Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """Last resort: log the failure, tell the client nothing internal."""
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return problem_response(InternalError("an unexpected error occurred; it was logged"), request)
