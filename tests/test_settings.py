"""Settings: precedence, validation, documentation and the command line's help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agilecity.cli import main
from agilecity.errors import BadRequestDataError
from agilecity.services.base import Service
from agilecity.services.registry import BUILTIN, builtin_service
from agilecity.settings import Settings

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_defaults_follow_the_fiware_port_and_embedded_store(tmp_path: Path) -> None:
    settings = Settings.load(env={}, toml_path=tmp_path / "none.toml")
    assert settings.port == 1026
    assert settings.db == "sqlite:///data/agilecity.sqlite"


def test_environment_beats_file_and_overrides_beat_environment(tmp_path: Path) -> None:
    toml = tmp_path / "agilecity.toml"
    toml.write_text('port = 2000\nhost = "0.0.0.0"\nmax_page_size = 50\n')
    env = {"AGILECITY_PORT": "3000"}
    settings = Settings.load(env=env, toml_path=toml)
    assert (settings.port, settings.host, settings.max_page_size) == (3000, "0.0.0.0", 50)
    assert Settings.load({"port": 4000}, env=env, toml_path=toml).port == 4000


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AGILECITY_PORT": "http"}, "port"),
        ({"AGILECITY_PORT": "70000"}, "port"),
        ({"AGILECITY_DB": "mysql://x"}, "db"),
        ({"AGILECITY_ALLOW_PRIVATE_CONTEXT_URLS": "perhaps"}, "allow_private_context_urls"),
        ({"AGILECITY_DEFAULT_PAGE_SIZE": "5000"}, "default_page_size"),
        ({"AGILECITY_LOG_LEVEL": "loud"}, "log_level"),
    ],
)
def test_invalid_values_are_refused_with_the_setting_named(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    with pytest.raises(BadRequestDataError) as caught:
        Settings.load(env=env, toml_path=tmp_path / "none.toml")
    assert message in caught.value.detail


def test_unknown_toml_key_is_refused(tmp_path: Path) -> None:
    toml = tmp_path / "agilecity.toml"
    toml.write_text("prot = 1\n")
    with pytest.raises(BadRequestDataError, match="unknown setting"):
        Settings.load(env={}, toml_path=toml)


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for name in Settings.help_texts():
        assert f"`{Settings.env_name(name)}`" in text, name
    for service_name in BUILTIN:
        service = builtin_service(service_name)
        for name, help_text in Service.help_texts(service.settings).items():
            assert f"`{service.env_name(name)}`" in text, (service_name, name)
            assert help_text, (service_name, name)


def test_serve_help_lists_every_setting() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agilecity.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for name in Settings.help_texts():
        assert Settings.env_name(name) in result.stdout


def test_config_check_reports_invalid_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGILECITY_PORT", "0")
    assert main(["config", "check"]) == 2
    assert "port" in capsys.readouterr().err
    monkeypatch.setenv("AGILECITY_PORT", "1234")
    assert main(["config", "check"]) == 0
    assert "AGILECITY_PORT=1234" in capsys.readouterr().out
