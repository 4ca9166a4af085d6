"""The engine's two seams besides the tracker: the nudge corridor and the peers.

* A nudge waits for the commit of the transaction that wrote its row (``sync.nudge``).
* A node without URL (private connection, it polls) pushes the bytes of its new
  attachments; when the first push fails, the remote's poll answer asks for them again
  (``need_attachments``) and the attachment still arrives. The poller's HTTP is replaced
  by a loopback peer (the ``sync.peers.peer_for`` seam) that hands each request, as JSON,
  to the other connection row of this database; everything else is the real engine.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import transaction

from connections.models import Connection
from sync import nudge, peers, services, tasks
from sync.models import SyncEvent, Twin
from sync.protocol import POLL_PATH
from tests.sync_fakes import FakeAdapter, plug
from tests.test_sync_engine import PNG, Runner, exalate, mirror_of

pytestmark = pytest.mark.django_db


@pytest.mark.django_db(transaction=True)
def test_a_nudge_waits_for_the_commit_and_a_rolled_back_one_never_runs(monkeypatch):
    sent = []
    monkeypatch.setattr(
        tasks.scan, "apply_async", lambda args=(), countdown=None: sent.append((args, countdown))
    )
    monkeypatch.setattr(
        tasks.deliver, "apply_async", lambda args=(), countdown=None: sent.append((args, countdown))
    )
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            nudge.scan(1)
            raise RuntimeError("the write failed")
    assert sent == []
    connection_id = uuid.uuid4()
    with transaction.atomic():
        nudge.scan(2)
        nudge.deliver(connection_id, countdown=3)
        assert sent == []  # not before the commit: the worker would not see the row yet
    assert sent == [((2,), None), ((str(connection_id),), 3)]


def test_only_the_corridor_sends_celery_tasks():
    root = Path(__file__).resolve().parent.parent / "sync"
    senders = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if any(word in p.read_text() for word in ("apply_async(", ".delay(", "send_task("))
    )
    assert senders == ["nudge.py"]


class LoopbackPeer(peers.PollingPeer):
    """A polling peer whose requests go, as JSON, to ``far`` (the other row of this database)."""

    def __init__(self, connection, far, uploads):
        super().__init__(connection)
        self.far = far
        self.uploads = uploads

    def call(self, path, body):
        assert path == POLL_PATH
        answer = services.poll_answer(connection=self.far, body=json.loads(json.dumps(body)))
        return json.loads(json.dumps(answer))

    def upload(self, path, chunks, size):
        self.uploads["tries"] += 1
        if self.uploads["fail"]:
            self.uploads["fail"] -= 1
            raise peers.PeerRetry("http://127.0.0.1:9 answered HTTP 503: restarting")
        url = urlsplit(path)
        query = parse_qs(url.query)
        services.pushed_attachment_store(
            connection=self.far,
            attachment_id=url.path.rsplit("/", 1)[1],
            sha256=query["sha256"][0],
            size=int(query["size"][0]),
            chunks=chunks,
        )


@pytest.fixture
def tracker(settings, monkeypatch):
    return plug(settings, monkeypatch, FakeAdapter())


@pytest.fixture
def runner(monkeypatch):
    r = Runner()
    monkeypatch.setattr(nudge, "nudge", r.enqueue)
    return r


@pytest.fixture
def private_pair(monkeypatch):
    """The poller (no URL, polls) and the polled side (has a URL, waits to be polled)."""
    poller = Connection.objects.create(
        name="Behind the firewall",
        type=Connection.Type.PRIVATE,
        status=Connection.Status.ACTIVE,
        remote_url="http://127.0.0.1:9",
        polls_remote=True,
        secret="s" * 32,
    )
    polled = Connection.objects.create(
        name="Public side",
        type=Connection.Type.PRIVATE,
        status=Connection.Status.ACTIVE,
        remote_url="",
        secret="s" * 32,
    )
    uploads = {"fail": 1, "tries": 0}
    real_peer_for = peers.peer_for

    def peer_for(connection):
        if connection.pk == poller.pk:
            return LoopbackPeer(connection, polled, uploads)
        return real_peer_for(connection)

    monkeypatch.setattr(peers, "peer_for", peer_for)
    return poller, polled, uploads


def test_the_first_push_from_a_node_without_url_fails_and_the_attachment_still_arrives(
    tracker, runner, private_pair
):
    poller, polled, uploads = private_pair
    source = tracker.seed(
        comments=[("Beth Anglin", "Behind the firewall")],
        attachments=[("screen.png", "image/png", PNG)],
    )
    exalate(poller, source["key"], runner)
    assert uploads == {"fail": 0, "tries": 1}  # the push before the poll failed
    event = SyncEvent.objects.get(connection=polled, direction="in", kind="replica")
    assert event.status == "queued" and event.last_error.startswith(services.WAITING_FOR_PUSH)
    assert mirror_of(tracker, source)["attachments"] == []

    services.connection_poll(poller.pk)  # the beat: the answer asks for the bytes again
    runner.run()  # the pushed bytes nudge the waiting apply
    assert uploads["tries"] == 2
    mirror = mirror_of(tracker, source)
    assert [(a["file_name"], a["sha256"]) for a in mirror["attachments"]] == [
        (a["file_name"], a["sha256"]) for a in source["attachments"]
    ]
    assert [c["body"] for c in mirror["comments"]] == ["[Beth Anglin] Behind the firewall"]

    services.connection_poll(poller.pk)  # collects the acknowledgement
    runner.run()
    twin = Twin.objects.get(connection=poller)
    assert twin.status == Twin.Status.SYNCHRONIZED and twin.remote_key == mirror["key"]
    assert Twin.objects.get(connection=polled).status == Twin.Status.SYNCHRONIZED
    assert services.attachments_needed(polled) == []
