"""Unit tests of ``sync.nudge``'s coalescing: one queued message per task and id."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.test import override_settings

from sync import nudge

LOCMEM = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "shared": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "nudge"},
}


class RecordingTask:
    """Stands in for a Celery task object: records what would have been sent."""

    name = "sync.deliver"

    def __init__(self):
        self.sent = []

    def apply_async(self, args=(), countdown=None):
        self.sent.append((args, countdown))


pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def task():
    with override_settings(CACHES=LOCMEM):
        caches["shared"].clear()
        yield RecordingTask()
        caches["shared"].clear()


def test_tasks_outside_the_coalesced_set_are_always_sent(task):
    task.name = "sync.poll"
    nudge.nudge(task, "c1")
    nudge.nudge(task, "c1")
    assert len(task.sent) == 2


def test_a_burst_of_immediate_nudges_sends_one_message(task):
    for _ in range(5):
        nudge.nudge(task, "c1")
    nudge.nudge(task, "c2")
    assert task.sent == [(("c1",), None), (("c2",), None)]


def test_a_started_task_lets_the_next_nudge_through(task):
    nudge.nudge(task, "c1")
    nudge.started(task.name, "c1")
    nudge.nudge(task, "c1")
    assert len(task.sent) == 2


def test_delayed_nudges_are_never_coalesced_and_set_no_mark(task):
    nudge.nudge(task, "c1", countdown=30)
    nudge.nudge(task, "c1", countdown=30)
    nudge.nudge(task, "c1")
    assert [countdown for _args, countdown in task.sent] == [30, 30, None]


def test_a_failing_cache_never_stops_a_nudge(task):
    down = {
        **LOCMEM,
        "shared": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1",  # nothing listens there
        },
    }
    with override_settings(CACHES=down):
        nudge.nudge(task, "c1")
        nudge.nudge(task, "c1")
        nudge.started(task.name, "c1")
    assert len(task.sent) == 2


def test_a_rolled_back_nudge_leaves_no_mark(task):
    from django.db import transaction

    with pytest.raises(RuntimeError):
        with transaction.atomic():
            nudge.nudge(task, "c1")
            raise RuntimeError("rolled back")
    nudge.nudge(task, "c1")
    assert len(task.sent) == 1
