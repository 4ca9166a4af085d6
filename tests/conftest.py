"""Shared cast for the test suite: admins and an outsider, live nodes and sandboxes, a browser.

Fixtures that start processes are marked by the tests that use them with
``@pytest.mark.integration``; browser tests with ``@pytest.mark.browser``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.live import LiveNode, LiveSandbox

# Playwright's sync API runs an event loop in this thread; the ORM calls our tests make
# next to it are synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts"))
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("ada", password="ada-password-123", email="")


@pytest.fixture
def second_admin(django_user_model):
    return django_user_model.objects.create_superuser(
        "grace", password="grace-password-123", email=""
    )


@pytest.fixture
def outsider(django_user_model):
    return django_user_model.objects.create_user(
        "mallory", password="mallory-password-123", email=""
    )


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def sandbox_factory(tmp_path_factory):
    """Start ServiceNow sandboxes: ``sandbox_factory(seed="demo", user=..., password=...)``."""
    started: list[LiveSandbox] = []

    def make(**kwargs) -> LiveSandbox:
        sb = LiveSandbox(tmp_path_factory.mktemp("sandbox"), **kwargs).start()
        started.append(sb)
        return sb

    yield make
    for sb in started:
        sb.stop()


@pytest.fixture
def node_factory(tmp_path_factory):
    """Start console nodes: ``node_factory(name="A", sandbox=sb, public=True, env={...})``."""
    started: list[LiveNode] = []

    def make(**kwargs) -> LiveNode:
        node = LiveNode(tmp_path_factory.mktemp("node"), **kwargs)
        started.append(node)
        return node.start()

    yield make
    for node in started:
        node.close()


@pytest.fixture(scope="session")
def browser():
    """A session-wide headless Chromium (Debian's), driven by Playwright."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    """A fresh browser page; on failure a screenshot lands in test-artifacts/."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    pg = context.new_page()
    yield pg
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"), full_page=True)
    context.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def pytest_collection_modifyitems(config, items):
    """``slow`` tests (the soak) run only when asked for by name: ``pytest -m slow``.

    ``make test`` (plain ``pytest``), ``-m integration`` and ``make test-fast`` leave them
    out on purpose: the soak takes minutes and has its own step in ``.ci/run``.
    """
    if "slow" in (config.getoption("markexpr") or ""):
        return
    kept = [item for item in items if "slow" not in item.keywords]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if "slow" in i.keywords])
        items[:] = kept
