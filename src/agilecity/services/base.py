"""What a city service declares (``SERVICE``) and what it gets to work with (``ServiceContext``).

A service reads entities and their history through the broker's Python API and writes its
results back as entities. It never touches SQL or HTTP: its routes are plain functions
returning JSON-able data or CSV text, which the app exposes under ``/services/<name>/``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from typing import Any

from agilecity.broker.broker import Broker, QueryParams
from agilecity.broker.context import core_term_map
from agilecity.broker.representation import RenderOptions
from agilecity.broker.temporal import TemporalParams
from agilecity.errors import BadRequestDataError
from agilecity.store.base import Record

STATE_KIND = "service_state"


@dataclass(frozen=True)
class Watch:
    """Changes a service reacts to: attributes of an entity type."""

    entity_type: str
    attrs: tuple[str, ...]


@dataclass(frozen=True)
class Job:
    """A periodic job: ``run(ctx)`` every ``every`` seconds (the first a minute after start)."""

    name: str
    every: float
    run: Callable[[ServiceContext], Awaitable[None]]


@dataclass(frozen=True)
class RouteSpec:
    """A service route: GET ``/services/<name>/<path>`` answered by ``handler(ctx, params)``.

    The handler returns JSON-able data, or ``(text, media_type)`` for other formats (CSV).
    """

    path: str
    handler: Callable[[ServiceContext, dict[str, str]], Awaitable[Any]]
    summary: str = ""
    public: bool = False  # readable without credentials (aggregates, no enforcement data)


@dataclass(frozen=True)
class Tile:
    """An indicator tile of a dashboard panel: one figure of a public JSON route of the service.

    The label is the message ``<key>`` of the service's catalogue (``messages.json``).
    """

    key: str
    route: str  # a public RouteSpec path answering a JSON object
    field: str  # the figure's key in that object
    unit: str = ""


@dataclass(frozen=True)
class Layer:
    """A map layer: the entities of one type, coloured by one attribute.

    ``colours`` colours categorical values (value -> CSS colour), ``bands`` numeric ones
    (ascending lower bounds); the legend labels are the messages ``layer.<type>`` and
    ``value.<value>``. ``chart`` lists the numeric attributes the entity panel draws. A layer
    with ``route`` draws a GeoJSON route of the service instead (a computed map).
    """

    entity_type: str
    attribute: str = ""
    colours: tuple[tuple[str, str], ...] = ()
    bands: tuple[tuple[float, str], ...] = ()
    chart: tuple[str, ...] = ()
    unit: str = ""
    colour: str = "#5a6470"  # entities without the attribute, or without rules
    route: str = ""
    q: str = ""  # an NGSI-LD q filter on the entities drawn (e.g. "!validTo": open alerts)
    shown: bool = True  # drawn when the page opens (the visitor can toggle it)


@dataclass(frozen=True)
class Table:
    """A staff-console table: the rows (JSON objects) of a service route, some columns."""

    key: str  # its title: message <key>; column headers: messages <key>.<column>
    route: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Panel:
    """What the dashboard shows for a service: indicator tiles, map layers, staff tables.

    The title is the message ``<title>`` of the service's catalogue, so panels are
    translated like the rest of the pages.
    """

    title: str
    tiles: tuple[Tile, ...] = ()
    layers: tuple[Layer, ...] = ()
    tables: tuple[Table, ...] = ()


@dataclass(frozen=True)
class Service:
    """A built-in city service, registered like a plug-in."""

    name: str
    title: str
    settings: type[Any]  # a frozen dataclass; its fields are AGILECITY_<NAME>_<FIELD>
    watches: tuple[Watch, ...] = ()
    on_changes: Callable[[ServiceContext, list[dict[str, Any]]], Awaitable[None]] | None = None
    jobs: tuple[Job, ...] = ()
    routes: tuple[RouteSpec, ...] = ()
    panel: Panel | None = None

    def env_name(self, setting: str) -> str:
        """The environment variable of one of this service's settings."""
        return f"AGILECITY_{self.name.upper()}_{setting.upper()}"

    def load_settings(self, table: dict[str, Any], env: dict[str, str] | None = None) -> Any:
        """The service's settings: env > ``[services.<name>]`` of agilecity.toml > default."""
        env = dict(os.environ) if env is None else env
        values: dict[str, Any] = {}
        known = {f.name: f for f in fields(self.settings)}
        for key, value in table.items():
            if key not in known:
                raise BadRequestDataError(f"unknown setting services.{self.name}.{key}")
            values[key] = value
        for name in known:
            if self.env_name(name) in env:
                values[name] = env[self.env_name(name)]
        defaults = self.settings()
        for name, raw in values.items():
            kind = type(getattr(defaults, name))
            try:
                values[name] = raw if isinstance(raw, kind) else kind(raw)
            except (TypeError, ValueError):
                raise BadRequestDataError(
                    f"{self.env_name(name)}: {raw!r} is not a valid {kind.__name__}"
                ) from None
        return dataclasses.replace(defaults, **values)

    @staticmethod
    def help_texts(settings: type[Any]) -> dict[str, str]:
        """Setting name -> help text (the ``help`` metadata of each field)."""
        return {f.name: str(f.metadata.get("help", "")) for f in fields(settings)}


def setting(default: Any, help: str) -> Any:
    """A service setting with its default and help text."""
    return field(default=default, metadata={"help": help})


@dataclass
class ServiceContext:
    """One enabled service in one tenant: the broker, its settings, its persisted state."""

    service: Service
    broker: Broker
    tenant: str
    settings: Any
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def terms(self) -> Any:
        """The core @context term map (services use the default vocabulary)."""
        return core_term_map()

    async def load_state(self) -> dict[str, Any]:
        """The state saved by the last run (empty the first time)."""
        record = await self.broker.get_record(STATE_KIND, self.tenant, self.service.name)
        self.state = dict(record.doc) if record is not None else {}
        return self.state

    async def save_state(self) -> None:
        """Persist the state (watermark, per-entity progress)."""
        record = Record(STATE_KIND, self.tenant, self.service.name, self.state)
        await self.broker.put_record(record, create=False)

    async def entities(self, entity_type: str, attrs: list[str] | None = None) -> list[Any]:
        """Every entity of a type (current state, normalized, short names)."""
        found: list[Any] = []
        offset = 0
        while True:
            params = QueryParams(type=entity_type, attrs=attrs or [], limit=1000, offset=offset)
            docs, _ = await self.broker.query_entities(self.tenant, params, self.terms)
            found.extend(docs)
            if len(docs) < 1000:
                return found
            offset += 1000

    async def history_since(self, watch: Watch, modified_after: str | None) -> list[dict[str, Any]]:
        """Entities of the watched type with the instances recorded after ``modified_after``
        (all of them when None), rendered normalized with system attributes."""
        temporal = TemporalParams(timeproperty="modifiedAt")
        if modified_after is not None:
            temporal.timerel, temporal.time_at = "after", modified_after
        entities: list[dict[str, Any]] = []
        offset = 0
        while True:
            selection = QueryParams(type=watch.entity_type, attrs=list(watch.attrs), limit=100,
                                    offset=offset)  # fmt: skip
            result = await self.broker.history.query(
                self.tenant, selection, temporal, self.terms, RenderOptions(sys_attrs=True)
            )
            entities.extend(result.entities)
            if len(result.entities) < 100:
                return entities
            offset += 100

    async def write(self, entities: list[dict[str, Any]]) -> None:
        """Create or update result entities (upsert, update mode), in batches."""
        for start in range(0, len(entities), 500):
            batch = entities[start : start + 500]
            result = await self.broker.batch_upsert(self.tenant, batch, self.terms, replace=False)
            if result.errors:
                entity_id, error = result.errors[0]
                raise BadRequestDataError(f"{self.service.name}: {entity_id}: {error.detail}")
