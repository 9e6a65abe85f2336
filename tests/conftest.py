"""Shared fixtures: a real SQLite store in a temp dir behind the real ASGI app."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from agilecity.app import build_app
from agilecity.settings import Settings

BASE = "/ngsi-ld/v1"


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


def test_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a test: a fresh SQLite file, no environment, private contexts allowed."""
    values: dict[str, Any] = {
        "db": f"sqlite:///{tmp_path}/agilecity.sqlite",
        "allow_private_context_urls": True,
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


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client on a fresh broker with default limits."""
    async with running_client(test_settings(tmp_path)) as c:
        yield c


@pytest.fixture
def client_factory(
    tmp_path: Path,
) -> Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]:
    """Build a client with setting overrides: ``async with client_factory(max_page_size=5)``."""

    def make(**overrides: Any) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient]:
        return running_client(test_settings(tmp_path, **overrides))

    return make
