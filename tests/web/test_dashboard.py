"""The dashboard and the staff console in headless Chromium on the running demo town: layers
and markers, an entity's chart, a live change, languages, accessibility (axe-core),
page weight, and the screenshots the README shows (docs/screenshots/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.web.conftest import DESKTOP, PHONE, SCREENSHOTS, DemoSite

BASE = "/ngsi-ld/v1"
AXE = Path(__file__).resolve().parents[2] / "src/agilecity/web/node_modules/axe-core/axe.min.js"
METER = "urn:ngsi-ld:NoiseLevelObserved:"
# every public type the demo town has entities of, drawn when the page opens
SHOWN = ("ParkingSpot", "NoiseLevelObserved", "Streetlight", "WasteContainer",
         "EVChargingStation", "GreenspaceRecord", "WeatherObserved")  # fmt: skip


def _open(browser: Any, site: DemoSite, viewport: dict[str, int], path: str = "/") -> Any:
    # bypass_csp lets the test inject axe-core; the pages' own scripts are all from 'self'
    context = browser.new_context(viewport=viewport, locale="fr-FR", bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    page.goto(site.url + path)
    return page


def _ready(page: Any) -> None:
    page.wait_for_selector("body[data-map-ready]", timeout=30_000)


def _serious(page: Any) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async () => await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21aa']})"
    )
    return [f"{v['id']}: {v['help']} ({len(v['nodes'])})" for v in result["violations"]
            if v["impact"] in ("serious", "critical")]  # fmt: skip


def test_the_map_draws_every_layer_of_the_demo_town(browser: Any, demo_site: DemoSite) -> None:
    page = _open(browser, demo_site, DESKTOP)
    _ready(page)
    with demo_site.api() as api:
        for entity_type in SHOWN:
            params = {"type": entity_type, "limit": 1000, "options": "keyValues"}
            listed = api.get(f"{BASE}/entities", params=params).json()
            markers = page.locator(f"path.layer-{entity_type}").count()
            assert markers == len(listed) > 0, entity_type
    # a hidden layer appears when its box is ticked
    assert page.locator("path.layer-Garden").count() == 0
    page.check('input[data-layer="Garden"]')
    assert page.locator("path.layer-Garden").count() == 7
    # the indicator tiles of both services are filled from their summary routes
    assert page.locator('section.panel[data-service="parking"] .tile').count() == 3
    occupancy = page.locator('section.panel[data-service="parking"] .tile dd').first.inner_text()
    assert occupancy.endswith("%"), occupancy
    assert page.errors == []


def test_an_entity_opens_with_its_history_chart(browser: Any, demo_site: DemoSite) -> None:
    page = _open(browser, demo_site, DESKTOP)
    _ready(page)
    meter = page.locator(f'path.layer-NoiseLevelObserved[data-id^="{METER}"]').first
    entity_id = meter.get_attribute("data-id")
    meter.click(force=True)
    page.wait_for_selector('figure.plot[data-attr="LAeq"] canvas', timeout=15_000)
    shown = int(page.locator('figure.plot[data-attr="LAeq"]').get_attribute("data-points"))
    with demo_site.api() as api:
        current = api.get(f"{BASE}/entities/{entity_id}").json()
        from datetime import datetime, timedelta

        end = datetime.fromisoformat(max(current[a]["observedAt"] for a in ("LAeq", "LAmax"))
                                     .replace("Z", "+00:00"))  # fmt: skip
        history = api.get(f"{BASE}/temporal/entities/{entity_id}", params={
            "attrs": "LAeq", "timerel": "between", "lastN": 2000,
            "timeAt": (end - timedelta(days=1)).isoformat(),
            "endTimeAt": (end + timedelta(seconds=1)).isoformat()}).json()  # fmt: skip
    assert shown == len(history["LAeq"]) > 100  # the same readings the API gives
    assert "LAeq" in page.locator("#chart-summary").inner_text()
    # the long period is aggregated on the server: hourly means
    page.check('input[name="period"][value="P7D"]')
    page.wait_for_function(
        "() => document.querySelector('figure.plot[data-attr=LAeq]')?.dataset.points < 200"
    )
    assert page.errors == []


def test_a_change_shows_live_without_reload(browser: Any, demo_site: DemoSite) -> None:
    page = _open(browser, demo_site, DESKTOP)
    _ready(page)
    page.wait_for_selector('#live[data-state="on"]')
    page.evaluate("window.sameDocument = true")
    spot = page.locator('path.layer-ParkingSpot[data-value="free"]').first
    spot_id = spot.get_attribute("data-id")
    page.select_option("#picker", spot_id)
    page.wait_for_selector('#entity-values tr[data-attr="status"]')
    with demo_site.api() as api:
        occupied = {"status": {"type": "Property", "value": "occupied"}}
        response = api.patch(f"{BASE}/entities/{spot_id}/attrs", json=occupied)
        assert response.status_code == 204, response.text
    page.wait_for_selector(f'path[data-id="{spot_id}"][data-value="occupied"]', timeout=10_000)
    row = page.locator('#entity-values tr[data-attr="status"] td')
    assert row.inner_text().startswith("occupée")
    assert page.evaluate("window.sameDocument") is True  # no reload happened


def test_the_language_switches_and_is_remembered(browser: Any, demo_site: DemoSite) -> None:
    page = _open(browser, demo_site, DESKTOP)
    assert page.locator("html").get_attribute("lang") == "fr"
    assert page.locator("nav").inner_text().startswith("Tableau de bord")
    page.click("text=English")
    page.wait_for_selector('html[lang="en"]')
    assert page.locator("nav").inner_text().startswith("Dashboard")
    _ready(page)
    assert "Parking spots" in page.locator("#legend").inner_text()
    page.goto(demo_site.url + "/staff")
    assert page.locator("h1").inner_text() == "Staff console"


@pytest.mark.parametrize("path", ["/", "/staff", "/report"])
def test_no_serious_accessibility_violation(browser: Any, demo_site: DemoSite, path: str) -> None:
    page = _open(browser, demo_site, DESKTOP, path)
    if path == "/":
        _ready(page)
    assert _serious(page) == []


def test_the_staff_console_after_login_and_the_screenshots(
    browser: Any, demo_site: DemoSite
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = _open(browser, demo_site, viewport)
        _ready(page)
        page.wait_for_timeout(500)
        page.screenshot(path=str(SCREENSHOTS / f"dashboard-{name}.png"), full_page=name == "phone")
    page = _open(browser, demo_site, DESKTOP, "/staff")
    page.fill("#username", demo_site.staff_user)
    page.fill("#password", "wrong")
    page.click("button[type=submit]")
    page.wait_for_selector("#login-error:not([hidden])")
    page.fill("#password", demo_site.staff_password)
    page.click("button[type=submit]")
    page.wait_for_selector("#logout")
    page.wait_for_selector("#gateway table")
    counters = page.locator("#gateway table").inner_text()
    assert "frames_received" in counters
    table = page.locator('section.staff-table[data-key="parking.enforcement"]')
    table.locator("table, p.empty").first.wait_for()
    assert _serious(page) == []
    page.screenshot(path=str(SCREENSHOTS / "staff-desktop.png"), full_page=True)
    assert page.errors == []


def test_the_dashboard_is_light_on_the_wire(browser: Any, demo_site: DemoSite) -> None:
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    sizes: dict[str, int] = {}
    page.on("requestfinished", lambda r: sizes.__setitem__(r.url, r.sizes()["responseBodySize"]))
    page.goto(demo_site.url + "/")
    _ready(page)
    page.wait_for_load_state("networkidle")
    code = sum(v for k, v in sizes.items() if "/static/" in k or k.rstrip("/") == demo_site.url)
    total = sum(sizes.values())
    print(f"\npage weight: code {code / 1000:.0f} kB, with data {total / 1000:.0f} kB")
    assert code < 150_000, sizes  # pages, scripts, styles and libraries, compressed
    assert total < 700_000, sizes  # with the basemap and every entity of the town
