"""The entity model: client payloads (normalized or concise) to stored documents.

A stored entity document (the contract with the store, see ``store/base.py``)::

    {"id": "urn:...", "type": ["<type IRI>", ...], "scope": ["/a/b"],        # scope optional
     "createdAt": "...Z", "modifiedAt": "...Z",
     "attrs": {"<attribute IRI>": [instance, ...]}}

    instance = {"type": "Property" | "Relationship" | "GeoProperty" | "LanguageProperty"
                        | "VocabProperty" | "JsonProperty" | "ListProperty" | "ListRelationship",
                "value": <the principal content whatever the kind: value, object, languageMap,
                          vocab (expanded IRIs), json, valueList or objectList>,
                "observedAt"?, "unitCode"?, "datasetId"?, "createdAt", "modifiedAt",
                "subs"?: {"<sub-attribute IRI>": instance}}

Keeping the principal content under one key lets the store compile every query term the
same way; the representation module renames it on the way out.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from agilecity.broker.context import TermMap
from agilecity.broker.geo import DEFAULT_MAX_GEOMETRY_POINTS, validate_geometry
from agilecity.broker.query import And, AttrPath, Comparison, Exists, Node, Or, Pattern, TypeName
from agilecity.broker.timeutil import canonical_datetime
from agilecity.errors import BadRequestDataError

Doc = dict[str, Any]
Instance = dict[str, Any]

NULL = "urn:ngsi-ld:null"
PRINCIPAL = {
    "Property": "value",
    "Relationship": "object",
    "GeoProperty": "value",
    "LanguageProperty": "languageMap",
    "VocabProperty": "vocab",
    "JsonProperty": "json",
    "ListProperty": "valueList",
    "ListRelationship": "objectList",
}
MEMBER_KIND = {member: kind for kind, member in PRINCIPAL.items() if kind != "GeoProperty"}
PRINCIPAL_MEMBERS = tuple(MEMBER_KIND)
META_MEMBERS = ("observedAt", "unitCode", "datasetId")
SYSTEM_MEMBERS = ("createdAt", "modifiedAt", "instanceId", "deletedAt")
RESERVED_ENTITY_MEMBERS = ("id", "type", "scope", "@context", "createdAt", "modifiedAt")
_NOT_SUB_ATTRIBUTES = frozenset(
    {"type", "@context", "lang", *META_MEMBERS, *SYSTEM_MEMBERS, *PRINCIPAL.values()}
)
GEOJSON_TYPES = frozenset(
    {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}
)
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s\x00-\x1f\x7f<>\"{}|\\^`]+$")
_NAME = re.compile(r"^[^\s\x00-\x1f\x7f<>\"'=;()\\\[\]{}&?]+$")
_SCOPE = re.compile(r"^(/[A-Za-z0-9_\-]+)+$")
MAX_NAME_LENGTH = 256
MAX_REMEMBERED_NAMES = 10_000  # expansions kept per term map (a hostile client's names too)


def is_uri(value: object) -> bool:
    """True when the value is an absolute URI (what NGSI-LD requires for ids)."""
    return isinstance(value, str) and len(value) <= 2048 and bool(_URI.match(value))


def check_uri(value: object, what: str) -> str:
    """Return the value if it is a URI, else raise BadRequestData naming it."""
    if not is_uri(value):
        raise BadRequestDataError(f"{what} must be a URI, got {value!r}")
    assert isinstance(value, str)
    return value


def check_name(name: object, what: str = "attribute name") -> str:
    """Validate an attribute or type name as written by the client (NGSI-LD clause 4.6.2)."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_LENGTH:
        raise BadRequestDataError(f"invalid {what}: {name!r}")
    if not _NAME.match(name):
        raise BadRequestDataError(f"{what} {name!r} contains a forbidden character")
    return name


def expand_name(terms: TermMap, name: object, what: str = "attribute name") -> str:
    """Validate and expand an attribute/type name to its IRI (remembered per term map)."""
    if isinstance(name, str) and (known := terms.expanded.get(name)) is not None:
        return known
    iri = terms.expand(check_name(name, what))
    if '"' in iri or "\\" in iri:
        raise BadRequestDataError(f"{what} {name!r} expands to an unusable IRI")
    if len(terms.expanded) < MAX_REMEMBERED_NAMES:
        terms.expanded[str(name)] = iri  # check_name above: a valid name
    return iri


def parse_types(terms: TermMap, raw: object) -> list[str]:
    """The entity type member (a name or a non-empty list of names) as IRIs."""
    names = raw if isinstance(raw, list) else [raw]
    if not names or raw is None:
        raise BadRequestDataError("entity type is missing")
    expanded: list[str] = []
    for name in names:
        iri = expand_name(terms, name, "entity type")
        if iri not in expanded:
            expanded.append(iri)
    return expanded


def parse_scope(raw: object) -> list[str]:
    """The scope member: one scope string or a list of them, each like ``/Madrid/Gardens``."""
    scopes = raw if isinstance(raw, list) else [raw]
    for scope in scopes:
        if not isinstance(scope, str) or not _SCOPE.match(scope):
            raise BadRequestDataError(f"invalid scope {scope!r}: expected /segment[/segment...]")
    return list(dict.fromkeys(scopes))


def parse_entity(
    payload: object,
    terms: TermMap,
    now: str,
    *,
    require_id: bool = True,
    max_points: int = DEFAULT_MAX_GEOMETRY_POINTS,
) -> Doc:
    """Validate an entity payload and return its stored document (timestamps set to now).

    ``max_points`` bounds the coordinate positions of each GeoProperty value."""
    if not isinstance(payload, dict):
        raise BadRequestDataError("an entity must be a JSON object")
    if require_id or "id" in payload:
        entity_id = check_uri(payload.get("id"), "entity id")
    else:
        entity_id = ""
    doc: Doc = {
        "id": entity_id,
        "type": parse_types(terms, payload.get("type")),
        "createdAt": now,
        "modifiedAt": now,
        "attrs": {},
    }
    if "scope" in payload:
        doc["scope"] = parse_scope(payload["scope"])
    doc["attrs"] = parse_attributes(payload, terms, now, max_points=max_points)
    return doc


def parse_attributes(
    payload: dict[str, Any],
    terms: TermMap,
    now: str,
    *,
    allow_null: bool = False,
    max_points: int = DEFAULT_MAX_GEOMETRY_POINTS,
) -> dict[str, list[Instance]]:
    """Every attribute of a payload (skipping id/type/scope/@context) as stored instances.

    With ``allow_null`` (merge and update operations) an NGSI-LD null becomes an empty
    list, which the caller reads as "delete this attribute".
    """
    attrs: dict[str, list[Instance]] = {}
    for name, raw in payload.items():
        if name in RESERVED_ENTITY_MEMBERS:
            continue
        iri = expand_name(terms, name)
        if allow_null and _is_null(raw):
            attrs[iri] = []
            continue
        attrs[iri] = parse_attribute(
            raw, terms, now, name=name, allow_null=allow_null, max_points=max_points
        )
    return attrs


def parse_attribute(
    raw: object,
    terms: TermMap,
    now: str,
    *,
    name: str,
    allow_null: bool = False,
    max_points: int = DEFAULT_MAX_GEOMETRY_POINTS,
) -> list[Instance]:
    """One attribute value (an instance or a list of instances with distinct datasetIds)."""
    options: dict[str, Any] = {"name": name, "allow_null": allow_null, "max_points": max_points}
    if isinstance(raw, list) and raw and all(_is_instance_object(item) for item in raw):
        instances = [parse_instance(i, terms, now, **options) for i in raw]
        seen: set[str | None] = set()
        for inst in instances:
            dataset = inst.get("datasetId")
            if dataset in seen:
                which = "default instance" if dataset is None else f"datasetId {dataset}"
                raise BadRequestDataError(f"attribute {name!r} has the {which} twice")
            seen.add(dataset)
        return instances
    return [parse_instance(raw, terms, now, **options)]


def _is_instance_object(item: object) -> bool:
    return isinstance(item, dict) and (
        _kind(item) in PRINCIPAL or any(m in item for m in MEMBER_KIND) or "value" in item
    )


def _is_null(raw: object) -> bool:
    if raw is None or raw == NULL:
        return True
    if isinstance(raw, dict):
        principal = [raw[m] for m in PRINCIPAL_MEMBERS if m in raw]
        return len(principal) == 1 and principal[0] in (None, NULL)
    return False


def _is_geometry(value: object) -> bool:
    return isinstance(value, dict) and _kind(value) in GEOJSON_TYPES and "coordinates" in value


def _kind(member: dict[str, Any]) -> str | None:
    """The ``type`` member if it is text (a list or object there is no kind, not a crash)."""
    kind = member.get("type")
    return kind if isinstance(kind, str) else None


def parse_instance(
    raw: object,
    terms: TermMap,
    now: str,
    *,
    name: str,
    allow_null: bool = False,
    max_points: int = DEFAULT_MAX_GEOMETRY_POINTS,
) -> Instance:
    """One attribute instance in normalized or concise form.

    With ``allow_null`` (merge and partial updates) a null sub-attribute, observedAt or
    unitCode is kept as None, meaning "remove this member" to the merge operation.
    """
    if raw is None or raw == NULL:
        raise BadRequestDataError(f"attribute {name!r} has a null value")
    if not isinstance(raw, dict):
        return {"type": "Property", "value": raw, "createdAt": now, "modifiedAt": now}
    if _is_geometry(raw):
        return _finish("GeoProperty", raw, {}, terms, now, name, allow_null, max_points)
    kind = raw.get("type")
    if kind is None:
        kind = _infer_kind(raw)
        if kind is None:
            # A concise compound value: a JSON object with none of the NGSI-LD members.
            return {"type": "Property", "value": raw, "createdAt": now, "modifiedAt": now}
    if not isinstance(kind, str) or kind not in PRINCIPAL:
        raise BadRequestDataError(f"attribute {name!r} has an unknown type {kind!r}")
    member = PRINCIPAL[kind]
    if member not in raw:
        raise BadRequestDataError(f"attribute {name!r} of type {kind} needs a {member!r} member")
    return _finish(kind, raw[member], raw, terms, now, name, allow_null, max_points)


def _infer_kind(raw: dict[str, Any]) -> str | None:
    if "value" in raw:
        return "GeoProperty" if _is_geometry(raw["value"]) else "Property"
    for member, kind in MEMBER_KIND.items():
        if member in raw:
            return kind
    return None


def _finish(
    kind: str,
    principal: object,
    raw: dict[str, Any],
    terms: TermMap,
    now: str,
    name: str,
    allow_null: bool,
    max_points: int,
) -> Instance:
    inst: Instance = {"type": kind, "value": _principal(kind, principal, terms, name, max_points)}
    for member in META_MEMBERS:
        if allow_null and member in raw and raw[member] in (None, NULL):
            inst[member] = None
            raw = {k: v for k, v in raw.items() if k != member}
    if "observedAt" in raw:
        inst["observedAt"] = canonical_datetime(raw["observedAt"], f"{name}.observedAt")
    if "unitCode" in raw:
        if not isinstance(raw["unitCode"], str) or not raw["unitCode"]:
            raise BadRequestDataError(f"{name}.unitCode must be a non-empty string")
        inst["unitCode"] = raw["unitCode"]
    if "datasetId" in raw:
        inst["datasetId"] = check_uri(raw["datasetId"], f"{name}.datasetId")
    inst["createdAt"] = now
    inst["modifiedAt"] = now
    subs: dict[str, Instance | None] = {}
    for key, value in raw.items():
        if key in _NOT_SUB_ATTRIBUTES:
            continue
        sub_iri = expand_name(terms, key, "sub-attribute name")
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            raise BadRequestDataError(f"sub-attribute {name}.{key} cannot have several instances")
        if allow_null and _is_null(value):
            subs[sub_iri] = None
            continue
        subs[sub_iri] = parse_instance(
            value, terms, now, name=f"{name}.{key}", allow_null=allow_null, max_points=max_points
        )
    if subs:
        inst["subs"] = subs
    return inst


def _principal(kind: str, value: object, terms: TermMap, name: str, max_points: int) -> object:
    if value is None or value == NULL:
        raise BadRequestDataError(f"attribute {name!r} has a null value")
    if kind == "Relationship":
        if isinstance(value, list):
            return [check_uri(v, f"{name}.object") for v in value]
        return check_uri(value, f"{name}.object")
    if kind == "ListRelationship":
        if not isinstance(value, list):
            raise BadRequestDataError(f"{name}.objectList must be an array")
        return [
            check_uri(v.get("object") if isinstance(v, dict) else v, f"{name}.objectList")
            for v in value
        ]
    if kind == "GeoProperty":
        if isinstance(value, str):
            raise BadRequestDataError(f"{name}: GeoProperty values must be GeoJSON geometries")
        try:
            return validate_geometry(value, max_coordinates=max_points)
        except BadRequestDataError as exc:
            raise BadRequestDataError(f"attribute {name!r}: {exc.detail}") from exc
    if kind == "LanguageProperty":
        if not isinstance(value, dict) or not value:
            raise BadRequestDataError(f"{name}.languageMap must be a non-empty object")
        for tag, text in value.items():
            texts = text if isinstance(text, list) else [text]
            if not all(isinstance(t, str) for t in texts):
                raise BadRequestDataError(f"{name}.languageMap[{tag}] must be a string")
        return value
    if kind == "VocabProperty":
        values = value if isinstance(value, list) else [value]
        expanded = [expand_name(terms, v, f"{name}.vocab") for v in values]
        return expanded if isinstance(value, list) else expanded[0]
    if kind == "ListProperty" and not isinstance(value, list):
        raise BadRequestDataError(f"{name}.valueList must be an array")
    if kind == "JsonProperty" and not isinstance(value, dict | list):
        raise BadRequestDataError(f"{name}.json must be a JSON object or array")
    return value


#: Instance members a query may address as if they were sub-attributes (``a.observedAt``).
QUERYABLE_MEMBERS = frozenset({"observedAt", "unitCode", "datasetId", "createdAt", "modifiedAt"})


def _expand_path(path: AttrPath, terms: TermMap) -> AttrPath:
    subs = tuple(s if s in QUERYABLE_MEMBERS else expand_name(terms, s) for s in path.sub_attrs)
    return AttrPath(expand_name(terms, path.attr), subs, path.compound)


def expand_query(node: Node, terms: TermMap) -> Node:
    """Expand every attribute and type name in a query AST with the request's context."""
    if isinstance(node, And):
        return And(tuple(expand_query(t, terms) for t in node.terms))
    if isinstance(node, Or):
        return Or(tuple(expand_query(t, terms) for t in node.terms))
    if isinstance(node, TypeName):
        return TypeName(expand_name(terms, node.name, "entity type"))
    if isinstance(node, Comparison | Pattern | Exists):
        return dataclasses.replace(node, path=_expand_path(node.path, terms))
    return node
