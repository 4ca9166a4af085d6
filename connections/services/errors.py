"""The one error every connection service raises: :class:`ConnectionSetupError`."""

from __future__ import annotations


class ConnectionSetupError(Exception):
    """A connection cannot be set up or changed as asked.

    ``message`` is shown to the admin as is; ``status`` is the HTTP status the API
    answers with (400 bad input, 403 not for this node, 404 unknown, 409 state conflict
    such as a reused code, 410 expired or revoked, 502 the other node failed);
    ``field`` names the form field the message belongs to, if any.
    """

    def __init__(self, message: str, *, status: int = 400, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field
