"""Photos (content check, metadata really gone from every served variant, redaction,
thumbnails, proof of resolution, retention) and abuse limits (rate, payload sizes)."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from PIL import Image
from tests.conftest import running_app
from tests.open311.support import V2, assert_no_metadata, gps_jpeg, png_with_text, submit

from agilecity.settings import Settings


def image_of(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def photo_ids(client: httpx.AsyncClient, report_id: str) -> list[str]:
    return [p["id"] for p in (await client.get(f"/reports/{report_id}")).json()["photos"]]


async def test_a_gps_tagged_photo_is_served_without_metadata_only_once_published(
    settings_factory: Callable[..., Settings],
) -> None:
    original = gps_jpeg(orientation=6)  # rotated 90° by its EXIF
    with Image.open(io.BytesIO(original)) as check:  # the test photo really carries GPS
        assert check.getexif().get_ifd(0x8825)[2] == (50.0, 41.0, 33.72)
    settings = settings_factory(open311_public_url="https://city.example")
    async with running_app(settings) as (_, client):
        created = await submit(client, photo=original)
        assert created.status_code == 201, created.text
        report_id = created.json()[0]["service_request_id"]
        (photo_id,) = await photo_ids(client, report_id)
        staff_view = await client.get(f"/reports/{report_id}/photos/{photo_id}")
        assert staff_view.status_code == 200 and staff_view.headers["content-type"] == "image/jpeg"
        assert_no_metadata(staff_view.content)
        assert image_of(staff_view.content).size == (480, 640)  # orientation applied
        for variant in ("", "/thumbnail"):
            unpublished = await client.get(f"/open311/media/{photo_id}{variant}")
            assert unpublished.status_code == 404 and unpublished.json()[0]["code"] == 404
        assert (await client.get(f"{V2}/requests/{report_id}.json")).json()[0]["media_url"] is None
        published = await client.post(
            f"/reports/{report_id}/photos/{photo_id}/publication",
            json={"publish": True, "boxes": [[0, 0, 0.5, 0.25]]},
        )
        assert published.status_code == 200, published.text
        full = await client.get(f"/open311/media/{photo_id}")
        thumb = await client.get(f"/open311/media/{photo_id}/thumbnail")
        request = (await client.get(f"{V2}/requests/{report_id}.xml")).text
        entity = (
            await client.get(
                f"/ngsi-ld/v1/entities/urn:ngsi-ld:service_requests:{report_id}",
                params={"options": "keyValues"},
            )
        ).json()
        for bad in ([[0, 0, 2, 1]], [[0.1, 0.1, 0.1]], "x", [[True, 0, 1, 1]]):
            refused = await client.post(
                f"/reports/{report_id}/photos/{photo_id}/publication",
                json={"publish": True, "boxes": bad},
            )
            assert refused.status_code == 400, bad
        unknown = await client.post(
            f"/reports/{report_id}/photos/nothing/publication", json={"publish": True}
        )
        assert unknown.status_code == 404
    for response in (full, thumb):
        assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
        assert_no_metadata(response.content)
    picture = image_of(full.content)
    assert picture.size == (480, 640)
    assert picture.getpixel((100, 50)) == (0, 0, 0)  # under the box
    assert sum(picture.getpixel((400, 600))) > 150  # outside it
    assert max(image_of(thumb.content).size) == 320
    url = f"https://city.example/open311/media/{photo_id}"
    assert f"<media_url>{url}</media_url>" in request
    assert entity["media_url"] == url and entity["photos"] == [url]


async def test_png_webp_accepted_others_refused_by_content(
    settings_factory: Callable[..., Settings],
) -> None:
    webp = io.BytesIO()
    Image.new("RGB", (50, 40), (1, 2, 3)).save(webp, format="WEBP", exif=b"Exif\x00\x00MM")
    gif = io.BytesIO()
    Image.new("RGB", (10, 10)).save(gif, format="GIF")
    bomb = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(bomb, format="PNG")  # 144 Mpx, a few kB
    settings = settings_factory(
        open311_rate_limit=0, open311_max_photo_bytes=200_000, open311_max_body_bytes=300_000
    )
    async with running_app(settings) as (_, client):
        for data in (png_with_text(), webp.getvalue()):
            created = await submit(client, photo=data)
            assert created.status_code == 201, created.text
            report_id = created.json()[0]["service_request_id"]
            (photo_id,) = await photo_ids(client, report_id)
            stored = await client.get(f"/reports/{report_id}/photos/{photo_id}")
            assert_no_metadata(stored.content)
        for data, code in (
            (gif.getvalue(), 400),
            (b"<?php echo 1; ?>", 400),
            (gps_jpeg()[:300], 400),
            (bomb.getvalue(), 413),
            (gps_jpeg((1800, 1800)) + b"\x00" * 200_000, 413),
        ):
            refused = await submit(client, fmt="xml", photo=data)
            assert refused.status_code == code, refused.text
            assert refused.text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<errors>')
        whole = await client.post(
            f"{V2}/requests.json",
            content=b"x" * 300_001,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert whole.status_code == 413 and whole.json()[0]["code"] == 413
        listed = (await client.get(f"{V2}/requests.json")).json()
        assert len(listed) == 2  # the refused ones left nothing behind


async def test_after_photo_is_proof_of_resolution_and_retention_deletes(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(open311_contact_retention_days=30, open311_photo_retention_days=60)
    async with running_app(settings) as (app, client):
        created = await submit(client, photo=gps_jpeg(), email="x@example.org", phone="0600000000")
        report_id = created.json()[0]["service_request_id"]
        (before_id,) = await photo_ids(client, report_id)
        after = await client.post(
            f"/reports/{report_id}/photos",
            data={"kind": "after"},
            files={"photo": ("after.jpg", gps_jpeg(), "image/jpeg")},
        )
        assert after.status_code == 201, after.text
        after_id = after.json()["id"]
        assert after.json()["public"] is True
        proof = await client.get(f"/open311/media/{after_id}")
        assert_no_metadata(proof.content)
        entity = (
            await client.get(
                f"/ngsi-ld/v1/entities/urn:ngsi-ld:service_requests:{report_id}",
                params={"options": "keyValues"},
            )
        ).json()
        assert entity["resolution_photos"] == [f"http://127.0.0.1:1026/open311/media/{after_id}"]
        not_form = await client.post(f"/reports/{report_id}/photos", json={})
        assert not_form.status_code == 400
        await client.post(f"/reports/{report_id}/status", json={"status": "resolved"})
        desk = app.state.reports
        soon = await desk.purge(datetime.now(UTC) + timedelta(days=10))
        assert soon == {"contacts": 0, "photos": 0}
        assert (await client.get(f"/reports/{report_id}")).json()["contact"]["phone"]
        later = await desk.purge(datetime.now(UTC) + timedelta(days=31))
        assert later == {"contacts": 1, "photos": 0}
        assert (await client.get(f"/reports/{report_id}")).json()["contact"] == {}
        last = await desk.purge(datetime.now(UTC) + timedelta(days=61))
        assert last == {"contacts": 0, "photos": 2}
        assert (await client.get(f"/open311/media/{after_id}")).status_code == 404
        staff = await client.get(f"/reports/{report_id}/photos/{before_id}")
        assert staff.status_code == 404
        entity = (
            await client.get(
                f"/ngsi-ld/v1/entities/urn:ngsi-ld:service_requests:{report_id}",
                params={"options": "keyValues"},
            )
        ).json()
        assert "resolution_photos" not in entity and entity["status"] == "closed"


async def test_rate_limit_per_client_and_partner_keys(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(open311_rate_limit=3, auth=True)
    async with running_app(settings) as (app, client):
        _, key = await app.state.credentials.create_key("operator", [""], name="fixmystreet")
        for _ in range(3):
            assert (await submit(client)).status_code == 201
        limited = await submit(client, fmt="xml")
        assert limited.status_code == 429
        assert "<code>429</code>" in limited.text and "at most 3 submissions" in limited.text
        assert 3590 <= int(limited.headers["retry-after"]) <= 3601
        follow = await client.post("/open311/requests/ffffffffffff/follow")
        assert follow.status_code == 429  # "me too" counts too
        assert (await submit(client, api_key=key)).status_code == 201  # a partner app
        forged = await submit(client, api_key="ack_forged_key")
        assert forged.status_code == 403 and forged.json()[0]["code"] == 403
        other = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("10.0.0.9", 1)), base_url="http://test"
        )
        async with other:
            assert (await submit(other)).status_code == 201  # another client is not limited
        # reading stays open to anonymous visitors, staff routes need credentials
        assert (await client.get(f"{V2}/requests.json")).status_code == 200
        staff = await client.get("/reports")
        assert staff.status_code == 401
        assert staff.headers["content-type"] == "application/problem+json"
        bearer = {"Authorization": f"Bearer {key}"}
        assert (await client.get("/reports", headers=bearer)).status_code == 200
