"""Writing public comments to incidents with the fewest calls, and the receipt of what was written.

A mixin of :class:`servicenow_adapter.adapter.ServiceNowAdapter` (it uses ``self.client``,
``self.username``, ``self.instance_url`` and ``self._missing``). Issue 14:

* ``add_comments``: one ``PATCH comments`` per comment (ServiceNow appends one
  ``sys_journal_field`` row per write), then ONE journal read for all of them, whatever
  their number: the rows are matched to the texts written, not to their order, since
  ``sys_created_on`` has one-second resolution and ``sys_id`` is random.
* The create may carry the first comment (``POST incident`` with ``comments``: the
  instance writes the journal entry in the same insert); its id is learned by the same read.
* ``write_receipt``: the incident's ``sys_mod_count`` and ``sys_updated_on`` after this
  adapter's writes, as the write answers told them, when each write moved the counter by
  exactly one (nobody else wrote in between), so the engine needs no confirming re-read.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from trackers.errors import TrackerBadRequest, TrackerNotFound, TrackerPermissionError
from trackers.interface import CreatedItem, WriteReceipt

from . import mapping
from . import query as q

#: Fields a write asks back: enough to follow ``sys_mod_count`` without another read.
WRITE_FIELDS = ("sys_id", "number", "sys_mod_count", "sys_updated_on")
_RETURNED_COMMENTS: dict[str, None] = {}
_RETURNED_LOCK = threading.Lock()


@dataclass
class _WriteLog:
    """This adapter's writes to one incident since the last ``write_receipt``."""

    created: bool = False
    base: int | None = None
    last: int | None = None
    contiguous: bool = True
    first_time: datetime | None = None
    updated: datetime | None = None
    upload_time: str = ""
    upload_ids: set[str] = field(default_factory=set)


def normalise(text: str) -> str:
    """A journal text compared the way the instance stores it (CRLF → LF, outer blanks off)."""
    return (text or "").replace("\r\n", "\n").strip()


class CommentWrites:
    """``add_comment``, ``add_comments``, ``write_receipt`` and the write log they share."""

    creates_with_comment = True

    def _log(self, entity_id: str) -> _WriteLog:
        logs = self.__dict__.setdefault("_write_logs", {})
        return logs.setdefault(entity_id, _WriteLog())

    def _log_write(self, entity_id: str, row: dict, *, created: bool = False) -> None:
        """Follow ``sys_mod_count`` through a write's answer: a create starts at 0, each
        update adds one (ServiceNow); any other step means someone else wrote too."""
        log = self._log(entity_id)
        text = mapping.value_of(row.get("sys_mod_count")).strip()
        moment = mapping.parse_datetime(mapping.value_of(row.get("sys_updated_on")))
        count = int(text) if text.isdigit() else None
        if count is None or moment is None:
            log.contiguous = False
        elif created:
            log.created, log.last = True, count
            log.contiguous = log.contiguous and count == 0
        elif log.last is None:
            log.base, log.last = count - 1, count
        else:
            log.contiguous = log.contiguous and count == log.last + 1
            log.last = count
        if moment is not None:
            log.first_time = log.first_time or moment
            log.updated = max(log.updated or moment, moment)

    def _log_upload(self, entity_id: str, result: dict) -> None:
        """Remember an uploaded attachment's time and sys_id (for the listing's marker)."""
        log = self._log(entity_id)
        stamp = mapping.value_of(result.get("sys_updated_on") or result.get("sys_created_on"))
        sys_id = mapping.value_of(result.get("sys_id"))
        if not stamp or not sys_id:
            log.contiguous = False
            return
        if stamp > log.upload_time:
            log.upload_time, log.upload_ids = stamp, set()
        if stamp == log.upload_time:
            log.upload_ids.add(sys_id)

    def _log_read(self, entity_id: str, attachment_rows: list[dict]) -> None:
        """Remember the newest attachments a read saw, as ``list_changed`` marks them."""
        newest, ids = "", set()
        for row in attachment_rows:
            stamp = mapping.value_of(row.get("sys_updated_on"))
            if stamp > newest:
                newest, ids = stamp, set()
            if stamp and stamp == newest:
                ids.add(mapping.value_of(row.get("sys_id")))
        seen = self.__dict__.setdefault("_seen", {})
        seen[entity_id] = (mapping.attachments_marker(newest, ids), newest) if ids else None

    def attachments_seen(self, entity_id: str) -> tuple[str, datetime | None]:
        """(marker, newest attachment time) of the last ``read_replica`` of the incident, then
        forgotten: the ``attachments_marker`` and time ``list_changed`` shows for those
        attachments; ``("", None)`` when it had none or was not read."""
        hit = self.__dict__.get("_seen", {}).pop(entity_id, None)
        return (hit[0], mapping.parse_datetime(hit[1])) if hit else ("", None)

    def write_receipt(self, entity_id: str) -> WriteReceipt | None:
        """The incident's state after this adapter's writes since the last call (then forgotten).

        None when there were none, or when ``sys_mod_count`` did not move by exactly one per
        write (another user, a business rule or an unchanged field): the engine re-reads.
        The ``attachments_marker`` names the uploads of the newest second, the way
        ``list_changed`` computes it.
        """
        log = self.__dict__.get("_write_logs", {}).pop(entity_id, None)
        if log is None or not log.contiguous:
            return None
        if log.last is None and not log.upload_ids:
            return None
        upload_moment = mapping.parse_datetime(log.upload_time) if log.upload_time else None
        moments = [m for m in (log.updated, upload_moment) if m is not None]
        return WriteReceipt(
            mod_count=log.last,
            base_mod_count=None if log.created else log.base,
            updated=max(moments) if moments else None,
            attachments_marker=(
                mapping.attachments_marker(log.upload_time, log.upload_ids)
                if log.upload_ids
                else ""
            ),
        )

    def add_comment(self, entity_id: str, *, body: str, author: str) -> CreatedItem:
        """Add a public comment, its first line ``[<author> wrote]``; returns the journal entry's sys_id.

        Two calls: ``PATCH`` with ``comments``, then the journal read of :meth:`add_comments`.
        """
        return self.add_comments(entity_id, [(body, author)])[0]

    def add_comments(
        self, entity_id: str, comments: list[tuple[str, str]], *, written: int = 0
    ) -> list[CreatedItem]:
        """Add public comments in order, each ``[<author> wrote]`` then its body; return their
        journal sys_ids in the same order.

        One ``PATCH /api/now/table/incident/{sys_id}`` with ``comments`` per comment after
        the first ``written`` (already written by ``create_entity(first_comment=…)``), then
        one ``sys_journal_field`` read (``element_id=<sys_id>^element=comments``, since two
        minutes before the first write, newest first) for all of them. Each text is matched
        to an entry with the same text, newest first, skipping entries this process already
        returned: same-second entries are told apart by their bodies, identical bodies are
        interchangeable. Exactly once is the engine's (an intent per comment before this
        call; a retry adopts copies found by body and author), so a crash between the writes
        and the read never writes a comment twice.

        Raises TrackerBadRequest for an empty comment (before anything is written),
        TrackerNotFound, and TrackerPermissionError when the entries cannot be read back
        (no read access to sys_journal_field: the instance answers 200 with no rows).
        """
        texts = [mapping.comment_body_with_author(b or "", a) for b, a in comments]
        if any(not t.strip() for t in texts[written:]):
            raise TrackerBadRequest(
                "An empty comment cannot be added: ServiceNow ignores empty journal entries."
            )
        if not texts:
            return []
        number = ""
        for text in texts[written:]:
            try:
                row = self.client.table_update(
                    "incident", entity_id, {"comments": text}, fields=WRITE_FIELDS
                )
            except TrackerNotFound:
                raise self._missing(entity_id) from None
            self._log_write(entity_id, row)
            number = mapping.value_of(row.get("number")) or number
        return [CreatedItem(id=i) for i in self._journal_ids(entity_id, texts, number)]

    def _journal_ids(self, entity_id: str, texts: list[str], number: str) -> list[str]:
        """The journal sys_ids of ``texts`` just written, from one read (see :meth:`add_comments`)."""
        log = self._log(entity_id)
        since = log.first_time or datetime.now().astimezone()
        page = self.client.table_page(
            "sys_journal_field",
            query=q.join(
                q.term("element_id", "=", entity_id),
                q.term("element", "=", "comments"),
                q.term("sys_created_on", ">=", q.sn_datetime(since - timedelta(seconds=120))),
                "ORDERBYDESCsys_created_on^ORDERBYDESCsys_id",
            ),
            fields=("sys_id", "value", "sys_created_on"),
            limit=len(texts) + 50,
        )
        rows = [(mapping.value_of(e.get("sys_id")), normalise(mapping.value_of(e.get("value"))))
                for e in page.rows]  # fmt: skip
        used: set[str] = set()
        ids: list[str] = []
        with _RETURNED_LOCK:
            for text in reversed(texts):
                wanted = normalise(text)
                matches = [i for i, v in rows if v == wanted and i not in used]
                fresh = [i for i in matches if i not in _RETURNED_COMMENTS] or matches
                if not fresh:
                    raise TrackerPermissionError(
                        f"The comment was added to {number or entity_id}, but its journal entry "
                        f"could not be read back: give {self.username!r} read access to sys_journal_field.",
                        connection_level=True,
                    )
                used.add(fresh[0])
                ids.append(fresh[0])
            # An entry since our first write that is neither one of these nor one this
            # process wrote before is someone else's (e.g. an insert business rule): re-read.
            first = log.first_time.replace(microsecond=0) if log.first_time else None
            for e in page.rows:
                sys_id = mapping.value_of(e.get("sys_id"))
                moment = mapping.parse_datetime(mapping.value_of(e.get("sys_created_on")))
                if first and moment and moment >= first and sys_id not in used:
                    log.contiguous = log.contiguous and sys_id in _RETURNED_COMMENTS
            for found in ids:
                _RETURNED_COMMENTS[found] = None
            while len(_RETURNED_COMMENTS) > 10_000:
                _RETURNED_COMMENTS.pop(next(iter(_RETURNED_COMMENTS)))
        return list(reversed(ids))
