"""Pure workflow of a report: statuses and transitions, the public entity, duplicates,
statistics, districts and the per-client submission limit. No I/O."""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agilecity.errors import AgileCityError, BadRequestDataError
from agilecity.reports.categories import Category

ENTITY_TYPE = "service_requests"
ENTITY_PREFIX = "urn:ngsi-ld:service_requests:"

SUBMITTED, ACKNOWLEDGED, IN_PROGRESS = "submitted", "acknowledged", "in_progress"
RESOLVED, CLOSED_NOT_FIXED, REJECTED, DUPLICATE = (
    "resolved",
    "closed_not_fixed",
    "rejected",
    "duplicate",
)
STATUSES = (SUBMITTED, ACKNOWLEDGED, IN_PROGRESS, RESOLVED, CLOSED_NOT_FIXED, REJECTED, DUPLICATE)
CLOSED = frozenset({RESOLVED, CLOSED_NOT_FIXED, REJECTED, DUPLICATE})
#: Staff transitions; ``duplicate`` is reached by merging, ``resolved -> acknowledged`` is
#: also the reporter's reopening.
TRANSITIONS: dict[str, frozenset[str]] = {
    SUBMITTED: frozenset({ACKNOWLEDGED, IN_PROGRESS, RESOLVED, CLOSED_NOT_FIXED, REJECTED}),
    ACKNOWLEDGED: frozenset({IN_PROGRESS, RESOLVED, CLOSED_NOT_FIXED, REJECTED}),
    IN_PROGRESS: frozenset({ACKNOWLEDGED, RESOLVED, CLOSED_NOT_FIXED}),
    RESOLVED: frozenset({ACKNOWLEDGED, IN_PROGRESS}),
    CLOSED_NOT_FIXED: frozenset({ACKNOWLEDGED, IN_PROGRESS}),
    REJECTED: frozenset({ACKNOWLEDGED}),
    DUPLICATE: frozenset(),
}


class ConflictError(AgileCityError):
    """The report's current state does not allow this action (409)."""

    status = 409
    error_type = "Conflict"
    title = "Conflict"


class TooManyRequestsError(AgileCityError):
    """A client sent more submissions than the rate limit allows (429)."""

    status = 429
    error_type = "TooManyRequests"
    title = "Too many requests"


def open311_status(status: str) -> str:
    """Open311's public status: ``open`` or ``closed``."""
    return "closed" if status in CLOSED else "open"


@dataclass
class Photo:
    """A photo of a report: a citizen's (``before``) or the crew's proof (``after``)."""

    id: str
    kind: str  # "before" or "after"
    public: bool = False


@dataclass
class Transition:
    """One status change: to what, when, by whom (a staff member or "reporter"), why."""

    status: str
    at: str
    by: str
    note: str = ""


@dataclass
class Report:
    """The internal state of one report (a store record, never public as a whole)."""

    id: str
    service_code: str
    status: str
    created_at: str
    updated_at: str
    lat: float | None
    long: float | None
    district: str = ""
    team: str = ""
    assignee: str = ""
    expected_at: str = ""
    address_string: str = ""
    address_id: str = ""
    zipcode: str = ""
    description: str = ""
    description_public: bool = False
    media_url: str = ""  # given by the client, public after moderation
    media_url_public: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)
    photos: list[Photo] = field(default_factory=list)
    history: list[Transition] = field(default_factory=list)
    status_notes: str = ""
    followers: int = 0
    merged_into: str = ""
    merged: list[str] = field(default_factory=list)
    closed_at: str = ""
    resolved_at: str = ""
    reopened: int = 0

    def to_doc(self) -> dict[str, Any]:
        """The record document."""
        return dataclasses.asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Report:
        """A report from its record document."""
        values = dict(doc)
        values["photos"] = [Photo(**p) for p in doc.get("photos", [])]
        values["history"] = [Transition(**t) for t in doc.get("history", [])]
        return cls(**values)

    @property
    def entity_id(self) -> str:
        """The id of its public entity."""
        return ENTITY_PREFIX + self.id

    @property
    def is_open(self) -> bool:
        """Not resolved, closed, rejected nor a duplicate."""
        return self.status not in CLOSED


def apply_transition(
    report: Report,
    status: str,
    at: str,
    by: str,
    note: str = "",
    *,
    public_note: bool = True,
    reopening: bool = False,
) -> Report:
    """The report after a status change (ConflictError when the workflow forbids it)."""
    if status not in STATUSES:
        raise BadRequestDataError(f"status must be one of {', '.join(STATUSES)}")
    allowed = TRANSITIONS[report.status] | ({DUPLICATE} if report.is_open else set())
    if reopening:
        allowed = frozenset({ACKNOWLEDGED}) if report.status == RESOLVED else frozenset()
    if status not in allowed:
        raise ConflictError(f"a report {report.status} cannot become {status}")
    history = [*report.history, Transition(status, at, by, note)]
    changed = dataclasses.replace(report, status=status, updated_at=at, history=history)
    if public_note:
        changed.status_notes = note
    if status in CLOSED:
        changed.closed_at = at
        if status == RESOLVED:
            changed.resolved_at = at
    else:
        changed.closed_at = changed.resolved_at = ""
    if reopening:
        changed.reopened += 1
    return changed


def photo_url(base: str, photo_id: str, variant: str = "") -> str:
    """The public URL of a published photo (``variant`` "thumbnail" for the small one)."""
    return f"{base}/open311/media/{photo_id}" + (f"/{variant}" if variant else "")


def public_entity(report: Report, category: Category | None, base: str) -> dict[str, Any]:
    """The report's public ``service_requests`` entity: only what anyone may see (no contact
    details, no unmoderated text, only published photos)."""

    def prop(value: Any) -> dict[str, Any]:
        return {"type": "Property", "value": value}

    entity: dict[str, Any] = {
        "id": report.entity_id,
        "type": ENTITY_TYPE,
        "service_request_id": prop(report.id),
        "service_code": prop(report.service_code),
        "service_name": prop(category.name if category else report.service_code),
        "status": prop(open311_status(report.status)),
        "workflow_status": prop(report.status),
        "requested_datetime": prop(report.created_at),
        "updated_datetime": prop(report.updated_at),
        "followers": prop(report.followers),
    }
    if report.lat is not None and report.long is not None:
        point = {"type": "Point", "coordinates": [report.long, report.lat]}
        entity["location"] = {"type": "GeoProperty", "value": point}
    optional = {
        "agency_responsible": report.team,
        "expected_datetime": report.expected_at,
        "status_notes": report.status_notes,
        "district": report.district,
        "address_id": report.address_id,
        "zipcode": report.zipcode,
    }
    if report.description_public:
        optional["description"] = report.description
        optional["address_string"] = report.address_string
    before = [photo_url(base, p.id) for p in report.photos if p.public and p.kind == "before"]
    after = [photo_url(base, p.id) for p in report.photos if p.public and p.kind == "after"]
    if report.media_url_public and report.media_url:
        before.append(report.media_url)
    if before:
        optional["media_url"] = before[0]
        entity["photos"] = prop(before)
    if after:
        entity["resolution_photos"] = prop(after)
    for name, value in optional.items():
        if value:
            entity[name] = prop(value)
    if report.merged_into:
        entity["duplicate_of"] = {
            "type": "Relationship",
            "object": ENTITY_PREFIX + report.merged_into,
        }
    return entity


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine, mean Earth radius 6371008.8 m)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(min(1.0, math.sqrt(a)))


def coarsen(value: float, decimals: int = 3) -> float:
    """A coordinate rounded for open data (3 decimals: about 110 m of latitude)."""
    return round(value, decimals)


def check_coordinates(lat: float, lon: float) -> None:
    """Refuse a position outside WGS 84."""
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise BadRequestDataError("lat must be within -90..90 and long within -180..180")


def _hours(start: str, end: str) -> float:
    a = datetime.fromisoformat(start.replace("Z", "+00:00"))
    b = datetime.fromisoformat(end.replace("Z", "+00:00"))
    return (b - a).total_seconds() / 3600


def report_statistics(reports: Iterable[Report], categories: Iterable[Category]) -> dict[str, Any]:
    """Open/closed counts per category and per district, and per category the median hours
    from submission to resolution against the target (resolved reports only)."""
    targets = {c.code: c.target_hours for c in categories}
    per_category: dict[str, dict[str, Any]] = {}
    per_district: dict[str, dict[str, int]] = {}
    durations: dict[str, list[float]] = {}
    for report in reports:
        if report.status == DUPLICATE:
            continue  # counted once, in the report it was merged into
        state = "open" if report.is_open else "closed"
        row = per_category.setdefault(report.service_code, {"open": 0, "closed": 0})
        row[state] += 1
        district = per_district.setdefault(report.district or "unknown", {"open": 0, "closed": 0})
        district[state] += 1
        if report.status == RESOLVED and report.resolved_at:
            hours = _hours(report.created_at, report.resolved_at)
            durations.setdefault(report.service_code, []).append(hours)
    for code, row in per_category.items():
        values = durations.get(code, [])
        median = statistics.median(values) if values else None
        target = targets.get(code)
        row["resolved"] = len(values)
        row["median_hours_to_resolution"] = None if median is None else round(median, 2)
        row["target_hours"] = target
        row["within_target"] = None if median is None or target is None else median <= target
    return {
        "categories": dict(sorted(per_category.items())),
        "districts": dict(sorted(per_district.items())),
    }


@dataclass
class District:
    """A named district: a shapely (Multi)Polygon."""

    name: str
    shape: Any


def parse_districts(document: Any) -> list[District]:
    """Districts from a GeoJSON FeatureCollection (name from ``properties.name``)."""
    from shapely.geometry import shape

    if not isinstance(document, dict) or not isinstance(document.get("features"), list):
        raise BadRequestDataError("open311 districts: expected a GeoJSON FeatureCollection")
    found = []
    for feature in document["features"]:
        name = (feature.get("properties") or {}).get("name")
        if not isinstance(name, str) or not name or any(c in name for c in '"\\\x00'):
            raise BadRequestDataError(
                "open311 districts: every feature needs properties.name "
                "(without quotes or backslashes)"
            )
        try:
            found.append(District(name, shape(feature["geometry"])))
        except Exception as exc:  # shapely raises several kinds for a bad geometry
            raise BadRequestDataError(f"open311 districts: {name}: {exc}") from None
    return found


def district_of(lat: float | None, lon: float | None, districts: list[District]) -> str:
    """The name of the district holding the point ("" outside all of them, or unknown)."""
    from shapely.geometry import Point

    if lat is None or lon is None:
        return ""
    point = Point(lon, lat)
    for district in districts:
        if district.shape.covers(point):
            return district.name
    return ""


class RateLimiter:
    """At most ``limit`` events per client in any ``window`` seconds (sliding window);
    ``limit`` 0 turns it off. Times are passed in, so it is pure and testable."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._events: dict[str, list[float]] = {}

    def hit(self, client: str, now: float) -> None:
        """Count an event, or raise TooManyRequestsError when the client is over the limit."""
        if self.limit <= 0:
            return
        recent = [t for t in self._events.get(client, []) if t > now - self.window]
        if len(recent) >= self.limit:
            self._events[client] = recent
            wait = int(recent[0] + self.window - now) + 1
            error = TooManyRequestsError(
                f"at most {self.limit} submissions per {int(self.window)} s from one client; "
                f"try again in {wait} s"
            )
            error.retry_after = wait  # type: ignore[attr-defined]
            raise error
        recent.append(now)
        self._events[client] = recent
        if len(self._events) > 100_000:  # forget idle clients rather than grow for ever
            cutoff = now - self.window
            self._events = {k: v for k, v in self._events.items() if v and v[-1] > cutoff}
