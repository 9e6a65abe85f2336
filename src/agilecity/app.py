"""Composition: build the ASGI application from settings (store, broker, routes, errors)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agilecity import __version__
from agilecity.api.access import AccessMiddleware, AuditLog
from agilecity.api.iot_agent import IotAgentApi
from agilecity.api.ngsi_ld import NgsiLdApi
from agilecity.api.ngsi_ld_subscriptions import SubscriptionApi
from agilecity.api.ngsi_ld_temporal import TemporalApi
from agilecity.api.open311 import Open311Api
from agilecity.api.openapi import get_openapi
from agilecity.api.problems import (
    handle_agilecity_error,
    handle_http_exception,
    handle_unexpected,
)
from agilecity.api.reports_staff import ReportStaffApi
from agilecity.api.routing import IndexedRouter
from agilecity.api.services import ServiceApi
from agilecity.api.staff import StaffApi
from agilecity.auth import Credentials, JwtPolicy
from agilecity.broker.broker import Broker, Limits, Retention
from agilecity.broker.contexts import ContextRegistry, FetchPolicy
from agilecity.broker.notifier import DeliveryPolicy
from agilecity.errors import AgileCityError
from agilecity.ingest.gateway import Gateway, GatewayOptions
from agilecity.reports.setup import RetentionTask, build_desk, build_rate_limiter
from agilecity.services.host import ServiceHost
from agilecity.services.registry import enabled_services
from agilecity.settings import Settings
from agilecity.store.base import Store
from agilecity.web.pages import WebPages
from agilecity.web.reports import ReportPages

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


def build_gateway(settings: Settings, broker: Broker) -> Gateway:
    """The device gateway for these settings."""
    options = GatewayOptions(
        mqtt_host=settings.mqtt_host,
        mqtt_port=settings.mqtt_port,
        mqtt_username=settings.mqtt_username,
        mqtt_password=settings.mqtt_password,
        share_group=settings.mqtt_share_group,
        max_frame_bytes=settings.gateway_max_frame_bytes,
        context=settings.gateway_context,
    )
    return Gateway(broker, options)


def build_credentials(settings: Settings, broker: Broker) -> Credentials | None:
    """The credential checks, or None in the open mode (auth off)."""
    if not settings.auth:
        return None
    policy = JwtPolicy(
        secret=settings.auth_jwt_secret,
        jwks_url=settings.auth_jwks_url,
        issuer=settings.auth_jwt_issuer,
        audience=settings.auth_jwt_audience,
    )
    return Credentials(broker, policy, session_hours=settings.session_hours)


OPEN_MODE_WARNING = (
    "AUTHENTICATION IS OFF (AGILECITY_AUTH=false): anyone who reaches this port may read and "
    "write everything. Use this open mode only for local development and conformance tests."
)


def build_app(settings: Settings) -> Starlette:
    """The whole platform as one ASGI app; the store opens in the lifespan."""
    store = open_store(settings)
    broker = build_broker(settings, store)
    api = NgsiLdApi(broker, settings.max_body_bytes, settings.max_json_depth)
    gateway = build_gateway(settings, broker) if settings.gateway else None
    credentials = build_credentials(settings, broker)
    audit = AuditLog(store)
    services = ServiceHost(broker, enabled_services(
        settings.services, settings.services_tenants,
        Path(os.environ.get("AGILECITY_CONFIG", "agilecity.toml")),
    ))  # fmt: skip
    pages = WebPages(broker, services, settings) if settings.web else None
    reports = build_desk(settings, broker)
    retention = RetentionTask(reports)
    ready = {"value": False}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.open()
        await broker.contexts.load(settings.context_dir)
        await broker.start()
        await audit.start()
        if gateway is not None:
            await gateway.start()
        await services.start()
        await retention.start()
        ready["value"] = True
        log.info("AgileCity %s ready on %s", __version__, settings.db)
        if credentials is None:
            log.warning(OPEN_MODE_WARNING)
        try:
            yield
        finally:
            ready["value"] = False
            if pages is not None:
                pages.close()
            await retention.stop()
            await services.stop()
            if gateway is not None:
                await gateway.stop()
            await broker.stop()
            await audit.stop()
            await store.close()

    async def health(request: Request) -> Response:
        status = 200 if ready["value"] else 503
        body: dict[str, object] = {"status": "ok" if ready["value"] else "starting"}
        if gateway is not None:
            body["gateway"] = {"mqtt": gateway.connected, **gateway.counters_snapshot()}
        return Response(orjson.dumps(body), status_code=status, media_type="application/json")

    async def metrics(request: Request) -> Response:
        lines = [
            "# HELP agilecity_up 1 when the platform is ready.",
            "# TYPE agilecity_up gauge",
            f"agilecity_up {1 if ready['value'] else 0}",
        ]
        if gateway is not None:
            lines += [
                "# HELP agilecity_gateway_total Device gateway counters by event.",
                "# TYPE agilecity_gateway_total counter",
            ]
            for name, value in gateway.counters_snapshot().items():
                lines.append(f'agilecity_gateway_total{{event="{name}"}} {value}')
            lines.append(f"agilecity_gateway_mqtt_connected {int(gateway.connected)}")
        return Response("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

    async def version(request: Request) -> Response:
        body = {"name": "agilecity", "version": __version__, "ngsi-ld": "1.8.1"}
        return Response(orjson.dumps(body), media_type="application/json")

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", get_openapi, methods=["GET"]),
        *api.routes(),
        *TemporalApi(api).routes(),
        *SubscriptionApi(api).routes(),
        *(IotAgentApi(gateway, settings.max_body_bytes).routes() if gateway is not None else []),
        *StaffApi(credentials, audit, settings.secure_cookies).routes(),
        *ServiceApi(services).routes(),
        *Open311Api(reports, build_rate_limiter(settings), credentials, settings).routes(),
        *ReportStaffApi(reports, settings.open311_max_body_bytes).routes(),
        *(pages.routes() if pages is not None else []),
        *(ReportPages(pages, reports).routes() if pages is not None else []),
    ]
    access = Middleware(
        AccessMiddleware,
        credentials=credentials,
        audit=audit,
        public_types=settings.public_type_set(),
    )
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[access],
        exception_handlers={
            AgileCityError: handle_agilecity_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
    )
    app.router = IndexedRouter(routes, lifespan=lifespan)  # same routes, found faster
    app.state.broker = broker
    app.state.gateway = gateway
    app.state.settings = settings
    app.state.credentials = credentials
    app.state.services = services
    app.state.pages = pages
    app.state.reports = reports
    return app


def create_app() -> Starlette:
    """The app from the environment's settings (uvicorn's factory for worker processes)."""
    return build_app(Settings.load())
