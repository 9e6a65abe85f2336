"""The built-in city services, and which are enabled in which tenant."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path
from typing import Any

from agilecity.errors import BadRequestDataError
from agilecity.services.base import Service

BUILTIN = ("parking", "noise")  # each package agilecity.services.<name> exports SERVICE


def builtin_service(name: str) -> Service:
    """A built-in service by name (imported when first asked for)."""
    module = importlib.import_module(f"agilecity.services.{name}")
    service: Service = module.SERVICE
    return service


def enabled_services(
    default: str, per_tenant: str, config_path: Path | None = None,
    env: dict[str, str] | None = None,
) -> list[tuple[str, Service, Any]]:  # fmt: skip
    """(tenant, service, its settings) for each service enabled: ``default`` names the
    default tenant's services (``parking,noise``), ``per_tenant`` others'
    (``roubaix=parking+noise,carouge=noise``). Settings come from the environment
    (``AGILECITY_<SERVICE>_<SETTING>``), then ``[service.<name>]`` of agilecity.toml."""
    wanted: list[tuple[str, str]] = [("", n.strip()) for n in default.split(",") if n.strip()]
    for item in per_tenant.split(","):
        if not item.strip():
            continue
        tenant, sep, names = item.partition("=")
        if not sep:
            raise BadRequestDataError(f"services_tenants: {item!r} is not tenant=service+service")
        wanted += [(tenant.strip(), n.strip()) for n in names.split("+") if n.strip()]
    if not wanted:
        return []
    tables: dict[str, Any] = {}
    if config_path is not None and config_path.is_file():
        tables = tomllib.loads(config_path.read_text(encoding="utf-8")).get("service", {})
    enabled = []
    for tenant, name in wanted:
        if name not in BUILTIN:
            raise BadRequestDataError(f"unknown service {name!r}; built-in: {', '.join(BUILTIN)}")
        service = builtin_service(name)
        enabled.append((tenant, service, service.load_settings(tables.get(name, {}), env)))
    return enabled
