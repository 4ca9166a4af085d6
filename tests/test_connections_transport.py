"""Signed HTTP to a remote node and how its answers become errors (connections/transport.py).

A small real HTTP server on 127.0.0.1 plays the remote node.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest

from connections.invitations import new_secret
from connections.models import Connection
from connections.selectors import node_identity_get
from connections.transport import (
    NodeRequestRejected,
    NodeTransportError,
    NodeUnreachable,
    node_request,
    parse_retry_after,
)
from tests.live import free_port

pytestmark = pytest.mark.django_db


class FakeNode:
    """Answers every request with ``self.answer`` = (status, headers, body) and records what it got."""

    def __init__(self):
        self.answer = (200, {"Content-Type": "application/json"}, b'{"ok": true}')
        self.received: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                fake.received.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": self.rfile.read(length),
                    }
                )
                status, headers, body = fake.answer
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _handle

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_node():
    node = FakeNode()
    yield node
    node.close()


@pytest.fixture
def connection(fake_node) -> Connection:
    return Connection.objects.create(
        name="A_to_B",
        type="public",
        status="active",
        remote_node_id=uuid.uuid4(),
        remote_url=fake_node.url,
        secret=new_secret(),
    )


def test_a_json_request_is_signed_over_the_exact_bytes_sent(fake_node, connection):
    response = node_request(connection, "POST", "/api/node/v1/messages", json={"b": 1, "a": "é"})
    assert response.json() == {"ok": True}
    got = fake_node.received[0]
    assert got["path"] == "/api/node/v1/messages"
    assert got["headers"]["Content-Type"] == "application/json"
    token = got["headers"]["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(
        token, connection.secret, algorithms=["HS256"], audience=str(connection.remote_node_id)
    )
    assert claims["bsha"] == hashlib.sha256(got["body"]).hexdigest()
    assert json.loads(got["body"]) == {"b": 1, "a": "é"}
    assert claims["iss"] == node_identity_get().node_id


def test_a_get_is_signed_over_an_empty_body(fake_node, connection):
    node_request(connection, "GET", "/api/node/v1/messages?since=1")
    token = fake_node.received[0]["headers"]["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(
        token, connection.secret, algorithms=["HS256"], audience=str(connection.remote_node_id)
    )
    assert claims["bsha"] == hashlib.sha256(b"").hexdigest()


def test_a_refused_token_is_a_permanent_rejection_with_the_remote_message(fake_node, connection):
    fake_node.answer = (
        401,
        {"Content-Type": "application/json"},
        b'{"error": "The node token has expired."}',
    )
    with pytest.raises(NodeRequestRejected) as info:
        node_request(connection, "POST", "/api/node/v1/messages", json={})
    assert info.value.status == 401
    assert info.value.message == "The node token has expired."


def test_too_many_requests_is_transient_and_says_when_to_retry(fake_node, connection):
    fake_node.answer = (429, {"Retry-After": "7"}, b"slow down")
    with pytest.raises(NodeUnreachable) as info:
        node_request(connection, "POST", "/x", json={})
    assert info.value.retry_after == 7
    assert info.value.status == 429


def test_a_server_error_is_transient(fake_node, connection):
    fake_node.answer = (503, {}, b"")
    with pytest.raises(NodeUnreachable, match="HTTP 503"):
        node_request(connection, "GET", "/x")


def test_a_node_that_does_not_listen_is_unreachable():
    connection = Connection.objects.create(
        name="gone",
        type="public",
        status="active",
        remote_node_id=uuid.uuid4(),
        remote_url=f"http://127.0.0.1:{free_port()}",
        secret=new_secret(),
    )
    with pytest.raises(NodeUnreachable, match="cannot be reached"):
        node_request(connection, "GET", "/x")


def test_a_connection_whose_remote_has_no_url_cannot_send():
    connection = Connection.objects.create(
        name="priv",
        type="private",
        status="active",
        remote_node_id=uuid.uuid4(),
        remote_url="",
        secret=new_secret(),
    )
    with pytest.raises(NodeTransportError, match="polls this node"):
        node_request(connection, "GET", "/x")


def test_only_http_urls_are_called():
    connection = Connection(
        name="ftp",
        type="public",
        status="active",
        remote_node_id=uuid.uuid4(),
        remote_url="ftp://127.0.0.1/",
        secret=new_secret(),
    )
    with pytest.raises(NodeTransportError, match="not an http"):
        node_request(connection, "GET", "/x")


def test_retry_after_reads_seconds_and_http_dates():
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
