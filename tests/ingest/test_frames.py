"""UltraLight 2.0 and JSON device payloads, per the FIWARE IoT Agent manuals' examples."""

from __future__ import annotations

import pytest

from agilecity.ingest.frames import FrameError, parse_json, parse_payload, parse_ultralight
from agilecity.ingest.measures import MeasureError, fragment, typed_value
from agilecity.ingest.quantities import implausible


def test_ultralight_pairs_from_the_manual() -> None:
    # IoT Agent UL manual, "Measure Payload Syntax": t|15|k|abc
    (group,) = parse_ultralight("t|15|k|abc")
    assert group.measures == [("t", "15"), ("k", "abc")]
    assert group.timestamp is None


def test_ultralight_measure_groups_become_separate_groups() -> None:
    # the manual's "gps|1.2/3.4#t|10": two groups, two updates
    groups = parse_ultralight("gps|1.2/3.4#t|10")
    assert [g.measures for g in groups] == [[("gps", "1.2/3.4")], [("t", "10")]]


def test_ultralight_timestamp_prefix() -> None:
    # the manual's "2016-06-13T00:35:30Z|lle|100"
    (group,) = parse_ultralight("2016-06-13T00:35:30Z|lle|100")
    assert group.timestamp == "2016-06-13T00:35:30.000Z"
    assert group.measures == [("lle", "100")]


def test_ultralight_timestamp_with_offset_is_normalised_to_utc() -> None:
    (group,) = parse_ultralight("2026-12-01T10:00:00+01:00|t|3")
    assert group.timestamp == "2026-12-01T09:00:00.000Z"


@pytest.mark.parametrize(
    "text",
    ["", "   ", "t", "t|1|h", "|1", "t|1#", "not-a-date|t|1", "t|1|bad key|2", "a" * 70 + "|1"],
)
def test_malformed_ultralight_is_refused(text: str) -> None:
    with pytest.raises(FrameError):
        parse_ultralight(text)


def test_json_object_and_time_instant() -> None:
    (group,) = parse_json(b'{"t": 21.5, "h": 0.4, "TimeInstant": "2026-12-01T08:00:00Z"}')
    assert group.measures == [("t", 21.5), ("h", 0.4)]
    assert group.timestamp == "2026-12-01T08:00:00.000Z"


def test_json_array_is_several_groups() -> None:
    groups = parse_json(b'[{"t": 1}, {"t": 2}]')
    assert [g.measures for g in groups] == [[("t", 1)], [("t", 2)]]


@pytest.mark.parametrize(
    "body", [b"{", b"[]", b"{}", b"[1]", b'{"TimeInstant": "yesterday", "t": 1}', b'"t|1"']
)
def test_malformed_json_is_refused(body: bytes) -> None:
    with pytest.raises(FrameError):
        parse_json(body)


def test_payload_sniffing() -> None:
    assert parse_payload(b'{"t": 1}')[0].measures == [("t", 1)]
    assert parse_payload(b"t|1")[0].measures == [("t", "1")]
    with pytest.raises(FrameError):
        parse_payload(b"\xff\xfe")
    with pytest.raises(FrameError):
        parse_payload(b"t|1\x00")


@pytest.mark.parametrize(
    ("raw", "kind", "expected"),
    [
        ("21.5", "Number", 21.5),
        ("7", "Integer", 7),
        ("7.0", "Number", 7.0),
        ("true", "Boolean", True),
        ("0", "Boolean", False),
        ("occupied", "Text", "occupied"),
        ("2026-12-01T10:00:00Z", "DateTime", "2026-12-01T10:00:00.000Z"),
        ("50.69, 3.17", "geo:point", {"type": "Point", "coordinates": [3.17, 50.69]}),
    ],
)
def test_typed_values(raw: str, kind: str, expected: object) -> None:
    assert typed_value(raw, kind) == expected


@pytest.mark.parametrize(
    ("raw", "kind", "cause"),
    [
        ("abc", "Number", "invalid_value"),
        ("1.5", "Integer", "invalid_value"),
        ("nan", "Number", "out_of_range"),
        ("inf", "Number", "out_of_range"),
        ("maybe", "Boolean", "invalid_value"),
        ("91, 3", "geo:point", "out_of_range"),
        ("yesterday", "DateTime", "invalid_value"),
    ],
)
def test_wrong_values_name_their_cause(raw: str, kind: str, cause: str) -> None:
    with pytest.raises(MeasureError) as caught:
        typed_value(raw, kind)
    assert caught.value.cause == cause


def test_plausibility_table() -> None:
    assert implausible("NoiseLevelObserved", "LAeq", 55.0) is None
    assert implausible("NoiseLevelObserved", "LAeq", 400.0) is not None
    assert implausible("ParkingSpot", "status", "occupied") is None
    assert implausible("ParkingSpot", "status", "banana") is not None
    assert implausible("Streetlight", "status", "defectiveLamp") is None
    assert implausible("WeatherObserved", "relativeHumidity", 1.2) is not None
    assert implausible("Anything", "someUnknownMeasure", 1e9) is None


def test_integers_beyond_64_bits_are_refused() -> None:
    # PostgreSQL's jsonb returns 1e20 as an integer orjson cannot serialise (schemathesis)
    from agilecity.ingest.devices import Mapping

    mapping = Mapping("n", "count", "Integer", None, {})
    with pytest.raises(MeasureError) as caught:
        fragment("Thing", mapping, "n", str(10**20), "2026-12-01T10:00:00.000Z")
    assert caught.value.cause == "out_of_range"
    with pytest.raises(MeasureError):
        fragment("Thing", None, "n", 10**19, "2026-12-01T10:00:00.000Z")  # unmapped JSON int
    name, attr = fragment("Thing", mapping, "n", "42", "2026-12-01T10:00:00.000Z")
    assert (name, attr["value"]) == ("count", 42)
