"""Staff sessions (``/auth/login``, ``/auth/logout``) and the audit log query (``/audit``)."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agilecity.api.access import SESSION_COOKIE, AuditLog
from agilecity.api.negotiation import read_raw_body
from agilecity.auth import Credentials
from agilecity.broker.timeutil import canonical_or_none
from agilecity.errors import BadRequestDataError, InvalidRequestError
from agilecity.store.base import AuditQuery


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


class StaffApi:
    """Login, logout and the audit log."""

    def __init__(
        self, credentials: Credentials | None, audit: AuditLog, secure_cookie: bool
    ) -> None:
        self.credentials = credentials
        self.audit = audit
        self.secure_cookie = secure_cookie

    def routes(self) -> list[Route]:
        """The /auth and /audit routes."""
        return [
            Route("/auth/login", self.login, methods=["POST"]),
            Route("/auth/logout", self.logout, methods=["POST"]),
            Route("/audit", self.list_audit, methods=["GET"]),
        ]

    async def login(self, request: Request) -> Response:
        """POST /auth/login ``{"username", "password"}``: a session cookie."""
        if self.credentials is None:
            raise BadRequestDataError("authentication is off (open mode): nothing to log in to")
        try:
            body = orjson.loads(await read_raw_body(request, 4096))
        except orjson.JSONDecodeError:
            raise InvalidRequestError("the body must be JSON") from None
        if not isinstance(body, dict) or not all(
            isinstance(body.get(k), str) for k in ("username", "password")
        ):
            raise BadRequestDataError('the body must be {"username": ..., "password": ...}')
        token, principal = await self.credentials.login(body["username"], body["password"])
        response = _json({"username": body["username"], "role": principal.role,
                          "tenants": sorted(principal.tenants)})  # fmt: skip
        response.set_cookie(
            SESSION_COOKIE, token, max_age=int(self.credentials.session_hours * 3600),
            httponly=True, samesite="strict", secure=self.secure_cookie, path="/",
        )  # fmt: skip
        return response

    async def logout(self, request: Request) -> Response:
        """POST /auth/logout: end the session of the cookie."""
        token = request.cookies.get(SESSION_COOKIE)
        if token and self.credentials is not None:
            await self.credentials.logout(token)
        response = Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def list_audit(self, request: Request) -> Response:
        """GET /audit?since=&until=&actor=&tenant=&limit=&offset= (admins), newest first."""
        params = request.query_params
        times = {}
        for name in ("since", "until"):
            raw = params.get(name)
            if raw is not None:
                times[name] = canonical_or_none(raw)
                if times[name] is None:
                    raise BadRequestDataError(f"{name} must be an ISO 8601 date-time")
        limit, offset = params.get("limit", "100"), params.get("offset", "0")
        digits = (limit + offset).isascii() and limit.isdigit() and offset.isdigit()  # not '²'
        if not (digits and 0 < int(limit) <= 1000 and len(offset) <= 9):  # fits a bigint
            raise BadRequestDataError("limit is 1-1000 and offset an integer from 0 to 10^9")
        actor, tenant = params.get("actor"), params.get("tenant")
        if "\x00" in f"{actor}{tenant}":  # PostgreSQL text cannot hold it
            raise BadRequestDataError("actor and tenant must not contain the NUL character")
        query = AuditQuery(times.get("since"), times.get("until"), actor, tenant, int(limit),
                           int(offset))  # fmt: skip
        await self.audit.flush()  # entries of the last instants too
        entries = await self.audit.store.read_audit(query)
        return _json([entry.__dict__ for entry in entries])
