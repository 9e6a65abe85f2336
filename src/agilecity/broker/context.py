"""JSON-LD @context handling through precomputed term maps (no general JSON-LD processor).

A request's context (Link header or body ``@context``) becomes a :class:`TermMap`: a
dictionary term -> IRI built once per distinct context and cached. Entities are stored
with expanded IRIs, so the same data answers every client whatever context it uses.
The NGSI-LD core context is bundled and never fetched; it is protected, so user contexts
cannot redefine its terms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from typing import Any

import orjson

from agilecity.errors import BadRequestDataError

CORE_CONTEXT_URL = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
CORE_CONTEXT_PATTERN = re.compile(
    r"^https?://uri\.etsi\.org/ngsi-ld/v1/ngsi-ld-core-context(-v1\.[0-9]+)?\.jsonld$"
)
NGSI_LD = "https://uri.etsi.org/ngsi-ld/"
DEFAULT_VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
MAX_REMEMBERED_IRIS = 10_000  # compactions kept per term map
_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")

ContextSource = str | dict[str, Any]


def is_core_context(url: str) -> bool:
    """True for every published URL of the NGSI-LD core context (v1.3 ... v1.9 and unversioned)."""
    return bool(CORE_CONTEXT_PATTERN.match(url))


def load_core_context() -> dict[str, Any]:
    """The bundled core context document (v1.8)."""
    data = resources.files("agilecity").joinpath("data/ngsi-ld-core-context-v1.8.jsonld")
    doc: dict[str, Any] = orjson.loads(data.read_bytes())
    return doc


@dataclass
class TermDefinition:
    """One term of a context: its IRI and, where given, its value coercion."""

    iri: str
    coercion: str | None = None


@dataclass
class TermMap:
    """The active context of a request: term -> IRI and back, precomputed."""

    terms: dict[str, TermDefinition] = field(default_factory=dict)
    vocab: str | None = DEFAULT_VOCAB
    protected: frozenset[str] = frozenset()
    urls: tuple[str, ...] = ()
    #: names already validated and expanded with this map (entities.expand_name)
    expanded: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    #: IRIs already compacted with this map
    compacted: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def expand(self, term: str) -> str:
        """The IRI of an attribute name or entity type as written by the client."""
        found = self.terms.get(term)
        if found is not None:
            return found.iri
        if ":" in term:
            prefix, _, suffix = term.partition(":")
            if not suffix.startswith("//"):
                pdef = self.terms.get(prefix)
                if pdef is not None:
                    return pdef.iri + suffix
            if _ABSOLUTE.match(term):
                return term
        if self.vocab is None:
            raise BadRequestDataError(f"term {term!r} is not defined by the @context")
        return self.vocab + term

    def coercion(self, term_or_iri: str) -> str | None:
        """The @type coercion of a term (for example @vocab), if any."""
        found = self.terms.get(term_or_iri)
        if found is None:
            found = self._by_iri.get(term_or_iri)
        return found.coercion if found is not None else None

    @cached_property
    def _by_iri(self) -> dict[str, TermDefinition]:
        return {d.iri: d for d in self.terms.values()}

    @cached_property
    def _reverse(self) -> dict[str, str]:
        reverse: dict[str, str] = {}
        # User terms win over core terms for the same IRI; the shortest term wins among equals.
        ordered = sorted(self.terms.items(), key=lambda kv: (kv[0] in self.protected, len(kv[0])))
        for term, definition in ordered:
            reverse.setdefault(definition.iri, term)
        return reverse

    @cached_property
    def _prefixes(self) -> list[tuple[str, str]]:
        found = [
            (d.iri, term)
            for term, d in self.terms.items()
            if d.iri.endswith(("/", "#", ":")) and ":" not in term
        ]
        return sorted(found, key=lambda p: -len(p[0]))

    def compact(self, iri: str) -> str:
        """The shortest name the client's context gives to an IRI (the IRI itself if none)."""
        known = self.compacted.get(iri)
        if known is not None:
            return known
        name = self._compact(iri)
        if len(self.compacted) < MAX_REMEMBERED_IRIS:
            self.compacted[iri] = name
        return name

    def _compact(self, iri: str) -> str:
        term = self._reverse.get(iri)
        if term is not None:
            return term
        if self.vocab is not None and iri.startswith(self.vocab):
            rest = iri[len(self.vocab) :]
            if rest and rest not in self.terms and ":" not in rest:
                return rest
        for prefix_iri, prefix in self._prefixes:
            if iri.startswith(prefix_iri) and len(iri) > len(prefix_iri):
                return f"{prefix}:{iri[len(prefix_iri) :]}"
        return iri


def build_term_map(documents: list[dict[str, Any]], urls: tuple[str, ...] = ()) -> TermMap:
    """Combine resolved context objects, in order, on top of the protected core context."""
    core = _core_term_map()
    terms = dict(core.terms)
    vocab = core.vocab
    for document in documents:
        if "@vocab" in document:
            raw = document["@vocab"]
            if raw is None:
                vocab = None
            elif isinstance(raw, str):
                vocab = _expand_iri(raw, terms, vocab)
            else:
                raise BadRequestDataError("@vocab must be a string or null")
        for term, definition in document.items():
            if term.startswith("@") or term in core.protected:
                continue
            if definition is None:
                terms.pop(term, None)
                continue
            terms[term] = _term_definition(term, definition, terms, vocab)
    return TermMap(terms=terms, vocab=vocab, protected=core.protected, urls=urls)


def _term_definition(
    term: str, definition: object, terms: dict[str, TermDefinition], vocab: str | None
) -> TermDefinition:
    if isinstance(definition, str):
        return TermDefinition(_expand_iri(definition, terms, vocab))
    if isinstance(definition, dict):
        raw_id = definition.get("@id", term)
        if not isinstance(raw_id, str):
            raise BadRequestDataError(f"@context term {term!r} has a non-string @id")
        coercion = definition.get("@type")
        return TermDefinition(
            _expand_iri(raw_id, terms, vocab), coercion if isinstance(coercion, str) else None
        )
    raise BadRequestDataError(f"@context term {term!r} must map to a string or an object")


def _expand_iri(value: str, terms: dict[str, TermDefinition], vocab: str | None) -> str:
    if value in terms:
        return terms[value].iri
    if ":" in value:
        prefix, _, suffix = value.partition(":")
        if not suffix.startswith("//") and prefix in terms:
            return terms[prefix].iri + suffix
        return value
    return (vocab or "") + value


_CORE: TermMap | None = None


def _core_term_map() -> TermMap:
    global _CORE
    if _CORE is None:
        document = load_core_context()["@context"]
        terms: dict[str, TermDefinition] = {}
        # Two passes: prefixes such as "ngsi-ld" must be known before CURIEs use them.
        for _ in range(2):
            for term, definition in document.items():
                if not term.startswith("@"):
                    terms[term] = _term_definition(term, definition, terms, DEFAULT_VOCAB)
        _CORE = TermMap(
            terms=terms,
            vocab=DEFAULT_VOCAB,
            protected=frozenset(terms),
            urls=(CORE_CONTEXT_URL,),
        )
    return _CORE


def core_term_map() -> TermMap:
    """The term map of the core context alone (requests without a user context)."""
    return _core_term_map()


def context_key(sources: list[ContextSource]) -> str:
    """A stable cache key for a list of context sources."""
    return orjson.dumps(sources, option=orjson.OPT_SORT_KEYS).decode()
