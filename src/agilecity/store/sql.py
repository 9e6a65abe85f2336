"""Entity queries compiled to SQL: shared logic, with JSON access and geo as dialect hooks.

The compiler walks the query AST (``broker/query.py``) and emits a WHERE clause over the
``entities e`` table with every user value as a bound parameter (``?``; the PostgreSQL
store turns them into ``%s``). JSON paths are bound parameters too: attribute IRIs are
validated by the broker to contain no quote or backslash, and member names are quoted.
"""

from __future__ import annotations

from typing import Any

import orjson

from agilecity.broker.entities import QUERYABLE_MEMBERS
from agilecity.broker.geo import query_to_json, search_box
from agilecity.broker.query import (
    And,
    AttrPath,
    Comparison,
    Exists,
    Node,
    Or,
    Pattern,
    Range,
    ScopeMatch,
    TypeName,
    Value,
)
from agilecity.broker.regex import posix_form
from agilecity.store.base import AuditQuery, EntityQuery, EntitySelector, HistoryQuery

NGSI_LD = "https://uri.etsi.org/ngsi-ld/"
#: The time column for each NGSI-LD time property (a whitelist: never user text in SQL).
TIME_COLUMNS = {
    "observedAt": "observed_at",
    "createdAt": "created_at",
    "modifiedAt": "modified_at",
}
_NUMBER_TYPES = "('integer','real')"


def json_key(name: str) -> str:
    """A JSON path step for an object key, quoted."""
    return '."' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def attribute_path(iri: str) -> str:
    """The SQLite JSON path of an attribute's instance array in a stored document."""
    return "$.attrs" + json_key(iri)


def value_steps(path: AttrPath) -> list[str]:
    """The keys leading, inside an instance, to the value a query term compares."""
    steps: list[str] = []
    for index, sub in enumerate(path.sub_attrs):
        if index == len(path.sub_attrs) - 1 and sub in QUERYABLE_MEMBERS:
            return [*steps, sub, *path.compound]
        steps += ["subs", sub]
    return [*steps, "value", *path.compound]


def like_prefix(prefix: str) -> str:
    """A LIKE pattern matching everything below a scope, with wildcards escaped."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"


def history_where(tenant: str, query: HistoryQuery) -> tuple[str, list[Any], str]:
    """WHERE clause, parameters and time column of a history query (``?`` placeholders)."""
    column = TIME_COLUMNS[query.time_property]
    clauses = ["tenant = ?", "deleted_at IS NULL"]
    params: list[Any] = [tenant]
    clauses.append(f"entity_id IN ({','.join('?' * len(query.entity_ids))})")
    params.extend(query.entity_ids)
    if query.attrs:
        clauses.append(f"attr IN ({','.join('?' * len(query.attrs))})")
        params.extend(query.attrs)
    if query.since is not None or query.until is not None:
        clauses.append(f"{column} IS NOT NULL")
    if query.since is not None:
        clauses.append(f"{column} >= ?")
        params.append(query.since)
    if query.until is not None:
        clauses.append(f"{column} < ?")
        params.append(query.until)
    return " AND ".join(clauses), params, column


class QueryCompiler:
    """Compile an EntityQuery into a WHERE clause and parameters (dialect-independent part)."""

    #: an entity has the type (parameters: tenant, type): a semi-join PostgreSQL's planner
    #: can lead from either side (``t.tenant = e.tenant`` instead made it a subplan that
    #: read every entity of the type for each geo candidate: seconds per query)
    TYPE_CONDITION = "e.pk IN (SELECT t.pk FROM entity_types t WHERE t.tenant = ? AND t.type = ?)"
    #: the FROM of a query led by its one entity type: the type index in insertion order
    TYPE_LED_SOURCE = "entity_types t JOIN entities e ON e.pk = t.pk"

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.params: list[Any] = [tenant]
        self.clauses: list[str] = ["e.tenant = ?"]
        #: what compile()'s WHERE clause selects from, and the insertion order to page by
        self.source = "entities e"
        self.order = "e.pk"

    # -- dialect hooks -----------------------------------------------------------------

    def regexp(self, expression: str) -> str:
        """SQL testing a text expression against the next parameter, a regex."""
        raise NotImplementedError

    def regex_param(self, pattern: str) -> str:
        """A pattern checked by ``broker.regex`` as this dialect's engine must be given it."""
        return pattern

    def attr_present(self, iri: str) -> str:
        """SQL true when the entity has the attribute (appends its parameters)."""
        raise NotImplementedError

    def instances(self, path: AttrPath, condition: str, params: list[Any]) -> str:
        """EXISTS over the attribute's instances having the path and meeting a condition.

        The condition sees ``a.value`` (the instance); its parameters follow.
        """
        raise NotImplementedError

    def element_match(self, path: AttrPath, test: str, params: list[Any]) -> tuple[str, list[Any]]:
        """EXISTS over the scalar, or each element of the array, at the path of ``a.value``.

        A term matches a scalar value or any element of an array value (clause 4.9); a
        JSON-LD typed value {"@type": ..., "@value": ...} is compared by its @value. The
        test sees ``x`` (one element).
        """
        raise NotImplementedError

    def typed_test(self, value: Value, op: str) -> tuple[str, list[Any]]:
        """SQL comparing element ``x`` with a literal of its own JSON type."""
        raise NotImplementedError

    def text_test(self, test: str) -> str:
        """SQL true when element ``x`` is a string and ``test`` (on its text) holds."""
        raise NotImplementedError

    def scope_sql(self, exact: bool) -> str:
        """EXISTS over the entity's scopes equal to ? (or, not exact, equal or below)."""
        raise NotImplementedError

    def has_scope(self) -> str:
        """SQL true when the entity has any scope."""
        raise NotImplementedError

    def geo(self, query: EntityQuery) -> str:
        """SQL for the geo-query."""
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------

    def compile(self, query: EntityQuery) -> tuple[str, list[Any]]:
        """The WHERE clause (without the keyword) and its parameters."""
        if query.selectors:
            alternatives = [self.selector(s) for s in query.selectors]
            self.clauses.append("(" + " OR ".join(alternatives) + ")")
        if query.ids:
            marks = ",".join("?" * len(query.ids))
            self.clauses.append(f"e.id IN ({marks})")
            self.params.extend(query.ids)
        if query.id_pattern is not None:
            self.clauses.append(self.regexp("e.id"))
            self.params.append(self.regex_param(query.id_pattern))
        if isinstance(query.types, TypeName) and not (query.selectors or query.ids or query.geo):
            # One type (the usual query): walk that type's index rows in insertion order,
            # so a page stops after its last match instead of sorting every entity.
            self.source, self.order = self.TYPE_LED_SOURCE, "t.pk"
            self.clauses.append("t.tenant = ? AND t.type = ?")
            self.params.extend([self.tenant, query.types.name])
        elif query.types is not None:
            self.clauses.append(self.node(query.types))
        if query.attrs_any:
            alternatives = [self.attr_present(iri) for iri in query.attrs_any]
            self.clauses.append("(" + " OR ".join(alternatives) + ")")
        for node in (query.q, query.scope_q):
            if node is not None:
                self.clauses.append(self.node(node))
        if query.geo is not None:
            self.clauses.append(self.geo(query))
        return " AND ".join(self.clauses), self.params

    def filter(self, q: Node | None, scope_q: Node | None) -> tuple[str, list[Any]]:
        """Only q and scopeQ, for evaluating them on one document."""
        self.params, self.clauses = [], []
        clauses = [self.node(n) for n in (q, scope_q) if n is not None]
        return " AND ".join(clauses) or "1=1", self.params

    def selector(self, selector: EntitySelector) -> str:
        """One entity selector: id, idPattern and type expression together."""
        parts = ["1=1"]
        if selector.id is not None:
            parts.append("e.id = ?")
            self.params.append(selector.id)
        if selector.id_pattern is not None:
            parts.append(self.regexp("e.id"))
            self.params.append(self.regex_param(selector.id_pattern))
        if selector.types is not None:
            parts.append(self.node(selector.types))
        return "(" + " AND ".join(parts) + ")"

    def node(self, node: Node) -> str:
        """SQL for one AST node."""
        if isinstance(node, And):
            return "(" + " AND ".join(self.node(t) for t in node.terms) + ")"
        if isinstance(node, Or):
            return "(" + " OR ".join(self.node(t) for t in node.terms) + ")"
        if isinstance(node, TypeName):
            self.params.extend([self.tenant, node.name])
            return self.TYPE_CONDITION
        if isinstance(node, ScopeMatch):
            return self.scope(node)
        if isinstance(node, Exists):
            sql = self.instances(node.path, "1=1", [])
            return f"NOT {sql}" if node.negated else sql
        if isinstance(node, Pattern):
            return self.pattern(node)
        if isinstance(node, Comparison):
            return self.comparison(node)
        raise TypeError(f"unexpected query node {node!r}")

    def comparison(self, node: Comparison) -> str:
        """``attr op value`` (also value lists and ranges)."""
        if isinstance(node.value, Range):
            low_sql, low_params = self.typed_test(node.value.low, ">=")
            high_sql, high_params = self.typed_test(node.value.high, "<=")
            test, params = f"{low_sql} AND {high_sql}", [*low_params, *high_params]
        elif isinstance(node.value, tuple):
            parts, params = [], []
            for item in node.value:
                sql, item_params = self.typed_test(item, "=")
                parts.append(f"({sql})")
                params.extend(item_params)
            test = "(" + " OR ".join(parts) + ")"
        else:
            op = "=" if node.op in ("==", "!=") else node.op
            test, params = self.typed_test(node.value, op)
        match, match_params = self.element_match(node.path, test, params)
        negate = node.op == "!="
        return self.instances(node.path, f"NOT {match}" if negate else match, match_params)

    def pattern(self, node: Pattern) -> str:
        """``attr~=regex`` and ``attr!~=regex`` on text values."""
        test = self.text_test(self.regexp("{text}"))
        match, match_params = self.element_match(node.path, test, [self.regex_param(node.regex)])
        condition = f"NOT {match}" if node.negated else match
        return self.instances(node.path, condition, match_params)

    def scope(self, node: ScopeMatch) -> str:
        """scopeQ leaf: exact scope, or the scope and all its descendants."""
        if node.descendants and node.path == "/":
            return self.has_scope()
        if node.descendants:
            prefix = node.path.rstrip("/")
            self.params.extend([prefix, like_prefix(prefix)])
            return self.scope_sql(exact=False)
        self.params.append(node.path)
        return self.scope_sql(exact=True)


class SQLiteQueryCompiler(QueryCompiler):
    """SQLite: JSON1 functions, an RE2 REGEXP, and the R*Tree plus a shapely predicate."""

    # A probe of the type index per candidate (never a list of every entity of the type),
    # so an id or geo condition can lead the query: SQLite has no statistics to choose by.
    TYPE_CONDITION = (
        "EXISTS (SELECT 1 FROM entity_types t WHERE t.tenant = ? AND t.type = ? AND t.pk = e.pk)"
    )
    # CROSS JOIN: SQLite keeps the tables in this order (no statistics to choose by).
    TYPE_LED_SOURCE = "entity_types t CROSS JOIN entities e ON e.pk = t.pk"

    def regexp(self, expression: str) -> str:
        return f"{expression} REGEXP ?"

    def attr_present(self, iri: str) -> str:
        self.params.append(attribute_path(iri))
        return "json_type(e.doc, ?) IS NOT NULL"

    @staticmethod
    def _path(steps: list[str]) -> str:
        return "$" + "".join(json_key(s) for s in steps)

    def instances(self, path: AttrPath, condition: str, params: list[Any]) -> str:
        self.params.append(attribute_path(path.attr))
        self.params.append(self._path(value_steps(path)))
        self.params.extend(params)
        return (
            "EXISTS (SELECT 1 FROM json_each(e.doc, ?) a "
            f"WHERE json_type(a.value, ?) IS NOT NULL AND {condition})"
        )

    def element_match(self, path: AttrPath, test: str, params: list[Any]) -> tuple[str, list[Any]]:
        # json_each over a scalar yields the scalar itself, over an array its elements, over
        # an object its members (of which only "@value" counts).
        vp = self._path(value_steps(path))
        sql = (
            "EXISTS (SELECT 1 FROM json_each(a.value, ?) x "
            "WHERE (json_type(a.value, ?) <> 'object' OR x.key = '@value') AND " + test + ")"
        )
        return sql, [vp, vp, *params]

    def typed_test(self, value: Value, op: str) -> tuple[str, list[Any]]:
        if value.kind == "number":
            return f"x.type IN {_NUMBER_TYPES} AND x.value {op} ?", [value.value]
        if value.kind == "boolean":
            return f"x.type IN ('true','false') AND x.value {op} ?", [1 if value.value else 0]
        if value.kind == "datetime":
            # Stored date-times may use any offset or precision: compare canonical UTC forms.
            return self.text_test(f"ac_datetime({{text}}) {op} ?"), [value.value]
        return self.text_test(f"{{text}} {op} ?"), [value.value]

    def text_test(self, test: str) -> str:
        return "x.type = 'text' AND " + test.format(text="x.value")

    def scope_sql(self, exact: bool) -> str:
        condition = "s.value = ?" if exact else "(s.value = ? OR s.value LIKE ? ESCAPE '\\')"
        return f"EXISTS (SELECT 1 FROM json_each(e.doc, '$.scope') s WHERE {condition})"

    def has_scope(self) -> str:
        return "json_type(e.doc, '$.scope') IS NOT NULL"

    def geo(self, query: EntityQuery) -> str:
        """An R-tree prefilter where one is sound, then the exact predicate (shapely)."""
        assert query.geo is not None
        box = search_box(query.geo)
        if box is not None:
            # The R-tree's candidates lead (in entity order), not the tenant's index: a
            # unary + keeps SQLite from using an index for that term.
            self.clauses[0] = "+e.tenant = ?"
        exact = "ac_geo(g.geometry, ?)"
        if box is None:
            self.params.extend([query.geo.geoproperty, query_to_json(query.geo)])
            return f"e.pk IN (SELECT g.pk FROM geo_shapes g WHERE g.attr = ? AND {exact})"
        # The box is sound (a match's bounding box meets it), so the entities with a shape
        # in it are all the candidates; the exact predicate then runs per entity visited,
        # in entity order, and a page stops once full instead of testing every candidate.
        min_x, min_y, max_x, max_y = box
        self.params.extend([query.geo.geoproperty, max_x, min_x, max_y, min_y])
        self.params.extend([query.geo.geoproperty, query_to_json(query.geo)])
        return (
            "e.pk IN (SELECT g.pk FROM geo_shapes g JOIN geo_rtree r ON r.gid = g.gid "
            "WHERE g.attr = ? AND r.min_x <= ? AND r.max_x >= ? AND r.min_y <= ? AND r.max_y >= ?)"
            f" AND EXISTS (SELECT 1 FROM geo_shapes g WHERE g.pk = e.pk AND g.attr = ? AND {exact})"
        )


class PostgresQueryCompiler(QueryCompiler):
    """PostgreSQL: jsonb operators, POSIX regular expressions, PostGIS predicates."""

    def regexp(self, expression: str) -> str:
        return f"{expression} ~ ?"

    def regex_param(self, pattern: str) -> str:
        return posix_form(pattern)

    def attr_present(self, iri: str) -> str:
        self.params.append(iri)
        return "(e.doc -> 'attrs' -> ?) IS NOT NULL"

    def instances(self, path: AttrPath, condition: str, params: list[Any]) -> str:
        self.params.append(path.attr)
        self.params.append(value_steps(path))
        self.params.extend(params)
        return (
            "EXISTS (SELECT 1 FROM jsonb_array_elements(e.doc -> 'attrs' -> ?) a(value) "
            f"WHERE (a.value #> ?::text[]) IS NOT NULL AND {condition})"
        )

    def element_match(self, path: AttrPath, test: str, params: list[Any]) -> tuple[str, list[Any]]:
        # ac_elements (a function of the schema) gives a scalar as a one-element array, an
        # array as itself, a typed value {"@value": v} as [v] and other objects as [].
        sql = (
            "EXISTS (SELECT 1 FROM jsonb_array_elements(ac_elements(a.value #> ?::text[])) "
            "x(value) WHERE " + test + ")"
        )
        return sql, [value_steps(path), *params]

    def typed_test(self, value: Value, op: str) -> tuple[str, list[Any]]:
        if value.kind == "number":
            test = f"jsonb_typeof(x.value) = 'number' AND (x.value #>> '{{}}')::float8 {op} ?"
            return test, [float(value.value)]
        if value.kind == "boolean":
            test = f"jsonb_typeof(x.value) = 'boolean' AND (x.value #>> '{{}}')::boolean {op} ?"
            return test, [bool(value.value)]
        if value.kind == "datetime":
            return self.text_test(f"ac_datetime({{text}}) {op} ?"), [value.value]
        return self.text_test(f'{{text}} COLLATE "C" {op} ?'), [value.value]

    def text_test(self, test: str) -> str:
        return "jsonb_typeof(x.value) = 'string' AND " + test.format(text="(x.value #>> '{}')")

    def scope_sql(self, exact: bool) -> str:
        condition = "s.value = ?" if exact else "(s.value = ? OR s.value LIKE ? ESCAPE '\\')"
        return (
            "EXISTS (SELECT 1 FROM jsonb_array_elements_text(e.doc -> 'scope') s(value) "
            f"WHERE {condition})"
        )

    def has_scope(self) -> str:
        return "(e.doc -> 'scope') IS NOT NULL"

    def geo(self, query: EntityQuery) -> str:
        """PostGIS predicates on the GiST-indexed geometry (geography on a sphere for near)."""
        geo = query.geo
        assert geo is not None
        self.params.append(geo.geoproperty)
        shape = orjson.dumps(geo.geometry).decode()
        target = "ST_SetSRID(ST_GeomFromGeoJSON(?), 4326)"
        if geo.georel == "near":
            parts = []
            if geo.max_distance is not None:
                parts.append(f"ST_DWithin(g.geom::geography, {target}::geography, ?, false)")
                self.params.extend([shape, geo.max_distance])
            if geo.min_distance is not None:
                parts.append(f"NOT ST_DWithin(g.geom::geography, {target}::geography, ?, false)")
                self.params.extend([shape, geo.min_distance])
            condition = " AND ".join(parts)
        else:
            function = {
                "within": "ST_Within", "contains": "ST_Contains", "intersects": "ST_Intersects",
                "overlaps": "ST_Overlaps", "disjoint": "ST_Disjoint", "equals": "ST_Equals",
            }[geo.georel]  # fmt: skip
            condition = f"{function}(g.geom, {target})"
            self.params.append(shape)
        return f"e.pk IN (SELECT g.pk FROM geo_shapes g WHERE g.attr = ? AND {condition})"


def records_filter(kind: str | None, tenant: str | None, mark: str) -> tuple[str, tuple[str, ...]]:
    """WHERE and ORDER BY of a records listing, with the dialect's placeholder."""
    clauses, params = [], []
    for column, value in (("kind", kind), ("tenant", tenant)):
        if value is not None:
            clauses.append(f"{column} = {mark}")
            params.append(value)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return where + " ORDER BY kind, tenant, key", tuple(params)


def audit_filter(query: AuditQuery, mark: str) -> tuple[str, list[object]]:
    """WHERE, ORDER BY and paging of an audit read, with the dialect's placeholder."""
    clauses: list[str] = []
    params: list[object] = []
    for sql, value in (("at >= {m}", query.since), ("at < {m}", query.until),
                       ("actor = {m}", query.actor), ("tenant = {m}", query.tenant)):  # fmt: skip
        if value is not None:
            clauses.append(sql.format(m=mark))
            params.append(value)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    params += [query.limit, query.offset]
    return f"{where} ORDER BY seq DESC LIMIT {mark} OFFSET {mark}", params
