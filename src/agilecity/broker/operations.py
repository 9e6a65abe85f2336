"""Pure transformations of stored entity documents: the semantics of each NGSI-LD write.

Every function takes the current document and returns a new one (never mutates its
input), so the store can run it inside its write transaction and the broker can diff
before/after for notifications and history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar, cast

import orjson

from agilecity.broker.entities import Doc, Instance
from agilecity.errors import ResourceNotFoundError

J = TypeVar("J")


def json_copy(value: J) -> J:
    """A deep copy of JSON data (dicts, lists, text, numbers): 10x faster than deepcopy."""
    return cast(J, orjson.loads(orjson.dumps(value)))


@dataclass
class UpdateResult:
    """NGSI-LD UpdateResult: which attributes were written and which were not, and why."""

    updated: list[str] = field(default_factory=list)
    not_updated: list[tuple[str, str]] = field(default_factory=list)


def _touch(doc: Doc, now: str) -> Doc:
    doc["modifiedAt"] = now
    return doc


def _dataset(inst: Instance) -> str | None:
    dataset: str | None = inst.get("datasetId")
    return dataset


def replace_entity(old: Doc, new: Doc, now: str) -> Doc:
    """PUT /entities/{id}: the new content replaces everything but id and createdAt."""
    result = json_copy(new)
    result["createdAt"] = old["createdAt"]
    return _touch(result, now)


def without_nulls(inst: Instance) -> Instance:
    """An instance with its "remove this member" markers (None) dropped."""
    result = {k: json_copy(v) for k, v in inst.items() if v is not None and k != "subs"}
    subs = {k: without_nulls(v) for k, v in inst.get("subs", {}).items() if v is not None}
    if subs:
        result["subs"] = subs
    return result


def merge_instance(old: Instance, new: Instance, now: str) -> Instance:
    """Merge one instance into another: given members win, None removes, sub-attributes merge."""
    result = json_copy(old)
    for key, value in new.items():
        if key in ("createdAt", "subs"):
            continue
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_copy(value)
    for sub, sub_inst in new.get("subs", {}).items():
        subs = result.setdefault("subs", {})
        if sub_inst is None:
            subs.pop(sub, None)
        elif sub in subs:
            subs[sub] = merge_instance(subs[sub], sub_inst, now)
        else:
            subs[sub] = without_nulls(sub_inst)
    if not result.get("subs"):
        result.pop("subs", None)
    result["modifiedAt"] = now
    return result


def _put_instances(
    existing: list[Instance], incoming: list[Instance], now: str, *, merge: bool
) -> list[Instance]:
    result = [json_copy(i) for i in existing]
    for inst in incoming:
        for index, current in enumerate(result):
            if _dataset(current) == _dataset(inst):
                if merge:
                    result[index] = merge_instance(current, inst, now)
                else:
                    replacement = without_nulls(inst)
                    replacement["createdAt"] = current.get("createdAt", now)
                    result[index] = replacement
                break
        else:
            result.append(without_nulls(inst))
    return result


def merge_entity(
    old: Doc,
    attrs: dict[str, list[Instance]],
    now: str,
    *,
    types: list[str] | None = None,
    scope: list[str] | None = None,
) -> Doc:
    """PATCH /entities/{id} and batch merge: add, merge, or delete (null) attributes."""
    result = json_copy(old)
    if types:
        result["type"] = list(dict.fromkeys([*result["type"], *types]))
    if scope is not None:
        result["scope"] = scope
    for iri, instances in attrs.items():
        if not instances:
            result["attrs"].pop(iri, None)
        else:
            current = result["attrs"].get(iri, [])
            result["attrs"][iri] = _put_instances(current, instances, now, merge=True)
    return _touch(result, now)


def append_attributes(
    old: Doc, attrs: dict[str, list[Instance]], now: str, *, overwrite: bool
) -> tuple[Doc, UpdateResult]:
    """POST /entities/{id}/attrs: add attributes, replacing existing ones unless noOverwrite."""
    result = json_copy(old)
    report = UpdateResult()
    for iri, instances in attrs.items():
        current = result["attrs"].get(iri, [])
        if not instances:
            report.not_updated.append((iri, "a null value cannot be appended"))
            continue
        datasets = {_dataset(i) for i in current}
        if not overwrite and any(_dataset(i) in datasets for i in instances):
            report.not_updated.append((iri, "attribute already exists (noOverwrite)"))
            continue
        result["attrs"][iri] = _put_instances(current, instances, now, merge=False)
        report.updated.append(iri)
    if report.updated:
        _touch(result, now)
    return result, report


def update_attributes(
    old: Doc, attrs: dict[str, list[Instance]], now: str
) -> tuple[Doc, UpdateResult]:
    """PATCH /entities/{id}/attrs: replace attributes that exist; others are reported."""
    result = json_copy(old)
    report = UpdateResult()
    for iri, instances in attrs.items():
        current = result["attrs"].get(iri)
        if current is None:
            report.not_updated.append((iri, "attribute does not exist"))
            continue
        if not instances:
            del result["attrs"][iri]
            report.updated.append(iri)
            continue
        datasets = {_dataset(i) for i in current}
        missing = [i for i in instances if _dataset(i) not in datasets]
        if missing:
            report.not_updated.append((iri, "no instance with that datasetId"))
            continue
        result["attrs"][iri] = _put_instances(current, instances, now, merge=False)
        report.updated.append(iri)
    if report.updated:
        _touch(result, now)
    return result, report


def find_instance(doc: Doc, iri: str, dataset_id: str | None, name: str) -> int:
    """Index of the instance of an attribute with the given datasetId, or ResourceNotFound."""
    for index, inst in enumerate(doc["attrs"].get(iri, [])):
        if _dataset(inst) == dataset_id:
            return index
    which = f" with datasetId {dataset_id}" if dataset_id else ""
    raise ResourceNotFoundError(f"entity {doc['id']} has no attribute {name!r}{which}")


def partial_update_attribute(
    old: Doc, iri: str, fragment: Instance, keep_value: bool, now: str, name: str
) -> Doc:
    """PATCH /entities/{id}/attrs/{attr}: the fragment's members replace the instance's."""
    result = json_copy(old)
    index = find_instance(result, iri, _dataset(fragment), name)
    current = result["attrs"][iri][index]
    patch = dict(fragment)
    if keep_value:
        patch.pop("value", None)
        patch.pop("type", None)
    result["attrs"][iri][index] = merge_instance(current, patch, now)
    return _touch(result, now)


def replace_attribute(old: Doc, iri: str, instances: list[Instance], now: str, name: str) -> Doc:
    """PUT /entities/{id}/attrs/{attr}: replace instances of an existing attribute."""
    result = json_copy(old)
    if iri not in result["attrs"]:
        raise ResourceNotFoundError(f"entity {old['id']} has no attribute {name!r}")
    result["attrs"][iri] = _put_instances(result["attrs"][iri], instances, now, merge=False)
    return _touch(result, now)


def delete_attribute(
    old: Doc, iri: str, dataset_id: str | None, delete_all: bool, now: str, name: str
) -> Doc:
    """DELETE /entities/{id}/attrs/{attr}: the default instance, one datasetId, or all."""
    result = json_copy(old)
    if iri not in result["attrs"]:
        raise ResourceNotFoundError(f"entity {old['id']} has no attribute {name!r}")
    if delete_all:
        del result["attrs"][iri]
    else:
        index = find_instance(result, iri, dataset_id, name)
        del result["attrs"][iri][index]
        if not result["attrs"][iri]:
            del result["attrs"][iri]
    return _touch(result, now)
