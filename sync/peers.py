"""The other node of a connection, behind one interface: send messages, poll, move attachment bytes.

The engine never asks what type a connection is; it asks :func:`peer_for` for the peer
and uses what the peer can do. One class per way of reaching the other node:

=====================  ====================================================================
:class:`LocalPeer`     both ends on this node (two rows): messages go straight into the
                       peer row's inbox, attachment bytes come from this node's own instance.
:class:`HttpPeer`      the remote node has a URL: messages are ``POST``-ed to it, bytes are
                       fetched from its signed attachment endpoint (``GET``, streamed).
:class:`PollingPeer`   this node has no URL (``polls_remote``): every exchange is a poll that
                       this node starts; it pushes the bytes of its new attachments (``PUT``).
:class:`PolledPeer`    the remote node has no URL: nothing is sent, its poll collects our
                       messages (``poll_answer``), and its bytes arrive when it pushes them.
=====================  ====================================================================

Peers speak only transport: they raise :class:`PeerRetry` (try again later; when
``connection_error`` is set, the remote refused this node's signature or the connection
cannot be used, and the engine records a connection-level error first) or
:class:`PeerRefused` (the remote will never give this). They write nothing to the database.
Tests replace a peer by patching :func:`peer_for`, or a subclass's :meth:`HttpPeer.call`
and :meth:`PollingPeer.upload` (the only places that touch HTTP).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from django.conf import settings

from connections.models import Connection
from trackers.errors import TrackerError
from trackers.interface import TrackerAdapter

from .protocol import MESSAGES_PATH, POLL_PATH, PROTOCOL, attachment_path

logger = logging.getLogger(__name__)

#: Bytes per chunk when attachment bytes are streamed (never held whole in memory).
CHUNK = 65536
#: Start of the retry message while a remote node without URL has not pushed attachment bytes yet.
WAITING_FOR_PUSH = "Waiting for the remote node (it has no URL) to push"


class PeerError(Exception):
    """The other node could not be reached or refused; ``str(exc)`` says why in an admin's words."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, connection_error: str = ""
    ):
        super().__init__(message)
        self.retry_after = retry_after
        self.connection_error = connection_error


class PeerRetry(PeerError):
    """Try again later (after ``retry_after`` seconds when the remote asked for it)."""


class PeerRefused(PeerError):
    """The remote node will never give this (e.g. an attachment it did not send): do not retry."""


class Peer:
    """The remote end of ``connection``. Subclasses say what this node can do with it."""

    #: This node has no URL: every exchange is a poll it starts (:meth:`poll`).
    polls: bool = False
    #: False when the remote has no URL: it collects our messages when it polls.
    sends: bool = True
    #: Messages travel as one HTTP body, so a batch must fit ``DATA_UPLOAD_MAX_MEMORY_SIZE``.
    limits_message_size: bool = True

    def __init__(self, connection: Connection):
        self.connection = connection

    def send_messages(self, messages: list[dict]) -> tuple[list[str], list[dict]]:
        """Hand ``messages`` (wire form) to the remote; return (accepted event ids, rejected).

        Raises PeerRetry when they did not arrive.
        """
        raise PeerRetry(f"Connection {self.connection.name} cannot send messages itself.")

    def poll(self, body: dict) -> dict:
        """One poll exchange (``body`` as in ``protocol.PollRequestSerializer``); the answer."""
        raise PeerRetry(f"Connection {self.connection.name} does not poll its remote node.")

    def fetch_attachment(
        self, *, remote_entity_id: str, attachment: dict, adapter: TrackerAdapter
    ) -> Iterator[bytes]:
        """The bytes of a remote attachment (replica item ``attachment``), in chunks.

        Raises PeerRetry / PeerRefused (possibly mid-stream), or the adapter's errors for a
        local peer.
        """
        raise NotImplementedError

    def push_attachment(self, *, entity_id: str, attachment: dict, adapter: TrackerAdapter) -> bool:
        """Send the bytes of our attachment to the remote (only a node without URL must).

        Best effort; returns True when the remote stored them. Default: False (the remote
        fetches bytes itself).
        """
        return False


class LocalPeer(Peer):
    """Both ends are rows of this node: no HTTP, no size limit, the same instance's bytes."""

    limits_message_size = False

    def send_messages(self, messages: list[dict]) -> tuple[list[str], list[dict]]:
        """Store ``messages`` in the peer row's inbox (the receive stage of this very node)."""
        from .services.receive import messages_receive  # the engine's own receive stage

        if self.connection.local_peer is None:
            raise PeerRetry("The local connection has no peer row.")
        return messages_receive(connection=self.connection.local_peer, messages=messages)

    def fetch_attachment(
        self, *, remote_entity_id: str, attachment: dict, adapter: TrackerAdapter
    ) -> Iterator[bytes]:
        """The bytes straight from this node's instance (both entities live there)."""
        return adapter.stream_attachment(attachment["id"], chunk_size=CHUNK)


class HttpPeer(Peer):
    """The remote node has a URL: signed requests to it (``connections.transport``)."""

    def call(self, path: str, body: dict) -> dict:
        """``POST`` ``body`` as JSON to the remote's ``path``; return its JSON answer.

        Maps transport errors: unreachable, 5xx, 429 → PeerRetry (with Retry-After); 401 or
        403 → PeerRetry with a connection error (the remote refused our signature); another
        refusal → PeerRetry; no URL or secret → PeerRetry with a connection error.
        """
        from connections.transport import (
            NodeRequestRejected,
            NodeTransportError,
            NodeUnreachable,
            node_request,
        )

        try:
            response = node_request(self.connection, "POST", path, json=body)
            try:
                return response.json()
            except ValueError:
                raise PeerRetry(
                    f"The remote node answered {path} with something that is not JSON."
                ) from None
        except NodeUnreachable as exc:
            raise PeerRetry(exc.message, retry_after=exc.retry_after) from None
        except NodeRequestRejected as exc:
            refused = ""
            if exc.status in (401, 403):
                refused = f"The remote node refused this node's signed request ({exc.status}): {exc.message}"
            raise PeerRetry(
                f"The remote node refused the request ({exc.status}): {exc.message}",
                connection_error=refused,
            ) from None
        except NodeTransportError as exc:
            raise PeerRetry(exc.message, connection_error=exc.message) from None

    def send_messages(self, messages: list[dict]) -> tuple[list[str], list[dict]]:
        """``POST /api/node/v1/sync/messages`` with one batch."""
        answer = self.call(MESSAGES_PATH, {"protocol": PROTOCOL, "messages": messages})
        return list(answer.get("accepted") or []), list(answer.get("rejected") or [])

    def fetch_attachment(
        self, *, remote_entity_id: str, attachment: dict, adapter: TrackerAdapter
    ) -> Iterator[bytes]:
        """Stream ``GET /api/node/v1/sync/attachments/<remote entity>/<attachment>``."""
        from connections.transport import (
            NodeRequestRejected,
            NodeTransportError,
            NodeUnreachable,
            node_request,
        )

        name = attachment["file_name"]
        path = attachment_path(remote_entity_id, attachment["id"])
        try:
            response = node_request(self.connection, "GET", path, stream=True)
        except NodeUnreachable as exc:
            raise PeerRetry(
                f"Fetching attachment {name}: {exc.message}", retry_after=exc.retry_after
            ) from None
        except NodeRequestRejected as exc:
            if exc.status in (401, 403):
                raise PeerRetry(
                    exc.message,
                    connection_error=f"The remote node refused this node's signed request: {exc.message}",
                ) from None
            raise PeerRefused(
                f"The remote node cannot give attachment {name}: {exc.message}"
            ) from None
        except NodeTransportError as exc:
            raise PeerRetry(exc.message) from None
        try:
            yield from response.iter_content(CHUNK)
        except Exception as exc:  # connection dropped mid-stream
            raise PeerRetry(
                f"Fetching attachment {name} was interrupted ({exc.__class__.__name__})."
            ) from None
        finally:
            response.close()


class PollingPeer(HttpPeer):
    """This node has no URL and the remote has one: this node polls and pushes its bytes."""

    polls = True

    def poll(self, body: dict) -> dict:
        """``POST /api/node/v1/sync/poll``: our messages and confirmations out, the remote's in."""
        return self.call(POLL_PATH, body)

    def upload(self, path: str, chunks: Iterable[bytes], size: int) -> None:
        """Stream ``chunks`` (``size`` bytes in all) in a signed ``PUT`` to the remote's ``path``.

        The token is signed over an empty body (the bytes are checked by sha256). Raises
        PeerRetry when the remote did not store them.
        """
        from connections.node_auth import sign_node_request
        from connections.transport import NodeTransportError, send

        try:
            response = send(
                self.connection.remote_url,
                "PUT",
                path,
                token=sign_node_request(self.connection, b""),
                body=_SizedStream(chunks, size),  # type: ignore[arg-type]
                content_type="application/octet-stream",
                timeout=max(settings.NODE_REQUEST_TIMEOUT, 60),
            )
            response.close()
        except NodeTransportError as exc:
            raise PeerRetry(exc.message) from None

    def push_attachment(self, *, entity_id: str, attachment: dict, adapter: TrackerAdapter) -> bool:
        """Stream one of our attachments from our instance into the remote's ``PUT`` endpoint."""
        att = attachment
        path = f"{attachment_path(entity_id, att['id'])}?sha256={att['sha256']}&size={att['size']}"
        try:
            self.upload(path, adapter.stream_attachment(att["id"], chunk_size=CHUNK), att["size"])
        except (PeerError, TrackerError) as exc:
            logger.info("Pushing attachment %s to the remote failed: %s", att["id"], exc)
            return False
        except Exception as exc:  # noqa: BLE001 - best effort: the remote asks again
            logger.warning("Pushing attachment %s to the remote failed: %r", att["id"], exc)
            return False
        return True


class PolledPeer(Peer):
    """The remote node has no URL: it polls us, and pushes the bytes of its attachments."""

    sends = False

    def fetch_attachment(
        self, *, remote_entity_id: str, attachment: dict, adapter: TrackerAdapter
    ) -> Iterator[bytes]:
        """Nothing to fetch from: wait until the remote pushes (the poll answer asks for it)."""
        raise PeerRetry(f"{WAITING_FOR_PUSH} the bytes of attachment {attachment['file_name']}.")


def peer_for(connection: Connection) -> Peer:
    """The peer of ``connection``: local, reachable by HTTP, polled by us, or polling us."""
    if connection.type == Connection.Type.LOCAL:
        return LocalPeer(connection)
    if connection.polls_remote:
        return PollingPeer(connection)
    if not connection.remote_url:
        return PolledPeer(connection)
    return HttpPeer(connection)


class _SizedStream:
    """A file-like reader over byte chunks with a known length, so requests sends a
    ``Content-Length`` and streams the body (no chunked encoding, nothing held whole)."""

    def __init__(self, chunks: Iterable[bytes], size: int):
        self._chunks = iter(chunks)
        self._size = size
        self._buffer = b""

    def __len__(self) -> int:
        return self._size

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buffer) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if n < 0:
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out
