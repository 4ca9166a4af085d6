"""Links from a peer are checked again when rendered: only http(s) URLs become an ``href``."""

from __future__ import annotations

import pytest
from django.urls import reverse

from connections.models import Connection
from sync.models import Twin
from trackers.templatetags.tracker_links import safe_href

EVIL = "javascript:alert(1)"


@pytest.mark.parametrize(
    "value",
    [
        EVIL,
        "JavaScript:alert(1)",
        " javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "//evil.example/x",
        "/relative",
        "http://",
        "https://host/\nx",
        "",
        None,
    ],
)
def test_safe_href_renders_nothing_for_what_is_not_an_http_url(value):
    assert safe_href(value) == ""


@pytest.mark.parametrize(
    "value", ["http://127.0.0.1:8101/incident.do?sys_id=1", "https://acme.service-now.com/x"]
)
def test_safe_href_keeps_http_and_https_urls(value):
    assert safe_href(value) == value


@pytest.fixture
def planted_twin(db):
    """A twin whose stored links are ``javascript:`` (written to the database directly, as an
    older node or a path that skipped the replica check could have stored them)."""
    connection = Connection.objects.create(
        name="Peer", type="public", status="active", secret="s" * 32, remote_url="http://peer"
    )
    twin = Twin.objects.create(
        connection=connection,
        local_entity_id="a" * 32,
        local_key="INC0010001",
        remote_entity_id="b" * 32,
        remote_key="INC0020002",
        status=Twin.Status.SYNCHRONIZED,
    )
    Twin.objects.filter(pk=twin.pk).update(local_url=EVIL, remote_url=EVIL)
    return twin


@pytest.mark.parametrize(
    "page", ["sync:entity-status", "sync:twin", "sync:twin-status-part"], ids=lambda p: p
)
def test_a_planted_javascript_link_is_not_rendered(admin_client, planted_twin, page):
    url = reverse(page) if page == "sync:entity-status" else reverse(page, args=[planted_twin.pk])
    html = admin_client.get(url).content.decode()
    assert "INC0020002" in html  # the remote incident is still named, without a link
    assert "javascript:" not in html.lower()
    assert 'href="javascript' not in html


def test_an_http_link_is_rendered(admin_client, planted_twin):
    Twin.objects.filter(pk=planted_twin.pk).update(remote_url="https://peer.example/incident/1")
    html = admin_client.get(reverse("sync:twin", args=[planted_twin.pk])).content.decode()
    assert 'href="https://peer.example/incident/1"' in html
