"""The command line: serve, demo, simulate, config check, db upgrade, devices, export, import."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

from agilecity import __version__
from agilecity.errors import AgileCityError
from agilecity.settings import Settings


def _settings_epilog() -> str:
    lines = ["settings (environment variable, default, meaning):"]
    defaults = Settings()
    for name, text in Settings.help_texts().items():
        lines.append(f"  {Settings.env_name(name)} (default {getattr(defaults, name)!r})")
        lines.append(f"      {text}")
    lines.append("They can also be set in ./agilecity.toml (or the file AGILECITY_CONFIG names).")
    from agilecity.services.base import Service
    from agilecity.services.registry import BUILTIN, builtin_service

    for name in BUILTIN:
        service = builtin_service(name)
        lines.append(f"settings of the {name} service (also [service.{name}] in agilecity.toml):")
        defaults = service.settings()
        for field_name, text in Service.help_texts(service.settings).items():
            default = getattr(defaults, field_name)
            lines.append(f"  {service.env_name(field_name)} (default {default!r})")
            lines.append(f"      {text}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the agilecity command."""
    parser = argparse.ArgumentParser(prog="agilecity", description="AgileCity smart-city platform")
    parser.add_argument("--version", action="version", version=f"agilecity {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="start the NGSI-LD broker",
        epilog=_settings_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", help="listen address (AGILECITY_HOST)")
    serve.add_argument("--port", type=int, help="listen port (AGILECITY_PORT)")
    serve.add_argument("--db", help="store URL (AGILECITY_DB)")
    serve.add_argument(
        "--workers", type=int, default=1, help="API processes (PostgreSQL only; default 1)"
    )
    serve.add_argument(
        "--open", action="store_true", help="no authentication (AGILECITY_AUTH=false): local "
        "development and conformance testing only",
    )  # fmt: skip
    demo = commands.add_parser(
        "demo",
        help="start the platform with its gateway and the demo town living in it",
        epilog="The settings of serve apply (see agilecity serve --help); the gateway is on.",
    )
    demo.add_argument("--host", help="listen address (AGILECITY_HOST)")
    demo.add_argument("--port", type=int, help="listen port (AGILECITY_PORT)")
    demo.add_argument("--db", help="store URL (AGILECITY_DB)")
    demo.add_argument("--seed", type=int, default=1, help="the town's seed (default 1)")
    demo.add_argument(
        "--speed", type=float, default=1.0, help="simulated time per real time (default 1)"
    )
    demo.add_argument(
        "--backfill-days", type=float, default=14.0, help="days of history first (default 14)"
    )
    demo.add_argument("--tenant", default="", help="tenant of the town (default tenant)")
    config = commands.add_parser("config", help="settings")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    config_commands.add_parser(
        "check", help="validate the settings as start-up does and print them"
    )
    db = commands.add_parser("db", help="the store")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_commands.add_parser("upgrade", help="apply pending schema migrations")
    upgrade.add_argument("--db", help="store URL (AGILECITY_DB)")
    devices = commands.add_parser("devices", help="device groups and devices of the gateway")
    device_commands = devices.add_subparsers(dest="devices_command", required=True)
    provision = device_commands.add_parser(
        "provision",
        help='add groups/devices from {"services": [...], "devices": [...]}',
    )
    provision.add_argument("file", type=Path, help="IoT Agent provisioning JSON ('-' for stdin)")
    device_commands.add_parser("list", help="print the groups and devices as JSON")
    remove = device_commands.add_parser("delete", help="remove a device (its entity stays)")
    remove.add_argument("device_id")
    for sub in (provision, remove, device_commands.choices["list"]):
        sub.add_argument("--tenant", default="", help="tenant (fiware-service); default tenant")
        sub.add_argument("--db", help="store URL (AGILECITY_DB)")
    keys = commands.add_parser("keys", help="API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="create an API key and print it (once)")
    create.add_argument("--role", required=True, choices=["admin", "manager", "operator", "device"])
    create.add_argument(
        "--tenant", action="append", help="tenant granted (repeat; '' default tenant, * all; "
        "default: * for admin, the default tenant otherwise)",
    )  # fmt: skip
    create.add_argument("--name", default="", help="a label for the audit log")
    key_commands.add_parser("list", help="list the keys (never their secrets)")
    revoke = key_commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    users = commands.add_parser("users", help="staff accounts (console logins)")
    user_commands = users.add_subparsers(dest="users_command", required=True)
    add_user = user_commands.add_parser("add", help="add a staff account (asks the password)")
    add_user.add_argument("username")
    add_user.add_argument("--role", required=True, choices=["admin", "manager", "operator"])
    add_user.add_argument("--tenant", action="append", help="tenant granted (repeat)")
    add_user.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    for sub in (create, revoke, add_user, key_commands.choices["list"]):
        sub.add_argument("--db", help="store URL (AGILECITY_DB)")
    for name, text in (
        ("export", "write the whole store as NDJSON"),
        ("import", "load an NDJSON export and verify it"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("file", type=Path, help="the NDJSON file ('-' for stdin/stdout)")
        sub.add_argument("--db", help="store URL (AGILECITY_DB)")
    _add_simulate(commands)
    return parser


def _add_simulate(commands: Any) -> None:
    """``agilecity simulate``: the demo town's devices against a running platform."""
    from agilecity.ingest.simulator.command import add_arguments

    add_arguments(commands.add_parser("simulate", help="run the demo town's simulated devices"))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the agilecity command."""
    args = build_parser().parse_args(argv)
    if args.command == "simulate":
        from agilecity.ingest.simulator.command import simulate

        return simulate(args)
    overrides: dict[str, Any] = {"db": getattr(args, "db", None)}
    if args.command in ("serve", "demo"):
        overrides.update({"host": args.host, "port": args.port})
    if args.command == "serve" and args.open:
        overrides["auth"] = False
    if args.command == "demo":
        overrides["gateway"] = True
        if not os.environ.get("AGILECITY_SERVICES"):
            overrides["services"] = "parking,noise"  # the demo town feeds both
    try:
        settings = Settings.load(overrides)
    except AgileCityError as exc:
        print(f"agilecity: {exc.detail}", file=sys.stderr)
        return 2
    if args.command == "config":
        for name in Settings.help_texts():
            print(f"{Settings.env_name(name)}={getattr(settings, name)}")
        return 0
    if args.command == "serve":
        return serve(settings, workers=args.workers)
    if args.command == "demo":
        return demo(settings, args)
    try:
        return asyncio.run(_store_command(args, settings))
    except (OSError, ValueError, AgileCityError) as exc:
        print(f"agilecity: {exc}", file=sys.stderr)
        return 1


async def _store_command(args: argparse.Namespace, settings: Settings) -> int:
    from agilecity.app import open_store
    from agilecity.transfer import export_city, import_city

    store = open_store(settings)
    await store.open()  # applies pending migrations: all that "db upgrade" has to do
    try:
        if args.command == "db":
            print(f"store {settings.db}: schema up to date")
        elif args.command == "export":
            with _binary(args.file, "wb") as out:
                summary = await export_city(store, out)
            print(f"exported {summary.counts}", file=sys.stderr)
        elif args.command == "devices":
            await _devices_command(args, settings, store)
        elif args.command in ("keys", "users"):
            await _credentials_command(args, settings, store)
        elif args.command == "import":
            with _binary(args.file, "rb") as source:
                summary = await import_city(store, source)
            print(
                f"imported {summary.counts}; {len(summary.checksums)} entity checksums verified",
                file=sys.stderr,
            )
    finally:
        await store.close()
    return 0


async def _devices_command(args: argparse.Namespace, settings: Settings, store: Any) -> None:
    import orjson

    from agilecity.app import build_broker
    from agilecity.ingest.devices import DeviceRegistry

    registry = DeviceRegistry(build_broker(settings, store))
    if args.devices_command == "provision":
        with _binary(args.file, "rb") as source:
            try:
                document = orjson.loads(source.read())
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{args.file}: not JSON ({exc.msg})") from None
        if not isinstance(document, dict) or not ({"services", "devices"} & set(document)):
            raise ValueError('the file must hold {"services": [...]} and/or {"devices": [...]}')
        if "services" in document:
            keys = await registry.create_groups(args.tenant, document)
            print(f"{len(keys)} group(s) provisioned", file=sys.stderr)
        if "devices" in document:
            ids = await registry.create_devices(args.tenant, document)
            print(f"{len(ids)} device(s) provisioned", file=sys.stderr)
    elif args.devices_command == "list":
        listing = {
            "services": await registry.list_groups(args.tenant),
            "devices": await registry.list_devices(args.tenant),
        }
        print(orjson.dumps(listing, option=orjson.OPT_INDENT_2).decode())
    else:
        await registry.delete_device(args.tenant, args.device_id)
        print(f"device {args.device_id!r} removed", file=sys.stderr)


async def _credentials_command(args: argparse.Namespace, settings: Settings, store: Any) -> None:
    import getpass

    import orjson

    from agilecity.app import build_broker
    from agilecity.auth import Credentials

    credentials = Credentials(build_broker(settings, store))
    if args.command == "users":
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass(f"password for {args.username}: ")
        await credentials.add_user(args.username, password, args.role, args.tenant or [""])
        print(f"user {args.username!r} added ({args.role})", file=sys.stderr)
    elif args.keys_command == "create":
        tenants = args.tenant or (["*"] if args.role == "admin" else [""])
        key_id, token = await credentials.create_key(args.role, tenants, args.name)
        print(token)
        print(
            f"key {key_id} ({args.role}, tenants {tenants}): shown once, keep it", file=sys.stderr
        )
    elif args.keys_command == "list":
        print(orjson.dumps(await credentials.list_keys(), option=orjson.OPT_INDENT_2).decode())
    else:
        await credentials.revoke_key(args.key_id)
        print(f"key {args.key_id} revoked", file=sys.stderr)


def _binary(path: Path, mode: str) -> Any:
    if str(path) == "-":
        stream = sys.stdout.buffer if "w" in mode else sys.stdin.buffer
        return _Unclosed(stream)
    return path.open(mode)


class _Unclosed:
    """stdin/stdout as a context manager that does not close them."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def __enter__(self) -> Any:
        return self.stream

    def __exit__(self, *exc: object) -> None:
        self.stream.flush()


def demo(settings: Settings, args: argparse.Namespace) -> int:
    """Run the platform and the demo town until interrupted."""
    from agilecity.demo import DemoError, DemoOptions, serve_demo

    if args.speed <= 0 or args.backfill_days < 0:
        print("agilecity: --speed must be positive, --backfill-days not negative", file=sys.stderr)
        return 2
    _configure_logging(settings)
    _banner(settings)
    options = DemoOptions(args.seed, args.speed, args.backfill_days, args.tenant)
    if "AGILECITY_NOISE_STREETS" not in os.environ or not settings.web_basemap:
        # the town's map beside its store: the noise map propagates from its streets, the
        # dashboard draws it as its offline basemap
        from agilecity.ingest.simulator import Town
        from agilecity.ingest.simulator.command import write_geography

        sqlite = settings.db.startswith("sqlite:///")
        folder = (
            Path(settings.db[len("sqlite:///") :]).parent if sqlite else Path("data")
        ) / "town"
        write_geography(Town(args.seed), folder)
        os.environ.setdefault("AGILECITY_NOISE_STREETS", str(folder / "streets.geojson"))
        os.environ.setdefault("AGILECITY_NOISE_BUILDINGS", str(folder / "buildings.geojson"))
        if not settings.web_basemap:
            settings = settings.updated({"web_basemap": str(folder)})
    try:
        asyncio.run(serve_demo(settings, options))
    except KeyboardInterrupt:
        return 0
    except (DemoError, OSError) as exc:
        print(f"agilecity: {exc}", file=sys.stderr)
        return 1
    return 0


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise


def _banner(settings: Settings) -> None:
    print(
        f"AgileCity {__version__}: NGSI-LD API on http://{settings.host}:{settings.port}/ngsi-ld/v1"
    )
    print(f"store: {settings.db}")
    if settings.gateway:
        print(f"device gateway: /iot and mqtt://{settings.mqtt_host}:{settings.mqtt_port}")
    if not settings.auth:
        from agilecity.app import OPEN_MODE_WARNING

        print(f"\n*** {OPEN_MODE_WARNING} ***\n", file=sys.stderr)


def serve(settings: Settings, workers: int = 1) -> int:
    """Run the HTTP server until interrupted (several worker processes on PostgreSQL)."""
    import uvicorn

    from agilecity.app import build_app

    if workers > 1 and settings.db.startswith("sqlite:"):
        print(
            "agilecity: --workers needs PostgreSQL; SQLite has one writer process",
            file=sys.stderr,
        )
        return 2

    _configure_logging(settings)
    _banner(settings)
    if workers > 1:
        # Each worker process builds its own app from the same settings (passed as env).
        for name in Settings.help_texts():
            os.environ[Settings.env_name(name)] = str(getattr(settings, name))
        uvicorn.run(
            "agilecity.app:create_app",
            factory=True,
            workers=workers,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            access_log=False,
        )
        return 0
    uvicorn.run(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
