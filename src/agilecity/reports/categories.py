"""Service categories (Open311 services): the built-in set and a city's own JSON file."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agilecity.errors import BadRequestDataError

DATATYPES = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")


@dataclass(frozen=True)
class Attribute:
    """An Open311 service-definition attribute (a question asked when reporting)."""

    code: str
    datatype: str
    description: str
    required: bool = False
    variable: bool = True
    order: int = 1
    datatype_description: str = ""
    values: tuple[tuple[str, str], ...] = ()  # (key, name) for the list datatypes


@dataclass(frozen=True)
class Category:
    """One kind of report, routed to a team with a target resolution time."""

    code: str
    name: str
    description: str
    group: str
    team: str
    target_hours: float
    keywords: tuple[str, ...] = ()
    attributes: tuple[Attribute, ...] = field(default=())

    @property
    def metadata(self) -> bool:
        """Open311 ``metadata``: whether the service has a definition with attributes."""
        return bool(self.attributes)


_SIZE = Attribute(
    "volume",
    "singlevaluelist",
    "How much is there?",
    required=False,
    order=1,
    values=(
        ("small", "Less than a bin bag"),
        ("medium", "A car boot"),
        ("large", "More than a car boot"),
    ),
)
_HAZARD = Attribute(
    "hazardous",
    "singlevaluelist",
    "Does it look dangerous (chemicals, asbestos, " "needles)?",
    order=2,
    values=(("no", "No"), ("yes", "Yes")),
)
DEFAULT_CATEGORIES: tuple[Category, ...] = (
    Category(
        "illegal_dumping",
        "Illegal dumping",
        "Rubbish left on the street or in nature.",
        "cleanliness",
        "cleanliness",
        48,
        ("dump", "rubbish", "dépôt sauvage"),
        (_SIZE, _HAZARD),
    ),
    Category(
        "bulky_waste",
        "Bulky waste",
        "Furniture or appliances left out for collection.",
        "cleanliness",
        "waste-collection",
        72,
        ("furniture", "encombrants"),
    ),
    Category(
        "graffiti",
        "Graffiti",
        "Graffiti or fly-posting on public property.",
        "cleanliness",
        "cleanliness",
        120,
        ("tag", "tags"),
        (
            Attribute(
                "offensive",
                "singlevaluelist",
                "Is it offensive?",
                order=1,
                values=(("no", "No"), ("yes", "Yes")),
            ),
        ),
    ),
    Category(
        "street_light",
        "Broken street light",
        "A street light out, flickering or on by " "day.",
        "lighting",
        "public-lighting",
        72,
        ("lamp", "éclairage"),
        (Attribute("light_id", "string", "Number on the post, if any", order=1),),
    ),
    Category(
        "pothole",
        "Pothole",
        "A hole or a damaged road surface.",
        "roads",
        "roads",
        168,
        ("road", "nid-de-poule"),
    ),
    Category(
        "abandoned_vehicle",
        "Abandoned vehicle",
        "A vehicle parked for weeks or wrecked.",
        "roads",
        "municipal-police",
        240,
        ("car", "épave"),
        (Attribute("plate", "string", "Registration plate", order=1),),
    ),
    Category(
        "overflowing_bin",
        "Overflowing bin",
        "A public bin or a container that is full.",
        "cleanliness",
        "waste-collection",
        24,
        ("bin", "container", "poubelle"),
    ),
    Category(
        "damaged_pavement",
        "Damaged pavement",
        "A broken pavement or kerb.",
        "roads",
        "roads",
        240,
        ("sidewalk", "trottoir"),
    ),
    Category(
        "green_space",
        "Green space",
        "A fallen tree, a broken bench, a damaged playground.",
        "green-spaces",
        "green-spaces",
        120,
        ("park", "tree", "arbre"),
    ),
)


def _text(item: dict[str, Any], key: str, default: str | None = None) -> str:
    value = item.get(key, default)
    if not isinstance(value, str) or (default is None and not value.strip()):
        raise BadRequestDataError(f"open311 categories: {key!r} must be a non-empty string")
    return value


def _attribute(item: Any) -> Attribute:
    if not isinstance(item, dict):
        raise BadRequestDataError("open311 categories: an attribute must be an object")
    datatype = _text(item, "datatype")
    if datatype not in DATATYPES:
        raise BadRequestDataError(f"open311 categories: datatype must be one of {DATATYPES}")
    values = tuple((str(v["key"]), str(v["name"])) for v in item.get("values", []))
    if datatype.endswith("valuelist") and not values:
        raise BadRequestDataError("open311 categories: a list attribute needs values")
    return Attribute(
        _text(item, "code"),
        datatype,
        _text(item, "description"),
        required=bool(item.get("required", False)),
        variable=bool(item.get("variable", True)),
        order=int(item.get("order", 1)),
        datatype_description=_text(item, "datatype_description", ""),
        values=values,
    )


def parse_categories(document: Any) -> tuple[Category, ...]:
    """Categories from a JSON document: a list of objects (or ``{"categories": [...]}``)."""
    items = document.get("categories") if isinstance(document, dict) else document
    if not isinstance(items, list) or not items:
        raise BadRequestDataError("open311 categories: expected a non-empty list of categories")
    found: list[Category] = []
    for item in items:
        if not isinstance(item, dict):
            raise BadRequestDataError("open311 categories: each category must be an object")
        code = _text(item, "code")
        if not code.replace("_", "").replace("-", "").isalnum() or not code.isascii():
            raise BadRequestDataError(f"open311 categories: code {code!r} must be [A-Za-z0-9_-]")
        try:
            hours = float(item.get("target_hours", 0))
        except (TypeError, ValueError):
            raise BadRequestDataError("open311 categories: target_hours is a number") from None
        if hours <= 0:
            raise BadRequestDataError(f"open311 categories: {code}: target_hours must be > 0")
        keywords = item.get("keywords", [])
        found.append(
            Category(
                code,
                _text(item, "name"),
                _text(item, "description", ""),
                _text(item, "group", ""),
                _text(item, "team"),
                hours,
                tuple(str(k) for k in keywords),
                tuple(_attribute(a) for a in item.get("attributes", [])),
            )
        )
    if len({c.code for c in found}) != len(found):
        raise BadRequestDataError("open311 categories: codes must be unique")
    return tuple(found)


def load_categories(path: str) -> tuple[Category, ...]:
    """The categories of the JSON file at ``path``, or the built-in set when it is empty."""
    if not path:
        return DEFAULT_CATEGORIES
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadRequestDataError(f"open311 categories file {path}: {exc}") from exc
    return parse_categories(document)
