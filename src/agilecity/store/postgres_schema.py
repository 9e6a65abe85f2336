"""Versioned schema migrations of the PostgreSQL store (applied in order, each once)."""

from __future__ import annotations

_V1 = r"""
CREATE EXTENSION IF NOT EXISTS postgis;

CREATE TABLE tenants (name text PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now());

CREATE TABLE entities (
    pk bigserial PRIMARY KEY,
    tenant text NOT NULL,
    id text NOT NULL,
    doc jsonb NOT NULL,
    UNIQUE (tenant, id)
);
CREATE TABLE entity_types (
    tenant text NOT NULL, type text NOT NULL,
    pk bigint NOT NULL REFERENCES entities ON DELETE CASCADE,
    PRIMARY KEY (tenant, type, pk)
);
CREATE INDEX entity_types_pk ON entity_types (pk);
CREATE TABLE entity_attrs (
    tenant text NOT NULL, attr text NOT NULL, kind text NOT NULL,
    pk bigint NOT NULL REFERENCES entities ON DELETE CASCADE,
    PRIMARY KEY (tenant, attr, kind, pk)
);
CREATE INDEX entity_attrs_pk ON entity_attrs (pk);
CREATE TABLE geo_shapes (
    gid bigserial PRIMARY KEY,
    pk bigint NOT NULL REFERENCES entities ON DELETE CASCADE,
    attr text NOT NULL,
    geom geometry(Geometry, 4326) NOT NULL
);
CREATE INDEX geo_shapes_pk ON geo_shapes (pk);
CREATE INDEX geo_shapes_geom ON geo_shapes USING gist (geom);
CREATE INDEX geo_shapes_geog ON geo_shapes USING gist ((geom::geography));

CREATE TABLE contexts (
    local_id text PRIMARY KEY, url text NOT NULL UNIQUE, kind text NOT NULL,
    body jsonb NOT NULL, created_at text NOT NULL, last_usage text, hits integer NOT NULL
);

CREATE TABLE subscriptions (
    tenant text NOT NULL, id text NOT NULL, doc jsonb NOT NULL, seq bigserial,
    PRIMARY KEY (tenant, id)
);
CREATE TABLE subscription_version (version bigint NOT NULL);
INSERT INTO subscription_version VALUES (0);
CREATE TABLE changes (
    seq bigserial PRIMARY KEY, tenant text NOT NULL, entity_id text NOT NULL,
    before jsonb, after jsonb, claimed_at timestamptz
);

-- Times are canonical UTC text (YYYY-MM-DDTHH:MM:SS.fffZ): byte order is time order.
CREATE TABLE history (
    hid bigserial,
    tenant text NOT NULL, entity_id text NOT NULL, attr text NOT NULL,
    dataset_id text NOT NULL, instance_id text NOT NULL, instance jsonb NOT NULL,
    num double precision,
    observed_at text COLLATE "C", created_at text COLLATE "C",
    modified_at text COLLATE "C" NOT NULL, deleted_at text,
    PRIMARY KEY (hid, modified_at)
) PARTITION BY RANGE (modified_at);
CREATE TABLE history_default PARTITION OF history DEFAULT;
CREATE INDEX history_observed ON history (tenant, entity_id, attr, observed_at);
CREATE INDEX history_modified ON history (tenant, modified_at);
CREATE INDEX history_instance ON history (instance_id);
CREATE TABLE temporal_entities (
    tenant text NOT NULL, id text NOT NULL, types jsonb NOT NULL, deleted_at text,
    PRIMARY KEY (tenant, id)
);

-- A scalar as [scalar], an array as itself, a JSON-LD typed value {"@value": v} as [v],
-- any other object as []: what a query term compares (clause 4.9).
CREATE FUNCTION ac_elements(value jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE jsonb_typeof(value)
        WHEN 'array' THEN value
        WHEN 'object' THEN CASE WHEN value ? '@value' THEN jsonb_build_array(value -> '@value')
                           ELSE '[]'::jsonb END
        WHEN NULL THEN '[]'::jsonb
        ELSE jsonb_build_array(value) END
$$;

-- The canonical UTC form of an ISO 8601 date-time text, NULL when it is not one.
CREATE FUNCTION ac_datetime(value text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF value IS NULL OR position('T' IN value) = 0 THEN
        RETURN NULL;
    END IF;
    RETURN to_char(value::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;
"""

_V2 = r"""
CREATE TABLE records (
    kind text NOT NULL, tenant text NOT NULL, key text NOT NULL, doc jsonb NOT NULL,
    PRIMARY KEY (kind, tenant, key)
);
"""

_V3 = r"""
CREATE TABLE audit (
    seq bigserial PRIMARY KEY, at text NOT NULL, actor text NOT NULL, role text NOT NULL,
    tenant text NOT NULL, method text NOT NULL, path text NOT NULL, status integer NOT NULL
);
CREATE INDEX audit_at ON audit (at);
"""

MIGRATIONS: list[str] = [_V1, _V2, _V3]
