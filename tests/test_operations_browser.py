"""Operating the sync in a real browser (issue 12): two nodes, two sandboxes, real workers.

Chromium drives both nodes' consoles through the pages an admin uses when something goes
wrong: the mirror of an incident is deleted on B, both nodes say so in words (twin page,
Errors page), the admin unexalates on A and exalates again, and the new mirror has every
comment once. A change made while the connection is deactivated is held in A's Sync
queue and arrives once after Activate. Then Connect, the replicas, the Sync queue's tabs
and htmx filters, Errors with bulk Resolve, Clean-up tools (CSV, unexalate all), the
Dashboard's SVG chart and the connection page (rename, live check).

Screenshots land in test-artifacts/ (ops-NN-*.png); the README's "When something goes
wrong" shows some of them (copied to docs/screenshots/).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.live import ADMIN_PASSWORD, ADMIN_USER, LiveNode, LiveSandbox, link_nodes, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.browser]

FAST = {
    "SYNC_DRAIN_INTERVAL": "1",
    "SYNC_DRAIN_GRACE": "2",
    "SYNC_RETRY_BASE": "0.5",
    "SYNC_RETRY_MAX": "3",
    "CHANGE_POLL_INTERVAL": "1",
}
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    sa = LiveSandbox(tmp_path_factory.mktemp("ops-sandbox-a"), seed="demo")
    sb = LiveSandbox(tmp_path_factory.mktemp("ops-sandbox-b"), seed="")
    a = LiveNode(tmp_path_factory.mktemp("ops-node-a"), name="Node A", sandbox=sa, env=FAST)
    b = LiveNode(tmp_path_factory.mktemp("ops-node-b"), name="Node B", sandbox=sb, env=FAST)
    try:
        sa.start()
        sb.start()
        a.start()
        b.start()
        connection = link_nodes(a, b, name="Support to Dev")
        yield {
            "a": a,
            "b": b,
            "sa": sa,
            "sb": sb,
            "connection": connection,
            "sn_a": sa.session(),
            "sn_b": sb.session(),
        }
    finally:
        a.close()
        b.close()
        sa.stop()
        sb.stop()


class Shots:
    def __init__(self, folder):
        self.folder, self.n = folder, 0

    def __call__(self, page: Page, name: str) -> None:
        self.n += 1
        page.screenshot(path=str(self.folder / f"ops-{self.n:02d}-{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    from tests.conftest import ARTIFACTS

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return Shots(ARTIFACTS)


def login(page: Page, node: LiveNode, path: str = "/") -> None:
    page.goto(f"{node.url}{path}")
    if page.get_by_role("heading", name="Log in to the Exalate console").is_visible():
        page.get_by_label("User name").fill(ADMIN_USER)
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.goto(f"{node.url}{path}")


def reload_until_listed(page: Page, url: str, table: str, text: str) -> None:
    """Open ``url`` and reload it until ``table`` lists ``text``: the Errors page is not live,
    an admin reloads it, and under load the error can land after the first load."""

    def listed() -> bool:
        page.goto(url)
        return text in page.locator(table).inner_text()

    wait_for(listed, timeout=WAIT_MS / 1000, what=f"{text!r} listed in {table} at {url}")


def new_incident(world, summary: str, comments: list[str]) -> dict:
    sn, base = world["sn_a"], world["sa"].url
    row = sn.post(
        f"{base}/api/now/table/incident",
        json={"short_description": summary, "description": "details"},
        timeout=10,
    ).json()["result"]
    for c in comments:
        comment(world, row["sys_id"], c)
    return row


def comment(world, sys_id: str, text: str, side: str = "a") -> None:
    sn, base = world[f"sn_{side}"], world[f"s{side}"].url
    r = sn.patch(f"{base}/api/now/table/incident/{sys_id}", json={"comments": text}, timeout=10)
    assert r.status_code == 200, r.text


def comments_of(world, side: str, sys_id: str) -> list[str]:
    sn, base = world[f"sn_{side}"], world[f"s{side}"].url
    rows = sn.get(
        f"{base}/api/now/table/sys_journal_field",
        params={
            "sysparm_query": f"element_id={sys_id}^element=comments^ORDERBYsys_created_on",
            "sysparm_fields": "value",
        },
        timeout=10,
    ).json()["result"]
    return [r["value"] for r in rows]


def twin_of(world, side: str, q: str) -> dict:
    api = world[f"api_{side}"]
    rows = api.get(f"{world[side].url}/api/twins/lookup/", params={"q": q}, timeout=10).json()
    return next(r["twin"] for r in rows if r["twin"])


def twins(world, side: str, q: str) -> list:
    data = (
        world[f"api_{side}"]
        .get(f"{world[side].url}/api/twins/", params={"q": q}, timeout=10)
        .json()
    )
    return data["results"] if isinstance(data, dict) else data


@pytest.fixture(scope="module")
def apis(world):
    world["api_a"], world["api_b"] = world["a"].login(), world["b"].login()
    return world


def exalate_in_browser(page: Page, node: LiveNode, number: str) -> None:
    page.goto(f"{node.url}/entity-sync-status/")
    page.locator("#exalate").get_by_label("Incident number").fill(number)
    page.locator("#exalate").get_by_role("button", name="Exalate").click()
    expect(page.locator(".twin-status .badge")).to_have_text("Synchronized", timeout=WAIT_MS)


def test_deleted_mirror_error_on_both_nodes_unexalate_and_exalate_again(browser, apis, shots):
    world = apis
    a, b = world["a"], world["b"]
    source = new_incident(world, "Printer on fire (ops)", ["First from A", "Second from A"])
    ctx_a, ctx_b = (
        browser.new_context(viewport={"width": 1280, "height": 900}),
        browser.new_context(viewport={"width": 1280, "height": 900}),
    )
    pa, pb = ctx_a.new_page(), ctx_b.new_page()
    pa.on("dialog", lambda d: d.accept())
    pb.on("dialog", lambda d: d.accept())
    try:
        login(pa, a, "/entity-sync-status/")
        exalate_in_browser(pa, a, source["number"])
        mirror_key = pa.locator("a.twin-remote").inner_text()
        mirror = twin_of(world, "a", source["number"])["remote"]
        # The mirror is deleted on B's instance; A's next change cannot be applied there.
        r = world["sn_b"].delete(
            f"{world['sb'].url}/api/now/table/incident/{mirror['id']}", timeout=10
        )
        assert r.status_code == 204
        comment(world, source["sys_id"], "Third, after the mirror went")
        login(pb, b, "/errors/")
        reload_until_listed(
            pb,
            f"{b.url}/errors/",
            "table.entity-errors",
            f"The incident {mirror_key} no longer exists in this node's instance",
        )
        shots(pb, "b-errors-mirror-deleted")
        reload_until_listed(
            pa,
            f"{a.url}/errors/",
            "table.entity-errors",
            f"The remote incident {mirror_key} no longer exists",
        )
        expect(pa.locator("table.entity-errors")).to_contain_text("Reported by the remote node.")
        shots(pa, "a-errors-remote-incident-gone")
        pa.locator("table.entity-errors").get_by_role("link", name=source["number"]).click()
        problem = pa.locator(".twin-problem")
        expect(problem.get_by_role("heading")).to_have_text("The remote incident no longer exists")
        shots(pa, "a-twin-remote-incident-gone")
        pb.goto(f"{b.url}/entity-sync-status/?q={mirror_key}")
        pb.locator("table.lookup").get_by_role("link").first.click()
        expect(pb.locator(".twin-problem h3")).to_have_text("This node's incident no longer exists")
        # Unexalate on A: both twins end.
        problem.get_by_role("button", name="Unexalate").click()
        expect(pa.locator(".messages")).to_contain_text("is unexalated")
        shots(pa, "a-unexalated")
        wait_for(
            lambda: (
                not world["api_b"]
                .get(f"{b.url}/api/twins/", params={"q": mirror_key}, timeout=10)
                .json()
            ),
            timeout=60,
            what="B's twin ends",
        )
        reload_until_listed(pb, f"{b.url}/errors/", "table.entity-errors", "No entity error.")
        # Exalate again: a new mirror with every comment once.
        pa.locator("table.lookup").get_by_role("button", name=f"Exalate {source['number']}").click()
        expect(pa.locator(".twin-status .badge")).to_have_text("Synchronized", timeout=WAIT_MS)
        new_key = pa.locator("a.twin-remote").inner_text()
        assert new_key != mirror_key
        shots(pa, "a-exalated-again")
        new_id = twin_of(world, "a", source["number"])["remote"]["id"]
        texts = comments_of(world, "b", new_id)
        for original in ("First from A", "Second from A", "Third, after the mirror went"):
            assert sum(original in t for t in texts) == 1, texts
        assert len(texts) == 3
    finally:
        ctx_a.close()
        ctx_b.close()


def test_held_change_is_visible_while_deactivated_and_arrives_once_after_activate(
    browser, apis, shots
):
    world = apis
    a = world["a"]
    source = new_incident(world, "Held while deactivated (ops)", [])
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    try:
        login(page, a, "/entity-sync-status/")
        exalate_in_browser(page, a, source["number"])
        mirror_id = twin_of(world, "a", source["number"])["remote"]["id"]
        page.goto(f"{a.url}/connections/{world['connection']}/")
        page.get_by_role("button", name="Deactivate").click()
        expect(page.locator("#connection-summary .badge")).to_have_text("Deactivated")
        comment(world, source["sys_id"], "Written while deactivated")
        page.goto(f"{a.url}/sync-queue/")
        row = page.locator("table.queue tr[data-status=held]")
        expect(row.first).to_contain_text(source["number"], timeout=WAIT_MS)
        expect(row.first).to_contain_text("Held while deactivated")
        expect(page.locator(".paused").first).to_contain_text("is deactivated")
        shots(page, "queue-held-while-deactivated")
        assert not any("Written while deactivated" in t for t in comments_of(world, "b", mirror_id))
        page.goto(f"{a.url}/connections/{world['connection']}/")
        page.get_by_role("button", name="Activate").click()
        expect(page.locator(".messages")).to_contain_text("held change(s) are on their way")
        wait_for(
            lambda: any(
                "Written while deactivated" in t for t in comments_of(world, "b", mirror_id)
            ),
            timeout=60,
            what="the held change on B",
        )
        texts = comments_of(world, "b", mirror_id)
        assert sum("Written while deactivated" in t for t in texts) == 1
        page.goto(f"{a.url}/sync-queue/")
        expect(page.locator("table.queue tr[data-status=held]")).to_have_count(0)
    finally:
        ctx.close()


def test_connect_replicas_queue_errors_cleanup_dashboard_and_connection_page(browser, apis, shots):
    world = apis
    a = world["a"]
    here = new_incident(world, "Connect me (ops)", ["Only on A"])
    there = (
        world["sn_b"]
        .post(
            f"{world['sb'].url}/api/now/table/incident",
            json={"short_description": "Existing on B"},
            timeout=10,
        )
        .json()["result"]
    )
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.on("dialog", lambda d: d.accept())
    try:
        # Connect: refused for a number that does not exist, then linked (no create).
        login(page, a, "/entity-sync-status/")
        form = page.locator("#connect")
        form.get_by_label("Incident number here").fill(here["number"])
        form.get_by_label("Remote incident number").fill("INC0999999")
        form.get_by_role("button", name="Connect").click()
        expect(page.locator("#connect .error")).to_contain_text("There is no incident INC0999999")
        form = page.locator("#connect")
        form.get_by_label("Incident number here").fill(here["number"])
        form.get_by_label("Remote incident number").fill(there["number"])
        form.get_by_role("button", name="Connect").click()
        expect(page.locator(".messages")).to_contain_text(f"is connected to {there['number']}")
        expect(page.locator(".twin-status .badge")).to_have_text("Synchronized", timeout=WAIT_MS)
        wait_for(
            lambda: any("Only on A" in t for t in comments_of(world, "b", there["sys_id"])),
            timeout=60,
            what="the first sync updates B's incident",
        )
        shots(page, "connected")
        page.get_by_role("link", name="Show local replica").click()
        expect(page.locator("pre.replica")).to_contain_text('"summary": "Connect me (ops)"')
        page.get_by_role("link", name="Show remote replica").click()
        expect(page.get_by_role("heading", name="Remote replica (last received)")).to_be_visible()
        # Sync queue: four tabs, filters apply at once (htmx), no acknowledgements.
        page.goto(f"{a.url}/sync-queue/")
        for tab in (
            "Outgoing sync",
            "Incoming sync",
            "Outgoing attachments",
            "Incoming attachments",
        ):
            expect(page.get_by_role("link", name=tab)).to_be_visible()
        page.get_by_label("Status").select_option("done")
        expect(page.locator("table.queue tbody tr").first).to_have_attribute("data-status", "done")
        expect(page).to_have_url(re.compile(r"status=done"))
        expect(page.locator("table.queue")).not_to_contain_text("Acknowledgement")
        page.get_by_label("Local or remote key").fill(here["number"])
        expect(page.locator("table.queue tbody")).to_contain_text(here["number"])
        shots(page, "queue-filtered")
        page.get_by_role("link", name="Incoming sync").click()
        expect(page.locator("table.queue")).to_have_attribute("data-tab", "incoming")
        # Errors: three levels, select all, Resolve.
        page.goto(f"{a.url}/entity-sync-status/")
        page.locator("#exalate").get_by_label("Incident number").fill("INC0999998")
        page.locator("#exalate").get_by_role("button", name="Exalate").click()
        reload_until_listed(
            page, f"{a.url}/errors/", "table.entity-errors", "Exalate INC0999998 failed"
        )
        expect(page.get_by_role("heading", name="Node errors")).to_be_visible()
        shots(page, "errors-three-levels")
        page.locator("table.entity-errors input[data-select-all]").check()
        page.locator("#errors-form > .actions").get_by_role(
            "button", name="Resolve", exact=True
        ).click()
        expect(page.locator(".messages")).to_contain_text("error(s) resolved")
        # Dashboard: the landing page, an SVG chart drawn on the server.
        page.goto(f"{a.url}/")
        expect(page).to_have_url(re.compile(r"/dashboard/$"))
        expect(page.locator("svg#activity-chart rect").first).to_be_attached()
        expect(page.locator("#stat-incidents .n")).not_to_have_text("0")
        page.get_by_role("link", name="Weeks").click()
        expect(page.locator("svg#activity-chart")).to_be_visible()
        shots(page, "dashboard")
        # Connection page: live check, rename and describe.
        page.goto(f"{a.url}/connections/{world['connection']}/")
        expect(page.locator("#remote-check .check-result")).to_contain_text(
            "Remote node answers", timeout=WAIT_MS
        )
        expect(page.locator("#remote-check")).to_contain_text("same connection: yes")
        page.locator("#rename summary").click()
        page.get_by_label("Name").fill("Support ↔ Dev")
        page.get_by_label("Description").fill("Tier-2 escalations")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Support ↔ Dev")
        expect(page.locator(".connection-description")).to_have_text("Tier-2 escalations")
        expect(page.locator('nav.menu a[href="/connections/"]')).to_have_attribute(
            "aria-current", "true"
        )
        shots(page, "connection-page")
        # Clean-up tools: the mapping as CSV, then unexalate the whole connection.
        page.goto(f"{a.url}/clean-up/")
        with page.expect_download() as download:
            page.locator("table.cleanup").get_by_role("link", name="Download CSV").first.click()
        text = open(download.value.path(), encoding="utf-8").read()
        assert text.startswith("local_number,local_sys_id") and here["number"] in text
        row = page.locator("table.cleanup tr", has_text="Support ↔ Dev")
        row.get_by_placeholder(re.compile("Type .* to confirm")).fill("Support ↔ Dev")
        row.get_by_role("button", name="Unexalate all").click()
        expect(page.locator(".messages")).to_contain_text("incident(s) unexalated on Support ↔ Dev")
        shots(page, "cleanup")
        wait_for(
            lambda: not twins(world, "b", ""),
            timeout=60,
            what="every twin ends on B too",
        )
    finally:
        ctx.close()
