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
