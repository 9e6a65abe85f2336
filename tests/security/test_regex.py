"""Linear-time regular expressions: what is refused, and PostgreSQL reading them as RE2 does."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agilecity.broker.regex import check_pattern, posix_form, search
from agilecity.errors import BadRequestDataError


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        (r"(a)\1", r"backreferences (\1) are not supported"),
        ("(?=a)b", "lookahead (?=...) and (?!...) are not supported"),
        ("(?!a)b", "lookahead (?=...) and (?!...) are not supported"),
        ("(?<=a)b", "lookbehind (?<=...) and (?<!...) are not supported"),
        ("(?<!a)b", "lookbehind (?<=...) and (?<!...) are not supported"),
        ("(?P<x>a)", "named groups are not supported"),
        ("a(?i)b", "inline flags are not supported except one (?i) at the very start"),
        ("(?s).", "inline flags are not supported"),
        (r"\pL", r"the escape \p is not supported"),
        (r"a\Z", r"the escape \Z is not supported"),
        ("a\\", r"a trailing \ is not supported"),
        ("a{256}", "counted repetitions are limited to {255}"),
        ("a{", "write a literal { as \\{"),
        ("$*", "nothing to repeat"),
        ("a**", "a quantifier cannot follow another quantifier"),
        ("[a", "missing ]"),
        ("[[a]", "write a literal [ inside [...]"),
        ("[[:nope:]]", "unknown character class [:nope:]"),
        (r"[\D]", r"the escape \D is not supported inside [...]"),
        ("(" * 65 + ")" * 65, "groups are nested deeper than 64"),
        ("(", "missing )"),
        ("a{2,1}", "invalid repetition size"),
        ("x" * 1001, "longer than 1000 characters"),
        ("a\x00", "NUL"),
    ],
)
def test_refused_patterns_name_the_problem(pattern: str, fragment: str) -> None:
    with pytest.raises(BadRequestDataError) as caught:
        check_pattern(pattern, "idPattern")
    assert fragment in caught.value.detail
    assert caught.value.status == 400 and caught.value.error_type == "BadRequestData"


@pytest.mark.parametrize(
    "pattern",
    ["", "^urn:ngsi-ld:Parking.*", "(?i)^ok$", r"\bNord\b", "[[:digit:]]{2,}", r"a\.b",
     "(a|b)+?c", "[]a-]", r"[^\s\]]", "a{255}", "(?:x|y){0,3}z", "é+"],
)  # fmt: skip
def test_accepted_patterns(pattern: str) -> None:
    assert check_pattern(pattern, "idPattern") == pattern


def test_length_limit_is_a_parameter() -> None:
    assert check_pattern("x" * 10, "idPattern", 10) == "x" * 10
    with pytest.raises(BadRequestDataError, match="longer than 9 characters"):
        check_pattern("x" * 10, "idPattern", 9)


def test_pathological_pattern_runs_in_linear_time() -> None:
    # Python's re needs about 0.75 s for 24 a's and 4x more per 2 more; RE2 is linear.
    start = time.perf_counter()
    assert not search("(a+)+$", "a" * 1_000_000 + "b")
    assert search("(a+)+b$", "a" * 1_000_000 + "b")
    assert time.perf_counter() - start < 1.0


def test_word_boundaries_are_renamed_for_postgresql() -> None:
    assert posix_form(r"\bab\B") == r"\yab\Y"
    assert posix_form(r"\\b[\b]") == r"\\b[\b]"  # an escaped backslash; b inside brackets
    assert posix_form("[]b]") == "[]b]"


def test_dot_matches_newline_as_in_postgresql() -> None:
    assert search("a.b", "a\nb")


# --- the same accepted set and the same answers on PostgreSQL -------------------------------

ATOMS = ["a", "b", ".", r"\d", r"\w", r"\s", r"\b", r"\.", "[ab]", "[^a]", "[a-c]",
         "[[:alpha:]]", "^", "$", "(", ")", "(?:", "|", "*", "+", "?", "*?", "{2}", "{1,3}",
         "{2,}", "\\", "{", "}", "]", "[", r"\1", "(?=", "(?i)", "-", "é"]  # fmt: skip
PROBES = ["", "a", "ab", "ba", "aab", "a b", "a.b", "1a", "a\nb", "é", "abcabc", "b-a", "AB"]


def _pg_answers(conn: psycopg.Connection, pattern: str) -> list[bool] | str:
    """PostgreSQL's match of each probe, or its error message."""
    try:
        with conn.transaction():
            rows = conn.execute(
                "SELECT p ~ %s FROM unnest(%s::text[]) WITH ORDINALITY AS t(p, n) ORDER BY n",
                (posix_form(pattern), PROBES),
            ).fetchall()
    except psycopg.Error as exc:
        return str(exc)
    return [bool(r[0]) for r in rows]


@pytest.fixture(scope="module")
def pg(postgres_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        yield conn


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(ATOMS), min_size=1, max_size=6).map("".join))
def test_postgresql_accepts_and_agrees_with_every_accepted_pattern(
    pg: psycopg.Connection, pattern: str
) -> None:
    """Whatever check_pattern accepts, PostgreSQL runs without error and matches alike."""
    try:
        check_pattern(pattern, "idPattern")
    except BadRequestDataError:
        return
    expected = [search(pattern, probe) for probe in PROBES]
    # \w, \d, \s and [:class:] are ASCII in RE2 but locale-aware in PostgreSQL (documented).
    answers = _pg_answers(pg, pattern)
    assert not isinstance(answers, str), f"{pattern!r} accepted but PostgreSQL says {answers}"
    if not any(c in pattern for c in (r"\w", r"\b", "[[:", r"\s")):
        assert answers == expected, pattern
    else:
        ascii_only = [i for i, p in enumerate(PROBES) if p.isascii()]
        assert [answers[i] for i in ascii_only] == [expected[i] for i in ascii_only], pattern
