"""The web pages over HTTP (in-process, both stores): rendering, languages, assets, the
basemap, what anonymous visitors are offered, and the live event stream."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from tests.conftest import running_app

from agilecity.ingest.simulator import Town
from agilecity.ingest.simulator.command import write_geography
from agilecity.services.registry import BUILTIN, builtin_service
from agilecity.settings import Settings
from agilecity.web.assets import vendor_installed
from agilecity.web.i18n import LANGUAGES, load_catalogue, service_messages
from agilecity.web.layers import BUILTIN_LAYERS

WEB = Path(__file__).resolve().parents[2] / "src" / "agilecity" / "web"
BASE = "/ngsi-ld/v1"


def _config(html: str) -> dict[str, object]:
    found = re.search(r'<script type="application/json" id="config">(.*?)</script>', html, re.S)
    assert found, "the page embeds its configuration"
    loaded: dict[str, object] = json.loads(found.group(1))
    return loaded


# -- catalogues (no app needed) ----------------------------------------------------------------


def test_both_languages_have_the_same_messages() -> None:
    catalogue = load_catalogue([builtin_service(n) for n in BUILTIN])
    keys = [set(catalogue.messages[lang]) for lang in LANGUAGES]
    assert keys[0] == keys[1]
    for name in BUILTIN:
        extra = service_messages(builtin_service(name))
        assert set(extra["fr"]) == set(extra["en"]), name


def test_every_message_the_pages_use_exists() -> None:
    messages = load_catalogue([builtin_service(n) for n in BUILTIN]).messages["fr"]
    used: set[str] = set()
    for template in (WEB / "templates").glob("*.html"):
        used |= set(re.findall(r"""t\[["']([\w.]+)["']\]""", template.read_text()))
    for script in (WEB / "static").glob("*.js"):
        used |= set(re.findall(r'\bt\("([\w.]+)"', script.read_text()))
    assert used, "the pattern finds the messages in use"
    assert used - set(messages) == set()


def test_every_panel_and_layer_is_labelled_in_both_languages() -> None:
    services = [builtin_service(n) for n in BUILTIN]
    catalogue = load_catalogue(services)
    for lang in LANGUAGES:
        messages = catalogue.messages[lang]
        labels = [f"layer.{layer.entity_type}" for layer in BUILTIN_LAYERS]
        for service in services:
            assert service.panel is not None
            labels += [service.panel.title, *(t.key for t in service.panel.tiles)]
            labels += [f"layer.{layer.entity_type}" for layer in service.panel.layers]
            for table in service.panel.tables:
                labels += [table.key, *(f"{table.key}.{c}" for c in table.columns)]
            for layer in service.panel.layers:
                labels += [f"value.{value}" for value, _ in layer.colours]
        for layer in BUILTIN_LAYERS:
            labels += [f"value.{value}" for value, _ in layer.colours]
        assert [label for label in labels if label not in messages] == [], lang


# -- pages -------------------------------------------------------------------------------------


@pytest.fixture
def web_settings(settings_factory: Callable[..., Settings], tmp_path: Path) -> Settings:
    folder = tmp_path / "town"
    write_geography(Town(7), folder)
    return settings_factory(web_basemap=str(folder), services="parking,noise")


async def test_the_dashboard_is_french_by_default_and_english_on_request(
    web_settings: Settings,
) -> None:
    async with running_app(web_settings) as (_, client):
        french = await client.get("/")
        assert french.status_code == 200
        assert french.headers["content-type"].startswith("text/html")
        assert '<html lang="fr">' in french.text and "Tableau de bord" in french.text
        english = await client.get("/", params={"lang": "en"})
        assert '<html lang="en">' in english.text and "Dashboard" in english.text
        assert "agilecity_lang=en" in english.headers["set-cookie"]
        remembered = await client.get("/")  # the client keeps the cookie
        assert '<html lang="en">' in remembered.text
        ignored = await client.get("/", params={"lang": "xx"})  # unknown: the saved choice
        assert '<html lang="en">' in ignored.text
        config = _config(english.text)
        assert config["lang"] == "en" and config["messages"]["nav.dashboard"] == "Dashboard"  # type: ignore[index]


async def test_pages_are_locked_down_by_their_headers(web_settings: Settings) -> None:
    async with running_app(web_settings) as (_, client):
        for path in ("/", "/staff"):
            response = await client.get(path)
            policy = response.headers["content-security-policy"]
            assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
            assert response.headers["x-content-type-options"] == "nosniff"


async def test_the_configuration_lists_layers_and_service_panels(web_settings: Settings) -> None:
    async with running_app(web_settings) as (_, client):
        config = _config((await client.get("/")).text)
    layers = {layer["entity_type"]: layer for layer in config["layers"]}  # type: ignore[union-attr, index]
    assert layers["ParkingSpot"]["colours"] == [["free", "#1a7f37"], ["occupied", "#c62828"],
                                                ["closed", "#6e7781"]]  # fmt: skip
    assert layers["noise.map"]["url"] == "/services/noise/map.geojson"
    assert layers["Alert"]["service"] == "parking" and layers["Alert"]["q"] == "!validTo"
    panels = {p["service"]: p for p in config["panels"]}  # type: ignore[union-attr, index]
    assert [t["url"] for t in panels["parking"]["tiles"]] == ["/services/parking/summary"] * 3
    assert panels["noise"]["title"] == "noise.title"


async def test_anonymous_visitors_are_offered_only_public_layers(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory(auth=True, services="parking,noise",
                                public_types="ParkingSpot,NoiseLevelObserved")  # fmt: skip
    async with running_app(settings) as (_, client):
        config = _config((await client.get("/")).text)
    types = {layer["entity_type"] for layer in config["layers"]}  # type: ignore[union-attr, index]
    # Alert (parking's staff layer) and the non-public built-in types are left out; the
    # noise map is a public route of the noise service
    assert types == {"ParkingSpot", "NoiseLevelObserved", "noise.map"}
    assert config["staff"] is False


async def test_the_staff_console_asks_anonymous_visitors_to_log_in(
    settings_factory: Callable[..., Settings],
) -> None:
    async with running_app(settings_factory(auth=True, services="parking")) as (_, client):
        page = await client.get("/staff")
        assert page.status_code == 200
        assert 'id="login"' in page.text and "parking/enforcement" not in page.text


async def test_the_staff_console_lists_the_services_tables(
    settings_factory: Callable[..., Settings],
) -> None:
    async with running_app(settings_factory(services="parking")) as (_, client):  # open mode
        page = (await client.get("/staff")).text
    assert 'data-url="/services/parking/enforcement"' in page
    assert 'data-columns="street,spot,since,hours"' in page
    assert 'id="audit"' in page  # the open mode acts as an admin


# -- assets ------------------------------------------------------------------------------------


async def test_own_assets_are_compressed_and_revalidated(web_settings: Settings) -> None:
    async with running_app(web_settings) as (_, client):
        plain = await client.get("/static/dashboard.js", headers={"accept-encoding": "identity"})
        assert plain.status_code == 200
        assert plain.headers["content-type"].startswith("text/javascript")
        assert plain.headers["cache-control"] == "no-cache"
        packed = await client.get("/static/dashboard.js", headers={"accept-encoding": "gzip"})
        assert packed.headers["content-encoding"] == "gzip"
        assert packed.content == plain.content  # httpx decoded it: the same file
        again = await client.get("/static/dashboard.js",
                                 headers={"if-none-match": plain.headers["etag"]})  # fmt: skip
        assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize(
    "path",
    ["../pages.py", "..%2Fpages.py", "vendor/leaflet/../../../pages.py", "vendor/nope/x.js",
     "vendor/leaflet", "", "missing.js", "templates/base.html", "%00.js"],
)  # fmt: skip
async def test_nothing_outside_the_asset_folders_is_served(
    web_settings: Settings, path: str
) -> None:
    async with running_app(web_settings) as (_, client):
        response = await client.get(f"/static/{path}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.skipif(not vendor_installed(), reason="npm packages not installed (make test does)")
async def test_npm_packages_are_served_for_a_year(web_settings: Settings) -> None:
    async with running_app(web_settings) as (_, client):
        response = await client.get("/static/vendor/leaflet/leaflet.js", params={"v": "1.9.4"})
    assert response.status_code == 200
    assert "immutable" in response.headers["cache-control"]
    assert b"Leaflet" in response.content[:400]


async def test_the_basemap_is_the_city_geojson_slimmed(web_settings: Settings) -> None:
    folder = Path(web_settings.web_basemap)
    streets = orjson.loads((folder / "streets.geojson").read_bytes())["features"]
    async with running_app(web_settings) as (_, client):
        response = await client.get("/web/basemap.geojson", headers={"accept-encoding": "gzip"})
    assert response.headers["content-type"] == "application/geo+json"
    assert response.headers["content-encoding"] == "gzip"
    features = response.json()["features"]
    served = [f for f in features if f["properties"]["layer"] == "streets"]
    assert len(served) == len(streets)
    first, original = served[0], streets[0]
    assert set(first["properties"]) == {"layer", "name", "kind"}
    for (x, y), (x0, y0) in zip(first["geometry"]["coordinates"],
                                original["geometry"]["coordinates"], strict=True):  # fmt: skip
        assert abs(x - x0) <= 5.01e-6 and abs(y - y0) <= 5.01e-6
    assert {f["properties"]["layer"] for f in features} == {"districts", "streets", "buildings",
                                                           "green_spaces"}  # fmt: skip
    # the whole town travels in a few hundred kilobytes
    assert len(gzip.compress(response.content)) < 400_000


async def test_a_broken_basemap_file_is_skipped(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    (tmp_path / "streets.geojson").write_text("{ not json")
    async with running_app(settings_factory(web_basemap=str(tmp_path))) as (_, client):
        response = await client.get("/web/basemap.geojson")
        assert response.status_code == 200 and response.json()["features"] == []
        assert (await client.get("/")).status_code == 200


async def test_the_pages_can_be_switched_off(settings_factory: Callable[..., Settings]) -> None:
    async with running_app(settings_factory(web=False)) as (_, client):
        assert (await client.get("/")).status_code == 404
        assert (await client.get("/health")).status_code == 200


# -- live ----------------------------------------------------------------------------------------


async def test_live_events_carry_changes_and_respect_public_types(web_settings: Settings) -> None:
    spot = {"id": "urn:ngsi-ld:ParkingSpot:live-1", "type": "ParkingSpot",
            "status": {"type": "Property", "value": "free"}}  # fmt: skip
    meter = {"id": "urn:ngsi-ld:AirQualityObserved:live-1", "type": "AirQualityObserved",
             "co2": {"type": "Property", "value": 400}}  # fmt: skip
    async with running_app(web_settings) as (app, client):
        hub = app.state.pages.live
        staff = hub.stream("", None)
        public = hub.stream("", frozenset({"ParkingSpot"}))
        assert await staff.__anext__() == b"retry: 3000\n\n"
        assert await public.__anext__() == b"retry: 3000\n\n"
        for entity in (spot, meter):
            assert (await client.post(f"{BASE}/entities", json=entity)).status_code == 201
        patch = {"status": {"type": "Property", "value": "occupied"}}
        response = await client.patch(f"{BASE}/entities/{spot['id']}/attrs", json=patch)
        assert response.status_code == 204

        async def events(stream: object, count: int) -> list[dict[str, object]]:
            found = []
            while len(found) < count:
                chunk = await asyncio.wait_for(stream.__anext__(), 5)  # type: ignore[attr-defined]
                if chunk.startswith(b"event: entity"):
                    found.append(orjson.loads(chunk.split(b"data: ", 1)[1]))
            return found

        seen = await events(staff, 3)
        assert [(e["id"], e.get("status", e.get("co2"))) for e in seen] == [
            (spot["id"], "free"), (meter["id"], 400), (spot["id"], "occupied")]  # fmt: skip
        # the public page's stream skipped the private type
        assert [e.get("status") for e in await events(public, 2)] == ["free", "occupied"]
        await staff.aclose()
        await public.aclose()
        assert hub._listeners[""] == set()
