"""Open311 GeoReport v2: every endpoint and field, in JSON and XML, and the spec's errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from tests.conftest import running_app
from tests.open311.support import LAT, LONG, V2, submit

from agilecity.reports.categories import DEFAULT_CATEGORIES
from agilecity.settings import Settings

FORMATS = ["json", "xml"]


def parse(response: httpx.Response, fmt: str) -> Any:
    """The body as JSON, or the XML document's root."""
    if fmt == "json":
        assert response.headers["content-type"].startswith("application/json")
        return response.json()
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    assert response.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    return ElementTree.fromstring(response.content)


def xml_items(root: ElementTree.Element, item: str) -> list[dict[str, str | None]]:
    return [{child.tag: child.text for child in element} for element in root.findall(item)]


def assert_error(response: httpx.Response, fmt: str, code: int) -> str:
    """The spec's error list: one error with the HTTP status as its code."""
    assert response.status_code == code, response.text
    body = parse(response, fmt)
    if fmt == "json":
        assert len(body) == 1 and body[0]["code"] == code and body[0]["description"]
        return str(body[0]["description"])
    assert body.tag == "errors"
    (error,) = body.findall("error")
    assert error.findtext("code") == str(code) and error.findtext("description")
    return str(error.findtext("description"))


@pytest.mark.parametrize("fmt", FORMATS)
async def test_services_list_every_category(
    settings_factory: Callable[..., Settings], fmt: str
) -> None:
    async with running_app(settings_factory()) as (_, client):
        response = await client.get(f"{V2}/services.{fmt}")
    assert response.status_code == 200
    body = parse(response, fmt)
    items = body if fmt == "json" else xml_items(body, "service")
    assert [i["service_code"] for i in items] == [c.code for c in DEFAULT_CATEGORIES]
    dumping = items[0]
    expected = {
        "service_code": "illegal_dumping",
        "service_name": "Illegal dumping",
        "description": "Rubbish left on the street or in nature.",
        "metadata": True if fmt == "json" else "true",
        "type": "realtime",
        "keywords": "dump, rubbish, dépôt sauvage",
        "group": "cleanliness",
    }
    assert dumping == expected
    pothole = next(i for i in items if i["service_code"] == "pothole")
    assert pothole["metadata"] in (False, "false")


@pytest.mark.parametrize("fmt", FORMATS)
async def test_service_definition_lists_attributes_and_values(
    settings_factory: Callable[..., Settings], fmt: str
) -> None:
    async with running_app(settings_factory()) as (_, client):
        response = await client.get(f"{V2}/services/illegal_dumping.{fmt}")
        missing = await client.get(f"{V2}/services/nothing.{fmt}")
    body = parse(response, fmt)
    if fmt == "json":
        assert body["service_code"] == "illegal_dumping"
        volume = body["attributes"][0]
        assert volume == {
            "variable": True,
            "code": "volume",
            "datatype": "singlevaluelist",
            "required": False,
            "datatype_description": "",
            "order": 1,
            "description": "How much is there?",
            "values": [
                {"key": "small", "name": "Less than a bin bag"},
                {"key": "medium", "name": "A car boot"},
                {"key": "large", "name": "More than a car boot"},
            ],
        }
        assert [a["code"] for a in body["attributes"]] == ["volume", "hazardous"]
    else:
        assert body.tag == "service_definition"
        assert body.findtext("service_code") == "illegal_dumping"
        attribute = body.find("attributes/attribute")
        assert attribute is not None
        assert attribute.findtext("code") == "volume"
        assert attribute.findtext("datatype") == "singlevaluelist"
        assert attribute.findtext("variable") == "true"
        assert attribute.findtext("required") == "false"
        assert attribute.findtext("order") == "1"
        keys = [v.findtext("key") for v in attribute.findall("values/value")]
        assert keys == ["small", "medium", "large"]
    assert_error(missing, fmt, 404)


@pytest.mark.parametrize("fmt", FORMATS)
async def test_post_get_and_token_round_trip(
    settings_factory: Callable[..., Settings], fmt: str
) -> None:
    async with running_app(settings_factory()) as (_, client):
        created = await submit(
            client,
            fmt,
            **{
                "attribute[volume]": "large",
                "attribute[hazardous]": "no",
                "address_id": "ADDR-12",
                "zipcode": "59100",
                "jurisdiction_id": "roubaix.fr",
            },
        )
        assert created.status_code == 201, created.text
        body = parse(created, fmt)
        item = body[0] if fmt == "json" else xml_items(body, "request")[0]
        report_id, token = item["service_request_id"], item["token"]
        assert report_id and token and "cleanliness" in str(item["service_notice"])
        one = await client.get(f"{V2}/requests/{report_id}.{fmt}")
        listed = await client.get(f"{V2}/requests.{fmt}")
        by_token = await client.get(f"{V2}/tokens/{token}.{fmt}")
        unknown_token = await client.get(f"{V2}/tokens/not-a-token.{fmt}")
        unknown = await client.get(f"{V2}/requests/ffffffffffff.{fmt}")
    for response in (one, listed):
        parsed = parse(response, fmt)
        items = parsed if fmt == "json" else xml_items(parsed, "request")
        assert len(items) == 1
        request = items[0]
        assert request["service_request_id"] == report_id
        assert request["status"] == "open"
        assert request["service_code"] == "illegal_dumping"
        assert request["service_name"] == "Illegal dumping"
        assert request["agency_responsible"] == "cleanliness"
        assert request["address_id"] == "ADDR-12" and request["zipcode"] == "59100"
        assert float(request["lat"]) == LAT and float(request["long"]) == LONG
        assert request["requested_datetime"].endswith("Z")
        assert request["updated_datetime"] == request["requested_datetime"]
        assert request["expected_datetime"] > request["requested_datetime"]
        assert not request["description"]  # public only after moderation
        assert set(request) == {
            "service_request_id",
            "status",
            "status_notes",
            "service_name",
            "service_code",
            "description",
            "agency_responsible",
            "service_notice",
            "requested_datetime",
            "updated_datetime",
            "expected_datetime",
            "address",
            "address_id",
            "zipcode",
            "lat",
            "long",
            "media_url",
        }
    tokens = parse(by_token, fmt)
    token_items = tokens if fmt == "json" else xml_items(tokens, "request")
    assert token_items == [{"service_request_id": report_id, "token": token}]
    assert_error(unknown_token, fmt, 404)
    assert_error(unknown, fmt, 404)


async def test_get_requests_filters(settings_factory: Callable[..., Settings]) -> None:
    async with running_app(settings_factory(open311_rate_limit=0)) as (_, client):
        ids = {}
        for code in ("illegal_dumping", "pothole", "graffiti"):
            created = await submit(client, service_code=code)
            ids[code] = created.json()[0]["service_request_id"]
        await client.post(
            f"/reports/{ids['pothole']}/status", json={"status": "resolved", "note": "Filled"}
        )

        async def found(**params: str) -> list[str]:
            response = await client.get(f"{V2}/requests.json", params=params)
            assert response.status_code == 200, response.text
            return sorted(r["service_request_id"] for r in response.json())

        assert await found() == sorted(ids.values())
        assert await found(service_code="pothole,graffiti") == sorted(
            [ids["pothole"], ids["graffiti"]]
        )
        assert await found(service_code="unknown") == []
        assert await found(status="closed") == [ids["pothole"]]
        assert await found(status="open") == sorted([ids["illegal_dumping"], ids["graffiti"]])
        assert await found(status="open,closed") == sorted(ids.values())
        ids_param = f"{ids['graffiti']},{ids['pothole']},nothere"
        assert await found(service_request_id=ids_param, status="open") == sorted(
            [ids["graffiti"], ids["pothole"]]
        )  # ids win over the other filters
        assert await found(start_date="2020-01-01T00:00:00Z", end_date="2020-03-01T00:00:00Z") == []
        assert await found(start_date="2020-01-01T00:00:00Z") == []  # 90 days from then
        assert await found(end_date="2021-01-01T00:00:00+01:00") == []
        first = (await client.get(f"{V2}/requests.json", params={"page_size": "2"})).json()
        second = (
            await client.get(f"{V2}/requests.json", params={"page_size": "2", "page": "2"})
        ).json()
        assert len(first) == 2 and len(second) == 1
        closed = (await client.get(f"{V2}/requests/{ids['pothole']}.json")).json()[0]
        assert closed["status_notes"] == "Filled"
        assert closed["service_notice"] == "Closed: resolved"
        span = await client.get(
            f"{V2}/requests.json",
            params={"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"},
        )
        assert_error(span, "json", 400)
        for params in (
            {"status": "pending"},
            {"start_date": "yesterday"},
            {"page_size": "0"},
            {"page_size": "5000"},
            {"page": "x"},
        ):
            assert_error(await client.get(f"{V2}/requests.xml", params=params), "xml", 400)


@pytest.mark.parametrize("fmt", FORMATS)
async def test_post_errors_are_open311_errors(
    settings_factory: Callable[..., Settings], fmt: str
) -> None:
    settings = settings_factory(open311_jurisdiction_id="roubaix.fr", open311_rate_limit=0)
    async with running_app(settings) as (_, client):
        url = f"{V2}/requests.{fmt}"
        cases: list[tuple[dict[str, str], int, str]] = [
            ({"lat": "50.1", "long": "3.1"}, 400, "service_code"),
            ({"service_code": "nothing", "lat": "50.1", "long": "3.1"}, 404, "service_code"),
            ({"service_code": "pothole"}, 400, "location"),
            ({"service_code": "pothole", "lat": "91", "long": "3"}, 400, "lat"),
            ({"service_code": "pothole", "lat": "north", "long": "3"}, 400, "lat"),
            ({"service_code": "pothole", "lat": "50"}, 400, "together"),
            ({"service_code": "pothole", "lat": "nan", "long": "3"}, 400, "lat"),
            (
                {"service_code": "pothole", "address_string": "x", "jurisdiction_id": "lille.fr"},
                404,
                "jurisdiction",
            ),
            (
                {
                    "service_code": "illegal_dumping",
                    "address_string": "x",
                    "attribute[volume]": "huge",
                },
                400,
                "volume",
            ),
            (
                {
                    "service_code": "illegal_dumping",
                    "address_string": "x",
                    "attribute[colour]": "red",
                },
                400,
                "colour",
            ),
            (
                {"service_code": "pothole", "address_string": "x", "email": "not-an-address"},
                400,
                "email",
            ),
            (
                {"service_code": "pothole", "address_string": "x", "description": "a" * 4001},
                400,
                "description",
            ),
            (
                {"service_code": "pothole", "address_string": "x", "description": "a\x00b"},
                400,
                "control",
            ),
            (
                {"service_code": "pothole", "address_string": "x", "media_url": "ftp://x/y.jpg"},
                400,
                "media_url",
            ),
        ]
        for data, code, word in cases:
            description = assert_error(await client.post(url, data=data), fmt, code)
            assert word in description, (data, description)
        as_json = await client.post(url, json={"service_code": "pothole"})
        assert word_in(assert_error(as_json, fmt, 400), "form")
        wrong_method = await client.delete(url)
        assert_error(wrong_method, fmt, 405)
        assert "GET" in wrong_method.headers["allow"] and "POST" in wrong_method.headers["allow"]
        assert_error(await client.get(f"{V2}/services.html"), "json", 404)
        assert_error(
            await client.get(f"{V2}/services.{fmt}", params={"jurisdiction_id": "lille.fr"}),
            fmt,
            404,
        )
        accepted = await client.get(
            f"{V2}/services.{fmt}", params={"jurisdiction_id": "roubaix.fr"}
        )
        assert accepted.status_code == 200


def word_in(text: str, word: str) -> bool:
    return word in text


async def test_a_required_attribute_and_list_attributes(
    settings_factory: Callable[..., Settings], tmp_path: Any
) -> None:
    categories = tmp_path / "categories.json"
    categories.write_text("""[{"code": "tree", "name": "Fallen tree", "team": "parks",
        "target_hours": 12, "keywords": ["tree"], "group": "green",
        "attributes": [
          {"code": "size", "datatype": "singlevaluelist", "description": "Size", "required": true,
           "values": [{"key": "s", "name": "Small"}, {"key": "l", "name": "Large"}]},
          {"code": "blocks", "datatype": "multivaluelist", "description": "Blocks",
           "values": [{"key": "road", "name": "Road"}, {"key": "path", "name": "Path"}]},
          {"code": "count", "datatype": "number", "description": "How many", "order": 3},
          {"code": "since", "datatype": "datetime", "description": "Since when", "order": 4}]}]""")
    settings = settings_factory(open311_categories_file=str(categories), open311_rate_limit=0)
    async with running_app(settings) as (app, client):
        services = (await client.get(f"{V2}/services.json")).json()
        assert [s["service_code"] for s in services] == ["tree"]
        missing = await submit(client, service_code="tree")
        assert "size" in assert_error(missing, "json", 400)
        ok = await client.post(
            f"{V2}/requests.json",
            data={
                "service_code": "tree",
                "lat": "50.69",
                "long": "3.17",
                "attribute[size]": "l",
                "attribute[blocks][]": ["road", "path"],
                "attribute[count]": "2",
                "attribute[since]": "2026-11-30T08:00:00+01:00",
            },
        )
        assert ok.status_code == 201, ok.text
        report_id = ok.json()[0]["service_request_id"]
        report = await app.state.reports.require("", report_id)
        assert report.attributes == {
            "size": "l",
            "blocks": ["road", "path"],
            "count": 2.0,
            "since": "2026-11-30T07:00:00.000Z",
        }
        bad_number = await submit(
            client, service_code="tree", **{"attribute[size]": "s", "attribute[count]": "two"}
        )
        assert "count" in assert_error(bad_number, "json", 400)


@pytest.mark.parametrize("fmt", FORMATS)
async def test_discovery(settings_factory: Callable[..., Settings], fmt: str) -> None:
    settings = settings_factory(open311_public_url="https://city.example/")
    async with running_app(settings) as (_, client):
        response = await client.get(f"{V2}/discovery.{fmt}")
    body = parse(response, fmt)
    if fmt == "json":
        (endpoint,) = body["endpoints"]
        assert endpoint["url"] == "https://city.example/open311/v2"
        assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
        assert endpoint["formats"] == ["text/xml", "application/json"]
    else:
        assert body.findtext("endpoints/endpoint/url") == "https://city.example/open311/v2"
        formats = [f.text for f in body.findall("endpoints/endpoint/formats/format")]
        assert formats == ["text/xml", "application/json"]


async def test_address_only_report_and_unknown_tenant(
    settings_factory: Callable[..., Settings],
) -> None:
    async with running_app(settings_factory()) as (_, client):
        created = await client.post(
            f"{V2}/requests.json",
            data={"service_code": "graffiti", "address_string": "12 rue de Lannoy, Roubaix"},
        )
        assert created.status_code == 201
        report_id = created.json()[0]["service_request_id"]
        request = (await client.get(f"{V2}/requests/{report_id}.json")).json()[0]
        assert request["lat"] is None and request["long"] is None
        assert request["address"] is None  # free text: public after moderation
        await client.post(f"/reports/{report_id}/moderation", json={"publish": True})
        request = (await client.get(f"{V2}/requests/{report_id}.json")).json()[0]
        assert request["address"] == "12 rue de Lannoy, Roubaix"
        elsewhere = await client.post(
            f"{V2}/requests.json",
            headers={"NGSILD-Tenant": "nowhere"},
            data={"service_code": "graffiti", "address_string": "x"},
        )
        assert_error(elsewhere, "json", 404)
        listed = await client.get(f"{V2}/requests.json", headers={"NGSILD-Tenant": "nowhere"})
        assert listed.status_code == 200 and listed.json() == []
