"""The injection corpus through every Open311 and back-office parameter (both stores): never
a 5xx, every error in its family's shape, and nothing stored by a refused submission."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

import httpx
from tests.conftest import running_app
from tests.open311.support import V2, submit
from tests.security.test_injection import HOSTILE

from agilecity.settings import Settings


def check_open311(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.request.url, response.text[:300])
    if response.status_code >= 400:
        if response.request.url.path.endswith(".xml"):
            assert b"<errors><error><code>" in response.content
        else:
            body = response.json()
            assert body[0]["code"] == response.status_code and body[0]["description"]


def check_problem(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.request.url, response.text[:300])
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"


async def test_hostile_strings_everywhere(settings_factory: Callable[..., Settings]) -> None:
    async with running_app(settings_factory(open311_rate_limit=0)) as (_, client):
        report_id = (await submit(client)).json()[0]["service_request_id"]
        for text in HOSTILE:
            if len(text) > 2_000:
                text = text[:2_000]  # percent-encoded it stays under httpx's 64 kB URL limit
            path = quote(text, safe="") or "x"
            for params in (
                {"service_code": text},
                {"status": text},
                {"start_date": text},
                {"end_date": text},
                {"service_request_id": text},
                {"page": text},
                {"page_size": text},
                {"jurisdiction_id": text},
            ):
                for fmt in ("json", "xml"):
                    check_open311(await client.get(f"{V2}/requests.{fmt}", params=params))
            for url in (
                f"{V2}/services/{path}.xml",
                f"{V2}/requests/{path}.json",
                f"{V2}/tokens/{path}.xml",
                f"/open311/media/{path}",
                f"{V2}/services.{path}",
                f"/open311/export.{path}",
            ):
                check_open311(await client.get(url))
            check_open311(
                await client.get(
                    "/open311/nearby", params={"service_code": text, "lat": text, "long": "3"}
                )
            )
            for field in (
                "service_code",
                "description",
                "lat",
                "address_string",
                "email",
                "media_url",
                "attribute[volume]",
                f"attribute[{text[:60]}]",
                "first_name",
            ):
                check_open311(await submit(client, **{field: text}))
            check_open311(await client.post(f"/open311/tokens/{path}/reopen", json={"note": text}))
            check_open311(
                await client.post(f"/open311/requests/{path}/follow", json={"email": text})
            )
            check_open311(
                await client.post(
                    f"{V2}/requests.json",
                    content=text.encode(),
                    headers={"content-type": "multipart/form-data; " "boundary=x"},
                )
            )
            for params in (
                {"status": text},
                {"service_code": text},
                {"district": text},
                {"limit": text},
                {"offset": text},
            ):
                check_problem(await client.get("/reports", params=params))
            check_problem(await client.get(f"/reports/{path}"))
            for action, body in (
                ("status", {"status": text, "note": text}),
                ("assignment", {"team": text, "assignee": text}),
                ("moderation", {"publish": False, "description": text}),
                ("merge", {"into": text}),
            ):
                check_problem(await client.post(f"/reports/{report_id}/{action}", json=body))
                check_problem(await client.post(f"/reports/{path}/{action}", json=body))
        listed = (await client.get(f"{V2}/requests.json")).json()
    # the only reports are the first one and hostile strings that are valid free text
    assert listed[0]["service_request_id"] == report_id
    assert all(r["service_code"] == "illegal_dumping" for r in listed)
