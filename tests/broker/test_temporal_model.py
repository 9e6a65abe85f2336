"""Pure functions of the temporal model: durations, aggregation periods, history records.

``agilecity.broker.temporal`` does no I/O: these tests call it directly, with hand-computed
expectations (ISO 8601 durations, calendar-month arithmetic, population deviation).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from agilecity.broker.temporal import (
    AGGREGATION_METHODS,
    MAX_PERIODS,
    Aggregate,
    Duration,
    HistoryRecord,
    TemporalParams,
    history_records,
    parse_duration,
    periods,
)
from agilecity.errors import BadRequestDataError

ENTITY = "urn:ngsi-ld:Sensor:S1"
TEMP = "https://uri.etsi.org/ngsi-ld/default-context/temperature"
HUMIDITY = "https://uri.etsi.org/ngsi-ld/default-context/humidity"
NORTH = "urn:ngsi-ld:Dataset:north"
SOUTH = "urn:ngsi-ld:Dataset:south"
T0 = "2024-01-01T00:00:00.000Z"
T1 = "2024-01-01T01:00:00.000Z"
T2 = "2024-01-01T02:00:00.000Z"


# -- parse_duration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "months", "seconds"),
    [
        ("P1Y2M3DT4H5M6S", 14, 3 * 86400 + 4 * 3600 + 5 * 60 + 6),
        ("P2W", 0, 14 * 86400),
        ("PT0S", 0, 0),
        ("PT1.5S", 0, 1.5),
        ("P1D", 0, 86400),
        ("PT6H", 0, 6 * 3600),
        ("P1M", 1, 0),
        ("PT1M", 0, 60),
        ("P1Y", 12, 0),
        ("P0D", 0, 0),
        ("P1MT1H", 1, 3600),
    ],
)
def test_parse_duration(text: str, months: int, seconds: float) -> None:
    duration = parse_duration(text)
    assert duration == Duration(months, seconds)
    assert duration.months == months
    assert duration.seconds == pytest.approx(seconds, rel=0, abs=0)


@pytest.mark.parametrize("text", ["PT0S", "P0D", "P0Y0M0DT0H0M0S"])
def test_zero_durations_are_zero(text: str) -> None:
    assert parse_duration(text).is_zero


@pytest.mark.parametrize("text", ["P1D", "PT1S", "P1M", "PT0.001S"])
def test_nonzero_durations_are_not_zero(text: str) -> None:
    assert not parse_duration(text).is_zero


@pytest.mark.parametrize(
    "text", ["P", "PT", "1D", "P1H", "", "P1DT", "PT1D", "P1.5D", "P-1D", "1Y", "p1d", "P1S"]
)
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(BadRequestDataError) as caught:
        parse_duration(text)
    assert caught.value.status == 400
    assert "aggrPeriodDuration" in caught.value.detail


# -- periods -----------------------------------------------------------------------------


def test_daily_periods() -> None:
    assert periods(
        "2024-01-01T00:00:00.000Z", "2024-01-04T00:00:00.000Z", parse_duration("P1D")
    ) == [
        ("2024-01-01T00:00:00.000Z", "2024-01-02T00:00:00.000Z"),
        ("2024-01-02T00:00:00.000Z", "2024-01-03T00:00:00.000Z"),
        ("2024-01-03T00:00:00.000Z", "2024-01-04T00:00:00.000Z"),
    ]


def test_last_period_extends_past_the_end() -> None:
    """Whole periods cover [start, end): the last one may end after the range."""
    assert periods(
        "2024-01-01T10:00:00.000Z", "2024-01-02T11:00:00.000Z", parse_duration("P1D")
    ) == [
        ("2024-01-01T10:00:00.000Z", "2024-01-02T10:00:00.000Z"),
        ("2024-01-02T10:00:00.000Z", "2024-01-03T10:00:00.000Z"),
    ]


def test_six_hour_periods_cross_midnight_and_canonicalise() -> None:
    assert periods("2024-03-01T15:30:00+01:00", "2024-03-02T06:00:00Z", parse_duration("PT6H")) == [
        ("2024-03-01T14:30:00.000Z", "2024-03-01T20:30:00.000Z"),
        ("2024-03-01T20:30:00.000Z", "2024-03-02T02:30:00.000Z"),
        ("2024-03-02T02:30:00.000Z", "2024-03-02T08:30:00.000Z"),
    ]


def test_calendar_months_across_a_leap_february() -> None:
    assert periods(
        "2024-01-15T12:00:00.000Z", "2024-04-01T00:00:00.000Z", parse_duration("P1M")
    ) == [
        ("2024-01-15T12:00:00.000Z", "2024-02-15T12:00:00.000Z"),
        ("2024-02-15T12:00:00.000Z", "2024-03-15T12:00:00.000Z"),
        ("2024-03-15T12:00:00.000Z", "2024-04-15T12:00:00.000Z"),
    ]


def test_calendar_months_from_the_first_have_their_true_lengths() -> None:
    found = periods("2023-12-01T00:00:00.000Z", "2024-04-01T00:00:00.000Z", parse_duration("P1M"))
    assert found == [
        ("2023-12-01T00:00:00.000Z", "2024-01-01T00:00:00.000Z"),
        ("2024-01-01T00:00:00.000Z", "2024-02-01T00:00:00.000Z"),
        ("2024-02-01T00:00:00.000Z", "2024-03-01T00:00:00.000Z"),
        ("2024-03-01T00:00:00.000Z", "2024-04-01T00:00:00.000Z"),
    ]


def test_january_31_plus_one_month_is_february_29_in_a_leap_year() -> None:
    found = periods("2024-01-31T00:00:00.000Z", "2024-02-10T00:00:00.000Z", parse_duration("P1M"))
    assert found == [("2024-01-31T00:00:00.000Z", "2024-02-29T00:00:00.000Z")]


def test_january_31_plus_one_month_is_february_28_otherwise() -> None:
    found = periods("2023-01-31T00:00:00.000Z", "2023-02-10T00:00:00.000Z", parse_duration("P1M"))
    assert found == [("2023-01-31T00:00:00.000Z", "2023-02-28T00:00:00.000Z")]


def test_a_year_from_february_29() -> None:
    found = periods("2024-02-29T06:00:00.000Z", "2024-03-01T00:00:00.000Z", parse_duration("P1Y"))
    assert found == [("2024-02-29T06:00:00.000Z", "2025-02-28T06:00:00.000Z")]


def test_month_and_days_combined() -> None:
    found = periods("2024-01-31T00:00:00.000Z", "2024-03-05T00:00:00.000Z", parse_duration("P1M1D"))
    assert found[0] == ("2024-01-31T00:00:00.000Z", "2024-03-01T00:00:00.000Z")
    assert found[1][0] == "2024-03-01T00:00:00.000Z"
    assert len(found) == 2


def test_month_end_periods_stay_at_month_end() -> None:
    found = periods("2024-01-31T00:00:00.000Z", "2024-05-01T00:00:00.000Z", parse_duration("P1M"))
    assert found == [
        ("2024-01-31T00:00:00.000Z", "2024-02-29T00:00:00.000Z"),
        ("2024-02-29T00:00:00.000Z", "2024-03-31T00:00:00.000Z"),
        ("2024-03-31T00:00:00.000Z", "2024-04-30T00:00:00.000Z"),
        ("2024-04-30T00:00:00.000Z", "2024-05-31T00:00:00.000Z"),
    ]


def test_pt0s_is_one_period_over_the_whole_range() -> None:
    start, end = "2024-01-01T00:00:00.000Z", "2024-07-09T13:14:15.016Z"
    assert periods(start, end, parse_duration("PT0S")) == [(start, end)]


def test_empty_range_has_no_periods() -> None:
    assert periods(T0, T0, parse_duration("P1D")) == []


def test_fractional_seconds_periods() -> None:
    found = periods(
        "2024-01-01T00:00:00.000Z", "2024-01-01T00:00:03.000Z", parse_duration("PT1.5S")
    )
    assert found == [
        ("2024-01-01T00:00:00.000Z", "2024-01-01T00:00:01.500Z"),
        ("2024-01-01T00:00:01.500Z", "2024-01-01T00:00:03.000Z"),
    ]


def test_max_periods_is_allowed() -> None:
    found = periods(
        "2024-01-01T00:00:00.000Z", f"2024-01-01T00:00:{MAX_PERIODS // 1000:02d}.000Z",
        parse_duration("PT0.001S"),
    )  # fmt: skip
    assert len(found) == MAX_PERIODS
    assert found[-1] == ("2024-01-01T00:00:09.999Z", "2024-01-01T00:00:10.000Z")


def test_more_than_max_periods_is_refused() -> None:
    with pytest.raises(BadRequestDataError) as caught:
        periods("2024-01-01T00:00:00.000Z", "2024-01-01T00:00:10.001Z", parse_duration("PT0.001S"))
    assert str(MAX_PERIODS) in caught.value.detail
    with pytest.raises(BadRequestDataError):
        periods("2000-01-01T00:00:00.000Z", "2024-01-01T00:00:00.000Z", parse_duration("PT1H"))


# -- history records -----------------------------------------------------------------------


def inst(value: Any, at: str, *, dataset: str | None = None, now: str = T0) -> dict[str, Any]:
    found: dict[str, Any] = {"type": "Property", "value": value, "observedAt": at}
    if dataset is not None:
        found["datasetId"] = dataset
    found["createdAt"] = now
    found["modifiedAt"] = now
    return found


def doc(attrs: dict[str, list[dict[str, Any]]], now: str) -> dict[str, Any]:
    return {"id": ENTITY, "type": ["urn:Sensor"], "createdAt": T0, "modifiedAt": now,
            "attrs": attrs}  # fmt: skip


def summary(records: list[HistoryRecord]) -> list[tuple[str, str, Any, str, str | None]]:
    return [
        (r.attr, r.dataset_id, r.instance["value"], r.modified_at, r.deleted_at) for r in records
    ]


def test_creation_records_every_instance() -> None:
    after = doc({TEMP: [inst(20, T0), inst(21, T0, dataset=NORTH)], HUMIDITY: [inst(50, T0)]}, T0)
    records = history_records(None, after)
    assert summary(records) == [
        (TEMP, "", 20, T0, None),
        (TEMP, NORTH, 21, T0, None),
        (HUMIDITY, "", 50, T0, None),
    ]
    assert all(r.entity_id == ENTITY for r in records)
    assert records[1].instance == after["attrs"][TEMP][1]
    ids = [r.instance_id for r in records]
    assert len(set(ids)) == 3
    assert all(i.startswith("urn:ngsi-ld:Instance:") for i in ids)


def test_deleting_the_entity_records_nothing() -> None:
    before = doc({TEMP: [inst(20, T0)]}, T0)
    assert history_records(before, None) == []
    assert history_records(None, None) == []


def test_unchanged_instances_are_not_recorded() -> None:
    before = doc({TEMP: [inst(20, T0)], HUMIDITY: [inst(50, T0)]}, T0)
    after = doc({TEMP: [inst(22, T1, now=T1)], HUMIDITY: [inst(50, T0)]}, T1)
    assert summary(history_records(before, after)) == [(TEMP, "", 22, T1, None)]
    assert history_records(before, before) == []


def test_changed_metadata_is_recorded() -> None:
    before = doc({TEMP: [inst(20, T0)]}, T0)
    after = doc({TEMP: [inst(20, T1)]}, T1)  # same value, new observedAt
    records = history_records(before, after)
    assert summary(records) == [(TEMP, "", 20, T1, None)]
    assert records[0].instance["observedAt"] == T1


def test_datasets_are_compared_one_by_one() -> None:
    before = doc(
        {TEMP: [inst(20, T0), inst(30, T0, dataset=NORTH), inst(40, T0, dataset=SOUTH)]}, T0
    )
    after = doc(
        {TEMP: [inst(20, T0), inst(31, T1, dataset=NORTH, now=T1), inst(40, T0, dataset=SOUTH)]},
        T1,
    )
    assert summary(history_records(before, after)) == [(TEMP, NORTH, 31, T1, None)]


def test_a_new_dataset_instance_is_recorded_alone() -> None:
    before = doc({TEMP: [inst(20, T0)]}, T0)
    after = doc({TEMP: [inst(20, T0), inst(25, T1, dataset=SOUTH, now=T1)]}, T1)
    assert summary(history_records(before, after)) == [(TEMP, SOUTH, 25, T1, None)]


def test_removed_instances_are_recorded_as_deleted() -> None:
    before = doc({TEMP: [inst(20, T0), inst(30, T0, dataset=NORTH)], HUMIDITY: [inst(50, T0)]}, T0)
    after = doc({TEMP: [inst(20, T0)]}, T2)
    records = history_records(before, after)
    assert summary(records) == [(TEMP, NORTH, 30, T2, T2), (HUMIDITY, "", 50, T2, T2)]
    assert records[0].instance == before["attrs"][TEMP][1]
    assert records[1].instance == before["attrs"][HUMIDITY][0]


def test_replacing_one_dataset_by_another() -> None:
    before = doc({TEMP: [inst(30, T0, dataset=NORTH)]}, T0)
    after = doc({TEMP: [inst(30, T0, dataset=SOUTH)]}, T1)
    assert summary(history_records(before, after)) == [
        (TEMP, SOUTH, 30, T1, None),
        (TEMP, NORTH, 30, T1, T1),
    ]


def test_record_dataset_id_of_the_default_instance_is_empty() -> None:
    record = HistoryRecord(ENTITY, TEMP, inst(1, T0), "urn:ngsi-ld:Instance:x", T0)
    assert record.dataset_id == ""
    record = HistoryRecord(ENTITY, TEMP, inst(1, T0, dataset=NORTH), "urn:ngsi-ld:Instance:y", T0)
    assert record.dataset_id == NORTH


# -- TemporalParams ----------------------------------------------------------------------------


def test_bounds_of_each_timerel() -> None:
    """after: [timeAt, ∞); before: (-∞, timeAt); between: [timeAt, endTimeAt)."""
    after = TemporalParams(timerel="after", time_at="2024-01-01T01:00:00+01:00").validate()
    assert after.bounds() == ("2024-01-01T00:00:00.000Z", None)
    before = TemporalParams(timerel="before", time_at=T1).validate()
    assert before.bounds() == (None, T1)
    between = TemporalParams(timerel="between", time_at=T0, end_time_at=T2).validate()
    assert between.bounds() == (T0, T2)
    assert TemporalParams().validate().bounds() == (None, None)


@pytest.mark.parametrize(
    "params",
    [
        TemporalParams(timerel="after"),
        TemporalParams(timerel="between", time_at=T0),
        TemporalParams(timerel="between", time_at=T1, end_time_at=T0),
        TemporalParams(timerel="between", time_at=T1, end_time_at=T1),
        TemporalParams(timerel="during", time_at=T0),
        TemporalParams(time_at=T0),
        TemporalParams(timerel="after", time_at="yesterday"),
        TemporalParams(timeproperty="deletedAt"),  # type: ignore[arg-type]
        TemporalParams(last_n=0),
        TemporalParams(last_n=-1),
        TemporalParams(aggregated=True),
        TemporalParams(aggregated=True, aggr_methods=["avg", "median"]),
    ],
)
def test_invalid_parameters(params: TemporalParams) -> None:
    with pytest.raises(BadRequestDataError):
        params.validate()


# -- Aggregate.value -------------------------------------------------------------------------


def numeric(values: list[float], distinct: int | None = None) -> Aggregate:
    return Aggregate(
        count=len(values),
        distinct=len(set(values)) if distinct is None else distinct,
        numeric_count=len(values),
        total=sum(values),
        minimum=min(values),
        maximum=max(values),
        sum_squares=sum(v * v for v in values),
    )


def test_aggregate_values() -> None:
    aggregate = numeric([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])
    assert {m: aggregate.value(m) for m in AGGREGATION_METHODS} == {
        "totalCount": 8,
        "distinctCount": 5,
        "sum": 40.0,
        "avg": 5.0,
        "min": 2.0,
        "max": 9.0,
        "stddev": 2.0,  # the population deviation (the sample one would be 2.138...)
        "sumsq": 232.0,
    }


def test_stddev_is_the_population_deviation() -> None:
    assert numeric([1.0, 2.0, 3.0, 4.0]).value("stddev") == pytest.approx(math.sqrt(1.25))
    assert numeric([7.5]).value("stddev") == 0.0
    assert numeric([3.0, 3.0, 3.0]).value("stddev") == 0.0


def test_non_numeric_values_only_count() -> None:
    aggregate = Aggregate(
        count=3, distinct=2, numeric_count=0, total=None, minimum=None, maximum=None,
        sum_squares=None,
    )  # fmt: skip
    assert aggregate.value("totalCount") == 3
    assert aggregate.value("distinctCount") == 2
    for method in ("sum", "avg", "min", "max", "stddev", "sumsq"):
        assert aggregate.value(method) is None


def test_mixed_values_use_the_numbers_only() -> None:
    aggregate = Aggregate(
        count=4, distinct=4, numeric_count=2, total=10.0, minimum=4.0, maximum=6.0,
        sum_squares=52.0,
    )  # fmt: skip
    assert aggregate.value("totalCount") == 4
    assert aggregate.value("avg") == 5.0
    assert aggregate.value("stddev") == 1.0
