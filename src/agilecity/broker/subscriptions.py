"""Subscriptions (clause 5.2.12): validation, the compiled form, and change matching.

A subscription is stored as the client wrote it (plus its @context and status members);
the :class:`CompiledSubscription` holds the expanded names and parsed queries the
notifier matches each change against. Pure code: no I/O.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from agilecity.broker import regex
from agilecity.broker.context import TermMap
from agilecity.broker.entities import Doc, check_uri, expand_name, expand_query
from agilecity.broker.geo import DEFAULT_MAX_GEOMETRY_POINTS, GeoQuery, matches, parse_geo_query
from agilecity.broker.query import (
    And,
    Node,
    Or,
    TypeName,
    parse_q,
    parse_scope_q,
    parse_type_expression,
)
from agilecity.broker.regex import DEFAULT_MAX_REGEX_LENGTH, check_pattern
from agilecity.broker.representation import Format, RenderOptions, render_entity
from agilecity.broker.timeutil import canonical_datetime
from agilecity.errors import BadRequestDataError

TRIGGERS = (
    "entityCreated",
    "entityUpdated",
    "entityDeleted",
    "attributeCreated",
    "attributeUpdated",
    "attributeDeleted",
)
DEFAULT_TRIGGERS = ("attributeCreated", "attributeUpdated")
ACCEPTS = ("application/json", "application/ld+json", "application/geo+json")
SCHEMES = ("http", "https", "mqtt", "mqtts")
STATUS_MEMBERS = ("timesSent", "timesFailed", "timesDropped", "lastNotification",
                  "lastSuccess", "lastFailure", "status")  # fmt: skip
PREVIOUS = {
    "Property": "previousValue",
    "GeoProperty": "previousValue",
    "Relationship": "previousObject",
    "LanguageProperty": "previousLanguageMap",
    "VocabProperty": "previousVocab",
    "JsonProperty": "previousJson",
    "ListProperty": "previousValueList",
    "ListRelationship": "previousObjectList",
}


@dataclass(frozen=True)
class Selector:
    """One ``entities`` item, expanded: id, idPattern, type expression."""

    id: str | None
    id_pattern: str | None  # checked by broker.regex
    types: Node | None

    def matches(self, doc: Doc) -> bool:
        """True when the entity fits this selector."""
        if self.id is not None and doc["id"] != self.id:
            return False
        if self.id_pattern is not None and not regex.search(self.id_pattern, doc["id"]):
            return False
        return self.types is None or _has_types(self.types, set(doc["type"]))


def _has_types(node: Node, types: set[str]) -> bool:
    if isinstance(node, TypeName):
        return node.name in types
    if isinstance(node, And):
        return all(_has_types(t, types) for t in node.terms)
    if isinstance(node, Or):
        return any(_has_types(t, types) for t in node.terms)
    return False


@dataclass
class CompiledSubscription:
    """A subscription ready for matching, with its live status counters."""

    tenant: str
    id: str
    doc: dict[str, Any]
    terms: TermMap
    selectors: tuple[Selector, ...]
    watched: frozenset[str]
    triggers: frozenset[str]
    q: Node | None
    scope_q: Node | None
    geo: GeoQuery | None
    attributes: frozenset[str] | None
    format: Format
    sys_attrs: bool
    show_changes: bool
    lang: str | None
    endpoint: str
    accept: str
    receiver_info: tuple[tuple[str, str], ...]
    notifier_info: tuple[tuple[str, str], ...]
    time_interval: float | None
    throttling: float | None
    expires_at: str | None
    active: bool
    status: dict[str, Any] = field(default_factory=dict)

    def is_live(self, now: str) -> bool:
        """Active and not expired."""
        return self.active and (self.expires_at is None or self.expires_at > now)

    def selects(self, doc: Doc) -> bool:
        """The entity is one the subscription is about (selectors and geoQ)."""
        if self.selectors and not any(s.matches(doc) for s in self.selectors):
            return False
        if self.geo is not None:
            instances = doc["attrs"].get(self.geo.geoproperty, [])
            if not any(i["type"] == "GeoProperty" and matches(i["value"], self.geo)
                       for i in instances):  # fmt: skip
                return False
        return True

    def trigger(self, before: Doc | None, after: Doc | None) -> str | None:
        """Which notification trigger a change fires for this subscription, if any."""
        created, updated, deleted = changed_attributes(before, after)
        if self.watched:
            created &= self.watched
            updated &= self.watched
            deleted &= self.watched
        if before is None:
            if "entityCreated" in self.triggers and (created or not self.watched):
                return "entityCreated"
        elif after is None:
            if "entityDeleted" in self.triggers and (deleted or not self.watched):
                return "entityDeleted"
        elif "entityUpdated" in self.triggers and (created or updated or deleted):
            return "entityUpdated"
        for kind, names in (
            ("attributeCreated", created),
            ("attributeUpdated", updated),
            ("attributeDeleted", deleted),
        ):
            if kind in self.triggers and names:
                return kind
        return None

    def render(self, before: Doc | None, after: Doc | None, deleted_at: str) -> dict[str, Any]:
        """The entity as the notification's ``data`` carries it."""
        if after is None:
            assert before is not None
            types = [self.terms.compact(t) for t in before["type"]]
            return {"id": before["id"], "type": types[0] if len(types) == 1 else types,
                    "deletedAt": deleted_at}  # fmt: skip
        options = RenderOptions(
            format=self.format, sys_attrs=self.sys_attrs, lang=self.lang, attrs=self.attributes
        )
        entity = render_entity(after, self.terms, options)
        if self.show_changes and before is not None and self.format != "keyValues":
            _add_previous(entity, before, after, self.terms)
        return entity


def _add_previous(entity: dict[str, Any], before: Doc, after: Doc, terms: TermMap) -> None:
    for iri, instances in after["attrs"].items():
        old = before["attrs"].get(iri)
        name = terms.compact(iri)
        if not old or name not in entity or isinstance(entity[name], list):
            continue
        previous = old[0]
        if previous.get("value") != instances[0].get("value"):
            if not isinstance(entity[name], dict):  # a bare concise value: give it its member
                entity[name] = {"value": entity[name]}
            entity[name][PREVIOUS[previous["type"]]] = previous["value"]


def changed_attributes(
    before: Doc | None, after: Doc | None
) -> tuple[set[str], set[str], set[str]]:
    """Attribute IRIs created, updated and deleted between two versions of an entity."""
    old = before["attrs"] if before is not None else {}
    new = after["attrs"] if after is not None else {}
    created = set(new) - set(old)
    deleted = set(old) - set(new)
    updated = {iri for iri in set(new) & set(old) if new[iri] != old[iri]}
    return created, updated, deleted


def _strings(value: object, what: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise BadRequestDataError(f"{what} must be a non-empty array of strings")
    return value


def _positive(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise BadRequestDataError(f"{what} must be a positive number")
    return float(value)


def _key_values(value: object, what: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BadRequestDataError(f"{what} must be an array of {{key, value}} objects")
    pairs = []
    for item in value:
        if not (isinstance(item, dict) and isinstance(item.get("key"), str)
                and isinstance(item.get("value"), str)):  # fmt: skip
            raise BadRequestDataError(f"{what} items must be {{key, value}} string pairs")
        if any(c in item["key"] + item["value"] for c in "\r\n"):
            raise BadRequestDataError(f"{what} must not contain line breaks")
        pairs.append((item["key"], item["value"]))
    return tuple(pairs)


def new_subscription_id() -> str:
    """A fresh subscription id."""
    return f"urn:ngsi-ld:Subscription:{uuid.uuid4().hex}"


def compile_subscription(
    tenant: str,
    doc: dict[str, Any],
    terms: TermMap,
    *,
    max_regex_length: int = DEFAULT_MAX_REGEX_LENGTH,
    max_points: int = DEFAULT_MAX_GEOMETRY_POINTS,
) -> CompiledSubscription:
    """Validate a subscription document and compile it (raises BadRequestData)."""
    if doc.get("type") != "Subscription":
        raise BadRequestDataError('a subscription needs "type": "Subscription"')
    check_uri(doc.get("id"), "subscription id")
    selectors = tuple(
        _selector(item, terms, max_regex_length) for item in _list(doc.get("entities"), "entities")
    )
    watched = frozenset(
        expand_name(terms, a) for a in _strings(doc["watchedAttributes"], "watchedAttributes")
    ) if "watchedAttributes" in doc else frozenset()  # fmt: skip
    interval = _positive(doc["timeInterval"], "timeInterval") if "timeInterval" in doc else None
    throttling = _positive(doc["throttling"], "throttling") if "throttling" in doc else None
    if interval is not None and (watched or throttling is not None):
        raise BadRequestDataError("timeInterval excludes watchedAttributes and throttling")
    if not selectors and not watched:
        raise BadRequestDataError("a subscription needs entities or watchedAttributes")
    triggers = doc.get("notificationTrigger", list(DEFAULT_TRIGGERS))
    unknown = set(_strings(triggers, "notificationTrigger")) - set(TRIGGERS)
    if unknown:
        raise BadRequestDataError(f"unknown notificationTrigger: {', '.join(sorted(unknown))}")
    geo_doc = doc.get("geoQ")
    geo = None
    if geo_doc is not None:
        if not isinstance(geo_doc, dict):
            raise BadRequestDataError("geoQ must be an object")
        geo = parse_geo_query(
            geo_doc.get("georel"), geo_doc.get("geometry"), geo_doc.get("coordinates"),
            geo_doc.get("geoproperty"), max_points=max_points,
        )  # fmt: skip
        if geo is None:
            raise BadRequestDataError("geoQ needs georel, geometry and coordinates")
        geo = dataclasses.replace(geo, geoproperty=expand_name(terms, geo.geoproperty))
    notification = doc.get("notification")
    if not isinstance(notification, dict):
        raise BadRequestDataError("a subscription needs a notification object")
    endpoint = notification.get("endpoint")
    if not isinstance(endpoint, dict) or not isinstance(endpoint.get("uri"), str):
        raise BadRequestDataError("notification.endpoint.uri is required")
    uri = endpoint["uri"]
    parts = urlsplit(uri)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise BadRequestDataError(f"notification endpoint must be {'/'.join(SCHEMES)}: {uri!r}")
    accept = endpoint.get("accept", "application/json")
    if accept not in ACCEPTS:
        raise BadRequestDataError(f"endpoint.accept must be one of {', '.join(ACCEPTS)}")
    fmt = notification.get("format", "normalized")
    if fmt == "simplified":
        fmt = "keyValues"
    if fmt not in ("normalized", "keyValues", "concise"):
        raise BadRequestDataError("notification.format must be normalized, keyValues or concise")
    attributes = notification.get("attributes")
    expires = doc.get("expiresAt")
    for flag in ("isActive",):
        if flag in doc and not isinstance(doc[flag], bool):
            raise BadRequestDataError(f"{flag} must be true or false")
    for flag in ("sysAttrs", "showChanges"):
        if flag in notification and not isinstance(notification[flag], bool):
            raise BadRequestDataError(f"notification.{flag} must be true or false")
    if "lang" in doc and not isinstance(doc["lang"], str):
        raise BadRequestDataError("lang must be a string")
    return CompiledSubscription(
        tenant=tenant,
        id=doc["id"],
        doc=doc,
        terms=terms,
        selectors=selectors,
        watched=watched,
        triggers=frozenset(triggers),
        q=_expand_q(doc.get("q"), terms, max_regex_length),
        scope_q=parse_scope_q(_string(doc["scopeQ"], "scopeQ")) if "scopeQ" in doc else None,
        geo=geo,
        attributes=frozenset(expand_name(terms, a) for a in _strings(attributes, "attributes"))
        if attributes is not None
        else None,  # fmt: skip
        format=fmt,
        sys_attrs=bool(notification.get("sysAttrs", False)),
        show_changes=bool(notification.get("showChanges", False)),
        lang=doc.get("lang"),
        endpoint=uri,
        accept=accept,
        receiver_info=_key_values(endpoint.get("receiverInfo"), "receiverInfo"),
        notifier_info=_key_values(endpoint.get("notifierInfo"), "notifierInfo"),
        time_interval=interval,
        throttling=throttling,
        expires_at=canonical_datetime(expires, "expiresAt") if expires is not None else None,
        active=bool(doc.get("isActive", True)),
    )


def _list(value: object, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list) or not value:
        raise BadRequestDataError(f"{what} must be a non-empty array")
    return value


def _string(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise BadRequestDataError(f"{what} must be a string")
    return value


def _selector(item: object, terms: TermMap, max_regex_length: int) -> Selector:
    if not isinstance(item, dict) or not isinstance(item.get("type"), str):
        raise BadRequestDataError("each entities item needs a type")
    pattern = item.get("idPattern")
    if pattern is not None:
        pattern = check_pattern(pattern, "idPattern", max_regex_length)
    return Selector(
        id=check_uri(item["id"], "entities[].id") if "id" in item else None,
        id_pattern=pattern,
        types=expand_query(parse_type_expression(item["type"]), terms),
    )


def _expand_q(text: object, terms: TermMap, max_regex_length: int) -> Node | None:
    if text is None:
        return None
    return expand_query(parse_q(_string(text, "q"), max_regex_length), terms)
