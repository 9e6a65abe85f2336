"""The citizen-report pages: the public ``/report`` (file a report on a map, follow one by
its token, open reports nearby) and the staff back office ``/staff/reports``; both are
templates over ``base.html`` whose scripts call the Open311 and ``/reports`` APIs."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agilecity.api.access import principal_of
from agilecity.reports.desk import ReportDesk
from agilecity.reports.model import STATUSES
from agilecity.web.i18n import pick_language
from agilecity.web.pages import LANG_COOKIE, WebPages


class ReportPages:
    """The report pages of one platform."""

    def __init__(self, pages: WebPages, desk: ReportDesk) -> None:
        self.pages = pages
        self.desk = desk

    def routes(self) -> list[Route]:
        """``/report`` and ``/staff/reports``."""
        return [
            Route("/report", self.show_report_page, methods=["GET"]),
            Route("/staff/reports", self.show_report_office, methods=["GET"]),
        ]

    def _categories(self, request: Request) -> list[dict[str, Any]]:
        lang = pick_language(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE))
        messages = self.pages.catalogue.of(lang)
        return [
            {"code": c.code, "label": messages.get(f"report.category.{c.code}", c.name),
             "team": c.team, "target_hours": c.target_hours}
            for c in self.desk.categories
        ]  # fmt: skip

    async def show_report_page(self, request: Request) -> Response:
        """GET /report: file a report (map pin or device location, category, description,
        photo), or follow one with ``?token=`` / ``?id=``; open reports on the map."""
        return self.pages.render(request, "report.html", {"categories": self._categories(request)})

    async def show_report_office(self, request: Request) -> Response:
        """GET /staff/reports: the queue (filters), and per report status with a note,
        assignment, moderation, photos and merging of duplicates (staff only)."""
        staff = not principal_of(request).public
        extra = {
            "categories": self._categories(request),
            "statuses": list(STATUSES),
            "districts": [d.name for d in self.desk.options.districts],
            "staff": staff,
        }
        return self.pages.render(request, "staff_reports.html", extra)
