"""Where reports live: the internal state, contact details, photos and token digests as store
records (never public), and the public ``service_requests`` entity through the broker."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from agilecity.broker.broker import Broker, QueryParams
from agilecity.broker.context import core_term_map
from agilecity.broker.representation import RenderOptions, render_entity
from agilecity.errors import BadRequestDataError, InternalError
from agilecity.reports.categories import Category
from agilecity.reports.model import ENTITY_PREFIX, ENTITY_TYPE, Report, public_entity
from agilecity.store.base import Record

REPORT, CONTACT, PHOTO, TOKEN = "report", "report_contact", "report_photo", "report_token"
PERSONAL_FIELDS = ("email", "first_name", "last_name", "phone", "device_id", "account_id")


def storable(*texts: str) -> bool:
    """Whether ids and tenant names can reach the store (PostgreSQL text holds no NUL)."""
    return all("\x00" not in text for text in texts)


def token_digest(token: str) -> str:
    """The stored form of a reporter's token (SHA-256): the token itself is never stored
    but in the contact record, which the retention purge deletes."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class StoredPhoto:
    """A photo record: the sanitised image (no metadata), its public variant if published."""

    id: str
    report: str
    kind: str
    created_at: str
    image: bytes
    thumbnail: bytes
    public_image: bytes | None = None
    public_thumbnail: bytes | None = None

    def to_doc(self) -> dict[str, Any]:
        """The record document (images base64-encoded)."""

        def b64(data: bytes | None) -> str | None:
            return None if data is None else base64.b64encode(data).decode()

        return {
            "report": self.report,
            "kind": self.kind,
            "created_at": self.created_at,
            "image": b64(self.image),
            "thumbnail": b64(self.thumbnail),
            "public_image": b64(self.public_image),
            "public_thumbnail": b64(self.public_thumbnail),
        }

    @classmethod
    def from_record(cls, record: Record) -> StoredPhoto:
        """A photo from its record."""
        doc = record.doc

        def raw(name: str) -> bytes | None:
            value = doc.get(name)
            return None if value is None else base64.b64decode(value)

        return cls(
            record.key,
            doc["report"],
            doc["kind"],
            doc["created_at"],
            raw("image") or b"",
            raw("thumbnail") or b"",
            raw("public_image"),
            raw("public_thumbnail"),
        )


class ReportRepository:
    """Reads and writes reports of every tenant through the broker's Python API."""

    def __init__(self, broker: Broker, categories: tuple[Category, ...], base_url: str) -> None:
        self.broker = broker
        self.categories = {c.code: c for c in categories}
        self.base_url = base_url
        self.terms = core_term_map()

    # -- reports and their entity ----------------------------------------------------------

    async def get(self, tenant: str, report_id: str) -> Report | None:
        """The internal state of a report, or None."""
        if not storable(tenant, report_id):
            return None
        record = await self.broker.get_record(REPORT, tenant, report_id)
        return None if record is None else Report.from_doc(record.doc)

    async def save(self, tenant: str, report: Report, *, create: bool = False) -> None:
        """Store the state, then (re)write the public entity from it (replacing it whole, so
        an unpublished description or photo leaves it; its history keeps the past)."""
        await self.broker.put_record(
            Record(REPORT, tenant, report.id, report.to_doc()), create=create
        )
        entity = public_entity(report, self.categories.get(report.service_code), self.base_url)
        result = await self.broker.batch_upsert(tenant, [entity], self.terms, replace=True)
        if result.errors:
            raise InternalError(f"report entity {report.id}: {result.errors[0][1].detail}")

    async def all(self, tenant: str) -> list[Report]:
        """Every report of a tenant."""
        if not storable(tenant):
            return []
        return [Report.from_doc(r.doc) for r in await self.broker.list_records(REPORT, tenant)]

    async def tenants(self) -> list[str]:
        """The tenants that hold reports."""
        return sorted({r.tenant for r in await self.broker.list_records(REPORT)})

    async def query(
        self,
        tenant: str,
        q: str | None,
        *,
        limit: int,
        offset: int = 0,
        near: tuple[float, float, float] | None = None,
    ) -> list[dict[str, Any]]:
        """Public entities (keyValues) matching ``q`` (and within ``near`` = lat, long, metres),
        in submission order."""
        params = QueryParams(type=ENTITY_TYPE, q=q, limit=limit, offset=offset)
        if near is not None:
            lat, lon, metres = near
            params.georel, params.geometry = f"near;maxDistance=={metres}", "Point"
            params.coordinates = [lon, lat]
        if not storable(tenant) or not await self.broker.store.tenant_exists(tenant):
            return []
        docs, _ = await self.broker.query_entities(tenant, params, self.terms)
        options = RenderOptions(format="keyValues")
        return [render_entity(doc, self.terms, options) for doc in docs]

    async def entity(self, tenant: str, report_id: str) -> dict[str, Any] | None:
        """The public entity of one report (keyValues), or None."""
        if not storable(tenant, report_id) or not await self.broker.store.tenant_exists(tenant):
            return None
        doc = await self.broker.store.get(tenant, ENTITY_PREFIX + report_id)
        return (
            None
            if doc is None
            else render_entity(doc, self.terms, RenderOptions(format="keyValues"))
        )

    # -- contact details, tokens ----------------------------------------------------------

    async def put_contact(self, tenant: str, report_id: str, contact: dict[str, Any]) -> None:
        """Store the personal data of a report (its reporter, its followers' e-mails)."""
        await self.broker.put_record(Record(CONTACT, tenant, report_id, contact), create=False)

    async def contact(self, tenant: str, report_id: str) -> dict[str, Any] | None:
        """The personal data of a report, or None (never given, or purged)."""
        if not storable(tenant, report_id):
            return None
        record = await self.broker.get_record(CONTACT, tenant, report_id)
        return None if record is None else record.doc

    async def delete_contact(self, tenant: str, report_id: str) -> bool:
        """Forget the personal data of a report."""
        return await self.broker.delete_record(CONTACT, tenant, report_id)

    async def put_token(self, tenant: str, token: str, report_id: str) -> None:
        """Remember which report a token belongs to (by the token's digest)."""
        record = Record(TOKEN, tenant, token_digest(token), {"service_request_id": report_id})
        await self.broker.put_record(record, create=True)

    async def report_of_token(self, tenant: str, token: str) -> str | None:
        """The report id of a token, or None."""
        if not token or len(token) > 200 or not storable(tenant):
            return None
        record = await self.broker.get_record(TOKEN, tenant, token_digest(token))
        return None if record is None else str(record.doc["service_request_id"])

    # -- photos --------------------------------------------------------------------------

    async def put_photo(self, tenant: str, photo: StoredPhoto, *, create: bool) -> None:
        """Store a photo record."""
        await self.broker.put_record(Record(PHOTO, tenant, photo.id, photo.to_doc()), create=create)

    async def photo(self, tenant: str, photo_id: str) -> StoredPhoto | None:
        """A photo, or None."""
        if not photo_id.isascii() or not photo_id.isalnum() or len(photo_id) > 64:
            return None
        if not storable(tenant):
            return None
        record = await self.broker.get_record(PHOTO, tenant, photo_id)
        return None if record is None else StoredPhoto.from_record(record)

    async def delete_photo(self, tenant: str, photo_id: str) -> bool:
        """Delete a photo."""
        return await self.broker.delete_record(PHOTO, tenant, photo_id)

    def category(self, code: str) -> Category:
        """The category of a code (BadRequestData for an unknown one)."""
        found = self.categories.get(code)
        if found is None:
            raise BadRequestDataError(f"unknown service_code {code!r}")
        return found
