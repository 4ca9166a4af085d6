"""The invitation code format: versioned, encoded, integrity-checked (connections/invitations.py)."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest

from connections.invitations import (
    InvitationCodeError,
    InvitationPayload,
    _check,
    decode_invitation,
    encode_invitation,
    new_secret,
)


def make_payload(**overrides) -> InvitationPayload:
    values = dict(
        invitation_id=str(uuid.uuid4()),
        connection_id=str(uuid.uuid4()),
        name="NodeA_to_NodeB",
        type="public",
        mode="basic",
        node_id=str(uuid.uuid4()),
        node_name="Node A",
        node_url="http://127.0.0.1:8001",
        tracker="servicenow",
        to_node_id=str(uuid.uuid4()),
        secret=new_secret(),
        expires_at=int(time.time()) + 3600,
    )
    values.update(overrides)
    return InvitationPayload(**values)


def _reencode(code: str, change) -> str:
    """Decode the payload part, apply ``change`` to the dict, re-encode (keeping the old check)."""
    prefix, encoded, check = code.split(".")
    body = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    change(body)
    new = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    return f"{prefix}.{new}.{check}"


def test_a_code_reads_back_as_the_payload_it_was_made_from():
    payload = make_payload()
    code = encode_invitation(payload)
    assert code.startswith("exalate1.")
    assert decode_invitation(code) == payload


def test_line_breaks_and_spaces_from_copying_are_ignored():
    payload = make_payload()
    code = encode_invitation(payload)
    wrapped = "  " + "\n".join(code[i : i + 60] for i in range(0, len(code), 60)) + "\n"
    assert decode_invitation(wrapped) == payload


def test_a_private_invitation_has_no_destination_node():
    payload = make_payload(type="private", to_node_id=None)
    assert decode_invitation(encode_invitation(payload)).to_node_id is None


@pytest.mark.parametrize(
    "text", ["hello world", "INC0010001", "eyJhbGciOiJIUzI1NiJ9.e30.abc", "exalatex.abc.def"]
)
def test_malformed_text_is_not_an_invitation_code(text):
    with pytest.raises(InvitationCodeError, match="not an Exalate invitation code"):
        decode_invitation(text)


def test_an_empty_code_asks_to_paste_one():
    with pytest.raises(InvitationCodeError, match="Paste the invitation code"):
        decode_invitation("   ")


@pytest.mark.parametrize("keep", [4, 8, 9, 40, -60, -43, -44, -1])
def test_a_truncated_code_says_part_is_missing(keep):
    code = encode_invitation(make_payload())
    with pytest.raises(InvitationCodeError, match="incomplete"):
        decode_invitation(code[:keep])


def test_a_code_whose_content_was_changed_is_refused():
    code = encode_invitation(make_payload())
    tampered = _reencode(code, lambda body: body["node"].update(url="http://evil.example"))
    with pytest.raises(InvitationCodeError, match="changed since it was made"):
        decode_invitation(tampered)


def test_a_code_with_a_changed_check_is_refused():
    code = encode_invitation(make_payload())
    last = "A" if code[-2] != "A" else "B"
    with pytest.raises(InvitationCodeError, match="changed since it was made"):
        decode_invitation(code[:-2] + last + code[-1])


def test_a_code_of_another_format_version_names_the_versions():
    code = encode_invitation(make_payload())
    with pytest.raises(InvitationCodeError, match="format 2"):
        decode_invitation("exalate2" + code[len("exalate1") :])


def test_a_consistently_re_signed_code_with_an_unsupported_mode_is_refused():
    payload = make_payload()
    code = encode_invitation(payload)

    def to_script(body):
        body["mode"] = "script"

    changed = _reencode(code, to_script)
    prefix, encoded, _ = changed.split(".")
    resigned = f"{prefix}.{encoded}.{_check(payload.secret, f'{prefix}.{encoded}')}"
    with pytest.raises(InvitationCodeError, match="does not support"):
        decode_invitation(resigned)


def test_expiry_is_reported_by_the_payload_not_by_decoding():
    payload = make_payload(expires_at=int(time.time()) - 1)
    decoded = decode_invitation(encode_invitation(payload))
    assert decoded.expired
