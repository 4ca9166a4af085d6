"""The Initiate wizard warns about an existing connection to the same node."""

import pytest

from connections.models import Connection
from connections.selectors import connections_to_url_get


@pytest.mark.django_db
def test_existing_connections_to_the_same_node_are_found_whatever_the_trailing_slash():
    first = Connection.objects.create(name="A_to_B", remote_url="http://127.0.0.1:8002")
    Connection.objects.create(name="A_to_C", remote_url="http://127.0.0.1:8003")
    Connection.objects.create(
        name="Local", remote_url="http://127.0.0.1:8002", type=Connection.Type.LOCAL
    )
    assert connections_to_url_get("http://127.0.0.1:8002/") == [first]
    assert connections_to_url_get("") == []


@pytest.mark.django_db(transaction=True)
def test_a_destination_url_with_a_path_gets_a_hint_to_leave_the_path_out(live_server):
    from connections.services import ConnectionSetupError, node_info_fetch

    with pytest.raises(ConnectionSetupError) as refused:
        node_info_fetch(f"{live_server.url}/connections/")
    assert "is not an Exalate console node" in refused.value.message
    assert f"Leave out the path: enter just {live_server.url}." in refused.value.message


@pytest.mark.django_db
def test_a_pasted_text_far_longer_than_a_code_is_called_that(admin_client):
    response = admin_client.post("/connections/accept/", {"step": "code", "code": "x" * 200_000})
    assert response.status_code == 200
    assert (
        "That is not an invitation code: it is much longer than any code"
        in response.content.decode()
    )


@pytest.mark.django_db
def test_connection_page_shows_the_read_only_basic_rules(admin_client):
    connection = Connection.objects.create(
        name="A_to_B",
        remote_url="http://127.0.0.1:8002",
        remote_name="Node B",
        status=Connection.Status.ACTIVE,
    )
    listing = admin_client.get("/connections/").content.decode()
    assert f'href="/connections/{connection.id}/"' in listing
    page = admin_client.get(f"/connections/{connection.id}/").content.decode()
    assert "Sync rules" in page and "cannot be edited" in page
    for field in ("Summary", "Description", "Comments", "Attachments"):
        assert field in page
    assert "<form" not in page.split('id="sync-rules"')[1]  # read-only: nothing to submit
    assert admin_client.get("/connections/00000000-0000-0000-0000-000000000000/").status_code == 404
