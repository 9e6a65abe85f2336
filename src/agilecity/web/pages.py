"""The web pages: the public dashboard (``/``), the staff console (``/staff``), their static
assets, the offline basemap and the live event stream.

Pages are rendered on the server (Jinja2) with the strings of the visitor's language; the
map and charts are small ES modules that read the platform's own NGSI-LD API, so what the
pages show is exactly what any client may read. The layers and panels come from the
built-in layer table and from each enabled service's ``SERVICE.panel``.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any
from urllib.parse import urlsplit

import orjson
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

from agilecity import __version__
from agilecity.api.access import principal_of
from agilecity.auth import Principal
from agilecity.broker.broker import Broker
from agilecity.errors import ResourceNotFoundError
from agilecity.services.base import Layer, Service
from agilecity.services.host import ServiceHost
from agilecity.settings import Settings
from agilecity.web.assets import WEB_DIR, Asset, AssetCache, make_asset, vendor_installed
from agilecity.web.basemap import bounds_of, load_basemap
from agilecity.web.i18n import LANGUAGES, Catalogue, load_catalogue, pick_language
from agilecity.web.layers import map_layers
from agilecity.web.live import LiveHub

log = logging.getLogger("agilecity.web")
LANG_COOKIE = "agilecity_lang"
VENDOR_VERSIONS = {"leaflet": "1.9.4", "uplot": "1.6.32"}  # cache busting for /static/vendor


def asset_response(request: Request, asset: Asset, cache: str) -> Response:
    """An asset, gzipped when the client accepts it, 304 when its ETag matches."""
    headers = {"ETag": asset.etag, "Cache-Control": cache, "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
        body, headers["Content-Encoding"] = asset.gzipped, "gzip"
    return Response(body, media_type=asset.media_type, headers=headers)


def _json_for_script(value: Any) -> str:
    # safe inside <script type="application/json">: no "</script>" can close it early
    return orjson.dumps(value).decode().replace("</", "<\\/")


class WebPages:
    """The pages of one platform: dashboard, staff console, assets, basemap, live events."""

    def __init__(self, broker: Broker, services: ServiceHost, settings: Settings) -> None:
        self.broker = broker
        self.services = services
        self.settings = settings
        unique: dict[str, Service] = {r.ctx.service.name: r.ctx.service for r in services.runners}
        self.catalogue: Catalogue = load_catalogue(unique.values())
        self.assets = AssetCache()
        self.templates = Environment(
            loader=FileSystemLoader(WEB_DIR / "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
            undefined=StrictUndefined,  # a missing message fails loudly (and in the tests)
        )
        service_layers = [(s.name, layer) for s in unique.values() if s.panel
                          for layer in s.panel.layers]  # fmt: skip
        self.layers = map_layers(service_layers)
        self.live = LiveHub(broker, [layer.entity_type for _, layer in self.layers
                                     if not layer.route])  # fmt: skip
        collection = load_basemap(settings.web_basemap)
        self.basemap = make_asset(orjson.dumps(collection), "basemap.geojson",
                                  "application/geo+json")  # fmt: skip
        self.bounds = bounds_of(collection)
        if not vendor_installed():
            log.warning("web: front-end packages missing (run `make demo` or `npm ci` in %s); "
                        "the pages load without map and charts", WEB_DIR)  # fmt: skip

    def routes(self) -> list[Route]:
        """The page, asset, basemap and event routes."""
        return [
            Route("/", self.show_dashboard, methods=["GET"]),
            Route("/staff", self.show_staff_console, methods=["GET"]),
            Route("/web/basemap.geojson", self.get_basemap, methods=["GET"]),
            Route("/web/events", self.stream_events, methods=["GET"]),
            Route("/static/{path:path}", self.get_asset, methods=["GET"]),
        ]

    # -- pages -------------------------------------------------------------------------

    async def show_dashboard(self, request: Request) -> Response:
        """GET /: the public dashboard (map, layers, service tiles, entity panel, live)."""
        return self.render(request, "dashboard.html", {})

    async def show_staff_console(self, request: Request) -> Response:
        """GET /staff: the staff console (a login form for anonymous visitors)."""
        principal = principal_of(request)
        tables = [] if principal.public else self._tables()
        return self.render(request, "staff.html", {"tables": tables})

    def render(self, request: Request, template: str, extra: dict[str, Any]) -> Response:
        """A page in the visitor's language (``?lang=`` switches it and is remembered)."""
        asked = request.query_params.get("lang")
        lang = pick_language(asked, request.cookies.get(LANG_COOKIE))
        messages = self.catalogue.of(lang)
        principal = principal_of(request)
        config = self._config(principal, lang, messages)
        html = self.templates.get_template(template).render(
            t=messages, lang=lang, languages=LANGUAGES, path=request.url.path,
            principal=principal, city=self.settings.web_title, version=__version__,
            vendor=VENDOR_VERSIONS, config_json=_json_for_script(config),
            vendor_installed=vendor_installed(), **extra,
        )  # fmt: skip
        response = HTMLResponse(html, headers=self._security_headers())
        if asked in LANGUAGES:
            response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax")
        return response

    def _security_headers(self) -> dict[str, str]:
        images = "'self' data:"
        if self.settings.web_tile_url:
            parts = urlsplit(self.settings.web_tile_url.replace("{s}", "a"))
            images += f" {parts.scheme}://{parts.netloc.split('{')[0] or parts.netloc}"
            if "{s}" in self.settings.web_tile_url:
                images += " " + f"{parts.scheme}://*.{parts.netloc.split('.', 1)[-1]}"
        return {
            "Content-Security-Policy": (
                f"default-src 'self'; img-src {images}; style-src 'self'; script-src 'self'; "
                "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
            ),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        }

    def _config(self, principal: Principal, lang: str, messages: dict[str, str]) -> dict[str, Any]:
        public = principal.public
        allowed = self.settings.public_type_set()
        layers = []
        for service, layer in self.layers:
            if layer.route:
                spec = self._route_spec(service, layer.route)
                if spec is None or (public and not spec.public):
                    continue
            elif public and layer.entity_type not in allowed:
                continue
            layers.append(_layer_json(service, layer))
        panels = []
        for runner in self.services.runners:
            owner = runner.ctx.service
            if runner.ctx.tenant != "" or owner.panel is None:
                continue
            tiles = [{"label": t.key, "url": f"/services/{owner.name}/{t.route}",
                      "field": t.field, "unit": t.unit} for t in owner.panel.tiles]  # fmt: skip
            panels.append({"service": owner.name, "title": owner.panel.title,
                           "tiles": tiles})  # fmt: skip
        return {
            "lang": lang,
            "messages": messages,
            "layers": layers,
            "panels": panels,
            "basemap": "/web/basemap.geojson",
            "bounds": self.bounds,
            "tileUrl": self.settings.web_tile_url,
            "tileAttribution": self.settings.web_tile_attribution,
            "staff": not public,
            "role": principal.role,
        }

    def _route_spec(self, service: str, path: str) -> Any:
        for runner in self.services.runners:
            if runner.ctx.service.name == service:
                return next((r for r in runner.ctx.service.routes if r.path == path), None)
        return None

    def _tables(self) -> list[dict[str, Any]]:
        seen, tables = set(), []
        for runner in self.services.runners:
            service = runner.ctx.service
            if service.name in seen or service.panel is None:
                continue
            seen.add(service.name)
            for table in service.panel.tables:
                tables.append({"key": table.key, "columns": list(table.columns),
                               "url": f"/services/{service.name}/{table.route}"})  # fmt: skip
        return tables

    # -- data ---------------------------------------------------------------------------

    async def get_basemap(self, request: Request) -> Response:
        """GET /web/basemap.geojson: the city's streets, buildings, districts, green spaces."""
        return asset_response(request, self.basemap, "public, max-age=3600")

    async def get_asset(self, request: Request) -> Response:
        """GET /static/<path>: the pages' scripts and styles, and the npm packages'."""
        path = request.path_params["path"]
        asset = self.assets.get(path)
        if asset is None:
            raise ResourceNotFoundError(f"no static file {path!r}")
        vendor = path.startswith("vendor/") and request.query_params.get("v")
        cache = "public, max-age=31536000, immutable" if vendor else "no-cache"
        return asset_response(request, asset, cache)

    async def stream_events(self, request: Request) -> Response:
        """GET /web/events: server-sent ``entity`` events (keyValues) for the map's types."""
        principal = principal_of(request)
        types = self.settings.public_type_set() if principal.public else None
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(self.live.stream("", types), media_type="text/event-stream",
                                 headers=headers)  # fmt: skip

    def close(self) -> None:
        """Stop the live subscriptions."""
        self.live.close()


def _layer_json(service: str, layer: Layer) -> dict[str, Any]:
    body = dataclasses.asdict(layer)
    body["service"] = service
    body["key"] = f"layer.{layer.entity_type}"
    body["url"] = f"/services/{service}/{layer.route}" if layer.route else ""
    return body
