"""Entity queries compiled to SQL; JSON access and geo predicates are dialect hooks.

The compiler walks the query AST (``broker/query.py``) and emits a WHERE clause over the
``entities e`` table with every user value as a bound parameter. JSON paths are bound
parameters too: attribute IRIs are validated by the broker to contain no quote or
backslash, and compound member names are quoted here.
"""

from __future__ import annotations

from typing import Any

from agilecity.broker.entities import QUERYABLE_MEMBERS
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
from agilecity.store.base import EntityQuery, EntitySelector

NGSI_LD = "https://uri.etsi.org/ngsi-ld/"
_NUMBER_TYPES = "('integer','real')"


def json_key(name: str) -> str:
    """A JSON path step for an object key, quoted."""
    return '."' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def attribute_path(iri: str) -> str:
    """The JSON path of an attribute's instance array in a stored document."""
    return "$.attrs" + json_key(iri)


class SQLiteQueryCompiler:
    """Compile an EntityQuery into a WHERE clause and parameters for SQLite."""

    def __init__(self, tenant: str) -> None:
        self.params: list[Any] = [tenant]
        self.clauses: list[str] = ["e.tenant = ?"]

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
            self.clauses.append("e.id REGEXP ?")
            self.params.append(query.id_pattern)
        if query.types is not None:
            self.clauses.append(self.node(query.types))
        if query.attrs_any:
            alternatives = []
            for iri in query.attrs_any:
                alternatives.append("json_type(e.doc, ?) IS NOT NULL")
                self.params.append(attribute_path(iri))
            self.clauses.append("(" + " OR ".join(alternatives) + ")")
        if query.q is not None:
            self.clauses.append(self.node(query.q))
        if query.scope_q is not None:
            self.clauses.append(self.node(query.scope_q))
        if query.geo is not None:
            self.clauses.append(self.geo(query))
        return " AND ".join(self.clauses), self.params

    def selector(self, selector: EntitySelector) -> str:
        """One entity selector: id, idPattern and type expression together."""
        parts = ["1=1"]
        if selector.id is not None:
            parts.append("e.id = ?")
            self.params.append(selector.id)
        if selector.id_pattern is not None:
            parts.append("e.id REGEXP ?")
            self.params.append(selector.id_pattern)
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
            self.params.append(node.name)
            return (
                "e.pk IN (SELECT t.pk FROM entity_types t WHERE t.tenant = e.tenant AND t.type = ?)"
            )
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

    def value_path(self, path: AttrPath) -> str:
        """JSON path, from an instance, of the value a term compares."""
        steps = "$"
        for index, sub in enumerate(path.sub_attrs):
            last = index == len(path.sub_attrs) - 1
            if last and sub in QUERYABLE_MEMBERS:
                return steps + json_key(sub) + "".join(json_key(m) for m in path.compound)
            steps += ".subs" + json_key(sub)
        return steps + ".value" + "".join(json_key(m) for m in path.compound)

    def instances(self, path: AttrPath, condition: str, params: list[Any]) -> str:
        """EXISTS over the attribute's instances that have the path and meet a condition.

        The condition sees ``a`` (the instance row of json_each); its parameters follow.
        """
        self.params.append(attribute_path(path.attr))
        self.params.append(self.value_path(path))
        self.params.extend(params)
        return (
            "EXISTS (SELECT 1 FROM json_each(e.doc, ?) a "
            f"WHERE json_type(a.value, ?) IS NOT NULL AND {condition})"
        )

    def _element_match(self, vp: str, test: str, params: list[Any]) -> tuple[str, list[Any]]:
        # json_each over a scalar yields the scalar itself, over an array its elements:
        # so a term matches a scalar value or any element of an array value (clause 4.9).
        # A JSON-LD typed value {"@type": "DateTime", "@value": "..."} is an object: its
        # "@value" member is the value compared.
        sql = (
            "EXISTS (SELECT 1 FROM json_each(a.value, ?) x "
            "WHERE (json_type(a.value, ?) <> 'object' OR x.key = '@value') AND " + test + ")"
        )
        return sql, [vp, vp, *params]

    def _typed_test(self, value: Value, op: str) -> tuple[str, list[Any]]:
        if value.kind == "number":
            return f"x.type IN {_NUMBER_TYPES} AND x.value {op} ?", [value.value]
        if value.kind == "boolean":
            return f"x.type IN ('true','false') AND x.value {op} ?", [1 if value.value else 0]
        if value.kind == "datetime":
            # Stored date-times may use any offset or precision: compare canonical UTC forms.
            return f"x.type = 'text' AND ac_datetime(x.value) {op} ?", [value.value]
        return f"x.type = 'text' AND x.value {op} ?", [value.value]

    def comparison(self, node: Comparison) -> str:
        """``attr op value`` (also value lists and ranges)."""
        vp = self.value_path(node.path)
        if isinstance(node.value, Range):
            low_sql, low_params = self._typed_test(node.value.low, ">=")
            high_sql, high_params = self._typed_test(node.value.high, "<=")
            test, params = f"{low_sql} AND {high_sql}", [*low_params, *high_params]
            negate = node.op == "!="
        elif isinstance(node.value, tuple):
            parts, params = [], []
            for item in node.value:
                sql, item_params = self._typed_test(item, "=")
                parts.append(f"({sql})")
                params.extend(item_params)
            test = "(" + " OR ".join(parts) + ")"
            negate = node.op == "!="
        else:
            op = "=" if node.op in ("==", "!=") else node.op
            test, params = self._typed_test(node.value, op)
            negate = node.op == "!="
        match, match_params = self._element_match(vp, test, params)
        return self.instances(node.path, f"NOT {match}" if negate else match, match_params)

    def pattern(self, node: Pattern) -> str:
        """``attr~=regex`` and ``attr!~=regex`` on text values."""
        vp = self.value_path(node.path)
        match, match_params = self._element_match(
            vp, "x.type = 'text' AND x.value REGEXP ?", [node.regex]
        )
        condition = f"NOT {match}" if node.negated else match
        return self.instances(node.path, condition, match_params)

    def scope(self, node: ScopeMatch) -> str:
        """scopeQ leaf: exact scope, or the scope and all its descendants."""
        if node.descendants and node.path == "/":
            return "json_type(e.doc, '$.scope') IS NOT NULL"
        if node.descendants:
            prefix = node.path.rstrip("/")
            like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
            self.params.extend([prefix, like])
            return (
                "EXISTS (SELECT 1 FROM json_each(e.doc, '$.scope') s "
                "WHERE s.value = ? OR s.value LIKE ? ESCAPE '\\')"
            )
        self.params.append(node.path)
        return "EXISTS (SELECT 1 FROM json_each(e.doc, '$.scope') s WHERE s.value = ?)"

    def geo(self, query: EntityQuery) -> str:
        """Geo-query: an R-tree prefilter where one is sound, then the exact predicate."""
        from agilecity.broker.geo import query_to_json, search_box

        assert query.geo is not None
        box = search_box(query.geo)
        self.params.append(query.geo.geoproperty)
        sql = "e.pk IN (SELECT g.pk FROM geo_shapes g "
        if box is not None:
            sql += "JOIN geo_rtree r ON r.gid = g.gid WHERE g.attr = ? "
            sql += "AND r.min_x <= ? AND r.max_x >= ? AND r.min_y <= ? AND r.max_y >= ? "
            min_x, min_y, max_x, max_y = box
            self.params.extend([max_x, min_x, max_y, min_y])
        else:
            sql += "WHERE g.attr = ? "
        sql += "AND ac_geo(g.geometry, ?))"
        self.params.append(query_to_json(query.geo))
        return sql
