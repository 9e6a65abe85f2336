"""Privacy: a report filed with full contact details, a name in its description and a
GPS-tagged photo; every public response and export an anonymous visitor can get about it
(Open311 in both formats, NGSI-LD entity, query, history, open-data exports, the photos
themselves, a subscriber's notification) is collected and none holds any of that data."""

from __future__ import annotations

import re
from collections.abc import Callable

from tests.conftest import running_app
from tests.open311.support import (
    CONTACT,
    LAT,
    LONG,
    SECRET_CAMERA,
    V2,
    assert_no_metadata,
    gps_jpeg,
    submit,
)
from tests.receivers import HttpReceiver

from agilecity.settings import Settings

NGSI = "/ngsi-ld/v1"
NAME_IN_TEXT = "Jeanne Vandenbroucke saw M. Lefebvre dump it"


def needles(token: str) -> list[str]:
    """Everything personal or secret about the report, in the forms it could leak in."""
    found = [
        *CONTACT.values(),
        token,
        SECRET_CAMERA,
        "AgileCityTestMake",
        "Vandenbroucke",
        "Lefebvre",
        "33.72",
        "28.56",
        "0612345678",
        CONTACT["email"].split("@")[0],
    ]
    return found


async def test_no_public_response_or_export_holds_personal_data(
    settings_factory: Callable[..., Settings],
) -> None:
    receiver = HttpReceiver().start()
    settings = settings_factory(auth=True, open311_rate_limit=0)
    try:
        async with running_app(settings) as (app, anonymous):
            _, key = await app.state.credentials.create_key("manager", [""], name="staff")
            staff = {"Authorization": f"Bearer {key}"}
            subscription = {
                "type": "Subscription",
                "entities": [{"type": "service_requests"}],
                "notification": {"endpoint": {"uri": receiver.url}},
            }
            made = await anonymous.post(f"{NGSI}/subscriptions", json=subscription, headers=staff)
            assert made.status_code == 201, made.text
            created = await submit(
                anonymous,
                photo=gps_jpeg(),
                description=NAME_IN_TEXT,
                address_string="chez Jeanne Vandenbroucke, 3 rue Pierre",
                **CONTACT,
            )
            assert created.status_code == 201
            report_id, token = created.json()[0]["service_request_id"], created.json()[0]["token"]
            detail = (await anonymous.get(f"/reports/{report_id}", headers=staff)).json()
            assert detail["contact"]["phone"] == CONTACT["phone"]  # it is there, for staff
            (photo,) = detail["photos"]
            steps = [
                (
                    "moderation",
                    {
                        "publish": True,
                        "description": "A mattress dumped by the bins",
                        "address_string": "3 rue Pierre",
                    },
                ),
                (f"photos/{photo['id']}/publication", {"publish": True, "boxes": []}),
                ("status", {"status": "acknowledged", "note": "Crew on its way"}),
                ("status", {"status": "resolved", "note": "Removed"}),
            ]
            for path, body in steps:
                done = await anonymous.post(
                    f"/reports/{report_id}/{path}", json=body, headers=staff
                )
                assert done.status_code == 200, done.text
            await anonymous.post(
                f"/reports/{report_id}/photos",
                headers=staff,
                data={"kind": "after"},
                files={"photo": ("a.jpg", gps_jpeg(), "image/jpeg")},
            )
            await anonymous.post(
                f"/open311/requests/{report_id}/follow",
                json={"email": "follower.person@example.org"},
            )
            entity_id = f"urn:ngsi-ld:service_requests:{report_id}"
            gets: list[tuple[str, dict[str, str]]] = [
                (f"{V2}/requests.json", {}),
                (f"{V2}/requests.xml", {}),
                (f"{V2}/requests/{report_id}.json", {}),
                (f"{V2}/requests/{report_id}.xml", {}),
                (f"{V2}/requests.json", {"service_request_id": report_id}),
                (f"{V2}/requests.xml", {"status": "closed"}),
                (f"{V2}/services.json", {}),
                (f"{V2}/services.xml", {}),
                (f"{V2}/services/illegal_dumping.json", {}),
                (f"{V2}/discovery.xml", {}),
                (
                    "/open311/nearby",
                    {"service_code": "illegal_dumping", "lat": str(LAT), "long": str(LONG)},
                ),
                ("/open311/export.csv", {}),
                ("/open311/export.geojson", {}),
                (f"{NGSI}/entities/{entity_id}", {}),
                (f"{NGSI}/entities/{entity_id}", {"options": "keyValues,sysAttrs"}),
                (f"{NGSI}/entities", {"type": "service_requests"}),
                (f"{NGSI}/entities", {"type": "service_requests", "format": "keyValues"}),
                (f"{NGSI}/entities", {"type": "service_requests", "options": "sysAttrs"}),
                (f"{NGSI}/temporal/entities/{entity_id}", {}),
                (
                    f"{NGSI}/temporal/entities",
                    {
                        "type": "service_requests",
                        "timerel": "after",
                        "timeAt": "2000-01-01T00:00:00Z",
                    },
                ),
                (f"{NGSI}/types", {}),
                (f"{NGSI}/types/service_requests", {}),
            ]
            texts: list[str] = []
            images: list[bytes] = []
            for url, params in gets:
                response = await anonymous.get(
                    url,
                    params=params,
                    headers={"Accept": "application/geo+json"}
                    if url.endswith("/entities") and "format" in params
                    else {},
                )
                assert response.status_code == 200, (url, response.text)
                texts.append(response.text)
            public = (
                await anonymous.get(f"{NGSI}/entities/{entity_id}", params={"options": "keyValues"})
            ).json()
            photo_urls = [*public["photos"], *public["resolution_photos"]]
            assert len(photo_urls) == 2
            for url in photo_urls:
                path = url.split("://", 1)[1].split("/", 1)[1]
                for variant in ("", "/thumbnail"):
                    response = await anonymous.get(f"/{path}{variant}")
                    assert response.status_code == 200
                    images.append(response.content)
                    texts.append(response.content.decode("latin-1"))
            await receiver.wait_for(6)  # filed, moderated, photo, 2 statuses, after photo...
            texts += [r.body.decode() for r in receiver.requests]
            # what staff can see and the public cannot
            denied = await anonymous.get(f"/reports/{report_id}")
            assert denied.status_code == 401
            assert (
                await anonymous.get(f"/reports/{report_id}/photos/{photo['id']}")
            ).status_code == 401
    finally:
        receiver.stop()
    corpus = "\n".join(texts)
    assert "A mattress dumped by the bins" in corpus  # moderated text is public
    assert report_id in corpus and "illegal_dumping" in corpus
    for needle in needles(token):
        assert needle.lower() not in corpus.lower(), needle
    assert not re.search(r"\+?33\s?6[\s\d]{8,}", corpus)
    for image in images:
        assert_no_metadata(image)
    csv = texts[11]
    assert "A mattress" not in csv and "media" not in csv  # no free text, no photos
    assert "50.693,3.175" in csv  # coarsened location
