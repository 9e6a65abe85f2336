"""The indexed router answers every request exactly as Starlette's plain Router does."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route, Router

from agilecity.api.routing import IndexedRouter


def endpoint(name: str):  # type: ignore[no-untyped-def]
    async def handle(request: Request) -> Response:
        return PlainTextResponse(f"{name} {dict(request.path_params)}")

    return handle


def routes() -> list[Route | Mount]:
    return [
        Route("/", endpoint("home"), methods=["GET"]),
        Route("/health", endpoint("health"), methods=["GET"]),
        Route("/ngsi-ld/v1/entities", endpoint("create"), methods=["POST"]),
        Route("/ngsi-ld/v1/entities/{id:path}/attrs/{attr}", endpoint("patch"), methods=["PATCH"]),
        Route("/ngsi-ld/v1/entities/{id:path}", endpoint("get"), methods=["GET"]),
        Route("/ngsi-ld/v1/entities/{id:path}", endpoint("merge"), methods=["PATCH"]),
        Route("/{tenant}/reports", endpoint("reports"), methods=["GET", "POST"]),
        Mount("/static", routes=[Route("/{file}", endpoint("static"))]),
        Route("/slash/", endpoint("slash"), methods=["GET"]),
    ]


REQUESTS = [
    ("GET", "/"), ("HEAD", "/health"), ("GET", "/health"), ("POST", "/health"),
    ("POST", "/ngsi-ld/v1/entities"), ("GET", "/ngsi-ld/v1/entities"),
    ("PATCH", "/ngsi-ld/v1/entities/urn:a:b/attrs/t"), ("PATCH", "/ngsi-ld/v1/entities/urn:a"),
    ("GET", "/ngsi-ld/v1/entities/urn:a/attrs/t"), ("DELETE", "/ngsi-ld/v1/entities/urn:a"),
    ("GET", "/roubaix/reports"), ("POST", "/ngsi-ld/reports"), ("PUT", "/roubaix/reports"),
    ("GET", "/static/app.js"), ("POST", "/static/app.js"), ("GET", "/nowhere"),
    ("OPTIONS", "/health"), ("GET", "/slash"), ("GET", "/health/"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path"), REQUESTS)
async def test_same_answer_as_the_plain_router(method: str, path: str) -> None:
    answers = []
    for router_class in (Router, IndexedRouter):
        app = Starlette()
        app.router = router_class(routes())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.request(method, path, follow_redirects=False)
        answers.append((response.status_code, response.headers.get("location"), response.text))
    assert answers[0] == answers[1]
    assert answers[0][0] in (200, 307, 404, 405)


async def test_hot_routes_are_found_among_their_own_method_and_segment() -> None:
    router = IndexedRouter(routes())
    index = router._build_index()
    patch_routes = index[("PATCH", "ngsi-ld")]
    assert [getattr(r, "path", "") for r in patch_routes][:2] == [
        "/ngsi-ld/v1/entities/{id:path}/attrs/{attr}",
        "/ngsi-ld/v1/entities/{id:path}",
    ]
    assert all(
        "PATCH" in getattr(r, "methods", {"PATCH"}) for r in patch_routes
    )  # no GET/POST route is tried for a PATCH
