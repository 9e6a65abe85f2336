"""Citizen reports (Open311 service requests): categories, workflow, photos, e-mail, storage.

Domain code only: no HTTP, no SQL. ``api/open311.py`` and ``api/reports_staff.py`` are its
HTTP faces; reports are ``service_requests`` entities (Smart Data Models IssueTracking) in
the broker, and everything personal (contact details, photos before moderation) lives in
store records, never in the entity.
"""
