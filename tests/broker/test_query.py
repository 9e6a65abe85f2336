"""The NGSI-LD query language parsers: q, scopeQ and type expressions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agilecity.broker.query import (
    And,
    AttrPath,
    Comparison,
    ComparisonOp,
    Exists,
    Node,
    Or,
    Pattern,
    Range,
    ScopeMatch,
    TypeName,
    Value,
    parse_q,
    parse_scope_q,
    parse_type_expression,
    walk,
)
from agilecity.broker.regex import check_pattern
from agilecity.errors import BadRequestDataError


def cmp(attr: str, op: ComparisonOp, value: Value | Range | tuple[Value, ...]) -> Comparison:
    return Comparison(AttrPath(attr), op, value)


def num(n: int | float) -> Value:
    return Value("number", n)


def has(attr: str) -> Exists:
    return Exists(AttrPath(attr))


def q_error(text: str) -> str:
    with pytest.raises(BadRequestDataError) as info:
        parse_q(text)
    return info.value.detail


# --- q: terms ------------------------------------------------------------------------------


def test_existence_and_non_existence() -> None:
    assert parse_q("temperature") == has("temperature")
    assert parse_q("!temperature") == Exists(AttrPath("temperature"), negated=True)


@pytest.mark.parametrize("op", ["==", "!=", ">", ">=", "<", "<="])
def test_every_comparison_operator(op: ComparisonOp) -> None:
    assert parse_q(f"speed{op}5") == cmp("speed", op, num(5))


def test_and_of_comparisons() -> None:
    assert parse_q('a>1;b=="x"') == And(
        (cmp("a", ">", num(1)), cmp("b", "==", Value("string", "x")))
    )


def test_pattern_and_negated_pattern() -> None:
    assert parse_q("name~=^Park") == Pattern(AttrPath("name"), "^Park")
    assert parse_q("name!~=^Park") == Pattern(AttrPath("name"), "^Park", negated=True)


# --- q: attribute paths ----------------------------------------------------------------------


def test_sub_attribute_paths() -> None:
    assert parse_q("temperature.observedAt>=2024-01-31T10:00:00Z") == Comparison(
        AttrPath("temperature", ("observedAt",)),
        ">=",
        Value("datetime", "2024-01-31T10:00:00.000Z"),
    )
    assert parse_q("speed.accuracy.method") == Exists(AttrPath("speed", ("accuracy", "method")))


def test_compound_member_paths() -> None:
    assert parse_q('address[city]=="Madrid"') == Comparison(
        AttrPath("address", (), ("city",)), "==", Value("string", "Madrid")
    )
    assert parse_q("temperature.sensor[model][name]") == Exists(
        AttrPath("temperature", ("sensor",), ("model", "name"))
    )


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("schema:name", AttrPath("schema:name")),
        ("schema:name.observedAt", AttrPath("schema:name", ("observedAt",))),
        ("https://schema.org/name", AttrPath("https://schema.org/name")),
        ("https://www.w3.org/ns/v1.2/temp", AttrPath("https://www.w3.org/ns/v1.2/temp")),
        ("https://x.org/ns#temp.observedAt", AttrPath("https://x.org/ns#temp", ("observedAt",))),
        ("https://x.org/a[b:c]", AttrPath("https://x.org/a", (), ("b:c",))),
        ("a.https://y.org/b.c", AttrPath("a", ("https://y.org/b", "c"))),
        (
            "https://x.org/a.https://y.org/b",
            AttrPath("https://x.org/a", ("https://y.org/b",)),
        ),
        ("urn:ngsi-ld:x-y_z", AttrPath("urn:ngsi-ld:x-y_z")),
    ],
)
def test_iri_and_prefixed_names(text: str, path: AttrPath) -> None:
    assert parse_q(text) == Exists(path)


# --- q: values -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("42", num(42)),
        ("-7", num(-7)),
        ("0", num(0)),
        ("1.5", num(1.5)),
        ("-0.25", num(-0.25)),
        ("1e3", num(1000.0)),
        ("2.5E-2", num(0.025)),
        ('"hello"', Value("string", "hello")),
        ('""', Value("string", "")),
        ('"a;b|c)"', Value("string", "a;b|c)")),
        ('"say \\"hi\\""', Value("string", 'say "hi"')),
        ('"back\\\\slash"', Value("string", "back\\slash")),
        ('"\\d+"', Value("string", "\\d+")),
        ("true", Value("boolean", True)),
        ("false", Value("boolean", False)),
        ("2024-01-31T10:00:00Z", Value("datetime", "2024-01-31T10:00:00.000Z")),
        ("2024-01-31T10:00:00.5Z", Value("datetime", "2024-01-31T10:00:00.500Z")),
        ("2024-01-31T10:00:00.123456Z", Value("datetime", "2024-01-31T10:00:00.123Z")),
        ("2024-01-31T11:00:00+01:00", Value("datetime", "2024-01-31T10:00:00.000Z")),
        ("2024-01-01T00:30:00-01:30", Value("datetime", "2024-01-01T02:00:00.000Z")),
        ("2024-03-01T00:30:00+01:00", Value("datetime", "2024-02-29T23:30:00.000Z")),
        ("2024-01-31T10:00:00", Value("datetime", "2024-01-31T10:00:00.000Z")),
        ("2024-01-31", Value("date", "2024-01-31")),
        ("10:00:00Z", Value("time", "10:00:00")),
        ("10:00:00", Value("time", "10:00:00")),
        ("23:59:59.25Z", Value("time", "23:59:59.25")),
        ("urn:ngsi-ld:Building:1", Value("uri", "urn:ngsi-ld:Building:1")),
        ("https://example.org/x?y=1", Value("uri", "https://example.org/x?y=1")),
        ("Madrid", Value("uri", "Madrid")),
        ("True", Value("uri", "True")),
    ],
)
def test_literals(literal: str, value: Value) -> None:
    assert parse_q(f"a=={literal}") == cmp("a", "==", value)


def test_int_and_float_are_distinguished() -> None:
    node = parse_q("a==1;b==1.0")
    assert isinstance(node, And)
    first, second = node.terms
    assert isinstance(first, Comparison) and isinstance(first.value, Value)
    assert isinstance(second, Comparison) and isinstance(second.value, Value)
    assert type(first.value.value) is int and type(second.value.value) is float


def test_value_lists() -> None:
    assert parse_q("a==1,2,3") == cmp("a", "==", (num(1), num(2), num(3)))
    assert parse_q('a!="x","y"') == cmp("a", "!=", (Value("string", "x"), Value("string", "y")))
    assert parse_q("a==1, urn:x ,true") == cmp(
        "a", "==", (num(1), Value("uri", "urn:x"), Value("boolean", True))
    )


def test_ranges() -> None:
    assert parse_q("a==1..5") == cmp("a", "==", Range(num(1), num(5)))
    assert parse_q("a!=-1.5..2") == cmp("a", "!=", Range(num(-1.5), num(2)))
    assert parse_q("t==2024-01-01T00:00:00Z..2024-02-01T00:00:00+01:00") == cmp(
        "t",
        "==",
        Range(
            Value("datetime", "2024-01-01T00:00:00.000Z"),
            Value("datetime", "2024-01-31T23:00:00.000Z"),
        ),
    )
    assert parse_q('s=="a".."m"') == cmp(
        "s", "==", Range(Value("string", "a"), Value("string", "m"))
    )
    assert parse_q("d==2024-01-01..2024-12-31") == cmp(
        "d", "==", Range(Value("date", "2024-01-01"), Value("date", "2024-12-31"))
    )


# --- q: logic, precedence, whitespace --------------------------------------------------------


def test_and_is_flat() -> None:
    assert parse_q("a;b;c") == And((has("a"), has("b"), has("c")))
    assert parse_q("a|b|c") == Or((has("a"), has("b"), has("c")))


def test_and_binds_tighter_than_or() -> None:
    assert parse_q("a;b|c;d") == Or((And((has("a"), has("b"))), And((has("c"), has("d")))))
    assert parse_q("a|b;c") == Or((has("a"), And((has("b"), has("c")))))


def test_parentheses_group() -> None:
    assert parse_q("(a|b);c") == And((Or((has("a"), has("b"))), has("c")))
    assert parse_q("((a))") == has("a")
    assert parse_q("a;(b;c)") == And((has("a"), has("b"), has("c")))
    assert parse_q("(a|b)|(c;d)") == Or((has("a"), has("b"), And((has("c"), has("d")))))


def test_whitespace_between_tokens() -> None:
    assert parse_q(" ( a == 1 ; b ) | ! c ") == Or(
        (And((cmp("a", "==", num(1)), has("b"))), Exists(AttrPath("c"), negated=True))
    )
    assert parse_q("a == 1 .. 5") == cmp("a", "==", Range(num(1), num(5)))


# --- q: regular expressions ------------------------------------------------------------------


def test_unquoted_regex_counts_parentheses() -> None:
    assert parse_q("name~=(?i)ab(c|d)") == Pattern(AttrPath("name"), "(?i)ab(c|d)")
    assert parse_q("name~=(a;b)|c") == Or((Pattern(AttrPath("name"), "(a;b)"), has("c")))


def test_unquoted_regex_ends_at_separators_and_unmatched_paren() -> None:
    assert parse_q("(name~=^a(b)c);x") == And((Pattern(AttrPath("name"), "^a(b)c"), has("x")))
    assert parse_q("name~=a b ;x") == And((Pattern(AttrPath("name"), "a b"), has("x")))
    assert parse_q("name~=x\\|y\\)") == Pattern(AttrPath("name"), "x\\|y\\)")


def test_quoted_regex() -> None:
    assert parse_q('name~="a;b|c\\)"') == Pattern(AttrPath("name"), "a;b|c\\)")
    assert parse_q('name~="\\d+\\"x"') == Pattern(AttrPath("name"), '\\d+"x')


# --- scopeQ and type ----------------------------------------------------------------------


def test_scopes() -> None:
    assert parse_scope_q("/Madrid/Gardens/ParqueNorte") == ScopeMatch("/Madrid/Gardens/ParqueNorte")
    assert parse_scope_q("/Madrid/#") == ScopeMatch("/Madrid", True)
    assert parse_scope_q("/#") == ScopeMatch("/", True)
    assert parse_scope_q("/a_b/c-1") == ScopeMatch("/a_b/c-1")


def test_scope_logic() -> None:
    a, b, c = ScopeMatch("/a"), ScopeMatch("/b"), ScopeMatch("/c", True)
    assert parse_scope_q("/a;/b|/c/#") == Or((And((a, b)), c))
    assert parse_scope_q("/a;(/b|/c/#)") == And((a, Or((b, c))))
    assert parse_scope_q(" /a | /b ") == Or((a, b))


def test_type_expressions() -> None:
    a, b, c = TypeName("A"), TypeName("B"), TypeName("C")
    assert parse_type_expression("A") == a
    assert parse_type_expression("A,B") == Or((a, b))
    assert parse_type_expression("A|B,C") == Or((a, b, c))
    assert parse_type_expression("A;B") == And((a, b))
    assert parse_type_expression("A,B;C") == Or((a, And((b, c))))
    assert parse_type_expression("(Building;School)|Park") == Or(
        (And((TypeName("Building"), TypeName("School"))), TypeName("Park"))
    )


def test_type_names_may_be_iris() -> None:
    assert parse_type_expression("https://schema.org/Building,schema:Park") == Or(
        (TypeName("https://schema.org/Building"), TypeName("schema:Park"))
    )


def test_walk_is_pre_order() -> None:
    node = parse_q("a;(b|c)")
    assert isinstance(node, And)
    inner = node.terms[1]
    assert list(walk(node)) == [node, has("a"), inner, has("b"), has("c")]
    assert list(walk(has("x"))) == [has("x")]


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("a;", "expected an attribute name (at end of input)"),
        (";a", "expected an attribute name (at character 1)"),
        ("a||b", "at character 3"),
        ("a=1", "expected an operator"),
        ("a=>1", "expected an operator"),
        ("a==", "expected a value"),
        ("a==1 2", "unexpected '2' (at character 6)"),
        ("a b", "expected an operator"),
        ("(a", "expected ')'"),
        ("a)", "unmatched ')' (at character 2)"),
        ("()", "expected an attribute name (at character 2)"),
        ("a.", "empty sub-attribute name"),
        (".a", "empty attribute name (at character 1)"),
        ("a..b", "empty sub-attribute name (at character 3)"),
        ("a[", "compound member name"),
        ("a[]", "compound member name"),
        ("a[b", "expected ']'"),
        ("a[b].c", "expected an operator (==, !="),
        ("!a==1", "'!' only tests"),
        ("!(a)", "expected an attribute name (at character 2)"),
        ("a>1,2", "value list is only allowed with == or !="),
        ("a<=1..2", "range is only allowed with == or !="),
        ("a==1..", "expected a value"),
        ("a==1..x", "of one kind"),
        ("a==true..false", "of one kind"),
        ('a==1.."z"', "of one kind"),
        ("a==1..2,3", "cannot be combined"),
        ("a==1,2..3", "cannot be part of a value list"),
        ("a==1,", "expected a value (at end of input)"),
        ('a=="open', "unterminated string (at character 4)"),
        ('a=="x\\"', "unterminated string"),
        ("a==2024-13-01", "not a valid date"),
        ("a==2024-02-30T00:00:00Z", "not a valid dateTime"),
        ("a==2024-01-01T00:00:00+24:00", "not a valid dateTime"),
        ("a==0001-01-01T00:00:00+01:00", "not a valid dateTime"),
        ("a==25:00:00", "not a valid time"),
        ("a==2024-1-31", "not a valid number, date, time or dateTime"),
        ("a==12abc", "not a valid number"),
        ("a==.5", "not a valid number"),
        ("a==1e999", "out of range"),
        ("a==" + "9" * 101, "number longer than 100"),
        ("a~=", "expected a regular expression"),
        ("a~=  ;b", "expected a regular expression"),
        ("a~=(", "invalid regular expression"),
        ("a~=[[a]", "write a literal [ inside [...] as \\["),
        ("a~=(a)\\1", "backreferences (\\1) are not supported"),
        ("a~=(?=x)", "lookahead (?=...) and (?!...) are not supported"),
        ("a~=x)", "unmatched ')'"),
        ('a~="*"', "invalid regular expression"),
        ("a~=" + "(" * 499 + ")" * 499, "invalid regular expression"),
        ('a~="' + "x" * 1001 + '"', "longer than 1000"),
        ("a" * 8193, "longer than 8192"),
        ("(" * 33 + "a" + ")" * 33, "deeper than 32"),
        ("a é", "expected an operator"),
    ],
)
def test_q_errors(text: str, fragment: str) -> None:
    detail = q_error(text)
    assert detail.startswith("Invalid q: ")
    assert fragment in detail


def test_refused_regex_is_refused_every_time() -> None:
    # Compiled patterns are cached; a refused one must not pass the second time.
    for _ in range(2):
        assert "write a literal [" in q_error("a~=[[x]")


def test_regex_length_limit_is_a_parameter() -> None:
    assert parse_q("a~=" + "x" * 20, max_regex_length=20) == Pattern(AttrPath("a"), "x" * 20)
    with pytest.raises(BadRequestDataError, match="longer than 19 characters"):
        parse_q("a~=" + "x" * 20, max_regex_length=19)


def test_limits_are_inclusive() -> None:
    assert parse_q("(" * 32 + "a" + ")" * 32) == has("a")
    regex = "x" * 1000
    assert parse_q(f"a~={regex}") == Pattern(AttrPath("a"), regex)
    long_q = "a" * 8192
    assert parse_q(long_q) == has(long_q)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("Madrid", "must start with '/'"),
        ("/", "expected a scope segment"),
        ("/a/", "or '#' (at end of input)"),
        ("/a//b", "or '#' (at character 4)"),
        ("/a+", "'+' is not allowed in a scope (at character 3)"),
        ("/a/+/b", "expected a scope segment"),
        ("/a/#/b", "not allowed after '#'"),
        ("/a.b", "'.' is not allowed"),
        ("/a;", "must start with '/' (at end of input)"),
        ("(/a", "expected ')'"),
        ("/a /b", "unexpected '/'"),
        ("(" * 33 + "/a" + ")" * 33, "deeper than 32"),
        ("/a" * 5000, "longer than 8192"),
    ],
)
def test_scope_errors(text: str, fragment: str) -> None:
    with pytest.raises(BadRequestDataError) as info:
        parse_scope_q(text)
    assert info.value.detail.startswith("Invalid scopeQ: ")
    assert fragment in info.value.detail


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("A,", "expected a type name (at end of input)"),
        (",A", "expected a type name (at character 1)"),
        ("A B", "unexpected 'B'"),
        ("A==B", "unexpected '='"),
        ("(A;B", "expected ')'"),
        ("A)", "unmatched ')'"),
        ("(" * 33 + "A" + ")" * 33, "deeper than 32"),
        ("A" * 8193, "longer than 8192"),
    ],
)
def test_type_errors(text: str, fragment: str) -> None:
    with pytest.raises(BadRequestDataError) as info:
        parse_type_expression(text)
    assert info.value.detail.startswith("Invalid type: ")
    assert fragment in info.value.detail


# --- property-based: arbitrary text never crashes ----------------------------------------

GRAMMAR_TEXT = st.text(alphabet='ab1.:/#[]()!=<>~;|,"\\ -+TZ0e_', max_size=60)
PARSERS = [parse_q, parse_scope_q, parse_type_expression]


@pytest.mark.parametrize("parser", PARSERS)
@settings(max_examples=300, deadline=None)
@given(text=st.text() | GRAMMAR_TEXT)
def test_arbitrary_text_gives_node_or_bad_request(parser: Callable[[str], Node], text: str) -> None:
    try:
        node = parser(text)
    except BadRequestDataError as exc:
        assert exc.detail
    else:
        assert all(n is not None for n in walk(node))


# --- property-based: render an AST, parse it back ---------------------------------------------

LETTERS = "abcxyzABCXYZ"
DIGITS = "0129"
SIMPLE = st.builds(
    str.__add__,
    st.sampled_from(LETTERS + "_"),
    st.text(alphabet=LETTERS + DIGITS + "_-", max_size=7),
)
NAME = st.one_of(
    SIMPLE,
    st.builds(lambda p, n: f"{p}:{n}", SIMPLE, SIMPLE),
    st.builds(lambda h, n: f"https://{h}.example.org/ns/{n}", SIMPLE, SIMPLE),
    st.builds(lambda h, n: f"http://{h}.org/v1.0#{n}", SIMPLE, SIMPLE),
)
MEMBER = st.text(alphabet=LETTERS + DIGITS + "_:#/-", min_size=1, max_size=8)
PATH = st.builds(
    AttrPath,
    NAME,
    st.lists(NAME, max_size=2).map(tuple),
    st.lists(MEMBER, max_size=2).map(tuple),
)


def _datetime_values(dt: datetime) -> Value:
    return Value("datetime", dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z")


DATETIMES = st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30)).map(
    lambda dt: dt.replace(microsecond=dt.microsecond // 1000 * 1000)
)
NUMBER = st.integers(-(10**15), 10**15) | st.floats(allow_nan=False, allow_infinity=False)
COMPARABLE_KINDS = [
    NUMBER.map(num),
    st.text(max_size=10).map(lambda s: Value("string", s)),
    DATETIMES.map(_datetime_values),
    st.dates().map(lambda d: Value("date", d.isoformat())),
    st.times().map(lambda t: Value("time", t.isoformat())),
]
COMPARABLE = st.one_of(COMPARABLE_KINDS)
URI_PART = st.text(alphabet=LETTERS + DIGITS + "_-", min_size=1, max_size=6)
URI = st.builds(
    lambda scheme, parts: ":".join([scheme, *parts]),
    st.text(alphabet="abcxyz", min_size=1, max_size=5),
    st.lists(URI_PART, max_size=3),
)
VALUE = (
    COMPARABLE
    | st.booleans().map(lambda b: Value("boolean", b))
    | URI.map(lambda u: Value("uri", u))
)
RANGE = st.one_of([st.builds(Range, kind, kind) for kind in COMPARABLE_KINDS])
EQUALITY = st.builds(
    Comparison,
    PATH,
    st.sampled_from(["==", "!="]),
    VALUE | RANGE | st.lists(VALUE, min_size=2, max_size=4).map(tuple),
)
ORDERING = st.builds(Comparison, PATH, st.sampled_from([">", ">=", "<", "<="]), VALUE)


def _compiles(regex: str) -> bool:
    try:
        check_pattern(regex, "regex")
    except BadRequestDataError:
        return False
    return True


REGEX = st.text(alphabet='ab(|);.*?^$"\\ ', min_size=1, max_size=12).filter(_compiles)
PATTERN = st.builds(Pattern, PATH, REGEX, st.booleans())
EXISTS = st.builds(Exists, PATH, st.booleans())


def trees(leaves: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    def branch(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
        terms = st.lists(children, min_size=2, max_size=3).map(tuple)
        return st.builds(And, terms) | st.builds(Or, terms)

    return st.recursive(leaves, branch, max_leaves=8)


def flatten(node: Node) -> Node:
    """What the parser returns for a rendered tree: same-operator groups merged."""
    if not isinstance(node, And | Or):
        return node
    terms: list[Node] = []
    for term in map(flatten, node.terms):
        if isinstance(term, And | Or) and type(term) is type(node):
            terms.extend(term.terms)
        else:
            terms.append(term)
    return type(node)(tuple(terms))


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unquoted_regex_is_safe(regex: str) -> bool:
    depth = 0
    for ch in regex:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0 or (depth == 0 and ch in ";|"):
            return False
    safe_edges = regex == regex.strip() and not regex.startswith('"')
    return depth == 0 and safe_edges and "\\" not in regex


def render_value(value: Value) -> str:
    if value.kind == "string":
        return quote(str(value.value))
    if value.kind == "boolean":
        return "true" if value.value else "false"
    return repr(value.value) if value.kind == "number" else str(value.value)


def render(node: Node, space: str = "") -> str:
    """A minimal renderer of ASTs to query text (test-local, so the parser is not self-checked)."""
    if isinstance(node, And | Or):
        sep = space + (";" if isinstance(node, And) else "|") + space
        parts = [render(t, space) for t in node.terms]
        # Same-operator children keep their parentheses to exercise flattening.
        wrapped = [
            f"({p})"
            if isinstance(t, And | Or) and (isinstance(t, Or) or type(t) is type(node))
            else p
            for t, p in zip(node.terms, parts, strict=True)
        ]
        return sep.join(wrapped)
    if isinstance(node, ScopeMatch):
        if node.descendants:
            return node.path.rstrip("/") + "/#"
        return node.path
    if isinstance(node, TypeName):
        return node.name
    path = ".".join((node.path.attr, *node.path.sub_attrs)) + "".join(
        f"[{m}]" for m in node.path.compound
    )
    if isinstance(node, Exists):
        return ("!" + space if node.negated else "") + path
    if isinstance(node, Pattern):
        op = "!~=" if node.negated else "~="
        regex = node.regex if unquoted_regex_is_safe(node.regex) else quote(node.regex)
        return f"{path}{space}{op}{regex}"
    value = node.value
    if isinstance(value, Range):
        text = render_value(value.low) + space + ".." + space + render_value(value.high)
    elif isinstance(value, tuple):
        text = ("," + space).join(render_value(v) for v in value)
    else:
        text = render_value(value)
    return f"{path}{space}{node.op}{space}{text}"


Q_TREES = trees(st.one_of(EQUALITY, ORDERING, PATTERN, EXISTS))


@settings(max_examples=300, deadline=None)
@given(tree=Q_TREES, space=st.sampled_from(["", " "]))
def test_q_round_trip(tree: Node, space: str) -> None:
    text = render(tree, space)
    assert parse_q(text) == flatten(tree), text


SEGMENTS = st.lists(st.text(alphabet=LETTERS + DIGITS + "_-", min_size=1, max_size=6), max_size=3)
SCOPE = st.one_of(
    st.builds(lambda s: ScopeMatch("/" + "/".join(s), True), SEGMENTS),
    st.builds(lambda s: ScopeMatch("/" + "/".join(s)), SEGMENTS.filter(bool)),
)


@settings(max_examples=300, deadline=None)
@given(tree=trees(SCOPE), space=st.sampled_from(["", " "]))
def test_scope_round_trip(tree: Node, space: str) -> None:
    text = render(tree, space)
    assert parse_scope_q(text) == flatten(tree), text


TYPE_NAME = st.one_of(SIMPLE, NAME, st.just("https://schema.org/v1.2/Building")).map(TypeName)


@settings(max_examples=300, deadline=None)
@given(tree=trees(TYPE_NAME), comma=st.booleans())
def test_type_round_trip(tree: Node, comma: bool) -> None:
    text = render(tree)
    if comma:  # ',' is another spelling of '|'; a '|' inside strings cannot occur in types
        text = text.replace("|", ",")
    assert parse_type_expression(text) == flatten(tree), text


@settings(max_examples=300, deadline=None)
@given(dt=DATETIMES, minutes=st.integers(-23 * 60 - 59, 23 * 60 + 59), frac=st.booleans())
def test_datetime_offsets_are_canonicalised_to_utc(dt: datetime, minutes: int, frac: bool) -> None:
    local = dt.replace(tzinfo=UTC).astimezone(timezone(timedelta(minutes=minutes)))
    sign = "-" if minutes < 0 else "+"
    offset = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    fraction = f".{local.microsecond:06d}" if frac else ""
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + fraction + offset
    expected = _datetime_values(dt if frac else dt.replace(microsecond=0))
    assert parse_q(f"t=={text}") == cmp("t", "==", expected)
