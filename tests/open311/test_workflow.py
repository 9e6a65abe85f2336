"""The city workflow through the back office: transitions, notes and staff, e-mails read from
a real SMTP sink, reopening by token, "me too", duplicates and merging, statistics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from tests.conftest import running_app
from tests.open311.support import CONTACT, LAT, LONG, V2, smtp_sink, submit

from agilecity.reports import model
from agilecity.reports.model import ConflictError, Report, apply_transition
from agilecity.settings import Settings

BASE = "https://city.example"


def text(message: Any) -> str:
    """The decoded body of a received message."""
    return str(message.get_payload(decode=True).decode())


async def status(client: httpx.AsyncClient, report_id: str, to: str, note: str = "") -> Any:
    response = await client.post(f"/reports/{report_id}/status", json={"status": to, "note": note})
    return response


def test_transition_table() -> None:
    report = Report("r1", "pothole", model.SUBMITTED, "t0", "t0", 50.0, 3.0)
    done = apply_transition(report, model.ACKNOWLEDGED, "t1", "staff-a", "seen")
    assert (done.status, done.status_notes, done.updated_at) == ("acknowledged", "seen", "t1")
    assert done.history[-1] == model.Transition("acknowledged", "t1", "staff-a", "seen")
    fixed = apply_transition(
        apply_transition(done, model.IN_PROGRESS, "t2", "b"), model.RESOLVED, "t3", "b", "filled"
    )
    assert (fixed.resolved_at, fixed.closed_at, model.open311_status(fixed.status)) == (
        "t3",
        "t3",
        "closed",
    )
    with pytest.raises(ConflictError):
        apply_transition(fixed, model.REJECTED, "t4", "b")
    reopened = apply_transition(fixed, model.ACKNOWLEDGED, "t4", "reporter", reopening=True)
    assert reopened.reopened == 1 and reopened.closed_at == "" and reopened.resolved_at == ""
    with pytest.raises(ConflictError):  # only a resolved report is reopened by its reporter
        apply_transition(reopened, model.ACKNOWLEDGED, "t5", "reporter", reopening=True)
    not_fixed = apply_transition(reopened, model.CLOSED_NOT_FIXED, "t5", "c", "private land")
    assert model.open311_status(not_fixed.status) == "closed" and not_fixed.resolved_at == ""
    duplicate = apply_transition(report, model.DUPLICATE, "t1", "a")
    assert model.TRANSITIONS[duplicate.status] == frozenset()
    for source, targets in model.TRANSITIONS.items():
        for target in model.STATUSES:
            start = Report("r", "pothole", source, "t0", "t0", None, None)
            if target in targets:
                assert apply_transition(start, target, "t", "s").status == target
            elif target != model.DUPLICATE or source in model.CLOSED:
                with pytest.raises(ConflictError):
                    apply_transition(start, target, "t", "s")


async def test_every_status_change_is_recorded_and_mailed(
    settings_factory: Callable[..., Settings],
) -> None:
    with smtp_sink() as (sink, port):
        settings = settings_factory(
            open311_smtp_host="127.0.0.1",
            open311_smtp_port=port,
            open311_public_url=BASE,
            open311_mail_from="city@example.org",
        )
        async with running_app(settings) as (app, client):
            created = await submit(client, **CONTACT)
            report_id, token = created.json()[0]["service_request_id"], created.json()[0]["token"]
            await sink.wait_for(1)
            for to, note in (
                ("acknowledged", "Seen by the team"),
                ("in_progress", ""),
                ("resolved", "Removed this morning"),
            ):
                assert (await status(client, report_id, to, note)).status_code == 200
            messages = await sink.wait_for(4)
            refused = await status(client, report_id, "rejected", "too late")
            assert refused.status_code == 409
            assert refused.headers["content-type"] == "application/problem+json"
            bad = await status(client, report_id, "finished")
            assert bad.status_code == 400 and bad.json()["status"] == 400
            duplicate_by_status = await status(client, report_id, "duplicate")
            assert duplicate_by_status.status_code == 400
            missing = await status(client, "ffffffffffff", "acknowledged")
            assert missing.status_code == 404
            reopened = await client.post(
                f"/open311/tokens/{token}/reopen", json={"note": "Still there, behind the bins"}
            )
            assert reopened.status_code == 200, reopened.text
            messages = await sink.wait_for(5)
            wrong = await client.post("/open311/tokens/nottoken/reopen", json={})
            assert wrong.status_code == 404 and wrong.json()[0]["code"] == 404
            again = await client.post(f"/open311/tokens/{token}/reopen", json={})
            assert again.status_code == 409 and again.json()[0]["code"] == 409
            detail = (await client.get(f"/reports/{report_id}")).json()
            public = (await client.get(f"{V2}/requests/{report_id}.json")).json()[0]
            await app.state.reports.drain()
    assert [h["status"] for h in detail["history"]] == [
        "submitted",
        "acknowledged",
        "in_progress",
        "resolved",
        "acknowledged",
    ]
    assert [h["by"] for h in detail["history"]] == [
        "reporter",
        "open-mode",
        "open-mode",
        "open-mode",
        "reporter",
    ]
    assert detail["history"][1]["note"] == "Seen by the team"
    assert all(h["at"].endswith("Z") for h in detail["history"])
    assert detail["reopened"] == 1 and detail["status"] == "acknowledged"
    assert detail["contact"]["email"] == CONTACT["email"]  # staff see who to call back
    assert public["status"] == "open"
    assert public["status_notes"] == "Reopened by the reporter: not fixed."
    assert "behind the bins" not in str(public)  # the reporter's own words are not public
    assert len(messages) == 5
    subjects = [m["Subject"] for m in messages]
    assert subjects == [
        f"Report {report_id} (Illegal dumping): {s}"
        for s in ("submitted", "acknowledged", "in progress", "resolved", "acknowledged")
    ]
    for message in messages:
        assert message["To"] == CONTACT["email"] and message["From"] == "city@example.org"
        assert f"{BASE}/report?token={token}" in text(message)
    assert "Seen by the team" in text(messages[1])
    assert "has been marked as fixed" in text(messages[3])


async def test_staff_auth_assign_moderate(settings_factory: Callable[..., Settings]) -> None:
    async with running_app(settings_factory()) as (_, client):
        created = await submit(client, description="Sofa left by M. Dupont at number 12")
        report_id = created.json()[0]["service_request_id"]
        assigned = await client.post(
            f"/reports/{report_id}/assignment", json={"team": "night-crew", "assignee": "amina"}
        )
        assert assigned.json()["team"] == "night-crew" and assigned.json()["assignee"] == "amina"
        public = (await client.get(f"{V2}/requests/{report_id}.json")).json()[0]
        assert public["agency_responsible"] == "night-crew" and public["description"] is None
        moderated = await client.post(
            f"/reports/{report_id}/moderation",
            json={"publish": True, "description": "Sofa left at number 12"},
        )
        assert moderated.status_code == 200
        public = (await client.get(f"{V2}/requests/{report_id}.json")).json()[0]
        assert public["description"] == "Sofa left at number 12"
        withdrawn = await client.post(f"/reports/{report_id}/moderation", json={"publish": False})
        assert withdrawn.status_code == 200
        public = (await client.get(f"{V2}/requests/{report_id}.json")).json()[0]
        assert public["description"] is None
        for body in ({"publish": "yes"}, {"publish": True, "description": 3}, []):
            refused = await client.post(f"/reports/{report_id}/moderation", json=body)
            assert refused.status_code == 400
            assert refused.headers["content-type"] == "application/problem+json"
        not_json = await client.post(
            f"/reports/{report_id}/status",
            content=b"status=resolved",
            headers={"content-type": "text/plain"},
        )
        assert not_json.status_code == 400
        queue = await client.get(
            "/reports", params={"status": "submitted", "service_code": "illegal_dumping"}
        )
        assert [r["id"] for r in queue.json()] == [report_id]
        assert "contact" not in queue.json()[0] and "history" not in queue.json()[0]
        assert (await client.get("/reports", params={"status": "resolved"})).json() == []
        assert (await client.get("/reports", params={"status": "x"})).status_code == 400
        assert (await client.get("/reports", params={"district": "x"})).status_code == 400
        assert (await client.get("/reports", params={"limit": "0"})).status_code == 400


async def test_duplicates_follow_and_merge(settings_factory: Callable[..., Settings]) -> None:
    with smtp_sink() as (sink, port):
        settings = settings_factory(
            open311_smtp_host="127.0.0.1",
            open311_smtp_port=port,
            open311_duplicate_distance_m=60,
            open311_rate_limit=0,
        )
        async with running_app(settings) as (app, client):
            first = (await submit(client, email="first@example.org")).json()[0]
            # about 33 m north-east: a duplicate; 200 m away and another category: not
            near = (
                await submit(
                    client,
                    lat=str(LAT + 0.0002),
                    long=str(LONG + 0.0003),
                    email="second@example.org",
                )
            ).json()[0]
            far = (await submit(client, lat=str(LAT + 0.0018))).json()[0]
            other = (await submit(client, service_code="graffiti")).json()[0]
            suggested = (
                await client.get(f"/reports/{near['service_request_id']}/duplicates")
            ).json()
            assert [s["service_request_id"] for s in suggested] == [first["service_request_id"]]
            assert 25 < suggested[0]["distance_m"] < 40
            nearby = (
                await client.get(
                    "/open311/nearby",
                    params={"service_code": "illegal_dumping", "lat": str(LAT), "long": str(LONG)},
                )
            ).json()
            ids = [n["service_request_id"] for n in nearby]
            assert ids == [first["service_request_id"], near["service_request_id"]]
            assert far["service_request_id"] not in ids and other["service_request_id"] not in ids
            follow = await client.post(
                f"/open311/requests/{first['service_request_id']}/follow",
                json={"email": "neighbour@example.org"},
            )
            assert follow.status_code == 200 and follow.json()["followers"] == 1
            plain = await client.post(
                f"/open311/requests/{first['service_request_id']}/follow", data={}
            )
            assert plain.json()["followers"] == 2
            merged = await client.post(
                f"/reports/{near['service_request_id']}/merge",
                json={"into": first["service_request_id"]},
            )
            assert merged.status_code == 200, merged.text
            assert merged.json()["merged"] == [near["service_request_id"]]
            assert merged.json()["followers"] == 3
            public = (await client.get(f"{V2}/requests/{near['service_request_id']}.json")).json()
            assert public[0]["status"] == "closed"
            assert (
                public[0]["status_notes"] == f"Duplicate of report {first['service_request_id']}."
            )
            entity = await client.get(
                f"/ngsi-ld/v1/entities/urn:ngsi-ld:service_requests:{near['service_request_id']}",
                params={"options": "keyValues"},
            )
            assert entity.json()["duplicate_of"] == (
                f"urn:ngsi-ld:service_requests:{first['service_request_id']}"
            )
            again = await client.post(
                f"/reports/{near['service_request_id']}/merge",
                json={"into": first["service_request_id"]},
            )
            assert again.status_code == 409
            into_self = await client.post(
                f"/reports/{far['service_request_id']}/merge",
                json={"into": far["service_request_id"]},
            )
            assert into_self.status_code == 400
            # following the duplicate follows the report it was merged into
            via = await client.post(f"/open311/requests/{near['service_request_id']}/follow")
            assert via.json() == {"service_request_id": first["service_request_id"], "followers": 4}
            await sink.wait_for(3)  # two submissions with an e-mail, the merge notice
            before = len(sink.messages)
            await status(client, first["service_request_id"], "resolved", "Cleared")
            messages = await sink.wait_for(before + 3)
            stats = (await client.get("/reports/statistics")).json()
            await app.state.reports.drain()
    merge_notice = messages[before - 1]
    assert merge_notice["To"] == "second@example.org" and "duplicate" in merge_notice["Subject"]
    recipients = sorted(m["To"] for m in messages[before:])
    # the resolution told the reporter, the follower and the reporter of the duplicate
    assert recipients == ["first@example.org", "neighbour@example.org", "second@example.org"]
    assert all("Cleared" in text(m) for m in messages[before:])
    dumping = stats["categories"]["illegal_dumping"]
    assert (dumping["open"], dumping["closed"], dumping["resolved"]) == (1, 1, 1)
    assert dumping["target_hours"] == 48 and dumping["within_target"] is True
    assert stats["categories"]["graffiti"] == {
        "open": 1,
        "closed": 0,
        "resolved": 0,
        "median_hours_to_resolution": None,
        "target_hours": 120,
        "within_target": None,
    }


def test_statistics_medians_against_targets() -> None:
    from agilecity.reports.categories import DEFAULT_CATEGORIES

    def resolved(hours: float, district: str, code: str = "pothole") -> Report:
        end = f"2026-01-{1 + int(hours // 24):02d}T{int(hours % 24):02d}:00:00.000Z"
        return Report(
            "x",
            code,
            model.RESOLVED,
            "2026-01-01T00:00:00.000Z",
            end,
            None,
            None,
            district=district,
            resolved_at=end,
            closed_at=end,
        )

    reports = [
        resolved(100, "nord"),
        resolved(200, "nord"),
        resolved(250, "sud"),
        Report(
            "o",
            "pothole",
            model.SUBMITTED,
            "2026-01-01T00:00:00.000Z",
            "",
            None,
            None,
            district="sud",
        ),
        resolved(10, "sud", "overflowing_bin"),
        resolved(30, "sud", "overflowing_bin"),
    ]
    stats = model.report_statistics(reports, DEFAULT_CATEGORIES)
    assert stats["categories"]["pothole"] == {
        "open": 1,
        "closed": 3,
        "resolved": 3,
        "median_hours_to_resolution": 200.0,
        "target_hours": 168,
        "within_target": False,
    }
    assert stats["categories"]["overflowing_bin"]["median_hours_to_resolution"] == 20.0
    assert stats["categories"]["overflowing_bin"]["within_target"] is True
    assert stats["districts"] == {"nord": {"open": 0, "closed": 2}, "sud": {"open": 1, "closed": 3}}


async def test_districts_from_geojson(
    settings_factory: Callable[..., Settings], tmp_path: Any
) -> None:
    import json

    def square(name: str, west: float) -> dict[str, Any]:
        ring = [[west, 50.6], [west + 0.1, 50.6], [west + 0.1, 50.8], [west, 50.8], [west, 50.6]]
        return {
            "type": "Feature",
            "properties": {"name": name},
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        }

    path = tmp_path / "districts.geojson"
    path.write_text(
        json.dumps(
            {"type": "FeatureCollection", "features": [square("Ouest", 3.0), square("Centre", 3.1)]}
        )
    )
    async with running_app(settings_factory(open311_districts_file=str(path))) as (_, client):
        centre = (await submit(client)).json()[0]["service_request_id"]
        west = (await submit(client, long="3.05")).json()[0]["service_request_id"]
        queue = await client.get("/reports", params={"district": "Ouest"})
        stats = (await client.get("/reports/statistics")).json()
        export = (await client.get("/open311/export.csv")).text
    assert [r["id"] for r in queue.json()] == [west]
    assert stats["districts"] == {
        "Centre": {"open": 1, "closed": 0},
        "Ouest": {"open": 1, "closed": 0},
    }
    assert f"{centre},illegal_dumping,Illegal dumping,open,submitted," in export
    assert ",Centre,50.693,3.175" in export
