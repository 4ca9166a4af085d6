"""The only error types a tracker adapter raises (adapters wrap their own).

``TransientTrackerError`` (and its subclasses) may be retried later with backoff; every
other ``TrackerError`` is permanent and must be shown to the admin, not retried.
"""

from __future__ import annotations


class TrackerError(Exception):
    """Base of all tracker errors. ``message`` is safe to show to an admin (no secrets).

    ``status`` is the HTTP status when the tracker answered one; ``detail`` is the
    tracker's own detail text when it gave one.
    """

    def __init__(self, message: str, *, status: int | None = None, detail: str = ""):
        super().__init__(message)
        self.message = message
        self.status = status
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.message} ({self.detail})" if self.detail else self.message


class TransientTrackerError(TrackerError):
    """Timeouts, connection errors, 429, 5xx, a non-JSON page (hibernating instance),
    a transaction cancelled for running too long. Retry later with backoff.

    ``retry_after`` is the number of seconds the tracker asked us to wait, if any.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class TrackerUnreachable(TransientTrackerError):
    """The instance URL did not answer (DNS, refused connection, timeout)."""


class TrackerUnavailable(TransientTrackerError):
    """The instance answered, but as a whole cannot serve requests now (ServiceNow: a
    hibernating developer instance). Connection-level: nothing of any entity can be read
    or written until it clears by itself; show it once for the connection, not per twin."""


class TrackerAuthenticationError(TrackerError):
    """401 after any token refresh: wrong user, password or OAuth client. Connection-level."""


class TrackerPermissionError(TrackerError):
    """403: the integration user lacks a role or ACL (e.g. read on sys_journal_field).

    ``connection_level`` is True when the missing right concerns every entity (no read
    access to ServiceNow's journal), so it is shown once for the connection, not per twin.
    """

    def __init__(self, message: str, *, connection_level: bool = False, **kw):
        super().__init__(message, **kw)
        self.connection_level = connection_level


class TrackerNotFound(TrackerError):
    """404, or no record with the given id or key."""


class TrackerBadRequest(TrackerError):
    """400: the tracker refused the request as invalid (e.g. a data policy)."""


class AttachmentRefused(TrackerBadRequest):
    """The tracker refused one attachment (``add_attachment``), not the entity: the rest of the
    entity can go on. ``too_large`` is True when the refusal is its size limit (ServiceNow
    ``com.glide.attachment.max_size``); ``reason`` is a few words for the twin page."""

    def __init__(self, message: str, *, reason: str = "", too_large: bool = False, **kw):
        super().__init__(message, **kw)
        self.reason = reason or message
        self.too_large = too_large


class AmbiguousEntityKey(TrackerError):
    """The key (ServiceNow ``number``) matches more than one record; ``candidates`` lists their ids."""

    def __init__(self, message: str, *, candidates: list[str], **kw):
        super().__init__(message, **kw)
        self.candidates = candidates


class NotATrackerInstance(TrackerError):
    """The URL answered, but not as this tracker's API (e.g. an ordinary web site)."""
