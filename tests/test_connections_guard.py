"""Initiate and Accept never send a request where a node cannot be (issue 11, item 2)."""

from __future__ import annotations

import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from connections.invitations import InvitationPayload, encode_invitation, new_secret
from connections.services import ConnectionSetupError, destination_check, invitation_check
from connections.services.handshake import handshake_send

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def own_url(settings):
    settings.NODE_PUBLIC_URL = "http://node-a.example:8000"


@pytest.fixture
def recorder():
    """A web server on 127.0.0.1 that records request paths and answers 400 with an HTML page."""
    paths: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            paths.append(self.path)
            body = b"<html>internal admin page: db password hunter2</html>"
            self.send_response(400)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", paths
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/",
        "http://[::ffff:169.254.169.254]/",
        "http://2852039166/",
        "http://metadata.google.internal/",
        "http://100.100.100.200/",
        "http://[fd00:ec2::254]/",
    ],
)
def test_initiate_refuses_metadata_addresses_in_words(url):
    with pytest.raises(ConnectionSetupError) as refused:
        destination_check(destination_url=url, no_url=False)
    assert "metadata" in str(refused.value) and refused.value.field == "destination_url"


@pytest.mark.parametrize("suffix", ["/?", "/#", "/?x=/api/other#frag"])
def test_a_typed_query_or_fragment_does_not_choose_the_path_requested(recorder, suffix):
    url, paths = recorder
    with pytest.raises(ConnectionSetupError):
        destination_check(destination_url=url + suffix, no_url=False)
    assert paths == ["/api/node/v1/info"]


def _code(node_url: str) -> str:
    return encode_invitation(
        InvitationPayload(
            invitation_id=str(uuid.uuid4()),
            connection_id=str(uuid.uuid4()),
            name="Evil",
            type="public",
            mode="basic",
            node_id=str(uuid.uuid4()),
            node_name="Evil",
            node_url=node_url,
            tracker="servicenow",
            to_node_id=None,
            secret=new_secret(),
            expires_at=int(time.time()) + 3600,
        )
    )


def test_accept_refuses_a_code_whose_initiator_is_a_metadata_address():
    with pytest.raises(ConnectionSetupError) as refused:
        invitation_check(code=_code("http://169.254.169.254"))
    assert "will not contact" in str(refused.value) and "metadata" in str(refused.value)


def test_a_remote_error_body_that_is_not_the_node_error_shape_is_not_shown(recorder):
    url, paths = recorder
    payload = invitation_check(code=_code(url))
    with pytest.raises(ConnectionSetupError) as refused:
        handshake_send(payload)
    assert paths == ["/api/node/v1/connections/handshake"] or len(paths) == 1
    assert "hunter2" not in str(refused.value) and "HTTP 400" in str(refused.value)
