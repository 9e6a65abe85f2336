"""Linear-time regular expressions (RE2) for idPattern and q's ``~=``, alike on every store.

A pattern is checked once, when a query or subscription arrives (``check_pattern``): it must
be at most ``max_regex_length`` characters, be written in the syntax that RE2 and
PostgreSQL's regular expressions (AREs) both read the same way, and compile with RE2.
Anything else is refused with BadRequestData naming the problem, on every store:

- backreferences (``\\1``) and lookaround (``(?=``, ``(?!``, ``(?<=``, ``(?<!``): RE2 cannot
  run them in linear time, so it has none;
- named groups, inline flags other than one leading ``(?i)``, escapes other than
  ``\\d \\D \\s \\S \\w \\W \\b \\B \\t \\n \\r \\f \\v`` and ``\\`` + punctuation, counted
  repetitions above 255 (PostgreSQL's ceiling), a quantifier on an anchor or on nothing,
  ``{`` that is not a repetition, groups nested deeper than 64: one of the two engines
  refuses them or reads them differently.

SQLite evaluates patterns with RE2 (``search``); PostgreSQL with its own engine on
``posix_form(pattern)``, which only renames the word boundaries (``\\b`` is ``\\y`` there).
Its engine is not backtracking for patterns without backreferences, so it is linear too.
``.`` matches a newline on both (RE2 runs with ``dot_nl``, as AREs do by default). Known
difference: ``\\w``, ``\\d``, ``\\s`` and the ``[:class:]`` names are ASCII in RE2 and
locale-aware (so also non-ASCII letters and digits) in PostgreSQL.
"""

from __future__ import annotations

import re
from functools import lru_cache

import re2

from agilecity.errors import BadRequestDataError

DEFAULT_MAX_REGEX_LENGTH = 1000
MAX_REPETITION = 255  # PostgreSQL's RE_DUP_MAX; RE2 allows 1000
MAX_GROUP_DEPTH = 64  # both engines parse groups recursively
_MAX_MEM = 2 << 20  # bytes of RE2 program and DFA cache per compiled pattern
_ESCAPES = frozenset("dDsSwWtnrfv")
_CLASS_ESCAPES = frozenset("dswtnrfv")  # AREs refuse \D \S \W inside brackets
_POSIX_CLASSES = frozenset(
    "alnum alpha blank cntrl digit graph lower print punct space upper xdigit word".split()
)
_REPEAT = re.compile(r"\{([0-9]{1,4})(,([0-9]{0,4}))?\}")


class _Refused(Exception):
    """A pattern problem, with what to tell the client."""


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # a client's bad pattern is not a server error
    options.dot_nl = True
    options.max_mem = _MAX_MEM
    return options


_OPTIONS = _options()


def _punctuation(ch: str) -> bool:
    return len(ch) == 1 and ch.isascii() and not ch.isalnum() and ch.isprintable()


def _bracket(pattern: str, start: int) -> int:
    """The index after the bracket expression opening at ``start``."""
    i = start + 1
    if pattern.startswith("^", i):
        i += 1
    if pattern.startswith("]", i):
        i += 1  # a leading ] is a literal in both engines
    while i < len(pattern) and pattern[i] != "]":
        ch = pattern[i]
        if ch == "\\":
            escaped = pattern[i + 1 : i + 2]
            if not (escaped in _CLASS_ESCAPES or _punctuation(escaped)):
                raise _Refused(f"the escape \\{escaped} is not supported inside [...]")
            i += 2
        elif ch == "[":
            if not pattern.startswith("[:", i):
                raise _Refused("write a literal [ inside [...] as \\[")
            end = pattern.find(":]", i + 2)
            name = pattern[i + 2 : end] if end > 0 else ""
            if name not in _POSIX_CLASSES:
                raise _Refused(f"unknown character class [:{name}:]")
            i = end + 2
        else:
            i += 1
    if i >= len(pattern):
        raise _Refused("missing ] at the end of a [...] expression")
    return i + 1


def _group(pattern: str, i: int) -> int:
    """The index after the opening of the group at ``i``."""
    if not pattern.startswith("(?", i):
        return i + 1
    if pattern.startswith("(?:", i):
        return i + 3
    if pattern.startswith(("(?=", "(?!"), i):
        raise _Refused("lookahead (?=...) and (?!...) are not supported (linear-time RE2)")
    if pattern.startswith(("(?<=", "(?<!"), i):
        raise _Refused("lookbehind (?<=...) and (?<!...) are not supported (linear-time RE2)")
    if pattern.startswith(("(?P<", "(?<"), i):
        raise _Refused("named groups are not supported; use (...) or (?:...)")
    raise _Refused("inline flags are not supported except one (?i) at the very start")


def _quantifier(pattern: str, i: int) -> int:
    """The index after the quantifier at ``i`` (and its lazy ``?``)."""
    if pattern[i] == "{":
        match = _REPEAT.match(pattern, i)
        if match is None:
            raise _Refused("write a literal { as \\{ (or use {n}, {n,} or {n,m})")
        low = int(match.group(1))
        high = low if match.group(2) is None else int(match.group(3) or low)
        if max(low, high) > MAX_REPETITION:
            raise _Refused(f"counted repetitions are limited to {{{MAX_REPETITION}}}")
        i = match.end()
    else:
        i += 1
    if pattern.startswith("?", i):
        i += 1
    if i < len(pattern) and pattern[i] in "*+?{":
        raise _Refused("a quantifier cannot follow another quantifier")
    return i


def _check_syntax(pattern: str) -> None:
    """Refuse what RE2 and PostgreSQL would not read alike (see the module docstring)."""
    i = 4 if pattern.startswith("(?i)") else 0
    repeatable, depth = False, 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            escaped = pattern[i + 1 : i + 2]
            if escaped in tuple("123456789"):
                raise _Refused(
                    f"backreferences (\\{escaped}) are not supported: patterns run in linear "
                    "time (RE2), which rules out backreferences and lookaround"
                )
            if not (escaped in _ESCAPES or escaped in ("b", "B") or _punctuation(escaped)):
                what = "a trailing \\" if not escaped else f"the escape \\{escaped}"
                raise _Refused(f"{what} is not supported")
            repeatable = escaped not in ("b", "B")
            i += 2
        elif ch == "[":
            i, repeatable = _bracket(pattern, i), True
        elif ch == "(":
            depth += 1
            if depth > MAX_GROUP_DEPTH:
                raise _Refused(f"groups are nested deeper than {MAX_GROUP_DEPTH}")
            i, repeatable = _group(pattern, i), False
        elif ch == ")":
            depth -= 1
            i, repeatable = i + 1, True
        elif ch in "*+?{":
            if not repeatable:
                raise _Refused(f"nothing to repeat before {ch!r} at position {i}")
            i, repeatable = _quantifier(pattern, i), False
        else:
            repeatable = ch not in "|^$"
            i += 1


def check_pattern(pattern: object, what: str, max_length: int = DEFAULT_MAX_REGEX_LENGTH) -> str:
    """Return the pattern if both stores can run it in linear time; else BadRequestData."""
    if not isinstance(pattern, str):
        raise BadRequestDataError(f"{what} must be a string")
    if len(pattern) > max_length:
        raise BadRequestDataError(f"{what} is longer than {max_length} characters")
    if "\x00" in pattern:
        raise BadRequestDataError(f"{what} must not contain the NUL character")
    try:
        _check_syntax(pattern)
        _compiled(pattern)
    except (_Refused, re2.error) as exc:
        reason = exc.args[0] if exc.args else "refused by RE2"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise BadRequestDataError(f"invalid {what} {_show(pattern)}: {reason}") from None
    return pattern


def _show(pattern: str) -> str:
    text = pattern if len(pattern) <= 60 else pattern[:57] + "..."
    return f"'{text}'" if text.isprintable() else repr(text)


@lru_cache(maxsize=128)
def _compiled(pattern: str) -> re2._Regexp[str]:
    return re2.compile(pattern, _OPTIONS)


def search(pattern: str, value: object) -> bool:
    """Whether a checked pattern matches somewhere in a text (False for non-text, bad ones)."""
    if not isinstance(value, str):
        return False
    try:
        return _compiled(pattern).search(value) is not None
    except re2.error:
        return False


def posix_form(pattern: str) -> str:
    """The checked pattern as a PostgreSQL ARE with the same meaning."""
    if "\\" not in pattern:
        return pattern
    out: list[str] = []
    i = 0
    in_bracket = False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            escaped = pattern[i + 1 : i + 2]
            if not in_bracket and escaped in ("b", "B"):
                escaped = "y" if escaped == "b" else "Y"
            out.append("\\" + escaped)
            i += 2
            continue
        if ch == "[" and not in_bracket:
            in_bracket = True
            out.append(ch)
            i += 1
            if pattern.startswith("^", i):
                out.append("^")
                i += 1
            if pattern.startswith("]", i):
                out.append("]")
                i += 1
            continue
        if ch == "[" and pattern.startswith("[:", i):
            end = pattern.index(":]", i) + 2
            out.append(pattern[i:end])
            i = end
            continue
        if ch == "]" and in_bracket:
            in_bracket = False
        out.append(ch)
        i += 1
    return "".join(out)
