"""Open311 GeoReport v2 under ``/open311/v2`` (services, requests, tokens, discovery; JSON
and XML by the path's extension), and the citizen extensions under ``/open311`` (follow,
reopen, nearby reports, public photos, the open-data export). Errors are Open311's."""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from starlette.datastructures import MultiDict, UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agilecity.api.negotiation import read_raw_body, tenant_of
from agilecity.api.open311_format import render, request_item, service_definition, service_item
from agilecity.auth import Credentials, ForbiddenError, UnauthorizedError
from agilecity.broker.timeutil import format_datetime, parse_datetime
from agilecity.errors import BadRequestDataError, ResourceNotFoundError
from agilecity.reports.desk import ReportDesk, Submission
from agilecity.reports.model import RateLimiter
from agilecity.reports.photos import MEDIA_TYPE
from agilecity.settings import Settings

V2 = "/open311/v2"
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
MAX_SPAN = timedelta(days=90)
MAX_RESULTS = 1000
_ATTRIBUTE = re.compile(r"^attribute\[([A-Za-z0-9_\-]{1,64})\](\[\])?$")
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _format(request: Request) -> bool:
    """True for XML, False for JSON; 404 for another extension."""
    fmt = request.path_params.get("format", "json")
    if fmt not in ("json", "xml"):
        raise ResourceNotFoundError(f"format {fmt!r} is not offered: use .json or .xml")
    return bool(fmt == "xml")


def _number(value: str | None, name: str) -> float | None:
    if value is None or value.strip() == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise BadRequestDataError(f"{name} must be a decimal number") from None


def _time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    moment = parse_datetime(value, name)
    if moment.year < 1000 or moment.year > 9000:
        raise BadRequestDataError(f"{name} is out of range")
    return moment


async def read_form(request: Request, raw: bytes, max_part_size: int) -> MultiDict:
    """The form fields of a body already read (and bounded), files as bytes; the uploads'
    temporary files are closed before returning."""
    request._body = raw  # request.form() parses the body read
    form = await request.form(max_files=2, max_fields=200, max_part_size=max_part_size)
    try:
        items: list[tuple[str, Any]] = []
        for key, value in form.multi_items():
            items.append((key, await value.read() if isinstance(value, UploadFile) else value))
    finally:
        await form.close()
    return MultiDict(items)


class Open311Api:
    """The Open311 routes over a report desk."""

    def __init__(
        self,
        desk: ReportDesk,
        limiter: RateLimiter,
        credentials: Credentials | None,
        settings: Settings,
    ) -> None:
        self.desk = desk
        self.limiter = limiter
        self.credentials = credentials
        self.settings = settings

    def routes(self) -> list[Route]:
        """Every Open311 route."""
        return [
            Route(V2 + "/discovery.{format}", self.get_discovery, methods=["GET"]),
            Route(V2 + "/services.{format}", self.list_services, methods=["GET"]),
            Route(V2 + "/services/{service_code}.{format}", self.get_service, methods=["GET"]),
            Route(V2 + "/requests.{format}", self.list_requests, methods=["GET"]),
            Route(V2 + "/requests.{format}", self.create_request, methods=["POST"]),
            Route(
                V2 + "/requests/{service_request_id}.{format}", self.get_request, methods=["GET"]
            ),
            Route(V2 + "/tokens/{token}.{format}", self.get_token, methods=["GET"]),
            Route(
                "/open311/requests/{service_request_id}/follow",
                self.follow_request,
                methods=["POST"],
            ),
            Route("/open311/tokens/{token}/reopen", self.reopen_request, methods=["POST"]),
            Route("/open311/nearby", self.list_nearby, methods=["GET"]),
            Route("/open311/media/{photo_id}", self.get_photo, methods=["GET"]),
            Route("/open311/media/{photo_id}/thumbnail", self.get_thumbnail, methods=["GET"]),
            Route("/open311/export.{format}", self.export_requests, methods=["GET"]),
        ]

    # -- helpers -------------------------------------------------------------------------

    def _jurisdiction(self, value: str | None) -> None:
        expected = self.settings.open311_jurisdiction_id
        if value and expected and value != expected:
            raise ResourceNotFoundError(f"jurisdiction_id {value!r} is not served here")

    async def _tenant(self, request: Request) -> str:
        tenant = tenant_of(request)
        if len(tenant) > 128 or "\x00" in tenant:
            raise BadRequestDataError("NGSILD-Tenant is not a tenant name")
        if not await self.desk.repo.broker.store.tenant_exists(tenant):
            raise ResourceNotFoundError(f"tenant {tenant!r} does not exist")
        return tenant

    async def _form(self, request: Request) -> MultiDict:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in _FORM_TYPES:
            raise BadRequestDataError(
                "send the fields as application/x-www-form-urlencoded or multipart/form-data"
            )
        raw = await read_raw_body(request, self.settings.open311_max_body_bytes)
        return await read_form(request, raw, self.settings.open311_max_photo_bytes + 1)

    async def _limit(self, request: Request, api_key: str | None) -> None:
        """The per-client rate limit, which a valid API key (a partner app) is exempt from."""
        if api_key and self.credentials is not None:
            try:
                await self.credentials.principal(api_key.strip(), None)
                return
            except UnauthorizedError:
                raise ForbiddenError("api_key is not valid") from None
        client = request.client.host if request.client else "unknown"
        self.limiter.hit(client, time.monotonic())

    # -- GeoReport v2 --------------------------------------------------------------------

    async def get_discovery(self, request: Request) -> Response:
        """GET discovery.{format}: the service discovery document."""
        xml = _format(request)
        self._jurisdiction(request.query_params.get("jurisdiction_id"))
        endpoint = {
            "specification": SPECIFICATION,
            "url": self.desk.options.public_url + V2,
            "changeset": "2026-12-01T00:00:00Z",
            "type": "production",
            "formats": ["text/xml", "application/json"],
        }
        body = {
            "changeset": "2026-12-01T00:00:00Z",
            "contact": self.settings.open311_mail_from,
            "key_service": "",
            "endpoints": [endpoint],
        }
        return render(body, xml, "discovery")

    async def list_services(self, request: Request) -> Response:
        """GET services.{format}: the service categories."""
        xml = _format(request)
        self._jurisdiction(request.query_params.get("jurisdiction_id"))
        return render([service_item(c) for c in self.desk.categories], xml, "services", "service")

    async def get_service(self, request: Request) -> Response:
        """GET services/{service_code}.{format}: a service definition with its attributes."""
        xml = _format(request)
        self._jurisdiction(request.query_params.get("jurisdiction_id"))
        category = self.desk.repo.categories.get(request.path_params["service_code"])
        if category is None:
            raise ResourceNotFoundError("service_code not found")
        return render(service_definition(category), xml, "service_definition")

    async def create_request(self, request: Request) -> Response:
        """POST requests.{format}: file a service request (form fields, optional media)."""
        xml = _format(request)
        tenant = await self._tenant(request)
        form = await self._form(request)

        def text(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        self._jurisdiction(text("jurisdiction_id"))
        await self._limit(request, text("api_key") or None)
        attributes: dict[str, list[str]] = {}
        for key, value in form.multi_items():
            match = _ATTRIBUTE.match(key)
            if match and isinstance(value, str):
                attributes.setdefault(match.group(1), []).append(value)
            elif key.startswith("attribute[") and not match:
                raise BadRequestDataError(f"{key[:80]!r} is not attribute[code]")
        media = form.get("media")
        photo = media if isinstance(media, bytes) else None
        if not text("service_code"):
            raise BadRequestDataError("service_code is required")
        submission = Submission(
            service_code=text("service_code"),
            lat=_number(text("lat"), "lat"),
            long=_number(text("long"), "long"),
            address_string=text("address_string"),
            address_id=text("address_id"),
            zipcode=text("zipcode"),
            description=text("description"),
            media_url=text("media_url"),
            attributes=attributes,
            contact={
                name: text(name)
                for name in ("email", "first_name", "last_name", "phone", "device_id", "account_id")
            },
            photo=photo or None,
        )
        report, token = await self.desk.submit(tenant, submission)
        category = self.desk.repo.categories[report.service_code]
        notice = f"Routed to {category.team}; target: within {category.target_hours:g} hours."
        body = [
            {
                "service_request_id": report.id,
                "token": token,
                "service_notice": notice,
                "account_id": None,
            }
        ]
        return render(body, xml, "service_requests", "request", status=201)

    async def list_requests(self, request: Request) -> Response:
        """GET requests.{format}: requests by ids, or by service_code, status and dates
        (90 days and 1000 requests at most; page/page_size, the common extension)."""
        xml = _format(request)
        params = request.query_params
        self._jurisdiction(params.get("jurisdiction_id"))
        tenant = tenant_of(request)
        if ids := params.get("service_request_id"):
            found = []
            for report_id in [i.strip() for i in ids.split(",") if i.strip()][:MAX_RESULTS]:
                entity = (
                    await self.desk.repo.entity(tenant, report_id)
                    if len(report_id) <= 64 and "\x00" not in report_id
                    else None
                )
                if entity is not None:
                    found.append(request_item(entity))
            return render(found, xml, "service_requests", "request")
        q = self._filters(params.get("service_code"), params.get("status"))
        start, end = (
            _time(params.get("start_date"), "start_date"),
            _time(params.get("end_date"), "end_date"),
        )
        if start and end and end - start > MAX_SPAN:
            raise BadRequestDataError("start_date and end_date may span 90 days at most")
        if start and end and end < start:
            raise BadRequestDataError("end_date is before start_date")
        if start is None:
            end = end or datetime.now(UTC) + timedelta(minutes=1)
            start = end - MAX_SPAN
        end = end or start + MAX_SPAN
        q.append(f"requested_datetime>={format_datetime(start)}")
        q.append(f"requested_datetime<={format_datetime(end)}")
        size, page = params.get("page_size", str(MAX_RESULTS)), params.get("page", "1")
        if not (
            size.isascii()
            and size.isdigit()
            and page.isascii()
            and page.isdigit()
            and 0 < int(size) <= MAX_RESULTS
            and 0 < int(page) <= 100_000
        ):
            raise BadRequestDataError("page_size is 1-1000 and page an integer from 1")
        entities = await self.desk.repo.query(
            tenant, ";".join(q), limit=int(size), offset=(int(page) - 1) * int(size)
        )
        return render([request_item(e) for e in entities], xml, "service_requests", "request")

    def _filters(self, codes: str | None, statuses: str | None) -> list[str]:
        """q terms for service_code and status lists (only known values reach the query)."""
        q: list[str] = []
        if codes is not None:
            wanted = [c.strip() for c in codes.split(",") if c.strip()]
            known = [c for c in wanted if c in self.desk.repo.categories]
            known = known or ["none-of-these"]  # unknown codes match nothing
            q.append("(" + "|".join(f'service_code=="{c}"' for c in known) + ")")
        if statuses is not None:
            states = {s.strip() for s in statuses.split(",") if s.strip()}
            if not states or not states <= {"open", "closed"}:
                raise BadRequestDataError("status is open, closed or both (comma-separated)")
            q.append("(" + "|".join(f'status=="{s}"' for s in sorted(states)) + ")")
        return q

    async def get_request(self, request: Request) -> Response:
        """GET requests/{service_request_id}.{format}: one request (a list of one)."""
        xml = _format(request)
        self._jurisdiction(request.query_params.get("jurisdiction_id"))
        report_id = request.path_params["service_request_id"]
        entity = (
            await self.desk.repo.entity(tenant_of(request), report_id)
            if len(report_id) <= 64
            else None
        )
        if entity is None:
            raise ResourceNotFoundError("service_request_id not found")
        return render([request_item(entity)], xml, "service_requests", "request")

    async def get_token(self, request: Request) -> Response:
        """GET tokens/{token}.{format}: the service request id of a token."""
        xml = _format(request)
        self._jurisdiction(request.query_params.get("jurisdiction_id"))
        token = request.path_params["token"]
        report_id = await self.desk.repo.report_of_token(tenant_of(request), token)
        if report_id is None:
            raise ResourceNotFoundError("token not found")
        return render(
            [{"service_request_id": report_id, "token": token}], xml, "service_requests", "request"
        )

    # -- extensions ----------------------------------------------------------------------

    async def _fields(self, request: Request) -> dict[str, str]:
        """A small JSON object or form body as text fields."""
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type == "application/json":
            try:
                body = orjson.loads(await read_raw_body(request, 16_384) or b"{}")
            except orjson.JSONDecodeError:
                raise BadRequestDataError("the body is not JSON") from None
            if not isinstance(body, dict):
                raise BadRequestDataError("the body must be a JSON object")
            return {k: v for k, v in body.items() if isinstance(v, str)}
        if media_type in _FORM_TYPES:
            form = await self._form(request)
            return {k: v for k, v in form.items() if isinstance(v, str)}
        return {}

    async def follow_request(self, request: Request) -> Response:
        """POST /open311/requests/{id}/follow: "me too" (optional e-mail to be told)."""
        tenant = await self._tenant(request)
        fields = await self._fields(request)
        await self._limit(request, None)
        report = await self.desk.follow(
            tenant, request.path_params["service_request_id"], fields.get("email", "")
        )
        body = {"service_request_id": report.id, "followers": report.followers}
        return Response(orjson.dumps(body), media_type="application/json")

    async def reopen_request(self, request: Request) -> Response:
        """POST /open311/tokens/{token}/reopen: the reporter says it is not fixed."""
        tenant = await self._tenant(request)
        fields = await self._fields(request)
        report = await self.desk.reopen(
            tenant, request.path_params["token"], fields.get("note", "")
        )
        body = {"service_request_id": report.id, "status": "open"}
        return Response(orjson.dumps(body), media_type="application/json")

    async def list_nearby(self, request: Request) -> Response:
        """GET /open311/nearby?service_code=&lat=&long=: open reports to follow instead."""
        params = request.query_params
        lat, lon = _number(params.get("lat"), "lat"), _number(params.get("long"), "long")
        code = params.get("service_code", "")
        if lat is None or lon is None or not code:
            raise BadRequestDataError("service_code, lat and long are required")
        found = await self.desk.nearby(tenant_of(request), code, lat, lon)
        body = [
            {**request_item(e), "distance_m": e["distance_m"], "followers": e.get("followers", 0)}
            for e in found
        ]
        return Response(orjson.dumps(body), media_type="application/json")

    async def _public_photo(self, request: Request, thumbnail: bool) -> Response:
        photo = await self.desk.repo.photo(tenant_of(request), request.path_params["photo_id"])
        data = (
            None if photo is None else (photo.public_thumbnail if thumbnail else photo.public_image)
        )
        if data is None:
            raise ResourceNotFoundError("photo not found")
        headers = {"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"}
        return Response(data, media_type=MEDIA_TYPE, headers=headers)

    async def get_photo(self, request: Request) -> Response:
        """GET /open311/media/{photo_id}: a published photo (re-encoded, no metadata)."""
        return await self._public_photo(request, False)

    async def get_thumbnail(self, request: Request) -> Response:
        """GET /open311/media/{photo_id}/thumbnail: its thumbnail."""
        return await self._public_photo(request, True)

    async def export_requests(self, request: Request) -> Response:
        """GET /open311/export.{csv,geojson}: the open data of reports (no personal data,
        no free text, no photos; locations rounded to about 100 m)."""
        fmt = request.path_params["format"]
        if fmt not in ("csv", "geojson"):
            raise ResourceNotFoundError("the export is offered as .csv or .geojson")
        rows = await self.desk.open_data(tenant_of(request))
        if fmt == "geojson":
            features = [
                {
                    "type": "Feature",
                    "properties": {k: v for k, v in r.items() if k not in ("lat", "long")},
                    "geometry": None
                    if r["lat"] is None
                    else {"type": "Point", "coordinates": [r["long"], r["lat"]]},
                }
                for r in rows
            ]
            body = {"type": "FeatureCollection", "features": features}
            return Response(orjson.dumps(body), media_type="application/geo+json")
        out = io.StringIO()
        columns = [
            "service_request_id",
            "service_code",
            "service_name",
            "status",
            "workflow_status",
            "requested_datetime",
            "updated_datetime",
            "closed_datetime",
            "district",
            "lat",
            "long",
        ]
        writer = csv.DictWriter(out, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8")
