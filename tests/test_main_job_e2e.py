"""The main job, end to end (issue #6): the help page's journey in a real browser.

Two ServiceNow sandboxes (seeded with the demo incidents), two console nodes (each its
own database and Celery worker), and Chromium clicking through exactly the steps of
Exalate's "Set up a Connection in Basic Mode for ServiceNow" help page. Then the test
reads the destination sandbox through its API, and checks the reverse direction.

Screenshots of every step land in test-artifacts/ (e2e-NN-*.png); the README shows them.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time

import pytest
from playwright.sync_api import Page, expect

from tests.live import ADMIN_PASSWORD, ADMIN_USER, LiveNode, LiveSandbox

pytestmark = [pytest.mark.integration, pytest.mark.browser]

INCIDENT = "INC0010001"  # seeded with 3 public comments (one HTML), a work note, a PNG and a PDF
SYNC_TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Sandboxes A and B, node A (on sandbox A) and node B (on sandbox B), started in parallel."""
    sandboxes = [
        LiveSandbox(tmp_path_factory.mktemp(f"e2e-sandbox-{s}"), seed="demo") for s in "ab"
    ]
    _parallel([sb.start for sb in sandboxes])
    nodes = [
        LiveNode(tmp_path_factory.mktemp(f"e2e-node-{s}"), name=f"Node {s.upper()}", sandbox=sb)
        for s, sb in zip("ab", sandboxes, strict=True)
    ]
    try:
        _parallel([n.start for n in nodes])
        yield {"sandbox_a": sandboxes[0], "sandbox_b": sandboxes[1], "a": nodes[0], "b": nodes[1]}
    finally:
        _parallel([n.close for n in nodes])
        for sb in sandboxes:
            sb.stop()


def _parallel(calls):
    errors: list[BaseException] = []

    def run(fn):
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(fn,)) for fn in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


class Shots:
    """Numbered screenshots of each step."""

    def __init__(self, page: Page, folder, prefix: str):
        self.page, self.folder, self.prefix, self.n = page, folder, prefix, 0

    def __call__(self, name: str) -> None:
        self.n += 1
        self.page.screenshot(
            path=str(self.folder / f"{self.prefix}-{self.n:02d}-{name}.png"), full_page=True
        )


def _login(page: Page) -> None:
    expect(page.get_by_role("heading", name="Log in to the Exalate console")).to_be_visible()
    page.get_by_label("User name").fill(ADMIN_USER)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()


def _initiate(
    page: Page, node_a: LiveNode, node_b: LiveNode, shot: Shots, *, name: str, admin_access: str
) -> None:
    """Connections → Initiate connection → B's URL → Next → Basic → Next → name → access → Initiate."""
    page.goto(f"{node_a.url}/connections/")
    if page.get_by_role("heading", name="Log in to the Exalate console").is_visible():
        _login(page)
    expect(page.get_by_role("heading", name="Connections")).to_be_visible()
    shot("connections")
    page.get_by_role("button", name="Initiate connection").or_(
        page.get_by_role("link", name="Initiate connection")
    ).first.click()
    page.get_by_label("Destination Instance URL").fill(node_b.url)
    shot("destination-url")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_text("Choose the configuration type")).to_be_visible()
    page.locator("#mode-basic").click()
    shot("basic")
    page.get_by_role("button", name="Next").click()
    expect(
        page.get_by_text("Do you have admin access to the destination instance?")
    ).to_be_visible()
    page.get_by_label("Connection name").fill(name)
    page.get_by_text(admin_access).click()
    shot("admin-access")
    page.get_by_role("button", name="Initiate").click()


def _sandbox_incident(sb: LiveSandbox, **query) -> dict:
    q = "^".join(f"{k}={v}" for k, v in query.items())
    rows = (
        sb.session()
        .get(f"{sb.url}/api/now/table/incident", params={"sysparm_query": q}, timeout=10)
        .json()["result"]
    )
    assert len(rows) == 1, rows
    return rows[0]


def _journal(sb: LiveSandbox, sys_id: str) -> list[dict]:
    r = sb.session().get(
        f"{sb.url}/api/now/table/sys_journal_field",
        params={"sysparm_query": f"element_id={sys_id}^ORDERBYsys_created_on^ORDERBYsys_id"},
        timeout=10,
    )
    return r.json()["result"]


def _shown_comments(sb: LiveSandbox, sys_id: str) -> list[str]:
    """The incident's public comments oldest first, in the order its record shows them."""
    from servicenow_adapter.mapping import journal_display_entries

    r = sb.session().get(
        f"{sb.url}/api/now/table/incident/{sys_id}",
        params={"sysparm_display_value": "true", "sysparm_fields": "comments"},
        timeout=10,
    )
    return journal_display_entries(r.json()["result"]["comments"])


def _attachments(sb: LiveSandbox, sys_id: str) -> dict[str, str]:
    """file_name -> sha256 of the downloaded bytes."""
    s = sb.session()
    rows = s.get(
        f"{sb.url}/api/now/attachment",
        params={"sysparm_query": f"table_sys_id={sys_id}"},
        timeout=10,
    ).json()["result"]
    out = {}
    for row in rows:
        data = s.get(f"{sb.url}/api/now/attachment/{row['sys_id']}/file", timeout=30).content
        assert row["file_name"] not in out, f"attachment {row['file_name']} is there twice"
        out[row["file_name"]] = hashlib.sha256(data).hexdigest()
    return out


def _sys_id_from(url: str) -> str:
    match = re.search(r"[0-9a-f]{32}", url)
    assert match, url
    return match.group(0)


def _wait(check, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def test_no_admin_access_journey_mirrors_an_incident_both_ways(world, browser, artifacts):
    a, b, sandbox_a, sandbox_b = world["a"], world["b"], world["sandbox_a"], world["sandbox_b"]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    shot = Shots(page, artifacts, "e2e")

    # Node A: Initiate connection, No admin access, copy the invitation code, Done.
    _initiate(
        page, a, b, shot, name="Node_A_to_Node_B", admin_access="No, I don't have admin access"
    )
    expect(page.get_by_role("button", name="Copy invitation code")).to_be_visible()
    page.get_by_role("button", name="Copy invitation code").click()
    code = page.locator("#invitation-code").input_value()
    assert code.startswith("exalate")
    shot("invitation-code")
    page.get_by_role("link", name="Done").click()
    expect(page.get_by_role("row", name=re.compile("Node_A_to_Node_B"))).to_contain_text("Pending")

    # Node B: Accept invitation, paste, Next, Confirm.
    page.goto(f"{b.url}/connections/")
    _login(page)
    page.get_by_role("button", name="Accept invitation").or_(
        page.get_by_role("link", name="Accept invitation")
    ).first.click()
    page.get_by_label("Invitation code").fill(code)
    shot("accept-paste")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_role("button", name="Confirm")).to_be_visible()
    shot("accept-confirm")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("Connection established successfully")).to_be_visible()
    expect(page.get_by_text("Please enter an incident number to proceed")).to_be_visible()
    shot("established")

    # Exalate a seeded incident of B's instance.
    original = _sandbox_incident(sandbox_b, number=INCIDENT)
    page.get_by_label("Please enter an incident number to proceed").fill(INCIDENT)
    page.get_by_role("button", name="Exalate").click()
    expect(page.locator(".badge[data-status]").first).to_be_visible()
    shot("exalate-queued")
    expect(page.locator("[data-status=synchronized]")).to_be_visible(timeout=SYNC_TIMEOUT_MS)
    expect(page.get_by_text("Synchronized").first).to_be_visible()
    local_link, remote_link = page.locator("a.twin-local"), page.locator("a.twin-remote")
    expect(local_link).to_have_text(INCIDENT)
    expect(remote_link).to_have_text(re.compile(r"INC\d{7}"))
    shot("synchronized")
    local_href, remote_href = local_link.get_attribute("href"), remote_link.get_attribute("href")
    remote_number = remote_link.inner_text()

    # Both links open the right records in the instances' own UI.
    assert local_href.startswith(sandbox_b.url) and remote_href.startswith(sandbox_a.url)
    assert _sys_id_from(local_href) == original["sys_id"]
    for href, number, summary in [
        (local_href, INCIDENT, original["short_description"]),
        (remote_href, remote_number, original["short_description"]),
    ]:
        record = context.new_page()
        record.goto(href)
        expect(record.get_by_text(number).first).to_be_visible()
        expect(record.get_by_text(summary).first).to_be_visible()
        record.close()
    # Both sides show the connection as Active.
    for node in (a, b):
        page.goto(f"{node.url}/connections/")
        if page.get_by_role("heading", name="Log in to the Exalate console").is_visible():
            _login(page)
        expect(page.get_by_role("row", name=re.compile("Node_A_to_Node_B"))).to_contain_text(
            "Active"
        )
    shot("both-active")
    page.get_by_role("link", name="Node_A_to_Node_B").click()
    expect(page.get_by_role("heading", name="Sync rules")).to_be_visible()
    expect(page.locator("#connection-summary")).to_contain_text("Synced incidents")
    shot("connection-rules")

    # The other pages of the sync, as the admin sees them now.
    for path, heading, name in [
        ("/entity-sync-status/", "Entity sync status", "entity-sync-status"),
        ("/sync-queue/", "Sync queue", "sync-queue"),
        ("/errors/", "Errors", "errors"),
    ]:
        page.goto(f"{b.url}{path}")
        expect(page.get_by_role("heading", name=heading).first).to_be_visible()
        shot(name)

    # The destination sandbox, read through its API: same summary and description, every
    # public comment once, no work notes, attachments byte-identical.
    mirror_id = _sys_id_from(remote_href)
    mirror = _sandbox_incident(sandbox_a, sys_id=mirror_id)
    assert mirror["number"] == remote_number
    assert mirror["short_description"] == original["short_description"]
    assert mirror["description"] == original["description"]
    source_journal = _journal(sandbox_b, original["sys_id"])
    public = [row["value"] for row in source_journal if row["element"] == "comments"]
    work_notes = [row["value"] for row in source_journal if row["element"] == "work_notes"]
    assert len(public) == 3 and work_notes
    mirror_journal = _journal(sandbox_a, mirror_id)
    assert all(row["element"] == "comments" for row in mirror_journal), "a work note was sent"
    mirror_bodies = [row["value"] for row in mirror_journal]
    assert len(mirror_bodies) == len(public)
    for body in public:
        assert sum(body in m for m in mirror_bodies) == 1, (
            f"comment not mirrored exactly once: {body!r}"
        )
    # ... and in the original's order, as people see them on both records: the journal's
    # display value (sys_ids are random and same-second entries tie on sys_created_on).
    seen_source = [e for e in _shown_comments(sandbox_b, original["sys_id"]) if e in public]
    seen_mirror = _shown_comments(sandbox_a, mirror_id)
    positions = [next(i for i, m in enumerate(seen_mirror) if body in m) for body in seen_source]
    assert positions == sorted(positions), "comments arrived out of order"
    for note in work_notes:
        assert not any(note in m for m in mirror_bodies)
    source_files = _attachments(sandbox_b, original["sys_id"])
    assert len(source_files) >= 2
    assert _attachments(sandbox_a, mirror_id) == source_files

    # The reverse direction: a comment and an attachment added to the mirror (as a person,
    # not the integration user) reach the original within the poll interval, once.
    person = sandbox_a.session()
    person.auth = ("beth.anglin", "beth")
    comment = "Reverse direction works — réponse envoyée depuis l'instance A."
    person.patch(
        f"{sandbox_a.url}/api/now/table/incident/{mirror_id}",
        json={"comments": comment},
        timeout=10,
    ).raise_for_status()
    payload = b"reverse attachment\n" * 500
    person.post(
        f"{sandbox_a.url}/api/now/attachment/file",
        params={"table_name": "incident", "table_sys_id": mirror_id, "file_name": "from-a.txt"},
        data=payload,
        headers={"Content-Type": "text/plain"},
        timeout=10,
    ).raise_for_status()

    def arrived():
        bodies = [
            row["value"]
            for row in _journal(sandbox_b, original["sys_id"])
            if row["element"] == "comments"
        ]
        files = _attachments(sandbox_b, original["sys_id"])
        return sum(comment in body for body in bodies) == 1 and "from-a.txt" in files and bodies

    _wait(arrived, timeout=45, what="the reverse comment and attachment reaching the original")
    assert (
        _attachments(sandbox_b, original["sys_id"])["from-a.txt"]
        == hashlib.sha256(payload).hexdigest()
    )

    # Nothing echoes back: after several more poll cycles each side still has one copy.
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        on_a = [row["value"] for row in _journal(sandbox_a, mirror_id)]
        on_b = [
            row["value"]
            for row in _journal(sandbox_b, original["sys_id"])
            if row["element"] == "comments"
        ]
        assert sum(comment in v for v in on_a) == 1, on_a
        assert sum(comment in v for v in on_b) == 1, on_b
        assert len(on_a) == len(public) + 1
        time.sleep(1)
    context.close()


def test_yes_admin_access_journey_makes_a_second_connection(world, browser, artifacts):
    a, b = world["a"], world["b"]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    shot = Shots(page, artifacts, "e2e-yes")

    _initiate(page, a, b, shot, name="Yes_branch_A_to_B", admin_access="Yes, I have admin access")
    # The browser is now on node B, which asks its admin to log in, then to confirm.
    expect(page).to_have_url(re.compile(re.escape(b.url)))
    shot("destination-login")
    _login(page)
    expect(page.get_by_role("button", name="Confirm")).to_be_visible()
    shot("destination-confirm")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("Connection established successfully")).to_be_visible()
    shot("established")
    for node in (b, a):
        page.goto(f"{node.url}/connections/")
        if page.get_by_role("heading", name="Log in to the Exalate console").is_visible():
            _login(page)
        expect(page.get_by_role("row", name=re.compile("Yes_branch_A_to_B"))).to_contain_text(
            "Active"
        )
    shot("both-active")
    context.close()
