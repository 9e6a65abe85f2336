"""Shared fixtures: the real ASGI app on a real store, SQLite and PostgreSQL alike.

Every test that uses ``client``, ``client_factory``, ``settings_factory`` or ``db_url``
runs once per backend. The PostgreSQL runs use ``AGILECITY_TEST_POSTGRES`` (default
``postgresql://postgres@127.0.0.1:5432/agilecity_test``, created if missing). When that
server cannot be reached they are skipped with the reason, except in CI (``CI`` set),
where they fail: CI must prove both backends.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from agilecity.app import build_app
from agilecity.settings import Settings

BASE = "/ngsi-ld/v1"
POSTGRES_URL = os.environ.get(
    "AGILECITY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/agilecity_test"
)
POSTGRES_TABLES = (
    "entities, entity_types, entity_attrs, geo_shapes, contexts, subscriptions, changes, "
    "history, temporal_entities, tenants, records, audit"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run every coroutine test under anyio (asyncio backend)."""
    for item in items:
        function = getattr(item, "function", None)
        if function is not None and inspect.iscoroutinefunction(function):
            item.add_marker(pytest.mark.anyio)
            fixturenames: list[str] = item.fixturenames  # type: ignore[attr-defined]
            if "anyio_backend" not in fixturenames:
                fixturenames.append("anyio_backend")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _postgres_ready() -> str | None:
    """Create the test database if needed; the reason it is unusable, or None."""
    import psycopg

    base, _, name = POSTGRES_URL.rpartition("/")
    try:
        with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=3) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if found.fetchone() is None:
                conn.execute(f'CREATE DATABASE "{name}"')
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    except psycopg.Error as exc:
        return f"PostgreSQL/PostGIS not usable at {POSTGRES_URL}: {exc}".strip()
    return None


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL test database (fails in CI, skips elsewhere, when unusable)."""
    reason = _postgres_ready()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason + " — PostgreSQL runs skipped (set AGILECITY_TEST_POSTGRES)")
    return POSTGRES_URL


def _truncate(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        names = [n.strip() for n in POSTGRES_TABLES.split(",")]
        found = conn.execute(
            "SELECT t FROM unnest(%s::text[]) AS t WHERE to_regclass(t) IS NOT NULL", (names,)
        ).fetchall()
        tables = [row[0] for row in found]  # an older schema lacks the newer tables
        if tables:
            conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        if "entities" in tables:
            conn.execute("UPDATE subscription_version SET version = 0")


@pytest.fixture
def empty_postgres(postgres_url: str) -> str:
    """The PostgreSQL test database, emptied."""
    _truncate(postgres_url)
    return postgres_url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store URL of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/agilecity.sqlite"
    url: str = request.getfixturevalue("postgres_url")
    _truncate(url)
    return url


def test_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a test: a fresh SQLite file (unless ``db`` is given), no environment,
    private context and notification URLs allowed (the test servers are on loopback), and
    the documented open mode (auth off): feature tests exercise features, while
    tests/security/test_auth.py exercises authentication and roles on every route family."""
    values: dict[str, Any] = {
        "db": f"sqlite:///{tmp_path}/agilecity.sqlite",
        "allow_private_context_urls": True,
        "allow_private_notification_urls": True,
        "auth": False,
    }
    values.update(overrides)
    return Settings.load(values, env={}, toml_path=tmp_path / "absent.toml")


@contextlib.asynccontextmanager
async def running_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process HTTP client on an app whose lifespan (store open/close) is running."""
    app: Starlette = build_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@contextlib.asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """Like ``running_client``, also giving the app (its state holds broker, credentials...)."""
    app: Starlette = build_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield app, client


@pytest.fixture
def settings_factory(tmp_path: Path, db_url: str) -> Callable[..., Settings]:
    """Test settings on this run's backend: ``settings_factory(max_page_size=5)``."""

    def make(**overrides: Any) -> Settings:
        return test_settings(tmp_path, **{"db": db_url, **overrides})

    return make


@pytest.fixture
async def client(settings_factory: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    """A client on a fresh broker with default limits."""
    async with running_client(settings_factory()) as c:
        yield c


@pytest.fixture
def client_factory(
    settings_factory: Callable[..., Settings],
) -> Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]:
    """Build a client with setting overrides: ``async with client_factory(max_page_size=5)``."""

    def make(**overrides: Any) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient]:
        return running_client(settings_factory(**overrides))

    return make
