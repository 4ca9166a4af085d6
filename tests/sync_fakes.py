"""An in-memory tracker for in-process tests of the sync engine (no HTTP, no processes).

``FakeAdapter`` implements ``trackers.interface.TrackerAdapter`` the way the ServiceNow
adapter behaves as far as the engine can tell: sys_id-like ids, INC numbers from
INC0010001, ``sys_mod_count`` bumped by every write, comments carrying the original
author's name in the text, attachments with their sha256, the business rule's webhook
body. ``fail_next`` makes the next calls of one method raise a given error, to test
retries, crashes and the 401 path.

It is plugged in the way every adapter is, through the registry (:func:`plug`):
``settings.TRACKER_ADAPTERS = {"servicenow": "tests.sync_fakes.FakeAdapter"}``, and the
class's ``environment_config`` / ``from_config`` hand out the test's instance
(``FakeAdapter.current``), so ``connections.selectors.tracker_adapter_get()`` returns it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from trackers.errors import TrackerError, TrackerNotFound
from trackers.interface import (
    ChangedEntity,
    CreatedItem,
    EntityRef,
    TrackerAdapter,
    TrackerConfig,
    WebhookHint,
)

KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def plug(settings, monkeypatch, fake: FakeAdapter) -> FakeAdapter:
    """Make ``fake`` this node's tracker for one test (``settings``/``monkeypatch`` fixtures)."""
    settings.TRACKER_ADAPTERS = {"servicenow": "tests.sync_fakes.FakeAdapter"}
    monkeypatch.setattr(FakeAdapter, "current", fake)
    return fake


class FakeAdapter(TrackerAdapter):
    tracker = "servicenow"
    display_name = "ServiceNow (fake)"
    entity_label = "incident"
    key_label = "incident number"
    key_example = "INC0010001"
    entity_types = ("incident",)
    #: The instance the registry hands out (set by :func:`plug`).
    current: FakeAdapter | None = None

    @classmethod
    def normalize_key(cls, key: str) -> str:
        key = (key or "").strip()
        return key.upper() if re.fullmatch(r"[A-Za-z]{2,8}\d{3,}", key) else key

    @classmethod
    def key_problem(cls, key: str) -> str | None:
        if not KEY_RE.match((key or "").strip()):
            return "Enter an incident number such as INC0010001 (letters, digits, '-', '_' or '.', at most 64)."
        return None

    @classmethod
    def environment_config(cls) -> TrackerConfig | None:
        if cls.current is None:
            return None
        return TrackerConfig("servicenow", cls.current.base_url, "basic", "fake", "", "", "", True)

    @classmethod
    def from_config(cls, config: TrackerConfig) -> FakeAdapter:
        if cls.current is None:
            raise TrackerError("No fake tracker is plugged in.")
        return cls.current

    @classmethod
    def parse_webhook(cls, body: bytes) -> list[WebhookHint]:
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise ValueError('The body must be JSON: {"sys_id": "..."}.') from None
        sys_id = data.get("sys_id") if isinstance(data, dict) else None
        if not isinstance(sys_id, str) or not 1 <= len(sys_id) <= 64:
            raise ValueError("sys_id is missing.")
        mod_count = data.get("sys_mod_count")
        return [WebhookHint(sys_id, int(mod_count) if mod_count not in (None, "") else None)]

    def __init__(self, base_url: str = "https://fake.service-now.test"):
        self.base_url = base_url
        self.incidents: dict[str, dict] = {}
        self.blobs: dict[str, bytes] = {}
        self.calls: list[str] = []
        self._numbers = itertools.count(10001)
        self._failures: dict[str, list[Exception]] = {}
        self.correlation_supported = True
        self.projects_used: list[str] = []  # the project= of each create (issue 15)

    # --- test helpers ---------------------------------------------------------------
    def fail_next(self, method: str, *errors: Exception) -> None:
        self._failures.setdefault(method, []).extend(errors)

    def _call(self, method: str) -> None:
        self.calls.append(method)
        queue = self._failures.get(method)
        if queue:
            raise queue.pop(0)

    def seed(
        self, *, summary="Printer on fire", description="Third floor", comments=(), attachments=()
    ) -> dict:
        ref = self._create(
            summary=summary, description=description, entity_type="incident", correlation_id=""
        )
        inc = self.incidents[ref.id]
        for author, body in comments:
            self._add_comment(inc, body=body, author_display=author, raw=True)
        for name, content_type, data in attachments:
            self._add_attachment(inc, name, content_type, data)
        return inc

    def _touch(self, inc: dict) -> None:
        inc["mod_count"] += 1
        inc["updated"] = datetime.now(tz=UTC)

    def _create(self, *, summary, description, entity_type, correlation_id) -> EntityRef:
        sys_id = uuid.uuid4().hex
        number = f"INC{next(self._numbers):07d}"
        self.incidents[sys_id] = {
            "id": sys_id,
            "key": number,
            "summary": summary,
            "description": description,
            "type": "incident",
            "requested_type": entity_type,
            "correlation_id": correlation_id,
            "comments": [],
            "attachments": [],
            "mod_count": 0,
            "updated": datetime.now(tz=UTC),
        }
        return EntityRef(sys_id, number, self.entity_url(sys_id))

    def _add_comment(self, inc: dict, *, body: str, author_display: str, raw: bool = False) -> str:
        cid = uuid.uuid4().hex
        text = body if raw else f"[{author_display}] {body}"
        inc["comments"].append(
            {
                "id": cid,
                "author": author_display if raw else "Integration User",
                "created": datetime.now(tz=UTC),
                "body": text,
                "public": True,
            }
        )
        self._touch(inc)
        return cid

    def _add_attachment(self, inc: dict, name: str, content_type: str, data: bytes) -> str:
        aid = uuid.uuid4().hex
        self.blobs[aid] = data
        inc["attachments"].append(
            {
                "id": aid,
                "file_name": name,
                "content_type": content_type,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
        self._touch(inc)
        return aid

    def human_comment(self, sys_id: str, body: str, author: str = "Beth Anglin") -> str:
        return self._add_comment(self.incidents[sys_id], body=body, author_display=author, raw=True)

    def human_edit(self, sys_id: str, **fields) -> None:
        inc = self.incidents[sys_id]
        inc.update(fields)
        self._touch(inc)

    def delete(self, sys_id: str) -> None:
        """An admin deletes the incident (later writes to it answer 404, as ServiceNow's)."""
        self.incidents.pop(sys_id)

    def _live(self, entity_id: str) -> dict:
        inc = self.incidents.get(entity_id)
        if inc is None:
            raise TrackerNotFound(f"No Record found: incident {entity_id} (HTTP 404)")
        return inc

    def by_key(self, key: str) -> dict:
        return next(i for i in self.incidents.values() if i["key"] == key)

    # --- the interface --------------------------------------------------------------
    def test_connection(self) -> str:
        return "ok"

    def find_entity(self, key: str) -> EntityRef:
        self._call("find_entity")
        for inc in self.incidents.values():
            if inc["key"] == key:
                return EntityRef(inc["id"], inc["key"], self.entity_url(inc["id"]))
        raise TrackerNotFound(f"No incident {key}")

    def get_entity(self, entity_id: str) -> EntityRef:
        inc = self.incidents.get(entity_id)
        if not inc:
            raise TrackerNotFound("gone")
        return EntityRef(inc["id"], inc["key"], self.entity_url(inc["id"]))

    def read_replica(self, entity_id: str) -> dict:
        self._call("read_replica")
        inc = self.incidents.get(entity_id)
        if not inc:
            raise TrackerNotFound("gone")
        iso = lambda dt: dt.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
        return {
            "schema": 1,
            "tracker": "servicenow",
            "entity": {
                "id": inc["id"],
                "key": inc["key"],
                "url": self.entity_url(inc["id"]),
                "type": inc["type"],
            },
            "summary": inc["summary"],
            "description": inc["description"],
            "comments": [{**c, "created": iso(c["created"])} for c in inc["comments"]],
            "attachments": [dict(a) for a in inc["attachments"]],
            "updated": iso(inc["updated"]),
            "mod_count": inc["mod_count"],
        }

    def stream_attachment(self, attachment_id: str, chunk_size: int = 65536) -> Iterator[bytes]:
        self._call("stream_attachment")
        data = self.blobs[attachment_id]
        for i in range(0, len(data), chunk_size):
            yield data[i : i + chunk_size]

    def create_entity(
        self, *, summary, description, entity_type, correlation_id, correlation_display, project=""
    ) -> EntityRef:
        self._call("create_entity")
        self.projects_used.append(project)
        return self._create(
            summary=summary,
            description=description,
            entity_type=entity_type,
            correlation_id=correlation_id,
        )

    def find_entity_by_correlation(self, correlation_id: str, *, project="") -> EntityRef | None:
        if not self.correlation_supported:
            return None
        self._call("find_entity_by_correlation")
        for inc in self.incidents.values():
            if inc["correlation_id"] == correlation_id:
                return EntityRef(inc["id"], inc["key"], self.entity_url(inc["id"]))
        return None

    def update_entity(self, entity_id: str, *, summary=None, description=None) -> None:
        fields = {
            k: v for k, v in (("summary", summary), ("description", description)) if v is not None
        }
        if not fields:
            return
        self._call("update_entity")
        inc = self._live(entity_id)
        inc.update(fields)
        self._touch(inc)

    def add_comment(self, entity_id: str, *, body: str, author: str) -> CreatedItem:
        self._call("add_comment")
        return CreatedItem(
            self._add_comment(self._live(entity_id), body=body, author_display=author)
        )

    def add_attachment(
        self, entity_id: str, *, file_name: str, content_type: str, chunks: Iterable[bytes]
    ) -> CreatedItem:
        self._call("add_attachment")
        data = b"".join(chunks)
        return CreatedItem(
            self._add_attachment(self._live(entity_id), file_name, content_type, data)
        )

    def list_changed(self, *, since: datetime, overlap_seconds: float) -> list[ChangedEntity]:
        self._call("list_changed")
        from datetime import timedelta

        floor = since - timedelta(seconds=overlap_seconds)
        rows = [
            ChangedEntity(i["id"], i["mod_count"], i["updated"])
            for i in self.incidents.values()
            if i["updated"] >= floor
        ]
        return sorted(rows, key=lambda c: (c.updated, c.id))

    def entity_url(self, entity_id: str) -> str:
        return f"{self.base_url}/nav_to.do?uri=incident.do?sys_id={entity_id}"
