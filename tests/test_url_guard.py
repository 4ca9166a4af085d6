"""The guard on addresses this node requests on another node's behalf (issue 11, item 2)."""

from __future__ import annotations

import pytest
from django.test import override_settings

from connections.url_guard import NodeAddressRefused, base_url, guard_node_url


@pytest.mark.parametrize(
    "url, why",
    [
        ("http://169.254.169.254/", "metadata"),
        ("http://[::ffff:169.254.169.254]/", "metadata"),
        ("http://2852039166/", "metadata"),
        ("http://0xA9FEA9FE/", "metadata"),
        ("http://metadata.google.internal/", "metadata"),
        ("http://100.100.100.200/", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://169.254.10.1:8080", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://0.0.0.0:8001", "unspecified"),
        ("http://[::]:8001", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("ftp://node.example.com/", "not an http"),
        ("javascript:alert(1)", "not an http"),
        ("http:///nohost", "not an http"),
    ],
)
def test_metadata_link_local_and_odd_addresses_are_refused(url, why):
    with pytest.raises(NodeAddressRefused, match=why):
        guard_node_url(url)


@pytest.mark.parametrize(
    "url, base",
    [
        ("http://127.0.0.1:8002", "http://127.0.0.1:8002"),
        ("http://127.0.0.1:8002/?", "http://127.0.0.1:8002"),
        ("http://127.0.0.1:8002/#x", "http://127.0.0.1:8002"),
        ("http://127.0.0.1:8002/exalate/?next=/evil#frag", "http://127.0.0.1:8002/exalate"),
        ("http://user:pw@10.1.2.3:8443/", "http://10.1.2.3:8443"),
        ("HTTPS://192.168.1.20", "https://192.168.1.20"),
        ("http://[::1]:8001/", "http://[::1]:8001"),
        ("http://localhost:8001", "http://localhost:8001"),
    ],
)
def test_private_and_loopback_nodes_are_allowed_without_query_or_fragment(url, base):
    assert guard_node_url(url) == base


def test_the_allow_list_lets_a_refused_address_through_and_the_deny_list_refuses_more():
    with override_settings(NODE_URL_ALLOW=["169.254.10.0/24"]):
        assert guard_node_url("http://169.254.10.1:8080/") == "http://169.254.10.1:8080"
    with override_settings(NODE_URL_DENY=["10.0.0.0/8", "localhost"]):
        with pytest.raises(NodeAddressRefused, match="deny list"):
            guard_node_url("http://10.20.30.40/")
        with pytest.raises(NodeAddressRefused, match="deny list"):
            guard_node_url("http://localhost:8001/")


def test_an_unresolvable_name_is_said_in_words():
    with pytest.raises(NodeAddressRefused, match="cannot be resolved"):
        guard_node_url("http://no-such-node.invalid/")


def test_base_url_keeps_scheme_host_port_and_path_only():
    assert (
        base_url("https://exalate.example.com:8443/exalate/?q=1#f")
        == "https://exalate.example.com:8443/exalate"
    )
    with pytest.raises(NodeAddressRefused, match="port"):
        base_url("http://example.com:99999999/")
