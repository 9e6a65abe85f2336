"""The README's example requests, run exactly as written against a fresh broker."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson
from tests.conftest import running_app

from agilecity.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"```(sh|json)\n(.*?)```", re.S)


def curl_to_request(command: str) -> tuple[str, str, dict[str, str], bytes | None, list[str]]:
    """Method, path, headers, body and urlencoded query items of a curl command line."""
    words = shlex.split(command.replace("\\\n", " "))
    assert words[0] == "curl"
    method, url, headers, body, query, get = "GET", "", {}, None, [], False
    it = iter(words[1:])
    for word in it:
        if word in ("-s", "-i"):
            continue
        if word == "-X":
            method = next(it)
        elif word == "-H":
            name, _, value = next(it).partition(":")
            headers[name.strip()] = value.strip()
        elif word == "-d":
            body = next(it).encode()
            method = "POST" if method == "GET" else method
        elif word == "-G":
            get = True
        elif word == "--data-urlencode":
            query.append(next(it))
        else:
            url = word
    if get:
        method = "GET"
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return method, path, headers, body, query


def examples() -> list[tuple[str, str | None]]:
    """Each curl command of the README with the JSON block that follows it, if any."""
    blocks = BLOCK.findall(README.read_text(encoding="utf-8"))
    found: list[tuple[str, str | None]] = []
    for index, (kind, text) in enumerate(blocks):
        if kind == "sh" and text.startswith("curl"):
            following = blocks[index + 1] if index + 1 < len(blocks) else None
            expected = following[1] if following and following[0] == "json" else None
            found.append((text, expected))
    return found


def test_readme_has_the_three_examples() -> None:
    assert len(examples()) == 3


async def test_readme_examples_answer_as_written(
    settings_factory: Callable[..., Settings],
) -> None:
    text = README.read_text(encoding="utf-8")
    location = re.search(r"`Location: ([^`]+)`", text)
    assert location is not None
    async with running_app(settings_factory(auth=True)) as (app, client):
        _, key = await app.state.credentials.create_key("admin", ["*"], "readme")
        for command, expected in examples():
            await _check(client, command.replace("$AGILECITY_KEY", key), expected, location)


async def _check(
    client: httpx.AsyncClient, command: str, expected: str | None, location: re.Match[str]
) -> None:
    """Send one README command (auth on, as after make demo) and compare the answer."""
    method, path, headers, body, query = curl_to_request(command)
    params = [tuple(item.split("=", 1)) for item in query]
    response = await client.request(
        method, path, headers=headers, content=body, params=params or None
    )
    if expected is None:
        assert response.status_code == 201, response.text
        assert response.headers["location"] == location.group(1)
    else:
        assert response.status_code == 200, response.text
        assert response.json() == orjson.loads(expected)
