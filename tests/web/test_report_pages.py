"""The report pages in headless Chromium on the running demo: a resident files a report with
a photo on the public page (phone viewport), a staff member resolves it in the back office,
and the resident's tracking link shows the new status; the photo is served without EXIF."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.open311.support import assert_no_metadata, gps_jpeg
from tests.web.conftest import DESKTOP, PHONE, DemoSite


def test_file_a_report_resolve_it_and_see_it_resolved(
    browser: Any, demo_site: DemoSite, tmp_path: Path
) -> None:
    photo = tmp_path / "depot.jpg"
    photo.write_bytes(gps_jpeg())
    resident = browser.new_context(viewport=PHONE, locale="fr-FR")
    page = resident.new_page()
    errors: list[tuple[str, str]] = []
    page.on("pageerror", lambda error: errors.append((page.url, str(error))))
    page.goto(f"{demo_site.url}/report")
    page.wait_for_selector("body[data-map-ready='true']")
    assert page.locator("h1").inner_text() == "Signaler un problème"
    page.select_option("#service_code", "illegal_dumping")
    page.locator("#report-map").click()  # the pin where the resident taps
    assert page.input_value("#lat") and page.input_value("#long")
    page.fill("#description", "Deux matelas et un frigo contre le mur")
    page.set_input_files("#media", str(photo))
    page.fill("#email", "habitant@example.org")
    page.click("#submit")
    page.wait_for_selector("#done:not([hidden])")
    report_id = page.get_attribute("#done-id", "data-id")
    tracking = page.get_attribute("#done-link", "href")
    assert report_id and tracking and tracking.startswith("/report?token=")
    page.goto(f"{demo_site.url}{tracking}")
    page.wait_for_selector("#track-status[data-status='submitted']")
    assert "reçu" in page.inner_text("#track-status")

    staff = browser.new_context(viewport=DESKTOP, locale="fr-FR")
    office = staff.new_page()
    office.on("pageerror", lambda error: errors.append((office.url, str(error))))
    office.goto(f"{demo_site.url}/staff")
    office.fill("#username", demo_site.staff_user)
    office.fill("#password", demo_site.staff_password)
    office.click("#login button[type=submit]")
    office.wait_for_selector(".whoami")
    office.goto(f"{demo_site.url}/staff/reports")
    office.click(f"tr[data-id='{report_id}'] button")
    office.wait_for_selector("#detail:not([hidden])")
    office.wait_for_selector("#photos img")
    assert "Deux matelas" in office.inner_text("[data-fact='description']")
    office.select_option("#new-status", "resolved")
    office.fill("#note", "Enlevé ce matin")
    office.click("#apply-status")
    office.locator("[data-fact='status']", has_text="réparé").wait_for()

    page.goto(f"{demo_site.url}{tracking}")
    page.wait_for_selector("#track-status[data-status='resolved']")
    assert "réparé" in page.inner_text("#track-status")
    assert "Enlevé ce matin" in page.inner_text("#track-notes")
    assert page.is_visible("#reopen")  # the resident may say it is not fixed
    assert [e for e in errors if "/report" in e[0]] == []  # the report pages' scripts
    with demo_site.api() as api:
        report = api.get(f"/reports/{report_id}").json()
        (stored,) = report["photos"]
        image = api.get(f"/reports/{report_id}/photos/{stored['id']}")
        assert image.status_code == 200
        assert_no_metadata(image.content)
        assert report["contact"]["email"] == "habitant@example.org"
        assert [h["status"] for h in report["history"]] == ["submitted", "resolved"]
        assert report["history"][-1]["by"] == f"user:{demo_site.staff_user}"
    resident.close()
    staff.close()
