"""Stored documents to NGSI-LD representations: normalized, concise, keyValues, GeoJSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from agilecity.broker.context import TermMap
from agilecity.broker.entities import PRINCIPAL, Doc, Instance

Format = Literal["normalized", "concise", "keyValues"]


@dataclass(frozen=True)
class RenderOptions:
    """How to render: format, system attributes, language and which attributes to keep."""

    format: Format = "normalized"
    sys_attrs: bool = False
    lang: str | None = None
    attrs: frozenset[str] | None = None  # attribute IRIs to keep (attrs / pick)
    omit: frozenset[str] = frozenset()  # attribute IRIs to drop
    keep_id: bool = True
    keep_type: bool = True
    keep_scope: bool = True


def render_entity(doc: Doc, terms: TermMap, options: RenderOptions) -> dict[str, Any]:
    """One entity in the requested representation (without @context)."""
    out: dict[str, Any] = {}
    if options.keep_id:
        out["id"] = doc["id"]
    if options.keep_type:
        types = [terms.compact(t) for t in doc["type"]]
        out["type"] = types[0] if len(types) == 1 else types
    if "scope" in doc and options.keep_scope:
        scope = doc["scope"]
        out["scope"] = scope[0] if len(scope) == 1 else scope
    if options.sys_attrs and options.format != "keyValues":
        out["createdAt"] = doc["createdAt"]
        out["modifiedAt"] = doc["modifiedAt"]
    for iri, instances in doc["attrs"].items():
        if options.attrs is not None and iri not in options.attrs:
            continue
        if iri in options.omit or not instances:
            continue
        name = terms.compact(iri)
        if options.format == "keyValues":
            out[name] = _key_value(_default_instance(instances), terms, options)
        elif len(instances) == 1:
            out[name] = render_instance(instances[0], terms, options)
        else:
            # Inside an array a bare value could not be told from an instance: keep objects.
            out[name] = [render_instance(i, terms, options, bare=False) for i in instances]
    return out


def _default_instance(instances: list[Instance]) -> Instance:
    for inst in instances:
        if "datasetId" not in inst:
            return inst
    return instances[0]


def _pick_language(language_map: dict[str, Any], lang: str) -> tuple[str, Any]:
    for wanted in (t.strip().split(";")[0] for t in lang.split(",")):
        if wanted in language_map:
            return wanted, language_map[wanted]
        for tag, text in language_map.items():
            if tag.split("-")[0] == wanted.split("-")[0]:
                return tag, text
    if "@none" in language_map:
        return "@none", language_map["@none"]
    tag = next(iter(language_map))
    return tag, language_map[tag]


def _principal_out(inst: Instance, terms: TermMap) -> Any:
    value = inst["value"]
    if inst["type"] == "VocabProperty":
        if isinstance(value, list):
            return [terms.compact(v) for v in value]
        return terms.compact(value)
    return value


#: Kinds whose simplified value keeps its member name, so that it cannot be mistaken for
#: a Property's JSON value when read back (clause 4.5.4).
_WRAPPED_IN_KEY_VALUES = frozenset(
    {"LanguageProperty", "VocabProperty", "JsonProperty", "ListProperty", "ListRelationship"}
)


def _key_value(inst: Instance, terms: TermMap, options: RenderOptions) -> Any:
    kind = inst["type"]
    if kind == "LanguageProperty" and options.lang and options.lang != "*":
        return _pick_language(inst["value"], options.lang)[1]
    value = _principal_out(inst, terms)
    if kind in _WRAPPED_IN_KEY_VALUES:
        return {PRINCIPAL[kind]: value}
    return value


def render_instance(
    inst: Instance, terms: TermMap, options: RenderOptions, *, bare: bool = True
) -> Any:
    """One attribute instance, normalized or concise (``bare`` allows a lone value)."""
    kind = inst["type"]
    out: dict[str, Any] = {}
    concise = options.format == "concise"
    if kind == "LanguageProperty" and options.lang and options.lang != "*":
        tag, text = _pick_language(inst["value"], options.lang)
        if not concise:
            out["type"] = "Property"
        out["value"] = text
        out["lang"] = tag
    else:
        if not concise:
            out["type"] = kind
        out[PRINCIPAL[kind]] = _principal_out(inst, terms)
    for member in ("observedAt", "unitCode", "datasetId"):
        if member in inst:
            out[member] = inst[member]
    if options.sys_attrs:
        for member in ("createdAt", "modifiedAt"):
            if member in inst:
                out[member] = inst[member]
    subs = inst.get("subs")
    if subs:
        for sub_iri, sub in subs.items():
            out[terms.compact(sub_iri)] = render_instance(sub, terms, options)
    if concise and bare and list(out) == ["value"]:
        value = out["value"]
        # A bare value is only unambiguous when it is not itself an object.
        if not isinstance(value, dict) or kind == "GeoProperty":
            return value
    return out


def render_feature(
    doc: Doc, terms: TermMap, options: RenderOptions, geometry_iri: str
) -> dict[str, Any]:
    """One entity as a GeoJSON Feature (clause 4.5.16)."""
    body = render_entity(doc, terms, options)
    geometry = None
    instances = doc["attrs"].get(geometry_iri) or []
    if instances and instances[0]["type"] == "GeoProperty":
        geometry = _default_instance(instances)["value"]
    properties = {k: v for k, v in body.items() if k != "id"}
    return {"id": doc["id"], "type": "Feature", "geometry": geometry, "properties": properties}
