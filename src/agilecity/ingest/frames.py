"""Device payloads: UltraLight 2.0 text and JSON objects, parsed into measure groups.

UltraLight 2.0 (FIWARE IoT Agent UL manual): ``key|value`` pairs separated by ``|``;
several measure groups separated by ``#``, each becoming its own update; a group may
start with a timestamp field (``2016-06-13T00:35:30Z|lle|100``). Values are untyped text.
JSON (IoT Agent JSON): an object of measure name -> value, or an array of such objects;
the ``TimeInstant`` member carries the observation time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import orjson

from agilecity.broker.timeutil import canonical_or_none
from agilecity.errors import AgileCityError

_KEY = re.compile(r"^[A-Za-z0-9_\-.:]{1,64}$")
TIMESTAMP_KEY = "TimeInstant"
MAX_GROUPS = 100
MAX_MEASURES = 200


class FrameError(AgileCityError):
    """A device payload that cannot be parsed."""

    status = 400
    error_type = "BadRequestData"
    title = "Malformed device frame"


@dataclass
class MeasureGroup:
    """Measures observed together, with their time when the device gave one."""

    measures: list[tuple[str, object]] = field(default_factory=list)
    timestamp: str | None = None


def _timestamp(text: str) -> str | None:
    """The canonical form of a date-time, or None when the text is not one."""
    if len(text) < 10 or not text[:4].isdigit() or text[4] != "-":
        return None
    return canonical_or_none(text)


def _check_key(key: str) -> str:
    if not _KEY.match(key):
        raise FrameError(f"invalid measure name {key[:40]!r}")
    return key


def parse_ultralight(text: str) -> list[MeasureGroup]:
    """Measure groups of an UltraLight 2.0 payload; raises FrameError."""
    text = text.strip()
    if not text:
        raise FrameError("empty payload")
    raw_groups = text.split("#")
    if len(raw_groups) > MAX_GROUPS:
        raise FrameError(f"more than {MAX_GROUPS} measure groups")
    groups: list[MeasureGroup] = []
    for raw in raw_groups:
        fields = [f.strip() for f in raw.strip().split("|")]
        group = MeasureGroup()
        if len(fields) % 2 == 1:
            stamp = _timestamp(fields[0])
            if stamp is None:
                raise FrameError(f"odd number of fields and no timestamp in {raw[:60]!r}")
            group.timestamp = stamp
            fields = fields[1:]
        if not fields:
            raise FrameError("a measure group holds no measure")
        if len(fields) // 2 > MAX_MEASURES:
            raise FrameError(f"more than {MAX_MEASURES} measures in a group")
        for i in range(0, len(fields), 2):
            group.measures.append((_check_key(fields[i]), fields[i + 1]))
        groups.append(group)
    return groups


def _json_group(item: object) -> MeasureGroup:
    if not isinstance(item, dict) or not item:
        raise FrameError("a JSON measure group must be a non-empty object")
    if len(item) > MAX_MEASURES:
        raise FrameError(f"more than {MAX_MEASURES} measures in a group")
    group = MeasureGroup()
    for key, value in item.items():
        if key == TIMESTAMP_KEY:
            stamp = _timestamp(value) if isinstance(value, str) else None
            if stamp is None:
                raise FrameError(f"{TIMESTAMP_KEY} is not a date-time")
            group.timestamp = stamp
            continue
        group.measures.append((_check_key(key), value))
    if not group.measures:
        raise FrameError("a measure group holds no measure")
    return group


def parse_json(body: bytes | str) -> list[MeasureGroup]:
    """Measure groups of a JSON payload (object, or array of objects); raises FrameError."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FrameError(f"not JSON: {exc.msg}") from None
    items = data if isinstance(data, list) else [data]
    if not items or len(items) > MAX_GROUPS:
        raise FrameError(f"a JSON payload holds 1 to {MAX_GROUPS} measure groups")
    return [_json_group(item) for item in items]


def parse_payload(body: bytes) -> list[MeasureGroup]:
    """JSON when the payload starts like JSON, UltraLight otherwise."""
    head = body.lstrip()[:1]
    if head in (b"{", b"["):
        return parse_json(body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError("payload is not UTF-8 text") from None
    if "\x00" in text:
        raise FrameError("payload holds a NUL character")
    return parse_ultralight(text)
