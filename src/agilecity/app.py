"""Composition: build the ASGI application from settings (store, broker, routes, errors)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agilecity import __version__
from agilecity.api.ngsi_ld import NgsiLdApi
from agilecity.api.ngsi_ld_subscriptions import SubscriptionApi
from agilecity.api.ngsi_ld_temporal import TemporalApi
from agilecity.api.problems import (
    handle_agilecity_error,
    handle_http_exception,
    handle_unexpected,
)
from agilecity.broker.broker import Broker, Limits, Retention
from agilecity.broker.contexts import ContextRegistry, FetchPolicy
from agilecity.broker.notifier import DeliveryPolicy
from agilecity.errors import AgileCityError
from agilecity.settings import Settings
from agilecity.store.base import Store

log = logging.getLogger("agilecity")


def open_store(settings: Settings) -> Store:
    """The store named by the db setting."""
    if settings.db.startswith("sqlite:"):
        from agilecity.store.sqlite import SQLiteStore

        return SQLiteStore(settings.db)
    from agilecity.store.postgres import PostgresStore

    return PostgresStore(settings.db)


def build_broker(settings: Settings, store: Store) -> Broker:
    """The Broker for these settings over an (unopened) store."""
    policy = FetchPolicy(
        timeout=settings.context_fetch_timeout,
        max_bytes=settings.context_max_bytes,
        allow_private=settings.allow_private_context_urls,
    )
    contexts = ContextRegistry(store, policy, base_url=f"http://{settings.host}:{settings.port}")
    limits = Limits(
        default_page_size=settings.default_page_size,
        max_page_size=settings.max_page_size,
        max_batch_entities=settings.max_batch_entities,
        max_regex_length=settings.max_regex_length,
        max_geometry_points=settings.max_geometry_points,
    )
    delivery = DeliveryPolicy(
        queue_size=settings.notification_queue_size, timeout=settings.notification_timeout
    )
    retention = Retention(
        days=settings.history_retention_days,
        per_tenant=settings.retention_per_tenant(),
    )
    return Broker(
        store,
        contexts,
        limits,
        delivery=delivery,
        allow_private_endpoints=settings.allow_private_notification_urls,
        retention=retention,
    )


def build_app(settings: Settings) -> Starlette:
    """The whole platform as one ASGI app; the store opens in the lifespan."""
    store = open_store(settings)
    broker = build_broker(settings, store)
    api = NgsiLdApi(broker, settings.max_body_bytes, settings.max_json_depth)
    ready = {"value": False}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.open()
        await broker.contexts.load(settings.context_dir)
        await broker.start()
        ready["value"] = True
        log.info("AgileCity %s ready on %s", __version__, settings.db)
        try:
            yield
        finally:
            ready["value"] = False
            await broker.stop()
            await store.close()

    async def health(request: Request) -> Response:
        status = 200 if ready["value"] else 503
        body = {"status": "ok" if ready["value"] else "starting"}
        return Response(orjson.dumps(body), status_code=status, media_type="application/json")

    async def version(request: Request) -> Response:
        body = {"name": "agilecity", "version": __version__, "ngsi-ld": "1.8.1"}
        return Response(orjson.dumps(body), media_type="application/json")

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        *api.routes(),
        *TemporalApi(api).routes(),
        *SubscriptionApi(api).routes(),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            AgileCityError: handle_agilecity_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
    )
    app.state.broker = broker
    app.state.settings = settings
    return app


def create_app() -> Starlette:
    """The app from the environment's settings (uvicorn's factory for worker processes)."""
    return build_app(Settings.load())
