"""The command line: ``agilecity serve | config check``."""

from __future__ import annotations

import argparse
import logging
import sys
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
    config = commands.add_parser("config", help="settings")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    config_commands.add_parser(
        "check", help="validate the settings as start-up does and print them"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the agilecity command."""
    args = build_parser().parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.command == "serve":
        overrides = {"host": args.host, "port": args.port, "db": args.db}
    try:
        settings = Settings.load(overrides)
    except AgileCityError as exc:
        print(f"agilecity: {exc.detail}", file=sys.stderr)
        return 2
    if args.command == "config":
        for name in Settings.help_texts():
            print(f"{Settings.env_name(name)}={getattr(settings, name)}")
        return 0
    return serve(settings)


def serve(settings: Settings) -> int:
    """Run the HTTP server until interrupted."""
    import uvicorn

    from agilecity.app import build_app

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    print(
        f"AgileCity {__version__}: NGSI-LD API on http://{settings.host}:{settings.port}/ngsi-ld/v1"
    )
    print(f"store: {settings.db}")
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
