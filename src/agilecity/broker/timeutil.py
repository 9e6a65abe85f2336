"""Timestamps: NGSI-LD DateTime parsing and the canonical UTC form the store compares."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

from agilecity.errors import BadRequestDataError


def format_datetime(moment: datetime) -> str:
    """Canonical UTC text with milliseconds, so stored timestamps compare as strings."""
    m = moment.astimezone(UTC)
    return (
        f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}."
        f"{m.microsecond // 1000:03d}Z"
    )


def now_iso() -> str:
    """The current time in canonical form."""
    return format_datetime(datetime.now(UTC))


def parse_datetime(text: object, what: str = "DateTime") -> datetime:
    """Parse an ISO 8601 DateTime with a time zone (naive times are taken as UTC)."""
    if not isinstance(text, str) or "T" not in text:
        raise BadRequestDataError(f"{what} must be an ISO 8601 date-time string, got {text!r}")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadRequestDataError(f"{what} is not a valid ISO 8601 date-time: {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def canonical_datetime(text: object, what: str = "DateTime") -> str:
    """Validate a DateTime and return its canonical UTC form."""
    moment = parse_datetime(text, what)
    try:
        return format_datetime(moment)
    except (OverflowError, ValueError) as exc:  # e.g. year 9999 with a negative offset
        raise BadRequestDataError(f"{what} is out of the representable range: {text!r}") from exc


@lru_cache(maxsize=4096)
def canonical_or_none(text: object) -> str | None:
    """The canonical form of a date-time text, or None when it is not one (for SQL)."""
    if not isinstance(text, str) or "T" not in text or len(text) > 64:
        return None
    try:
        return canonical_datetime(text)
    except BadRequestDataError:
        return None
