"""The ceiling: the same HTTP stack (uvicorn + Starlette + orjson) with no broker behind it."""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

DOC = orjson.dumps(
    {"id": "urn:ngsi-ld:Bench:1", "type": "Bench", "v": {"type": "Property", "value": 1}}
)


async def create(request: Request) -> Response:
    """Parse the JSON body and answer 201, like a create that stores nothing."""
    body = orjson.loads(await request.body())
    return Response(status_code=201, headers={"Location": f"/x/{body.get('id')}"})


async def retrieve(request: Request) -> Response:
    """Answer a fixed JSON document, like a retrieve that reads nothing."""
    return Response(DOC, media_type="application/json")


app = Starlette(
    routes=[
        Route("/ngsi-ld/v1/entities", create, methods=["POST"]),
        Route("/ngsi-ld/v1/entities/{id:path}", retrieve, methods=["GET"]),
    ]
)
