"""The replica schema is the edge between nodes: what it refuses never reaches a page."""

from __future__ import annotations

import pytest

from trackers.replica import ReplicaInvalid, is_http_url, replica_validate


def _replica(url: str) -> dict:
    return {
        "schema": 1,
        "tracker": "servicenow",
        "entity": {"id": "a" * 32, "key": "INC0010001", "url": url, "type": "incident"},
        "summary": "s",
        "description": "",
        "comments": [],
        "attachments": [],
        "updated": "2026-11-29T10:00:00Z",
        "mod_count": 0,
    }


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(document.cookie)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        " https://example.com/",
        "https://exa mple.com/",
        "//evil.example/",
        "file:///etc/passwd",
    ],
)
def test_a_replica_with_a_link_that_is_not_http_is_refused(url):
    with pytest.raises(ReplicaInvalid, match=r"replica\.entity\.url: only http:// and https://"):
        replica_validate(_replica(url))


@pytest.mark.parametrize(
    "url",
    [
        "https://dev1.service-now.com/nav_to.do?uri=incident.do%3Fsys_id%3Dabc",
        "http://127.0.0.1:8101/x",
        "",
    ],
)
def test_http_links_and_no_link_are_accepted(url):
    assert replica_validate(_replica(url))["entity"]["url"] == url


def test_is_http_url_needs_a_scheme_and_a_host():
    assert is_http_url("https://example.com/a")
    assert not is_http_url("https://")
    assert not is_http_url("javascript:alert(1)")
    assert not is_http_url(None)
    assert not is_http_url("")
