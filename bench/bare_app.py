"""The ceiling: the same HTTP stack (uvicorn + Starlette + orjson) with no broker behind it.

One route per benchmark request: bodies are parsed, answers are fixed documents of the
benchmark entity (bench/template.py), so the gap to the broker is what the broker adds.
"""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from template import entity, seed_id

DOC = orjson.dumps(entity(seed_id("seed", 1), 1))
PAGE = orjson.dumps([entity(seed_id("seed", i), i) for i in range(20)])
JSON = "application/json"


async def create(request: Request) -> Response:
    """Parse the JSON body and answer 201, like a create that stores nothing."""
    body = orjson.loads(await request.body())
    return Response(status_code=201, headers={"Location": f"/x/{body.get('id')}"})


async def retrieve(request: Request) -> Response:
    """Answer a fixed entity, like a retrieve that reads nothing."""
    return Response(DOC, media_type=JSON)


async def query(request: Request) -> Response:
    """Answer a fixed page of 20 entities, like a query that reads nothing."""
    return Response(PAGE, media_type=JSON)


async def accept(request: Request) -> Response:
    """Parse the JSON body and answer 204, like an update that stores nothing."""
    orjson.loads(await request.body())
    return Response(status_code=204)


async def upsert(request: Request) -> Response:
    """Parse the array and answer 201 with the ids, like a batch upsert creating them all."""
    body = orjson.loads(await request.body())
    return Response(orjson.dumps([e["id"] for e in body]), status_code=201, media_type=JSON)


app = Starlette(
    routes=[
        Route("/ngsi-ld/v1/entities", create, methods=["POST"]),
        Route("/ngsi-ld/v1/entities", query, methods=["GET"]),
        Route("/ngsi-ld/v1/entities/{id:path}/attrs/{attr}", accept, methods=["PATCH"]),
        Route("/ngsi-ld/v1/entities/{id:path}", retrieve, methods=["GET"]),
        Route("/ngsi-ld/v1/entityOperations/upsert", upsert, methods=["POST"]),
        Route("/ngsi-ld/v1/temporal/entities/{id:path}/attrs", accept, methods=["POST"]),
    ]
)
