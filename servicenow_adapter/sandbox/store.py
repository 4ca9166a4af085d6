"""The sandbox's data: every table's rows in one SQLite file, served from memory.

Rows are dicts of raw string values (plus private keys starting with ``_`` that the API
never shows, such as a user's password hash and table rights). All rows are loaded at
start and written through to SQLite on every change, under one lock, so the instance
survives a restart and several request threads see one consistent state. Attachment
bytes live only in SQLite and are streamed in and out in chunks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (tbl TEXT NOT NULL, sys_id TEXT NOT NULL, data TEXT NOT NULL,
                                 PRIMARY KEY (tbl, sys_id));
CREATE TABLE IF NOT EXISTS attachment_data (sys_id TEXT PRIMARY KEY, content BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS oauth_tokens (token TEXT PRIMARY KEY, kind TEXT NOT NULL,
                                         user_name TEXT NOT NULL, client_id TEXT NOT NULL,
                                         expires_at REAL NOT NULL);
"""
CHUNK = 64 * 1024


_sequence = 0
_sequence_lock = threading.Lock()


def new_sys_id() -> str:
    """A new ``sys_id``: 32 random lowercase hex characters, as an instance makes them.

    They carry no order: rows written in the same second sort among themselves in no
    particular order by ``sys_id``, as on a real instance. What the instance itself
    knows of the order is kept privately (:func:`next_sequence`) and shows only where
    an instance shows it: the journal fields' display value.
    """
    return secrets.token_hex(16)


def next_sequence() -> int:
    """A process-wide increasing number: the order rows were written in (private ``_seq``)."""
    global _sequence
    with _sequence_lock:
        _sequence = max(_sequence + 1, time.time_ns() // 1000)
        return _sequence


def hash_password(password: str, salt: str | None = None) -> str:
    """``salt$hex`` PBKDF2-SHA256 of ``password`` (the sandbox never stores a password)."""
    salt = salt or secrets.token_hex(8)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 20_000).hex()
    return f"{salt}${digest}"


def check_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a ``hash_password`` value."""
    salt, _, _ = stored.partition("$")
    return bool(stored) and secrets.compare_digest(hash_password(password, salt), stored)


class Store:
    """Rows of every table, in memory and in the SQLite file at ``path``.

    ``clock_offset`` (seconds) shifts the instance's clock; ``frozen_at`` (a UTC
    datetime, or None) stops it on one second, so every write lands in the same second.
    Both for tests (``/sandbox/clock``, ``--freeze-clock``).
    """

    def __init__(self, path: Path | str):
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._local = threading.local()
        self.clock_offset = 0.0
        self.frozen_at: datetime | None = None
        self._tables: dict[str, dict[str, dict]] = {}
        self._password_cache: dict[tuple[str, str], bool] = {}
        with self.lock:
            conn = self.conn()
            conn.executescript(_SCHEMA)
            for tbl, sys_id, data in conn.execute("SELECT tbl, sys_id, data FROM rows"):
                self._tables.setdefault(tbl, {})[sys_id] = json.loads(data)

    # -- connections and time -------------------------------------------------------------
    def conn(self) -> sqlite3.Connection:
        """This thread's SQLite connection (WAL, autocommit off)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def now(self) -> datetime:
        """The instance's current time (UTC, whole seconds); the frozen second when frozen."""
        if self.frozen_at is not None:
            return self.frozen_at
        moment = datetime.now(UTC) + timedelta(seconds=self.clock_offset)
        return moment.replace(microsecond=0)

    def now_text(self) -> str:
        """The instance's current time as ``YYYY-MM-DD HH:MM:SS`` (UTC)."""
        return self.now().strftime("%Y-%m-%d %H:%M:%S")

    # -- rows ---------------------------------------------------------------------------
    def rows(self, table: str) -> list[dict]:
        """A snapshot list of ``table``'s rows (the dicts must not be changed by callers)."""
        with self.lock:
            return list(self._tables.get(table, {}).values())

    def get(self, table: str, sys_id: str) -> dict | None:
        """One row (a copy), or None."""
        with self.lock:
            row = self._tables.get(table, {}).get(sys_id)
            return dict(row) if row is not None else None

    def put(self, table: str, row: dict) -> dict:
        """Insert or replace ``row`` (keyed by its ``sys_id``); returns it."""
        with self.lock:
            self._tables.setdefault(table, {})[row["sys_id"]] = dict(row)
            conn = self.conn()
            conn.execute(
                "INSERT OR REPLACE INTO rows (tbl, sys_id, data) VALUES (?, ?, ?)",
                (table, row["sys_id"], json.dumps(row, ensure_ascii=False)),
            )
            conn.commit()
            if table == "sys_user":
                self._password_cache.clear()
        return row

    def delete(self, table: str, sys_id: str) -> bool:
        """Delete one row (and an attachment's bytes); True when it existed."""
        with self.lock:
            existed = self._tables.get(table, {}).pop(sys_id, None) is not None
            conn = self.conn()
            conn.execute("DELETE FROM rows WHERE tbl = ? AND sys_id = ?", (table, sys_id))
            if table == "sys_attachment":
                conn.execute("DELETE FROM attachment_data WHERE sys_id = ?", (sys_id,))
            conn.commit()
        return existed

    def find(self, table: str, **equals: str) -> list[dict]:
        """Rows whose fields equal the given values."""
        return [r for r in self.rows(table) if all(r.get(k) == v for k, v in equals.items())]

    # -- counters and flags -----------------------------------------------------------------
    def meta_get(self, key: str, default: str = "") -> str:
        with self.lock:
            row = self.conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def meta_set(self, key: str, value: str) -> None:
        with self.lock:
            conn = self.conn()
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
            conn.commit()

    def next_number(self, prefix: str = "INC", first: int = 10001) -> str:
        """The next record number (``INC0010001`` first), from Number Maintenance's counter."""
        with self.lock:
            value = int(self.meta_get(f"number:{prefix}", str(first)))
            self.meta_set(f"number:{prefix}", str(value + 1))
        return f"{prefix}{value:07d}"

    # -- users ---------------------------------------------------------------------------
    def user(self, user_name: str) -> dict | None:
        """The sys_user row with this ``user_name``, or None."""
        for row in self.rows("sys_user"):
            if row.get("user_name") == user_name:
                return row
        return None

    def authenticate(self, user_name: str, password: str) -> dict | None:
        """The active user when the password matches, else None (results cached per pair)."""
        row = self.user(user_name)
        if row is None or row.get("active") == "false":
            return None
        key = (user_name, hashlib.sha256(password.encode()).hexdigest())
        with self.lock:
            cached = self._password_cache.get(key)
        if cached is None:
            cached = check_password(password, row.get("_password", ""))
            with self.lock:
                self._password_cache[key] = cached
        return row if cached else None

    # -- attachment bytes ---------------------------------------------------------------
    def put_blob(self, sys_id: str, chunks: Iterable[bytes]) -> tuple[int, str]:
        """Store an attachment's bytes from ``chunks``; returns (size, sha256 hex).

        The bytes go to a temporary file first, then into SQLite in chunks, so a large
        upload is never held in memory.
        """
        import tempfile

        digest, size = hashlib.sha256(), 0
        with tempfile.TemporaryFile() as tmp:
            for chunk in chunks:
                if chunk:
                    digest.update(chunk)
                    size += len(chunk)
                    tmp.write(chunk)
            tmp.seek(0)
            with self.lock:
                conn = self.conn()
                conn.execute(
                    "INSERT OR REPLACE INTO attachment_data (sys_id, content) VALUES (?, zeroblob(?))",
                    (sys_id, size),
                )
                (rowid,) = conn.execute(
                    "SELECT rowid FROM attachment_data WHERE sys_id = ?", (sys_id,)
                ).fetchone()
                if size:
                    with conn.blobopen("attachment_data", "content", rowid) as blob:
                        while chunk := tmp.read(CHUNK):
                            blob.write(chunk)
                conn.commit()
        return size, digest.hexdigest()

    def read_blob(self, sys_id: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """Yield an attachment's bytes in chunks (empty when it has none)."""
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            found = conn.execute(
                "SELECT rowid, length(content) FROM attachment_data WHERE sys_id = ?", (sys_id,)
            ).fetchone()
            if not found or not found[1]:
                return
            with conn.blobopen("attachment_data", "content", found[0], readonly=True) as blob:
                while chunk := blob.read(chunk_size):
                    yield chunk
        finally:
            conn.close()

    # -- OAuth tokens ---------------------------------------------------------------------
    def token_issue(self, kind: str, user_name: str, client_id: str, lifetime: float) -> str:
        """Store and return a new access or refresh token valid ``lifetime`` seconds."""
        token = secrets.token_urlsafe(48)
        with self.lock:
            conn = self.conn()
            conn.execute(
                "INSERT INTO oauth_tokens (token, kind, user_name, client_id, expires_at) VALUES (?, ?, ?, ?, ?)",
                (token, kind, user_name, client_id, time.time() + lifetime),
            )
            conn.commit()
        return token

    def token_lookup(self, token: str, kind: str) -> tuple[str, str, float] | None:
        """(user_name, client_id, seconds left) of a valid token of ``kind``, else None."""
        with self.lock:
            row = (
                self.conn()
                .execute(
                    "SELECT user_name, client_id, expires_at FROM oauth_tokens WHERE token = ? AND kind = ?",
                    (token, kind),
                )
                .fetchone()
            )
        if not row or row[2] <= time.time():
            return None
        return row[0], row[1], row[2] - time.time()

    def token_current(self, user_name: str, client_id: str) -> tuple[str, float] | None:
        """The newest still-valid access token of this user and client, with seconds left."""
        with self.lock:
            row = (
                self.conn()
                .execute(
                    "SELECT token, expires_at FROM oauth_tokens WHERE kind = 'access' AND user_name = ? "
                    "AND client_id = ? AND expires_at > ? ORDER BY expires_at DESC LIMIT 1",
                    (user_name, client_id, time.time()),
                )
                .fetchone()
            )
        return (row[0], row[1] - time.time()) if row else None

    def tokens_expire(self, kind: str = "access") -> int:
        """Expire every token of ``kind`` (``access``, ``refresh`` or ``all``) now; returns how many."""
        with self.lock:
            conn = self.conn()
            sql = "UPDATE oauth_tokens SET expires_at = 0 WHERE expires_at > 0"
            args: tuple = ()
            if kind != "all":
                sql += " AND kind = ?"
                args = (kind,)
            count = conn.execute(sql, args).rowcount
            conn.commit()
        return count

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            self._local.conn = None
