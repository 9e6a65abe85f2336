"""One typed Settings object: command line > env AGILECITY_* > agilecity.toml > default."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from agilecity.errors import BadRequestDataError


class SettingsError(BadRequestDataError):
    """A setting has a value that cannot be used."""

    title = "Invalid setting"


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    """Every AgileCity setting, with its default and a one-line help text."""

    host: str = _setting("127.0.0.1", "Address the HTTP server listens on.")
    port: int = _setting(1026, "TCP port of the HTTP server (1026 is the FIWARE convention).")
    db: str = _setting(
        "sqlite:///data/agilecity.sqlite",
        "Store URL: sqlite:///relative/path, sqlite:////absolute/path.",
    )
    default_page_size: int = _setting(20, "Entities per page when a query gives no limit.")
    max_page_size: int = _setting(1000, "Largest limit a query may ask for (TooManyResults above).")
    max_body_bytes: int = _setting(8 * 1024 * 1024, "Largest request body accepted, in bytes.")
    max_batch_entities: int = _setting(1000, "Most entities in one batch operation.")
    max_json_depth: int = _setting(32, "Deepest nesting of arrays/objects accepted in a body.")
    max_regex_length: int = _setting(
        1000, "Longest regular expression (idPattern, q ~=) accepted, in characters."
    )
    max_geometry_points: int = _setting(
        10_000, "Most coordinate positions in one geometry (GeoProperty value or geo-query)."
    )
    context_fetch_timeout: float = _setting(5.0, "Seconds allowed to fetch a remote @context.")
    context_max_bytes: int = _setting(1024 * 1024, "Largest remote @context accepted, in bytes.")
    allow_private_context_urls: bool = _setting(
        False,
        "Allow @context URLs on loopback/private addresses (local development, tests).",
    )
    context_dir: str = _setting(
        "",
        "Folder of JSON-LD files preloaded as contexts (offline deployments); "
        "each file's URL is given by a sibling index.json mapping file name -> URL.",
    )
    allow_private_notification_urls: bool = _setting(
        False,
        "Allow notification endpoints on loopback/private addresses (local development, tests).",
    )
    notification_queue_size: int = _setting(
        10_000, "Notifications held per endpoint while its receiver is down."
    )
    notification_timeout: float = _setting(5.0, "Seconds allowed for one notification send.")
    history_retention_days: int = _setting(0, "Days of history kept (0 keeps everything).")
    history_retention_tenants: str = _setting(
        "", "Per-tenant retention overrides, e.g. 'roubaix=365,carouge=730'."
    )
    log_level: str = _setting("info", "Log level: debug, info, warning, error.")
    auth: bool = _setting(
        True,
        "Require credentials (API keys, JWT bearer tokens, staff sessions) for all but public "
        "reads; false is the open mode, for local development and conformance testing only.",
    )
    public_types: str = _setting(
        "ParkingSpot,OnStreetParking,ParkingGroup,NoiseLevelObserved,WeatherObserved,"
        "AirQualityObserved,Streetlight,EVChargingStation,WasteContainer,Garden,FlowerBed,"
        "GreenspaceRecord,Building,KeyPerformanceIndicator,service_requests",
        "Entity types anonymous visitors may read (comma-separated); every other type needs "
        "credentials.",
    )
    auth_jwt_secret: str = _setting("", "Shared secret verifying HS256 bearer JWTs (empty: none).")
    auth_jwks_url: str = _setting(
        "", "URL of the OIDC issuer's key set (JWKS) verifying RS256/ES256 bearer JWTs."
    )
    auth_jwt_issuer: str = _setting("", "Required iss claim of bearer JWTs (empty: not checked).")
    auth_jwt_audience: str = _setting("", "Required aud claim of bearer JWTs (empty: not checked).")
    session_hours: float = _setting(8.0, "Hours a staff login session lasts.")
    secure_cookies: bool = _setting(
        False, "Mark the session cookie Secure (set it when served over HTTPS)."
    )
    services: str = _setting(
        "", "City services enabled in the default tenant, comma-separated (e.g. parking,noise)."
    )
    services_tenants: str = _setting(
        "", "City services of other tenants, e.g. 'roubaix=parking+noise,carouge=noise'."
    )
    gateway: bool = _setting(
        False, "Run the device gateway: IoT Agent API under /iot and the MQTT listener."
    )
    mqtt_host: str = _setting("127.0.0.1", "MQTT broker the gateway subscribes to.")
    mqtt_port: int = _setting(1883, "TCP port of the MQTT broker.")
    mqtt_username: str = _setting("", "MQTT user name of the gateway (empty: anonymous).")
    mqtt_password: str = _setting("", "MQTT password of the gateway.")
    mqtt_share_group: str = _setting(
        "agilecity",
        "MQTT shared-subscription group: the processes of one platform share it, so each "
        "frame is handled once; platforms on one MQTT broker need different groups.",
    )
    gateway_max_frame_bytes: int = _setting(
        16_384, "Largest device frame (MQTT message or HTTP measure body), in bytes."
    )
    gateway_context: str = _setting(
        "", "@context URL the gateway expands device attribute names with (empty: core context)."
    )
    open311_categories_file: str = _setting(
        "", "JSON file of the city's report categories (empty: the built-in set, docs/open311.md)."
    )
    open311_districts_file: str = _setting(
        "", "GeoJSON FeatureCollection of districts (properties.name) for report statistics."
    )
    open311_jurisdiction_id: str = _setting(
        "", "Open311 jurisdiction_id this city answers to (empty: any value is accepted)."
    )
    open311_public_url: str = _setting(
        "", "Base URL of the platform in report e-mails and photo links (empty: http://host:port)."
    )
    open311_rate_limit: int = _setting(
        10, "Report submissions (and follows) per client per window (0: no limit)."
    )
    open311_rate_window_seconds: int = _setting(3600, "Window of open311_rate_limit, in seconds.")
    open311_max_body_bytes: int = _setting(
        6 * 1024 * 1024, "Largest Open311 request body (a form with a photo), in bytes."
    )
    open311_max_photo_bytes: int = _setting(5 * 1024 * 1024, "Largest report photo, in bytes.")
    open311_max_photo_pixels: int = _setting(
        40_000_000, "Most pixels (width x height) a report photo may decode to."
    )
    open311_max_description_chars: int = _setting(
        4000, "Longest report description, in characters."
    )
    open311_duplicate_distance_m: float = _setting(
        50.0, "Open reports of a category this close (metres) are suggested as duplicates."
    )
    open311_contact_retention_days: int = _setting(
        90, "Days after a report closes before its reporter's contact details are deleted."
    )
    open311_photo_retention_days: int = _setting(
        365, "Days after a report closes before its photos are deleted."
    )
    open311_smtp_host: str = _setting("", "SMTP server for report e-mails (empty: no e-mail).")
    open311_smtp_port: int = _setting(25, "TCP port of the SMTP server.")
    open311_mail_from: str = _setting("agilecity@localhost", "From address of report e-mails.")

    web: bool = _setting(True, "Serve the web pages: the public dashboard at / and /staff.")
    web_title: str = _setting("AgileCity", "The city's name, shown in the pages' title and header.")
    web_basemap: str = _setting(
        "",
        "Folder of the offline basemap's GeoJSON files (districts, streets, buildings, "
        "green_spaces .geojson); empty: no basemap (make demo sets the demo town's).",
    )
    web_tile_url: str = _setting(
        "", "URL template of a raster tile server drawn under the map (empty: offline only)."
    )
    web_tile_attribution: str = _setting("", "Attribution text the tile server requires.")

    @classmethod
    def help_texts(cls) -> dict[str, str]:
        """Setting name -> help text, for --help and the documentation test."""
        return {f.name: str(f.metadata["help"]) for f in fields(cls)}

    @staticmethod
    def env_name(name: str) -> str:
        """The environment variable of a setting."""
        return "AGILECITY_" + name.upper()

    @classmethod
    def load(
        cls,
        overrides: dict[str, Any] | None = None,
        *,
        env: dict[str, str] | None = None,
        toml_path: Path | None = None,
    ) -> Settings:
        """Build settings from defaults, agilecity.toml, the environment, then overrides."""
        env = dict(os.environ) if env is None else env
        values: dict[str, Any] = {}
        path = toml_path or Path(env.get("AGILECITY_CONFIG", "agilecity.toml"))
        if path.is_file():
            try:
                values.update(tomllib.loads(path.read_text(encoding="utf-8")))
            except tomllib.TOMLDecodeError as exc:
                raise SettingsError(f"{path}: {exc}") from exc
            values.pop("service", None)  # [service.<name>] tables: the services' own settings
        for f in fields(cls):
            name = cls.env_name(f.name)
            if name in env:
                values[f.name] = env[name]
        for key, value in (overrides or {}).items():
            if value is not None:
                values[key] = value
        return cls().updated(values)

    def updated(self, values: dict[str, Any]) -> Settings:
        """A copy with the given values converted to each field's type and validated."""
        known = {f.name: f for f in fields(self)}
        converted: dict[str, Any] = {}
        for key, raw in values.items():
            if key not in known:
                raise SettingsError(f"unknown setting {key!r}")
            converted[key] = _convert(key, type(getattr(self, key)), raw)
        result = replace(self, **converted)
        result.validate()
        return result

    def public_type_set(self) -> frozenset[str]:
        """public_types parsed."""
        return frozenset(t.strip() for t in self.public_types.split(",") if t.strip())

    def retention_per_tenant(self) -> dict[str, int]:
        """history_retention_tenants parsed: tenant -> days."""
        result: dict[str, int] = {}
        for item in self.history_retention_tenants.split(","):
            if not item.strip():
                continue
            tenant, _, days = item.partition("=")
            if not days.strip().isdigit():
                raise SettingsError(f"history_retention_tenants: {item!r} is not tenant=days")
            result[tenant.strip()] = int(days)
        return result

    def validate(self) -> None:
        """Check cross-field rules; raises SettingsError."""
        self.retention_per_tenant()
        if self.history_retention_days < 0:
            raise SettingsError("history_retention_days must not be negative")
        if self.open311_rate_limit < 0:
            raise SettingsError("open311_rate_limit must not be negative (0: no limit)")
        for name in ("port", "mqtt_port", "open311_smtp_port"):
            if not 0 < getattr(self, name) < 65536:
                raise SettingsError(f"{name} must be 1-65535, not {getattr(self, name)}")
        if not 0 < self.default_page_size <= self.max_page_size:
            raise SettingsError("default_page_size must be between 1 and max_page_size")
        if not self.db.startswith(("sqlite:", "postgresql:", "postgres:")):
            raise SettingsError(f"db must be a sqlite:/// or postgresql:// URL, not {self.db!r}")
        positive = ("max_body_bytes", "max_batch_entities", "context_max_bytes", "max_json_depth",
                    "notification_queue_size", "gateway_max_frame_bytes", "open311_max_body_bytes",
                    "open311_max_photo_bytes", "open311_max_photo_pixels",
                    "open311_max_description_chars", "open311_rate_window_seconds",
                    "open311_duplicate_distance_m", "open311_contact_retention_days",
                    "open311_photo_retention_days")  # fmt: skip
        for name in (*positive, "max_regex_length", "max_geometry_points"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive")
        if not self.mqtt_share_group or any(c in self.mqtt_share_group for c in "/+#"):
            raise SettingsError("mqtt_share_group must be a non-empty name without / + #")
        if self.session_hours <= 0:
            raise SettingsError("session_hours must be positive")
        if self.auth_jwt_secret and self.auth_jwks_url:
            raise SettingsError("give auth_jwt_secret or auth_jwks_url, not both")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise SettingsError("log_level must be debug, info, warning or error")


def _convert(key: str, kind: type, raw: Any) -> Any:
    if isinstance(raw, kind) and not (kind is int and isinstance(raw, bool)):
        return raw
    text = str(raw).strip()
    try:
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError as exc:
        raise SettingsError(f"{key}: {text!r} is not a valid {kind.__name__}") from exc
    return text
