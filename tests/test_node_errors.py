# ruff: noqa: F811  (the engine tests' fixtures, imported)
"""Node-level errors (issue 12): this node's own tracker refuses its login or cannot be
reached for longer than a poll cycle, so nothing syncs on this node.

In process: the fake tracker (``tests.sync_fakes``) refuses credentials or does not answer;
change detection and the probes run as the beat runs them; the Errors page is read with
Django's test client as a logged-in admin.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from connections.models import Connection
from sync.models import ConnectionSyncState, SyncError
from sync.services import detect, failures
from tests.test_sync_engine import exalate, local_pair, runner, tracker  # noqa: F401
from trackers.errors import TrackerAuthenticationError, TrackerNotFound, TrackerUnreachable

pytestmark = pytest.mark.django_db


def _node_errors(**filters):
    return SyncError.objects.filter(level=SyncError.Level.NODE, **filters)


@pytest.fixture
def mailbox(settings, django_user_model):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.ERROR_MAIL_PERIOD = 600
    django_user_model.objects.create_user("ops", "ops@example.com", "x", is_staff=True)
    return mail.outbox


def test_refused_credentials_for_longer_than_a_poll_are_one_node_error_that_resolves_itself(
    tracker, runner, local_pair, monkeypatch, admin_client, mailbox, settings,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    left, _ = local_pair
    exalate(left, tracker.seed()["key"], runner)
    tracker.fail_next("list_changed", TrackerAuthenticationError("401 User Not Authenticated"))
    detect.connection_detect_changes(left.pk)
    left.refresh_from_db()
    assert left.status == Connection.Status.ERROR
    assert not _node_errors().exists()  # one failed poll is not yet a node that cannot work

    def refused():
        raise TrackerAuthenticationError("401 User Not Authenticated")

    monkeypatch.setattr(tracker, "test_connection", refused)
    later = timezone.now() + timedelta(seconds=settings.CONNECTION_PROBE_SECONDS)
    with django_capture_on_commit_callbacks(execute=True):
        assert failures.probes_run(now=later) == 0
    error = _node_errors().get()
    assert error.code == "node_credentials" and error.connection is None
    assert "refuses this node's login: 401 User Not Authenticated" in error.message
    assert "General settings" in error.message
    assert [m.subject for m in mailbox] == ["[Exalate console] 1 open error(s) on this node"]

    failures.probes_run(now=later + timedelta(hours=1))  # still refused: counted, not repeated
    error.refresh_from_db()
    assert (error.occurrences, _node_errors().count()) == (2, 1)

    page = admin_client.get("/errors/").content.decode()
    node_table = page.split('class="errors node-errors"')[1].split("</table>")[0]
    assert "Nothing syncs on this node." in node_table
    assert "refuses this node&#x27;s login" in node_table

    monkeypatch.setattr(tracker, "test_connection", lambda: "ok")  # the password was fixed
    assert failures.probes_run(now=later + timedelta(hours=3)) == 1
    error.refresh_from_db()
    assert error.resolved_at is not None  # resolved by itself, the row kept as history
    assert not _node_errors(resolved_at__isnull=True).exists()
    assert "No node error." in admin_client.get("/errors/").content.decode()


def test_an_unreachable_instance_for_two_polls_is_a_node_error_until_a_poll_works(
    tracker, runner, local_pair, settings
):
    left, _ = local_pair
    exalate(left, tracker.seed()["key"], runner)
    detect.connection_detect_changes(left.pk)  # a poll that works
    down = TrackerUnreachable("https://fake.service-now.test did not answer (timed out)")
    tracker.fail_next("list_changed", down, down, down)
    assert detect.connection_detect_changes(left.pk) == 0
    assert not _node_errors().exists()  # the first failed poll: maybe a blip
    left.refresh_from_db()
    assert left.status == Connection.Status.ACTIVE  # transient: polled again, no connection error

    a_poll_ago = timezone.now() - timedelta(seconds=2 * settings.CHANGE_POLL_INTERVAL)
    ConnectionSyncState.objects.filter(pk=left.pk).update(last_detect_at=a_poll_ago)
    detect.connection_detect_changes(left.pk)
    detect.connection_detect_changes(left.pk)
    error = _node_errors(resolved_at__isnull=True).get()
    assert error.code == "node_unreachable" and error.occurrences == 2
    assert "cannot reach its ServiceNow (fake) instance" in error.message
    assert "timed out" in error.message

    detect.connection_detect_changes(left.pk)  # it answers again
    error.refresh_from_db()
    assert error.resolved_at is not None


def test_other_failures_are_no_node_error_and_causes_are_kept_apart(tracker, runner, local_pair):
    left, _ = local_pair
    exalate(left, tracker.seed()["key"], runner)
    ConnectionSyncState.objects.filter(pk=left.pk).update(
        last_detect_at=timezone.now() - timedelta(hours=1)
    )
    assert failures.node_tracker_failed(connection=left, exc=TrackerNotFound("no table")) is None
    down = TrackerUnreachable("refused connection")
    unreachable = failures.node_tracker_failed(connection=left, exc=down)
    refused = failures.node_error_raise(code="node_credentials", message="refused")
    assert unreachable.pk != refused.pk
    assert _node_errors(resolved_at__isnull=True).count() == 2
    assert failures.node_tracker_ok() == 2
    assert failures.node_tracker_ok() == 0


def test_resolve_on_the_errors_page_sets_a_node_error_aside(admin_client):
    error = failures.node_error_raise(code="node_unreachable", message="did not answer")
    response = admin_client.post(f"/errors/{error.pk}/resolve/")
    assert response.status_code == 302
    error.refresh_from_db()
    assert error.resolved_at is not None
