"""Access control for every HTTP request (ASGI middleware) and the audit log of writes.

The rules are data: the first rule whose methods and path match gives the roles allowed.
``public`` is the anonymous visitor: it reads, and only the entity types the
``public_types`` setting lists (the NGSI-LD handlers narrow its queries, see
``public_types_of``). Every request that may change something (any method but GET/HEAD/
OPTIONS) is written to the audit log with who, role, tenant, what and the status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

from starlette.requests import Request

from agilecity.api.problems import problem_response
from agilecity.auth import OPEN_MODE, Credentials, ForbiddenError, Principal, UnauthorizedError
from agilecity.broker.timeutil import now_iso
from agilecity.errors import AgileCityError
from agilecity.store.base import AuditEntry, Store

log = logging.getLogger("agilecity.access")
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
SESSION_COOKIE = "agilecity_session"
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
ANY = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})

EVERYONE = frozenset({"admin", "manager", "operator", "device", "public", "anonymous"})
READERS = frozenset({"admin", "manager", "operator", "public"})
STAFF = frozenset({"admin", "manager", "operator"})
WRITERS = STAFF
ATTRIBUTE_WRITERS = STAFF | {"device"}
MANAGERS = frozenset({"admin", "manager"})
ADMINS = frozenset({"admin"})


@dataclass(frozen=True)
class Rule:
    """Requests with one of ``methods`` on a path matching ``pattern`` need one of ``roles``."""

    methods: frozenset[str]
    pattern: re.Pattern[str]
    roles: frozenset[str]


def _rule(methods: frozenset[str] | set[str], pattern: str, roles: frozenset[str]) -> Rule:
    return Rule(frozenset(methods), re.compile(pattern), roles)


NGSI = r"^/ngsi-ld/v1"
RULES: tuple[Rule, ...] = (
    _rule(SAFE, r"^/(health|version|metrics|openapi\.json)$", EVERYONE),
    _rule({"POST"}, r"^/auth/(login|logout)$", EVERYONE),
    _rule(ANY, r"^/iot/(d|json)$", EVERYONE),  # devices authenticate by their group's API key
    _rule(SAFE, r"^/iot/", STAFF),
    _rule(ANY, r"^/iot/", MANAGERS),
    _rule(SAFE, r"^/audit$", ADMINS),
    _rule(SAFE, r"^/services(/|$)", EVERYONE),  # each service route says if it is public
    _rule(ANY, r"^/open311/", EVERYONE),  # citizens report, follow, reopen (by token)
    _rule(ANY, r"^/reports(/|$)", STAFF),  # the reports back office
    _rule(SAFE, NGSI + r"/subscriptions", STAFF),
    _rule(ANY, NGSI + r"/subscriptions", MANAGERS),
    _rule(SAFE, NGSI + r"/jsonldContexts", READERS),
    _rule(ANY, NGSI + r"/jsonldContexts", MANAGERS),
    _rule(SAFE, NGSI + r"/attributes", STAFF),  # attribute names could reveal private data
    _rule({"POST"}, NGSI + r"/(entityOperations|temporalEntityOperations)/query$", READERS),
    _rule({"POST", "PATCH"}, NGSI + r"/entities/[^/]+/attrs(/[^/]+)?$", ATTRIBUTE_WRITERS),
    _rule({"POST"}, NGSI + r"/entityOperations/(upsert|update)$", ATTRIBUTE_WRITERS),
    _rule(SAFE, NGSI + r"/", READERS),
    _rule(ANY, NGSI + r"/", WRITERS),
    _rule(SAFE, r"^/", EVERYONE),  # the web pages (each page asks for what it shows)
    _rule(ANY, r"^/", ADMINS),  # anything else that writes: admins only
)


def roles_for(method: str, path: str) -> frozenset[str]:
    """The roles that may make this request."""
    for rule in RULES:
        if method in rule.methods and rule.pattern.match(path):
            return rule.roles
    return ADMINS


def principal_of(request: Request) -> Principal:
    """The principal the access middleware resolved for this request."""
    principal: Principal = request.scope.get("state", {}).get("principal", OPEN_MODE)
    return principal


def public_types_of(request: Request) -> frozenset[str] | None:
    """The entity types the request may see: all (None) unless it is a public visitor's."""
    if not principal_of(request).public:
        return None
    types: frozenset[str] = request.scope["state"]["public_types"]
    return types


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _tenant(scope: Scope, path: str) -> str:
    header = b"fiware-service" if path.startswith("/iot/") else b"ngsild-tenant"
    value = _header(scope, header)
    if value is None and header == b"fiware-service":
        value = _header(scope, b"ngsild-tenant")
    return (value or "").strip()


class AuditLog:
    """Audit entries buffered and written in batches (every 0.2 s, and at shutdown)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: list[AuditEntry] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, entry: AuditEntry) -> None:
        """Queue an entry."""
        self._pending.append(entry)

    async def flush(self) -> None:
        """Write what is queued."""
        if self._pending:
            entries, self._pending = self._pending, []
            try:
                await self.store.append_audit(entries)
            except Exception:
                log.exception("audit entries could not be written; kept for the next flush")
                self._pending[:0] = entries

    async def start(self) -> None:
        """Start the periodic flush."""
        self._task = asyncio.create_task(self._forever())

    async def stop(self) -> None:
        """Stop and write what is left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            await self.flush()


class AccessMiddleware:
    """Authenticate, authorise, then audit every HTTP request."""

    def __init__(self, app: ASGIApp, credentials: Credentials | None, audit: AuditLog,
                 public_types: frozenset[str]) -> None:  # fmt: skip
        self.app = app
        self.credentials = credentials  # None: the open mode
        self.audit = audit
        self.public_types = public_types

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        tenant = _tenant(scope, path)
        try:
            principal = await self._principal(scope)
            self._authorise(principal, method, path, tenant, scope)
        except AgileCityError as error:
            response = problem_response(error, Request(scope))
            if isinstance(error, UnauthorizedError):
                response.headers["WWW-Authenticate"] = 'Bearer realm="agilecity"'
            if method not in SAFE:
                name = getattr(error, "actor", "anonymous")
                self.audit.add(AuditEntry(now_iso(), name, "-", tenant, method, path, error.status))
            await response(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["principal"], state["public_types"] = principal, self.public_types
        if method in SAFE or roles_for(method, path) is EVERYONE and path.startswith("/iot/"):
            await self.app(scope, receive, send)  # reads and device frames are not audited
            return
        status = [500]

        async def recording_send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            entry = AuditEntry(now_iso(), principal.name, principal.role, tenant, method, path,
                               status[0])  # fmt: skip
            self.audit.add(entry)

    async def _principal(self, scope: Scope) -> Principal:
        if self.credentials is None:
            return OPEN_MODE
        bearer = None
        authorization = _header(scope, b"authorization")
        if authorization is not None:
            kind, _, value = authorization.partition(" ")
            if kind.lower() != "bearer" or not value.strip():
                raise UnauthorizedError("Authorization must be 'Bearer <API key or token>'")
            bearer = value.strip()
        elif (api_key := _header(scope, b"x-api-key")) is not None:
            bearer = api_key.strip()
        session = None
        if bearer is None and (cookie := _header(scope, b"cookie")) is not None:
            parsed: SimpleCookie = SimpleCookie()
            with contextlib.suppress(Exception):
                parsed.load(cookie)
            if SESSION_COOKIE in parsed:
                session = parsed[SESSION_COOKIE].value
                if scope["method"] not in SAFE and not _same_origin(scope):
                    raise ForbiddenError("a cookie session writes only from this site's pages")
        return await self.credentials.principal(bearer, session)

    @staticmethod
    def _authorise(principal: Principal, method: str, path: str, tenant: str,
                   scope: Scope) -> None:  # fmt: skip
        roles = roles_for(method, path)
        if roles is EVERYONE:
            return
        if principal.public and "public" not in roles:
            if method in SAFE:
                raise UnauthorizedError("this needs credentials (an API key or a staff login)")
            raise UnauthorizedError("writes need credentials (an API key or a staff login)")
        if principal.role not in roles:
            error = ForbiddenError(f"role {principal.role!r} may not {method} {path}")
            error.actor = principal.name  # type: ignore[attr-defined]
            raise error
        if not principal.may_use(tenant):
            error = ForbiddenError(f"no grant for tenant {tenant or '(default)'!r}")
            error.actor = principal.name  # type: ignore[attr-defined]
            raise error


def _same_origin(scope: Scope) -> bool:
    """No Origin header (not a browser cross-site request) or the same host."""
    origin = _header(scope, b"origin")
    if origin is None:
        return True
    host = _header(scope, b"host") or ""
    return origin.split("://", 1)[-1].rstrip("/") == host
