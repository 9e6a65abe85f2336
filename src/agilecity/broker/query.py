"""The NGSI-LD query languages (clause 4.9 q, 4.19 scopeQ, type expressions) parsed to an AST.

The AST is plain frozen dataclasses; names stay as the client wrote them (compacted terms)
and are expanded by the broker with the request's @context before the store compiles them.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Literal as Lit
from typing import NoReturn

from agilecity.broker.regex import DEFAULT_MAX_REGEX_LENGTH, check_pattern
from agilecity.errors import BadRequestDataError

LiteralKind = Lit["number", "string", "boolean", "datetime", "date", "time", "uri"]
ComparisonOp = Lit["==", "!=", ">", ">=", "<", "<="]


@dataclass(frozen=True)
class AttrPath:
    """Where a query term looks: an attribute, then sub-attributes, then compound members.

    ``temperature.observedAt`` -> attr="temperature", sub_attrs=("observedAt",);
    ``address[city]`` -> attr="address", compound=("city",).
    """

    attr: str
    sub_attrs: tuple[str, ...] = ()
    compound: tuple[str, ...] = ()


@dataclass(frozen=True)
class Value:
    """A literal in a query; datetimes are canonical UTC ``YYYY-MM-DDTHH:MM:SS.fffZ``."""

    kind: LiteralKind
    value: int | float | str | bool


@dataclass(frozen=True)
class Range:
    """``low..high``, both ends included."""

    low: Value
    high: Value


@dataclass(frozen=True)
class Comparison:
    """``path op value``; ``value`` is a list for ``a==1,2,3`` and a Range for ``a==1..5``."""

    path: AttrPath
    op: ComparisonOp
    value: Value | Range | tuple[Value, ...]


@dataclass(frozen=True)
class Pattern:
    """``path~=regex`` (or ``!~=`` when negated)."""

    path: AttrPath
    regex: str
    negated: bool = False


@dataclass(frozen=True)
class Exists:
    """``path`` alone (exists) or ``!path`` (does not exist)."""

    path: AttrPath
    negated: bool = False


@dataclass(frozen=True)
class And:
    """All terms hold (``;``)."""

    terms: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    """At least one term holds (``|``)."""

    terms: tuple[Node, ...]


@dataclass(frozen=True)
class ScopeMatch:
    """A scopeQ leaf: ``/a/b`` matches exactly, ``/a/b/#`` matches it and its descendants."""

    path: str
    descendants: bool = False


@dataclass(frozen=True)
class TypeName:
    """A type-expression leaf: the entity has this type."""

    name: str


Node = Comparison | Pattern | Exists | And | Or | ScopeMatch | TypeName


# --- Parsers ---------------------------------------------------------------------------------
#
# Grammar decisions (clause 4.9 leaves some of these open):
# * Names (attributes, sub-attributes, compound members, types) are ASCII letters, digits and
#   ``_ : / # -``, so ``schema:name`` and ``https://schema.org/name`` work. None of those
#   characters is an operator or separator of q, so they never clash with the grammar; ``#``
#   only means "descendants" in scopeQ, which has no names. The one clash is ``.``, which
#   separates sub-attributes but also occurs in IRIs: inside a segment that contains ``://``
#   the dots up to the IRI's last ``/`` or ``#`` belong to the IRI, so the IRI's final path
#   segment (or fragment) cannot contain a dot; ``https://x.org/ns#temp.observedAt`` is
#   ``https://x.org/ns#temp`` plus sub-attribute ``observedAt``. Type names have no
#   sub-attributes, so there ``.`` is simply a name character.
# * Whitespace (space, tab, CR, LF) may separate tokens; it may not occur inside a name or an
#   unquoted value. An unquoted regex is trimmed; quote a regex whose edges are spaces.
# * Unquoted values: ``true``/``false``; anything starting with a digit, ``-``, ``+`` or ``.``
#   must be a number, date, time or dateTime (a typo such as ``2024-1-31`` is an error rather
#   than silently becoming a URI); anything else is a URI, ending at whitespace, ``;|(),"``
#   or ``..`` (always the range operator).
# * dateTimes without an offset are taken as UTC; fractional seconds are truncated to
#   milliseconds. Times keep the text as written, minus a trailing ``Z`` (they are UTC);
#   times with a numeric offset are rejected.
# * In quoted strings ``\"`` and ``\\`` are escapes; any other backslash is kept as written,
#   so ``"\d+"`` is the regex ``\d+``.
# * Nested groups of the same operator are flattened: ``a;(b;c)`` is And((a, b, c)).

MAX_TEXT_LENGTH = 8192
MAX_DEPTH = 32
_MAX_NUMBER_LENGTH = 100  # int() refuses over 4300 digits; no real query needs 100

_WS = " \t\r\n"
_TERM_END = ("", ";", "|", ")")
_CMP_OPS: tuple[ComparisonOp, ...] = ("==", "!=", ">=", "<=", ">", "<")
_VALUE_STOP = frozenset(_WS + ';|(),"')
_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_:/#-")
_PATH_CHARS = _NAME_CHARS | {"."}  # also the type-name characters
_SCOPE_CHARS = frozenset(string.ascii_letters + string.digits + "_-")
_RANGE_KINDS = frozenset({"number", "string", "datetime", "date", "time"})

_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_DATETIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(Z|[+-][0-9]{2}:[0-9]{2})?"
)
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_TIME = re.compile(r"([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?Z?")
# A dot followed by ``scheme://`` starts a new IRI segment, even inside an IRI segment.
_NEXT_IRI = re.compile(r"\.[A-Za-z][A-Za-z0-9-]*://")


def _snip(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _join(cls: type[And] | type[Or], terms: list[Node]) -> Node:
    if len(terms) == 1:
        return terms[0]
    flat: list[Node] = []
    for term in terms:
        if isinstance(term, And | Or) and isinstance(term, cls):
            flat.extend(term.terms)
        else:
            flat.append(term)
    return cls(tuple(flat))


class _Parser:
    """Recursive descent over one text; the depth is bounded by MAX_DEPTH parentheses."""

    def __init__(
        self,
        text: str,
        lang: str,
        or_ops: tuple[str, ...],
        max_regex_length: int = DEFAULT_MAX_REGEX_LENGTH,
    ) -> None:
        self.text = text
        self.lang = lang
        self.or_ops = or_ops
        self.max_regex_length = max_regex_length
        self.pos = 0

    def fail(self, message: str, pos: int | None = None) -> NoReturn:
        at = self.pos if pos is None else pos
        where = "at end of input" if at >= len(self.text) else f"at character {at + 1}"
        raise BadRequestDataError(f"Invalid {self.lang}: {message} ({where})")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _WS:
            self.pos += 1

    def parse(self, leaf: Callable[[], Node]) -> Node:
        if len(self.text) > MAX_TEXT_LENGTH:
            raise BadRequestDataError(
                f"Invalid {self.lang}: longer than {MAX_TEXT_LENGTH} characters"
            )
        if not self.text.strip(_WS):
            raise BadRequestDataError(f"Invalid {self.lang}: the expression is empty")
        node = self.disjunction(leaf, 0)
        self.skip_ws()
        if self.pos < len(self.text):
            ch = self.peek()
            self.fail("unmatched ')'" if ch == ")" else f"unexpected {ch!r}")
        return node

    def disjunction(self, leaf: Callable[[], Node], depth: int) -> Node:
        terms = [self.conjunction(leaf, depth)]
        self.skip_ws()
        while self.peek() in self.or_ops:
            self.pos += 1
            terms.append(self.conjunction(leaf, depth))
            self.skip_ws()
        return _join(Or, terms)

    def conjunction(self, leaf: Callable[[], Node], depth: int) -> Node:
        terms = [self.factor(leaf, depth)]
        self.skip_ws()
        while self.peek() == ";":
            self.pos += 1
            terms.append(self.factor(leaf, depth))
            self.skip_ws()
        return _join(And, terms)

    def factor(self, leaf: Callable[[], Node], depth: int) -> Node:
        self.skip_ws()
        if self.peek() != "(":
            return leaf()
        if depth >= MAX_DEPTH:
            self.fail(f"parentheses nested deeper than {MAX_DEPTH}")
        opened = self.pos
        self.pos += 1
        node = self.disjunction(leaf, depth + 1)
        self.skip_ws()
        if self.peek() != ")":
            self.fail(f"expected ')' to close the '(' at character {opened + 1}")
        self.pos += 1
        return node

    # --- q -----------------------------------------------------------------------------------

    def q_term(self) -> Node:
        start = self.pos
        if self.peek() == "!":
            self.pos += 1
            self.skip_ws()
            path = self.attr_path()
            self.skip_ws()
            if self.peek() not in _TERM_END:
                self.fail(
                    "'!' only tests that an attribute does not exist; use != to compare", start
                )
            return Exists(path, negated=True)
        path = self.attr_path()
        self.skip_ws()
        if self.peek() in _TERM_END:
            return Exists(path)
        for pattern_op in ("!~=", "~="):
            if self.text.startswith(pattern_op, self.pos):
                self.pos += len(pattern_op)
                return Pattern(path, self.regex(), negated=pattern_op == "!~=")
        for op in _CMP_OPS:
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return Comparison(path, op, self.comparison_value(op))
        self.fail("expected an operator (==, !=, >, >=, <, <=, ~=, !~=), ';', '|' or ')'")

    def attr_path(self) -> AttrPath:
        text, start = self.text, self.pos
        end = start
        while end < len(text) and text[end] in _PATH_CHARS:
            end += 1
        if end == start:
            self.fail("expected an attribute name")
        raw = text[start:end]
        names: list[str] = []
        seg = 0
        while True:
            seg_end = self._segment_end(raw, seg)
            if seg_end == seg:
                what = "sub-attribute name" if names else "attribute name"
                self.fail(f"empty {what}", start + seg)
            names.append(raw[seg:seg_end])
            if seg_end >= len(raw):
                break
            seg = seg_end + 1
        self.pos = end
        members: list[str] = []
        while self.peek() == "[":
            m_start = m_end = self.pos + 1
            while m_end < len(text) and text[m_end] in _NAME_CHARS:
                m_end += 1
            if m_end == m_start:
                self.fail("expected a compound member name after '['", m_start)
            if m_end >= len(text) or text[m_end] != "]":
                self.fail("expected ']' after the compound member name", m_end)
            members.append(text[m_start:m_end])
            self.pos = m_end + 1
        return AttrPath(names[0], tuple(names[1:]), tuple(members))

    @staticmethod
    def _segment_end(raw: str, start: int) -> int:
        """Where the path segment starting at ``start`` ends (see the IRI rule above)."""
        dot = raw.find(".", start)
        head = raw[start:] if dot < 0 else raw[start:dot]
        if "://" not in head:
            return len(raw) if dot < 0 else dot
        next_iri = _NEXT_IRI.search(raw, start + 1)
        limit = next_iri.start() if next_iri else len(raw)
        last_sep = max(raw.rfind("/", start, limit), raw.rfind("#", start, limit))
        dot = raw.find(".", last_sep, limit)
        return limit if dot < 0 else dot

    def comparison_value(self, op: ComparisonOp) -> Value | Range | tuple[Value, ...]:
        first = self.value()
        self.skip_ws()
        if self.text.startswith("..", self.pos):
            if op not in ("==", "!="):
                self.fail(f"a range is only allowed with == or !=, not {op}")
            dots = self.pos
            self.pos += 2
            high = self.value()
            if first.kind != high.kind or first.kind not in _RANGE_KINDS:
                self.fail(
                    "a range needs two numbers, strings, dates, times or dateTimes of one kind",
                    dots,
                )
            self.skip_ws()
            if self.peek() == "," or self.text.startswith("..", self.pos):
                self.fail("a range cannot be combined with a value list or another range")
            return Range(first, high)
        if self.peek() != ",":
            return first
        if op not in ("==", "!="):
            self.fail(f"a value list is only allowed with == or !=, not {op}")
        items = [first]
        while self.peek() == ",":
            self.pos += 1
            items.append(self.value())
            self.skip_ws()
            if self.text.startswith("..", self.pos):
                self.fail("a range cannot be part of a value list")
        return tuple(items)

    def value(self) -> Value:
        self.skip_ws()
        if self.peek() == '"':
            return Value("string", self.quoted())
        text, start = self.text, self.pos
        end = start
        while end < len(text) and text[end] not in _VALUE_STOP and not text.startswith("..", end):
            end += 1
        if end == start:
            self.fail("expected a value")
        self.pos = end
        return self._literal(text[start:end], start)

    def _literal(self, token: str, pos: int) -> Value:
        if token in ("true", "false"):
            return Value("boolean", token == "true")
        if token[0] in "=<>!~":
            # "a>>3" or "a==!x": an operator where a value should start is a typo, not a URI.
            self.fail(f"unexpected {token[0]!r} where a value should start", pos)
        if token[0] not in "0123456789-+.":
            return Value("uri", token)
        if _NUMBER.fullmatch(token):
            if len(token) > _MAX_NUMBER_LENGTH:
                self.fail(f"number longer than {_MAX_NUMBER_LENGTH} characters", pos)
            if token.lstrip("-").isdigit():
                return Value("number", int(token))
            number = float(token)
            if not math.isfinite(number):
                self.fail(f"number {_snip(token)} is out of range", pos)
            return Value("number", number)
        if match := _DATETIME.fullmatch(token):
            return Value("datetime", self._datetime(match, token, pos))
        if match := _DATE.fullmatch(token):
            try:
                date(*(int(g) for g in match.groups()))
            except ValueError:
                self.fail(f"{_snip(token)} is not a valid date", pos)
            return Value("date", token)
        if match := _TIME.fullmatch(token):
            hour, minute, second = (int(g) for g in match.groups()[:3])
            if hour > 23 or minute > 59 or second > 59:
                self.fail(f"{_snip(token)} is not a valid time", pos)
            return Value("time", token.removesuffix("Z"))
        self.fail(f"{_snip(token)} is not a valid number, date, time or dateTime", pos)

    def _datetime(self, match: re.Match[str], token: str, pos: int) -> str:
        year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
        millis = int(((match.group(7) or "") + "000")[:3])  # truncated, never rounded up
        zone = match.group(8) or "Z"
        try:
            offset = timedelta()
            if zone != "Z":
                zone_h, zone_m = int(zone[1:3]), int(zone[4:6])
                if zone_h > 23 or zone_m > 59:
                    raise ValueError(zone)
                offset = timedelta(hours=zone_h, minutes=zone_m) * (-1 if zone[0] == "-" else 1)
            local = datetime(year, month, day, hour, minute, second, millis * 1000)
            utc = local.replace(tzinfo=timezone(offset)).astimezone(UTC)
        except (ValueError, OverflowError):
            self.fail(f"{_snip(token)} is not a valid dateTime", pos)
        return (
            f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
            f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
        )

    def quoted(self) -> str:
        text, start = self.text, self.pos
        out: list[str] = []
        i = start + 1
        while i < len(text):
            ch = text[i]
            if ch == '"':
                self.pos = i + 1
                return "".join(out)
            if ch == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
                ch = text[i + 1]
                i += 1
            out.append(ch)
            i += 1
        self.fail("unterminated string", start)

    def regex(self) -> str:
        self.skip_ws()
        start = self.pos
        if self.peek() == '"':
            regex = self.quoted()
        else:
            text, i, depth = self.text, start, 0
            while i < len(text):
                ch = text[i]
                if ch == "\\":  # an escaped character neither nests nor ends the regex
                    i += 2
                    continue
                if ch == "(":
                    depth += 1
                elif ch == ")":
                    if depth == 0:
                        break  # closes an enclosing group of the query
                    depth -= 1
                elif ch in ";|" and depth == 0:
                    break
                i += 1
            self.pos = min(i, len(text))
            regex = text[start : self.pos].rstrip(_WS)
            if not regex:
                self.fail("expected a regular expression", start)
        try:
            check_pattern(regex, "regular expression", self.max_regex_length)
        except BadRequestDataError as exc:
            self.fail(exc.detail, start)
        return regex

    # --- scopeQ and type -----------------------------------------------------------------------

    def scope(self) -> Node:
        text = self.text
        if self.peek() != "/":
            self.fail("a scope must start with '/'")
        segments: list[str] = []
        descendants = False
        while self.peek() == "/" and not descendants:
            self.pos += 1
            if self.peek() == "#":
                self.pos += 1
                descendants = True
                continue
            seg_start = self.pos
            while self.pos < len(text) and text[self.pos] in _SCOPE_CHARS:
                self.pos += 1
            if self.pos == seg_start:
                self.fail("expected a scope segment (letters, digits, '_' or '-') or '#'")
            segments.append(text[seg_start : self.pos])
        if self.peek() not in _TERM_END and self.peek() not in _WS:
            after = "after '#'" if descendants else "in a scope"
            self.fail(f"{self.peek()!r} is not allowed {after}")
        return ScopeMatch("/" + "/".join(segments), descendants)

    def type_name(self) -> Node:
        text, start = self.text, self.pos
        while self.pos < len(text) and text[self.pos] in _PATH_CHARS:
            self.pos += 1
        if self.pos == start:
            self.fail("expected a type name")
        return TypeName(text[start : self.pos])


def parse_q(text: str, max_regex_length: int = DEFAULT_MAX_REGEX_LENGTH) -> Node:
    """Parse an NGSI-LD ``q`` expression (clause 4.9) or raise BadRequestDataError.

    Regular expressions (``~=``) are checked by ``broker.regex`` (RE2, linear time)."""
    parser = _Parser(text, "q", ("|",), max_regex_length)
    return parser.parse(parser.q_term)


def parse_scope_q(text: str) -> Node:
    """Parse an NGSI-LD ``scopeQ`` expression (clause 4.19) or raise BadRequestDataError."""
    parser = _Parser(text, "scopeQ", ("|",))
    return parser.parse(parser.scope)


def parse_type_expression(text: str) -> Node:
    """Parse a ``type`` query parameter (``,``/``|`` or, ``;`` and) or raise BadRequestDataError."""
    parser = _Parser(text, "type", (",", "|"))
    return parser.parse(parser.type_name)


def walk(node: Node) -> Iterator[Node]:
    """Yield ``node`` and every node below it, in pre-order."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        if isinstance(current, And | Or):
            stack.extend(reversed(current.terms))
