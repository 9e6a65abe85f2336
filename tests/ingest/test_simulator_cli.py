"""``agilecity simulate`` on the command line."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from agilecity.cli import build_parser, main


def test_geography_files(tmp_path: Path) -> None:
    assert main(["simulate", "--seed", "4", "--geography", str(tmp_path / "map")]) == 0
    names = sorted(p.name for p in (tmp_path / "map").iterdir())
    assert names == [
        "buildings.geojson", "devices.geojson", "districts.geojson", "green_spaces.geojson",
        "streets.geojson",
    ]  # fmt: skip
    devices = orjson.loads((tmp_path / "map/devices.geojson").read_bytes())
    assert devices["type"] == "FeatureCollection" and len(devices["features"]) == 415


def test_defaults() -> None:
    args = build_parser().parse_args(["simulate"])
    assert (args.url, args.tenant, args.mqtt_host, args.mqtt_port) == (
        "http://127.0.0.1:1026", None, "127.0.0.1", 1883,
    )  # fmt: skip
    assert (args.seed, args.speed, args.backfill_days, args.duration) == (1, 1.0, 0.0, None)


@pytest.mark.parametrize("bad", [["--speed", "0"], ["--backfill-days", "-1"], ["--start", "soon"]])
def test_bad_options_exit_1(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", *bad, "--duration", "0"]) == 1
    assert "agilecity simulate:" in capsys.readouterr().err


def test_unreachable_platform_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--url", "http://127.0.0.1:9", "--duration", "0"]) == 1
    assert "agilecity simulate:" in capsys.readouterr().err
