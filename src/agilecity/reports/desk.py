"""The report desk: every action on reports (submit, follow, reopen, staff workflow, photos,
merging, statistics, open data, retention), over the repository, the mailer and the rules
of ``model.py``."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

from agilecity.broker.timeutil import canonical_datetime, format_datetime, now_iso
from agilecity.errors import BadRequestDataError, ResourceNotFoundError
from agilecity.reports import model
from agilecity.reports.categories import Category
from agilecity.reports.mail import Mailer, status_message
from agilecity.reports.model import (
    ConflictError,
    District,
    Photo,
    Report,
    apply_transition,
    check_coordinates,
    district_of,
)
from agilecity.reports.photos import PhotoLimits, redact, sanitise
from agilecity.reports.repository import PERSONAL_FIELDS, ReportRepository, StoredPhoto

EMAIL = re.compile(r"^[^@\s<>\"',;]{1,64}@[A-Za-z0-9.-]{1,255}\.[A-Za-z]{2,63}$")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class DeskOptions:
    """What the desk needs from the settings."""

    public_url: str
    duplicate_distance_m: float = 50.0
    contact_retention_days: int = 90
    photo_retention_days: int = 365
    max_description_chars: int = 4000
    photo_limits: PhotoLimits = field(default_factory=PhotoLimits)
    districts: tuple[District, ...] = ()


@dataclass
class Submission:
    """A new report as the citizen sent it (already decoded from form fields)."""

    service_code: str
    lat: float | None = None
    long: float | None = None
    address_string: str = ""
    address_id: str = ""
    zipcode: str = ""
    description: str = ""
    media_url: str = ""
    attributes: dict[str, list[str]] = field(default_factory=dict)
    contact: dict[str, str] = field(default_factory=dict)
    photo: bytes | None = None


def clean_text(value: str, name: str, limit: int) -> str:
    """Free text checked: at most ``limit`` characters, no control characters but newlines."""
    if len(value) > limit:
        raise BadRequestDataError(f"{name} may have at most {limit} characters")
    if CONTROL.search(value):
        raise BadRequestDataError(f"{name} must not contain control characters")
    return value.strip()


def _check_attributes(category: Category, given: dict[str, list[str]]) -> dict[str, Any]:
    """Attribute values checked against the service definition."""
    known = {a.code: a for a in category.attributes}
    values: dict[str, Any] = {}
    for code, items in given.items():
        attribute = known.get(code)
        if attribute is None:
            raise BadRequestDataError(f"attribute[{code}] is not an attribute of this service")
        keys = {k for k, _ in attribute.values}
        items = [clean_text(v, f"attribute[{code}]", 500) for v in items]
        if attribute.datatype == "multivaluelist":
            if any(v not in keys for v in items):
                raise BadRequestDataError(f"attribute[{code}] must be among {sorted(keys)}")
            values[code] = items
            continue
        if len(items) != 1:
            raise BadRequestDataError(f"attribute[{code}] takes one value")
        value: Any = items[0]
        if attribute.datatype == "singlevaluelist" and value not in keys:
            raise BadRequestDataError(f"attribute[{code}] must be one of {sorted(keys)}")
        if attribute.datatype == "number":
            try:
                value = float(value)
            except ValueError:
                raise BadRequestDataError(f"attribute[{code}] must be a number") from None
        if attribute.datatype == "datetime":
            value = canonical_datetime(value, f"attribute[{code}]")
        values[code] = value
    for attribute in category.attributes:
        if attribute.required and attribute.code not in values:
            raise BadRequestDataError(f"attribute[{attribute.code}] is required")
    return values


def _check_contact(contact: dict[str, str]) -> dict[str, str]:
    cleaned = {}
    for name in PERSONAL_FIELDS:
        value = clean_text(contact.get(name, ""), name, 254)
        if value:
            cleaned[name] = value
    if "email" in cleaned and not EMAIL.match(cleaned["email"]):
        raise BadRequestDataError("email is not an e-mail address")
    return cleaned


class ReportDesk:
    """Every action on reports, for every tenant."""

    def __init__(self, repository: ReportRepository, mailer: Mailer, options: DeskOptions) -> None:
        self.repo = repository
        self.mailer = mailer
        self.options = options
        self._mail_tasks: set[asyncio.Task[bool]] = set()
        self._mail_order = asyncio.Lock()  # FIFO: e-mails go out in the order of the changes

    @property
    def categories(self) -> tuple[Category, ...]:
        """The service categories, in their configured order."""
        return tuple(self.repo.categories.values())

    async def require(self, tenant: str, report_id: str) -> Report:
        """A report, or ResourceNotFound."""
        report = await self.repo.get(tenant, report_id) if len(report_id) <= 64 else None
        if report is None:
            raise ResourceNotFoundError(f"service request {report_id!r} not found")
        return report

    # -- citizens ------------------------------------------------------------------------

    async def submit(self, tenant: str, sub: Submission) -> tuple[Report, str]:
        """File a report: its id and the reporter's secret token."""
        category = self.repo.categories.get(sub.service_code)
        if category is None:
            raise ResourceNotFoundError(f"service_code {sub.service_code!r} not found")
        if (sub.lat is None) != (sub.long is None):
            raise BadRequestDataError("lat and long go together")
        if sub.lat is not None and sub.long is not None:
            check_coordinates(sub.lat, sub.long)
        elif not (sub.address_string.strip() or sub.address_id.strip()):
            raise BadRequestDataError(
                "a location is required: lat and long, address_string " "or address_id"
            )
        media_url = clean_text(sub.media_url, "media_url", 2000)
        if media_url and not re.match(r"^https?://[^\s/]+", media_url):
            raise BadRequestDataError("media_url must be an http(s) URL")
        photo = (
            await asyncio.to_thread(sanitise, sub.photo, self.options.photo_limits)
            if sub.photo
            else None
        )
        now = now_iso()
        expected = format_datetime(datetime.now(UTC) + timedelta(hours=category.target_hours))
        report = Report(
            id=secrets.token_hex(6),
            service_code=category.code,
            status=model.SUBMITTED,
            created_at=now,
            updated_at=now,
            lat=sub.lat,
            long=sub.long,
            district=district_of(sub.lat, sub.long, list(self.options.districts)),
            team=category.team,
            expected_at=expected,
            address_string=clean_text(sub.address_string, "address_string", 500),
            address_id=clean_text(sub.address_id, "address_id", 200),
            zipcode=clean_text(sub.zipcode, "zipcode", 20),
            description=clean_text(
                sub.description, "description", self.options.max_description_chars
            ),
            media_url=media_url,
            attributes=_check_attributes(category, sub.attributes),
            history=[model.Transition(model.SUBMITTED, now, "reporter")],
        )
        contact = _check_contact(sub.contact)
        token = secrets.token_urlsafe(18)
        if photo is not None:
            stored = StoredPhoto(
                secrets.token_hex(8), report.id, "before", now, photo.image, photo.thumbnail
            )
            await self.repo.put_photo(tenant, stored, create=True)
            report.photos.append(Photo(stored.id, "before"))
        await self.repo.put_contact(tenant, report.id, {**contact, "token": token, "followers": []})
        await self.repo.put_token(tenant, token, report.id)
        await self.repo.save(tenant, report, create=True)
        self._notify(tenant, report, [])
        return report, token

    async def follow(self, tenant: str, report_id: str, email: str = "") -> Report:
        """ "Me too": one more follower (told of changes by e-mail when one is given)."""
        report = await self.require(tenant, report_id)
        if report.merged_into:
            report = await self.require(tenant, report.merged_into)
        if not report.is_open:
            raise ConflictError("this report is closed; file a new one if the problem is back")
        email = clean_text(email, "email", 254)
        if email and not EMAIL.match(email):
            raise BadRequestDataError("email is not an e-mail address")
        report.followers += 1
        if email:
            contact = await self.repo.contact(tenant, report.id) or {"followers": []}
            contact["followers"] = [*contact.get("followers", []), email][-500:]
            await self.repo.put_contact(tenant, report.id, contact)
        await self.repo.save(tenant, report)
        return report

    async def reopen(self, tenant: str, token: str, note: str = "") -> Report:
        """The reporter says a report marked fixed is not: back to acknowledged."""
        report_id = await self.repo.report_of_token(tenant, token)
        if report_id is None:
            raise ResourceNotFoundError("unknown token")
        report = await self.require(tenant, report_id)
        note = clean_text(note, "note", 1000)
        report = apply_transition(
            report,
            model.ACKNOWLEDGED,
            now_iso(),
            "reporter",
            note,
            public_note=False,
            reopening=True,
        )
        report.status_notes = "Reopened by the reporter: not fixed."
        await self.repo.save(tenant, report)
        self._notify(tenant, report, [])
        return report

    # -- staff ---------------------------------------------------------------------------

    async def change_status(
        self, tenant: str, report_id: str, status: str, note: str, staff: str
    ) -> Report:
        """A staff member moves a report along the workflow (the reporter is e-mailed)."""
        report = await self.require(tenant, report_id)
        if status == model.DUPLICATE:
            raise BadRequestDataError("a report becomes a duplicate by merging it")
        report = apply_transition(report, status, now_iso(), staff, clean_text(note, "note", 2000))
        await self.repo.save(tenant, report)
        self._notify(tenant, report, report.merged)
        return report

    async def assign(self, tenant: str, report_id: str, team: str, assignee: str) -> Report:
        """Route a report to a team and, optionally, a staff member."""
        report = await self.require(tenant, report_id)
        report.team = clean_text(team, "team", 100) or report.team
        report.assignee = clean_text(assignee, "assignee", 100)
        report.updated_at = now_iso()
        await self.repo.save(tenant, report)
        return report

    async def moderate(
        self,
        tenant: str,
        report_id: str,
        publish: bool,
        description: str | None = None,
        media_url: bool | None = None,
        address_string: str | None = None,
    ) -> Report:
        """Publish (or withdraw) the description and address, edited if need be (names are
        personal data), and the client-given media_url."""
        report = await self.require(tenant, report_id)
        if description is not None:
            report.description = clean_text(
                description, "description", self.options.max_description_chars
            )
        if address_string is not None:
            report.address_string = clean_text(address_string, "address_string", 500)
        report.description_public = publish
        if media_url is not None:
            report.media_url_public = media_url
        report.updated_at = now_iso()
        await self.repo.save(tenant, report)
        return report

    async def add_photo(self, tenant: str, report_id: str, data: bytes, kind: str) -> Photo:
        """Attach a photo (a crew's "after" photo is public at once, a citizen's after
        moderation)."""
        report = await self.require(tenant, report_id)
        if kind not in ("before", "after"):
            raise BadRequestDataError("kind is 'before' or 'after'")
        photo = await asyncio.to_thread(sanitise, data, self.options.photo_limits)
        stored = StoredPhoto(
            secrets.token_hex(8), report.id, kind, now_iso(), photo.image, photo.thumbnail
        )
        public = kind == "after"
        if public:
            stored.public_image, stored.public_thumbnail = photo.image, photo.thumbnail
        await self.repo.put_photo(tenant, stored, create=True)
        entry = Photo(stored.id, kind, public)
        report.photos.append(entry)
        report.updated_at = now_iso()
        await self.repo.save(tenant, report)
        return entry

    async def publish_photo(
        self,
        tenant: str,
        report_id: str,
        photo_id: str,
        publish: bool,
        boxes: list[tuple[float, float, float, float]],
    ) -> Photo:
        """Publish a photo with black boxes over faces or plates (or withdraw it)."""
        report = await self.require(tenant, report_id)
        entry = next((p for p in report.photos if p.id == photo_id), None)
        stored = await self.repo.photo(tenant, photo_id)
        if entry is None or stored is None:
            raise ResourceNotFoundError(f"photo {photo_id!r} not found on this report")
        if publish:
            image, thumb = await asyncio.to_thread(redact, stored.image, boxes)
            stored.public_image, stored.public_thumbnail = image, thumb
        else:
            stored.public_image = stored.public_thumbnail = None
        entry.public = publish
        await self.repo.put_photo(tenant, stored, create=False)
        report.updated_at = now_iso()
        await self.repo.save(tenant, report)
        return entry

    async def duplicates(self, tenant: str, report_id: str) -> list[dict[str, Any]]:
        """Open reports of the same category within the duplicate distance (nearest first)."""
        report = await self.require(tenant, report_id)
        if report.lat is None or report.long is None:
            return []
        found = await self.nearby(tenant, report.service_code, report.lat, report.long)
        return [e for e in found if e["service_request_id"] != report.id]

    async def nearby(self, tenant: str, code: str, lat: float, lon: float) -> list[dict[str, Any]]:
        """Open public reports of a category near a point, with their distance (metres)."""
        check_coordinates(lat, lon)
        if code not in self.repo.categories:
            raise ResourceNotFoundError(f"service_code {code!r} not found")
        q = f'service_code=="{code}";status=="open"'
        metres = self.options.duplicate_distance_m
        found = await self.repo.query(tenant, q, limit=50, near=(lat, lon, metres))
        for entity in found:
            lon2, lat2 = entity["location"]["coordinates"]
            entity["distance_m"] = round(model.distance_m(lat, lon, lat2, lon2), 1)
        return sorted(found, key=lambda e: float(e["distance_m"]))

    async def merge(self, tenant: str, report_id: str, into: str, staff: str) -> Report:
        """Merge a duplicate into another open report: it closes as ``duplicate``, its
        reporter and followers follow the other one."""
        if report_id == into:
            raise BadRequestDataError("a report cannot be merged into itself")
        duplicate, target = await self.require(tenant, report_id), await self.require(tenant, into)
        if not target.is_open or target.merged_into:
            raise ConflictError(f"report {into} is not open")
        note = f"Duplicate of report {into}."
        duplicate = apply_transition(duplicate, model.DUPLICATE, now_iso(), staff, note)
        duplicate.merged_into = into
        target.merged = sorted({*target.merged, duplicate.id, *duplicate.merged})
        target.followers += 1 + duplicate.followers
        duplicate.merged = []
        target.updated_at = duplicate.updated_at
        await self.repo.save(tenant, duplicate)
        await self.repo.save(tenant, target)
        self._notify(tenant, duplicate, [])
        return target

    # -- reading -------------------------------------------------------------------------

    async def statistics(self, tenant: str) -> dict[str, Any]:
        """Open/closed per category and district, median hours to resolution vs target."""
        return model.report_statistics(await self.repo.all(tenant), self.categories)

    async def open_data(self, tenant: str) -> list[dict[str, Any]]:
        """The open-data rows: category, status, dates, district, coarsened location — never
        contact details, free text or photos."""
        rows = []
        for r in sorted(await self.repo.all(tenant), key=lambda r: r.created_at):
            if r.status == model.DUPLICATE:
                continue
            rows.append(
                {
                    "service_request_id": r.id,
                    "service_code": r.service_code,
                    "service_name": self.repo.categories[r.service_code].name
                    if r.service_code in self.repo.categories
                    else r.service_code,
                    "status": model.open311_status(r.status),
                    "workflow_status": r.status,
                    "requested_datetime": r.created_at,
                    "updated_datetime": r.updated_at,
                    "closed_datetime": r.closed_at,
                    "district": r.district,
                    "lat": None if r.lat is None else model.coarsen(r.lat),
                    "long": None if r.long is None else model.coarsen(r.long),
                }
            )
        return rows

    # -- retention -----------------------------------------------------------------------

    async def purge(self, now: datetime | None = None) -> dict[str, int]:
        """Delete contact details and photos of reports closed longer than the retention
        periods ago, in every tenant; the counts deleted."""
        now = now or datetime.now(UTC)
        contact_before = format_datetime(now - timedelta(days=self.options.contact_retention_days))
        photo_before = format_datetime(now - timedelta(days=self.options.photo_retention_days))
        counts = {"contacts": 0, "photos": 0}
        for tenant in await self.repo.tenants():
            for report in await self.repo.all(tenant):
                if not report.closed_at:
                    continue
                if report.closed_at < contact_before:
                    counts["contacts"] += await self.repo.delete_contact(tenant, report.id)
                if report.closed_at < photo_before and report.photos:
                    for photo in report.photos:
                        counts["photos"] += await self.repo.delete_photo(tenant, photo.id)
                    report.photos = []
                    await self.repo.save(tenant, report)
        return counts

    # -- e-mail --------------------------------------------------------------------------

    def _notify(self, tenant: str, report: Report, merged: list[str]) -> None:
        if self.mailer.enabled:
            task = asyncio.create_task(self._send_status(tenant, report, merged))
            self._mail_tasks.add(task)
            task.add_done_callback(self._mail_tasks.discard)

    async def _send_status(self, tenant: str, report: Report, merged: list[str]) -> bool:
        async with self._mail_order:
            return await self._send_status_now(tenant, report, merged)

    async def _send_status_now(self, tenant: str, report: Report, merged: list[str]) -> bool:
        category = self.repo.categories.get(report.service_code)
        name = category.name if category else report.service_code
        base = self.options.public_url
        note = report.status_notes
        messages: list[EmailMessage] = []
        for report_id in (report.id, *merged):
            contact = await self.repo.contact(tenant, report_id) or {}
            link = f"{base}/report?token={contact.get('token', '')}"
            recipients = [(contact.get("email"), link)]
            follow = f"{base}/report?id={report.id}"
            recipients += [(e, follow) for e in contact.get("followers", [])]
            for to, url in recipients:
                if to:
                    messages.append(
                        status_message(
                            self.mailer.settings, to, report.id, name, report.status, note, url
                        )
                    )
        return await self.mailer.send(messages)

    async def drain(self) -> None:
        """Wait for the e-mails being sent (tests, shutdown)."""
        while self._mail_tasks:
            with contextlib.suppress(Exception):
                await asyncio.gather(*list(self._mail_tasks))
