"""Property tests: the query parsers and the payload normaliser fail only with domain errors.

Whatever the text or the JSON, they either succeed or raise a 400 from ``errors.py``, never
an ``IndexError``, ``RecursionError``, ``TypeError``... that the API would answer as a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agilecity.broker.context import core_term_map
from agilecity.broker.entities import parse_attributes, parse_entity
from agilecity.broker.geo import parse_geo_query
from agilecity.broker.query import parse_q, parse_scope_q, parse_type_expression
from agilecity.errors import AgileCityError

TERMS = core_term_map()
NOW = "2026-12-01T00:00:00.000Z"
QUERY_CHARS = 'ab.[]()=!~<>;|,"\\0123456789:-TZ/#* \t\n\x00é'
TEXTS = st.text(max_size=80) | st.text(alphabet=QUERY_CHARS, max_size=60)

KEYS = ["id", "type", "value", "object", "location", "coordinates", "observedAt", "datasetId",
        "languageMap", "vocab", "json", "valueList", "objectList", "scope", "@context",
        "unitCode", "name", "Point", "LineString", "Polygon", "GeoProperty", "Property",
        "Relationship", "LanguageProperty", "urn:ngsi-ld:null", "createdAt", "lang"]  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(KEYS)
    | st.just("urn:ngsi-ld:T:1")
    | st.just("2026-01-01T00:00:00Z")
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=5),
    max_leaves=25,
)


def fails_only_with_domain_errors(call: Callable[[], object]) -> None:
    """Run call; any exception must be a client error of the domain tree."""
    try:
        call()
    except Exception as exc:  # the property: nothing else escapes
        assert isinstance(exc, AgileCityError), repr(exc)
        assert 400 <= exc.status < 500, repr(exc)


@settings(max_examples=400, deadline=None)
@given(TEXTS)
def test_query_languages_fail_only_with_domain_errors(text: str) -> None:
    for parse in (parse_q, parse_scope_q, parse_type_expression):
        fails_only_with_domain_errors(lambda: parse(text))  # noqa: B023 - called at once


@settings(max_examples=300, deadline=None)
@given(TEXTS, st.sampled_from(["Point", "LineString", "Polygon", "MultiPolygon", "x"]), TEXTS)
def test_geo_queries_fail_only_with_domain_errors(georel: str, geometry: str, coords: str) -> None:
    fails_only_with_domain_errors(lambda: parse_geo_query(georel, geometry, coords, None))
    fails_only_with_domain_errors(
        lambda: parse_geo_query("near;maxDistance==1", geometry, coords, "location")
    )


@settings(max_examples=400, deadline=None)
@given(JSON)
def test_entity_payloads_fail_only_with_domain_errors(payload: Any) -> None:
    fails_only_with_domain_errors(lambda: parse_entity(payload, TERMS, NOW))
    if isinstance(payload, dict):
        with_id = {**payload, "id": "urn:ngsi-ld:T:1", "type": "T"}
        fails_only_with_domain_errors(lambda: parse_entity(with_id, TERMS, NOW))
        for allow_null in (False, True):
            fails_only_with_domain_errors(
                lambda: parse_attributes(payload, TERMS, NOW, allow_null=allow_null)  # noqa: B023
            )


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), JSON, max_size=4))
def test_attribute_values_fail_only_with_domain_errors(attribute: dict[str, Any]) -> None:
    """One attribute shaped like NGSI-LD (members from the spec, values anything)."""
    payload = {"id": "urn:ngsi-ld:T:1", "type": "T", "a": attribute}
    fails_only_with_domain_errors(lambda: parse_entity(payload, TERMS, NOW))
    fails_only_with_domain_errors(
        lambda: parse_attributes({"a": attribute}, TERMS, NOW, allow_null=True)
    )
