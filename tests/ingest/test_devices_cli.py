"""`agilecity devices provision | list | delete` on a real store (both backends)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from agilecity.cli import main

PROVISIONING = {
    "services": [{"apikey": "cli-key", "entity_type": "NoiseLevelObserved", "resource": "/iot/d"}],
    "devices": [
        {
            "device_id": "noise-01",
            "entity_name": "urn:ngsi-ld:NoiseLevelObserved:noise-01",
            "entity_type": "NoiseLevelObserved",
            "attributes": [{"object_id": "l", "name": "LAeq", "type": "Number"}],
        }
    ],
}


def test_provision_list_delete(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "devices.json"
    source.write_bytes(orjson.dumps(PROVISIONING))
    assert main(["devices", "provision", str(source), "--db", db_url, "--tenant", "carouge"]) == 0
    assert "1 device(s) provisioned" in capsys.readouterr().err
    assert main(["devices", "list", "--db", db_url, "--tenant", "carouge"]) == 0
    listing = orjson.loads(capsys.readouterr().out)
    assert [g["apikey"] for g in listing["services"]] == ["cli-key"]
    (device,) = listing["devices"]
    assert device["device_id"] == "noise-01"
    assert device["apikey"] == "cli-key"  # bound to the group of its type
    assert main(["devices", "list", "--db", db_url]) == 0  # another tenant sees nothing
    assert orjson.loads(capsys.readouterr().out) == {"services": [], "devices": []}
    # provisioning the same file again is refused and changes nothing
    assert main(["devices", "provision", str(source), "--db", db_url, "--tenant", "carouge"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["devices", "delete", "noise-01", "--db", db_url, "--tenant", "carouge"]) == 0
    assert main(["devices", "delete", "noise-01", "--db", db_url, "--tenant", "carouge"]) == 1
    assert "no device" in capsys.readouterr().err


def test_provision_refuses_a_file_that_is_not_provisioning(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["devices", "provision", str(bad), "--db", db_url]) == 1
    assert "not JSON" in capsys.readouterr().err
    bad.write_text('{"things": []}')
    assert main(["devices", "provision", str(bad), "--db", db_url]) == 1
    assert "services" in capsys.readouterr().err
