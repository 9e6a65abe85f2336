"""The staff back office's JSON API under ``/reports`` (queue, workflow, moderation, photos,
duplicates, statistics); staff roles only (``api/access.py``), problem+json errors."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agilecity.api.access import principal_of
from agilecity.api.negotiation import read_raw_body, tenant_of
from agilecity.api.open311 import read_form
from agilecity.errors import BadRequestDataError, ResourceNotFoundError
from agilecity.reports.desk import ReportDesk
from agilecity.reports.model import STATUSES, Report
from agilecity.reports.photos import MEDIA_TYPE

PREFIX = "/reports"


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _text(body: dict[str, Any], name: str, *, required: bool = False) -> str:
    value = body.get(name, "")
    if not isinstance(value, str) or (required and not value):
        raise BadRequestDataError(f"{name} must be a{' non-empty' if required else ''} string")
    return value


class ReportStaffApi:
    """Back-office routes over the report desk."""

    def __init__(self, desk: ReportDesk, max_body_bytes: int) -> None:
        self.desk = desk
        self.max_body_bytes = max_body_bytes

    def routes(self) -> list[Route]:
        """Every /reports route."""
        r = PREFIX + "/{service_request_id}"
        return [
            Route(PREFIX, self.list_reports, methods=["GET"]),
            Route(PREFIX + "/statistics", self.get_statistics, methods=["GET"]),
            Route(r, self.get_report, methods=["GET"]),
            Route(r + "/status", self.change_status, methods=["POST"]),
            Route(r + "/assignment", self.assign_report, methods=["POST"]),
            Route(r + "/moderation", self.moderate_report, methods=["POST"]),
            Route(r + "/merge", self.merge_report, methods=["POST"]),
            Route(r + "/duplicates", self.list_duplicates, methods=["GET"]),
            Route(r + "/photos", self.add_photo, methods=["POST"]),
            Route(r + "/photos/{photo_id}", self.get_photo, methods=["GET"]),
            Route(r + "/photos/{photo_id}/publication", self.publish_photo, methods=["POST"]),
        ]

    async def _body(self, request: Request) -> dict[str, Any]:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            raise BadRequestDataError("send a JSON object (Content-Type: application/json)")
        try:
            body = orjson.loads(await read_raw_body(request, 65_536))
        except orjson.JSONDecodeError:
            raise BadRequestDataError("the body is not JSON") from None
        if not isinstance(body, dict):
            raise BadRequestDataError("the body must be a JSON object")
        return body

    def _view(self, report: Report, contact: dict[str, Any] | None) -> dict[str, Any]:
        view = dataclasses.asdict(report)
        category = self.desk.repo.categories.get(report.service_code)
        view["service_name"] = category.name if category else report.service_code
        view["target_hours"] = category.target_hours if category else None
        view["contact"] = {
            k: v for k, v in (contact or {}).items() if k not in ("token", "followers")
        }
        view["follower_emails"] = len((contact or {}).get("followers", []))
        return view

    async def list_reports(self, request: Request) -> Response:
        """GET /reports?status=&service_code=&district=&limit=&offset=: the queue."""
        params, tenant = request.query_params, tenant_of(request)
        q = []
        if status := params.get("status"):
            if status not in STATUSES:
                raise BadRequestDataError(f"status is one of {', '.join(STATUSES)}")
            q.append(f'workflow_status=="{status}"')
        if code := params.get("service_code"):
            if code not in self.desk.repo.categories:
                raise BadRequestDataError(f"unknown service_code {code[:80]!r}")
            q.append(f'service_code=="{code}"')
        if district := params.get("district"):
            known = {d.name for d in self.desk.options.districts}
            if district not in known:
                raise BadRequestDataError(f"unknown district {district[:80]!r}")
            q.append(f'district=="{district}"')
        limit, offset = params.get("limit", "50"), params.get("offset", "0")
        if not (
            limit.isascii()
            and limit.isdigit()
            and offset.isascii()
            and offset.isdigit()
            and 0 < int(limit) <= 500
            and len(offset) <= 7
        ):
            raise BadRequestDataError("limit is 1-500 and offset an integer from 0")
        entities = await self.desk.repo.query(
            tenant, ";".join(q) or None, limit=int(limit), offset=int(offset)
        )
        queue = []
        for entity in entities:
            report = await self.desk.repo.get(tenant, entity["service_request_id"])
            if report is not None:
                view = self._view(report, None)
                del view["contact"], view["follower_emails"], view["history"]
                queue.append(view)
        return _json(queue)

    async def get_statistics(self, request: Request) -> Response:
        """GET /reports/statistics: counts per category and district, medians vs targets."""
        return _json(await self.desk.statistics(tenant_of(request)))

    async def get_report(self, request: Request) -> Response:
        """GET /reports/{id}: everything about one report, contact details included."""
        tenant = tenant_of(request)
        report = await self.desk.require(tenant, request.path_params["service_request_id"])
        return _json(self._view(report, await self.desk.repo.contact(tenant, report.id)))

    def _staff(self, request: Request) -> str:
        return principal_of(request).name

    async def change_status(self, request: Request) -> Response:
        """POST /reports/{id}/status {"status", "note"}."""
        body = await self._body(request)
        report = await self.desk.change_status(
            tenant_of(request),
            request.path_params["service_request_id"],
            _text(body, "status", required=True),
            _text(body, "note"),
            self._staff(request),
        )
        return _json(self._view(report, None))

    async def assign_report(self, request: Request) -> Response:
        """POST /reports/{id}/assignment {"team", "assignee"}."""
        body = await self._body(request)
        report = await self.desk.assign(
            tenant_of(request),
            request.path_params["service_request_id"],
            _text(body, "team"),
            _text(body, "assignee"),
        )
        return _json(self._view(report, None))

    async def moderate_report(self, request: Request) -> Response:
        """POST /reports/{id}/moderation {"publish", "description"?, "address_string"?,
        "media_url"?}: edited texts (names removed) are what becomes public."""
        body = await self._body(request)
        publish, media = body.get("publish"), body.get("media_url")
        if not isinstance(publish, bool) or not isinstance(media, bool | None):
            raise BadRequestDataError("publish (and media_url) are booleans")
        description, address = body.get("description"), body.get("address_string")
        if not isinstance(description, str | None) or not isinstance(address, str | None):
            raise BadRequestDataError("description and address_string are strings")
        report = await self.desk.moderate(
            tenant_of(request),
            request.path_params["service_request_id"],
            publish,
            description,
            media,
            address,
        )
        return _json(self._view(report, None))

    async def merge_report(self, request: Request) -> Response:
        """POST /reports/{id}/merge {"into"}: the report is a duplicate of ``into``."""
        body = await self._body(request)
        target = await self.desk.merge(
            tenant_of(request),
            request.path_params["service_request_id"],
            _text(body, "into", required=True),
            self._staff(request),
        )
        return _json(self._view(target, None))

    async def list_duplicates(self, request: Request) -> Response:
        """GET /reports/{id}/duplicates: open reports of its category close to it."""
        found = await self.desk.duplicates(
            tenant_of(request), request.path_params["service_request_id"]
        )
        return _json(
            [
                {
                    "service_request_id": e["service_request_id"],
                    "distance_m": e["distance_m"],
                    "status": e.get("workflow_status"),
                    "requested_datetime": e.get("requested_datetime"),
                }
                for e in found
            ]
        )

    async def add_photo(self, request: Request) -> Response:
        """POST /reports/{id}/photos (multipart: photo, kind=after|before)."""
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "multipart/form-data":
            raise BadRequestDataError("send the photo as multipart/form-data (field 'photo')")
        raw = await read_raw_body(request, self.max_body_bytes)
        form = await read_form(request, raw, self.desk.options.photo_limits.max_bytes + 1)
        upload, kind = form.get("photo"), form.get("kind", "after")
        if not isinstance(upload, bytes) or not isinstance(kind, str):
            raise BadRequestDataError("the form needs a file field 'photo'")
        photo = await self.desk.add_photo(
            tenant_of(request), request.path_params["service_request_id"], upload, kind
        )
        return _json(dataclasses.asdict(photo), 201)

    async def get_photo(self, request: Request) -> Response:
        """GET /reports/{id}/photos/{photo_id}: the sanitised photo, published or not."""
        tenant = tenant_of(request)
        report = await self.desk.require(tenant, request.path_params["service_request_id"])
        photo_id = request.path_params["photo_id"]
        stored = await self.desk.repo.photo(tenant, photo_id)
        if stored is None or stored.report != report.id:
            raise ResourceNotFoundError("photo not found")
        return Response(
            stored.image, media_type=MEDIA_TYPE, headers={"Cache-Control": "private, no-store"}
        )

    async def publish_photo(self, request: Request) -> Response:
        """POST /reports/{id}/photos/{photo_id}/publication {"publish", "boxes": [[x,y,w,h]]}."""
        body = await self._body(request)
        publish, raw_boxes = body.get("publish"), body.get("boxes", [])
        if not isinstance(publish, bool) or not isinstance(raw_boxes, list) or len(raw_boxes) > 50:
            raise BadRequestDataError("publish is a boolean, boxes a list of [x, y, w, h]")
        boxes = []
        for box in raw_boxes:
            if not (
                isinstance(box, list)
                and len(box) == 4
                and all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)
            ):
                raise BadRequestDataError("a box is [x, y, width, height], fractions 0..1")
            boxes.append((float(box[0]), float(box[1]), float(box[2]), float(box[3])))
        photo = await self.desk.publish_photo(
            tenant_of(request),
            request.path_params["service_request_id"],
            request.path_params["photo_id"],
            publish,
            boxes,
        )
        return _json(dataclasses.asdict(photo))
