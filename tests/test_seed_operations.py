"""The benchmark's seeding command (``manage.py seed_operations``), small."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from sync.models import SyncError, SyncEvent, Twin
from sync.queue_selectors import queue_page

pytestmark = pytest.mark.django_db


def test_seed_operations_writes_twins_events_and_errors_and_refuses_twice():
    call_command(
        "seed_operations", "--twins", "60", "--events", "900", stdout=open("/dev/null", "w")
    )
    assert Twin.objects.count() == 60
    assert SyncEvent.objects.count() == 900
    assert SyncEvent.objects.filter(kind="ack").count() == 300
    assert SyncError.objects.count() == Twin.objects.filter(status="error").count()
    page = queue_page(tab="outgoing", status="done")
    assert len(page["rows"]) == 50 and page["next_before"]
    with pytest.raises(CommandError, match="seeded before"):
        call_command("seed_operations", "--twins", "1", "--events", "0")
