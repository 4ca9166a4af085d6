"""The Jira sandbox's data: users, projects, issues, comments, attachments, webhooks in SQLite.

Rows are JSON dicts per kind, loaded at start and written through on every change under
one lock (the same pattern as the ServiceNow sandbox), so a site survives a restart and
request threads see one state. Keys starting with ``_`` are never shown by the API.
Attachment bytes live only in SQLite and are streamed in and out in chunks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from .wire import CHUNK

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (kind TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL,
                                 PRIMARY KEY (kind, id));
CREATE TABLE IF NOT EXISTS blobs (id TEXT PRIMARY KEY, content BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
FIRST_IDS = {"issue": 10000, "comment": 20000, "attachment": 40000, "webhook": 1, "history": 88000}


class Store:
    """Rows of every kind, in memory and in the SQLite file at ``path``.

    ``clock_offset`` (seconds) shifts the site's clock, for tests.
    """

    def __init__(self, path: Path | str):
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._local = threading.local()
        self.clock_offset = 0.0
        self._rows: dict[str, dict[str, dict]] = {}
        with self.lock:
            conn = self.conn()
            conn.executescript(_SCHEMA)
            for kind, row_id, data in conn.execute("SELECT kind, id, data FROM rows"):
                self._rows.setdefault(kind, {})[row_id] = json.loads(data)

    def conn(self) -> sqlite3.Connection:
        """This thread's SQLite connection (WAL)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def now_ms(self) -> int:
        """The site's clock in epoch milliseconds (shifted by ``clock_offset``)."""
        return int((time.time() + self.clock_offset) * 1000)

    # -- rows ---------------------------------------------------------------------------
    def rows(self, kind: str) -> list[dict]:
        """A snapshot list of ``kind``'s rows (callers must not change the dicts)."""
        with self.lock:
            return list(self._rows.get(kind, {}).values())

    def get(self, kind: str, row_id: str) -> dict | None:
        """One row (a deep copy), or None."""
        with self.lock:
            row = self._rows.get(kind, {}).get(str(row_id))
            return json.loads(json.dumps(row)) if row is not None else None

    def put(self, kind: str, row: dict) -> dict:
        """Insert or replace ``row`` (keyed by its ``id``); returns it."""
        data = json.dumps(row, ensure_ascii=False)
        with self.lock:
            self._rows.setdefault(kind, {})[row["id"]] = json.loads(data)
            conn = self.conn()
            conn.execute(
                "INSERT OR REPLACE INTO rows (kind, id, data) VALUES (?, ?, ?)",
                (kind, row["id"], data),
            )
            conn.commit()
        return row

    def delete(self, kind: str, row_id: str) -> bool:
        """Delete one row (and an attachment's bytes); True when it existed."""
        with self.lock:
            existed = self._rows.get(kind, {}).pop(row_id, None) is not None
            conn = self.conn()
            conn.execute("DELETE FROM rows WHERE kind = ? AND id = ?", (kind, row_id))
            if kind == "attachment":
                conn.execute("DELETE FROM blobs WHERE id = ?", (row_id,))
            conn.commit()
        return existed

    def find(self, kind: str, **equals) -> list[dict]:
        """Rows whose fields equal the given values."""
        return [r for r in self.rows(kind) if all(r.get(k) == v for k, v in equals.items())]

    # -- counters -------------------------------------------------------------------------
    def meta_get(self, key: str, default: str = "") -> str:
        """A stored setting or counter."""
        with self.lock:
            row = self.conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def meta_set(self, key: str, value: str) -> None:
        """Store a setting or counter."""
        with self.lock:
            conn = self.conn()
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
            conn.commit()

    def new_id(self, kind: str) -> str:
        """The next id of ``kind``: a numeric string, increasing with random gaps (never 1, 2, 3)."""
        with self.lock:
            value = int(self.meta_get(f"id:{kind}", str(FIRST_IDS.get(kind, 10000))))
            value += 1 if kind == "webhook" else random.randint(1, 9)
            self.meta_set(f"id:{kind}", str(value))
        return str(value)

    def next_key_number(self, project_key: str) -> int:
        """The next issue number in a project (``TEST-1`` first); numbers are never reused."""
        with self.lock:
            value = int(self.meta_get(f"key:{project_key}", "1"))
            self.meta_set(f"key:{project_key}", str(value + 1))
        return value

    # -- attachment bytes -------------------------------------------------------------------
    def put_blob(
        self, blob_id: str, chunks: Iterable[bytes], limit: int | None = None
    ) -> int | None:
        """Store bytes from ``chunks`` (via a temporary file); returns the size.

        Returns None, storing nothing, as soon as the size passes ``limit``.
        """
        size = 0
        with tempfile.TemporaryFile() as tmp:
            for chunk in chunks:
                size += len(chunk)
                if limit is not None and size > limit:
                    return None
                tmp.write(chunk)
            tmp.seek(0)
            with self.lock:
                conn = self.conn()
                conn.execute(
                    "INSERT OR REPLACE INTO blobs (id, content) VALUES (?, zeroblob(?))",
                    (blob_id, size),
                )
                (rowid,) = conn.execute(
                    "SELECT rowid FROM blobs WHERE id = ?", (blob_id,)
                ).fetchone()
                if size:
                    with conn.blobopen("blobs", "content", rowid) as blob:
                        while chunk := tmp.read(CHUNK):
                            blob.write(chunk)
                conn.commit()
        return size

    def read_blob(self, blob_id: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Yield bytes ``start``..``end`` (inclusive; None = to the end) of a blob, in chunks."""
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            found = conn.execute(
                "SELECT rowid, length(content) FROM blobs WHERE id = ?", (blob_id,)
            ).fetchone()
            if not found or not found[1]:
                return
            stop = found[1] if end is None else min(end + 1, found[1])
            with conn.blobopen("blobs", "content", found[0], readonly=True) as blob:
                blob.seek(start)
                left = stop - start
                while left > 0 and (chunk := blob.read(min(CHUNK, left))):
                    left -= len(chunk)
                    yield chunk
        finally:
            conn.close()

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            self._local.conn = None


def token_hash(token: str) -> str:
    """SHA-256 hex of an API token or PAT (the store never keeps a token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()
