"""``agilecity simulate``: its arguments and what it runs."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import httpx
import orjson

from agilecity.ingest.simulator.runner import SimulationOptions, SimulatorError, plan, run
from agilecity.ingest.simulator.town import Town


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``agilecity simulate``."""
    parser.add_argument("--url", default="http://127.0.0.1:1026", help="the platform's base URL")
    parser.add_argument("--tenant", help="tenant (NGSILD-Tenant, fiware-service); default: none")
    parser.add_argument("--mqtt-host", default="127.0.0.1", help="MQTT broker (default 127.0.0.1)")
    parser.add_argument("--mqtt-port", type=int, default=1883, help="MQTT port (default 1883)")
    parser.add_argument("--seed", type=int, default=1, help="the town's seed (default 1)")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulated time per real time (1440: a day a minute)",
    )
    parser.add_argument(
        "--backfill-days", type=float, default=0.0, help="days of history written first (default 0)"
    )
    parser.add_argument(
        "--duration", type=float, help="real seconds of live running (default: until interrupted)"
    )
    parser.add_argument("--start", help="simulated start of the live run, ISO 8601 (default: now)")
    parser.add_argument(
        "--geography",
        type=Path,
        metavar="DIR",
        help="write the map as GeoJSON files in DIR and exit",
    )


def options_of(args: argparse.Namespace) -> SimulationOptions:
    """The simulation options of parsed arguments (ValueError when they make no sense)."""
    if args.speed <= 0:
        raise ValueError("--speed must be positive")
    if args.backfill_days < 0 or (args.duration is not None and args.duration < 0):
        raise ValueError("--backfill-days and --duration cannot be negative")
    start = None
    if args.start is not None:
        start = datetime.fromisoformat(args.start)
        start = start if start.tzinfo is not None else start.replace(tzinfo=UTC)
    return SimulationOptions(
        url=args.url.rstrip("/"),
        tenant=args.tenant,
        mqtt_host=args.mqtt_host,
        mqtt_port=args.mqtt_port,
        seed=args.seed,
        speed=args.speed,
        backfill_days=args.backfill_days,
        duration=args.duration,
        start=start,
    )


def write_geography(town: Town, directory: Path) -> list[Path]:
    """Write each FeatureCollection of the town as ``<name>.geojson`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, collection in town.geography().items():
        path = directory / f"{name}.geojson"
        path.write_bytes(orjson.dumps(collection))
        paths.append(path)
    return paths


def simulate(args: argparse.Namespace) -> int:
    """Run ``agilecity simulate``; the exit status."""
    try:
        options = options_of(args)
        if args.geography is not None:
            town, _ = plan(options)
            for path in write_geography(town, args.geography):
                print(path, file=sys.stderr)
            return 0
        asyncio.run(run(options))
    except KeyboardInterrupt:
        return 130
    except (SimulatorError, httpx.HTTPError, aiomqtt.MqttError, OSError, ValueError) as exc:
        print(f"agilecity simulate: {exc}", file=sys.stderr)
        return 1
    return 0
