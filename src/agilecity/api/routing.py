"""A router that finds a request's route without trying every route of the platform.

Starlette's Router tries each of its ~100 routes in order (a regular expression each) until
one matches; the NGSI-LD routes a city's devices and clients call most then pay for the
routes listed before them. This router first looks among the routes of the request's
method and first path segment, in their original order, and hands anything they do not
match in full (a 405, a 404, a trailing-slash redirect) to Starlette's own scan, so every
answer stays exactly what the plain Router gives.
"""

from __future__ import annotations

from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import Receive, Scope, Send

_ANY = "*"  # a route whose first segment is a parameter, or which has no method list


def _first_segment(path: str) -> str:
    """The first segment of a path ("" for "/"), or _ANY when it holds a parameter."""
    segment = path.lstrip("/").split("/", 1)[0]
    return _ANY if "{" in segment else segment


class IndexedRouter(Router):
    """Router whose matching starts with the routes of the method and first segment."""

    _index: dict[tuple[str, str], list[BaseRoute]] | None = None

    def _build_index(self) -> dict[tuple[str, str], list[BaseRoute]]:
        keyed: list[tuple[BaseRoute, frozenset[str] | None, str]] = []
        methods: set[str] = set()
        for route in self.routes:
            route_methods = getattr(route, "methods", None) if isinstance(route, Route) else None
            path = getattr(route, "path", "")
            keyed.append((route, frozenset(route_methods) if route_methods else None,
                          _first_segment(path) if path else _ANY))  # fmt: skip
            methods.update(route_methods or ())
        segments = {segment for _, _, segment in keyed}
        index: dict[tuple[str, str], list[BaseRoute]] = {}
        for method in methods:
            for segment in segments | {_ANY}:
                index[(method, segment)] = [
                    route
                    for route, route_methods, route_segment in keyed
                    if (route_methods is None or method in route_methods)
                    and route_segment in (segment, _ANY)
                ]
        return index

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Try the method's and segment's routes; anything else goes the usual way."""
        if scope["type"] == "http":
            if self._index is None:
                self._index = self._build_index()
            segment = get_route_path(scope).lstrip("/").split("/", 1)[0]
            candidates = self._index.get((scope["method"], segment))
            if candidates is None:
                candidates = self._index.get((scope["method"], _ANY), [])
            for route in candidates:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.setdefault("router", self)
                    scope["route"] = route
                    scope.update(child_scope)
                    await route.handle(scope, receive, send)
                    return
        await super().app(scope, receive, send)
