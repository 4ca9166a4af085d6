"""The node-to-node sync protocol, version 1: paths, the message envelope and its checks.

Two console nodes exchange *messages* (JSON objects), in batches, over the signed node API
(``Authorization: Bearer <jwt>``, see ``connections.node_auth``):

* ``POST /api/node/v1/sync/messages`` ``{"protocol": 1, "messages": [...]}`` → ``{"accepted":
  [event ids], "rejected": [{"event_id", "error"}]}``;
* ``POST /api/node/v1/sync/poll`` from a node without URL, which also sends ``confirm`` /
  ``confirm_rejected`` (what it stored from the previous answer) and gets ``messages`` (ours
  for it) and ``need_attachments`` (bytes we wait for, which it pushes);
* ``GET`` / ``PUT /api/node/v1/sync/attachments/<entity_id>/<attachment_id>``: attachment
  bytes, streamed (a node without URL pushes with ``?sha256=&size=``).

A message is a *replica* (the sender's entity, schema v1 of ``trackers.replica``, and the
synced fields it changed) or an *ack* (the receiver applied a replica: its own entity id,
key and URL, or the error that stopped it, with ``error_code`` ``entity_gone`` when its
incident no longer exists) or an *unexalate* (the sender ended its twin: the receiver ends
its own, at once). :class:`SyncMessageSerializer` is the one
definition of that envelope: :func:`message_problem` checks every received message with
it (one bad message is refused alone, the others are stored), and the OpenAPI document
describes the same serializers.
"""

from __future__ import annotations

from rest_framework import serializers

from trackers.replica import ReplicaInvalid, replica_validate

from . import rules
from .models import SyncEvent, Twin

PROTOCOL = 1
MESSAGES_PATH = "/api/node/v1/sync/messages"
POLL_PATH = "/api/node/v1/sync/poll"
#: ``entity_id`` of an error acknowledgement sent before the local entity could be created.
NO_ENTITY = "-"


def attachment_path(entity_id: str, attachment_id: str) -> str:
    """The node API path of one attachment's bytes (``entity_id`` is the *sender's* entity id)."""
    return f"/api/node/v1/sync/attachments/{entity_id}/{attachment_id}"


def message_for(event: SyncEvent, twin: Twin) -> dict:
    """The wire form of an outgoing event: ``event_id``, ``seq`` (the sender's order),
    ``kind``, ``entity_id`` (ours), ``peer_entity_id`` (the receiver's, '' until known) and
    the event's payload (replica: ``replica``, ``changed``, ``new_attachments``; ack:
    ``entity``, ``acked_event_id``, ``error``)."""
    return {
        "event_id": str(event.event_id),
        "seq": event.pk,
        "kind": event.kind,
        "entity_id": twin.local_entity_id or NO_ENTITY,
        "peer_entity_id": twin.remote_entity_id,
        **event.payload,
    }


# --- strict JSON fields: DRF's own coerce ("5" → 5, 5 → "5"); the protocol does not ------


class _WireString(serializers.CharField):
    """A JSON string, taken as sent (no coercion of numbers, no trimming)."""

    def __init__(self, message: str, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        messages = {k: message for k in ("invalid", "required", "null", "max_length", "blank")}
        messages.update(kwargs.pop("error_messages", {}))
        super().__init__(error_messages=messages, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class _WireInteger(serializers.IntegerField):
    """A JSON whole number (not a string, a float or a boolean)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return data


class _WireUUID(serializers.UUIDField):
    """A uuid written as a JSON string."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def _same(message: str) -> dict:
    return {k: message for k in ("invalid", "required", "null", "invalid_choice", "not_a_list")}


_NEW_ATTACHMENTS = "new_attachments must be a list of attachment ids"
_CHANGED = f"changed must be a list of {', '.join(rules.SYNCED_FIELDS)}"
_ACK_ENTITY = "an ack carries entity {id, key, url}"
#: DRF formats its error messages with str.format: the braces of _ACK_ENTITY are escaped.
_ACK_ENTITY_FMT = _ACK_ENTITY.replace("{", "{{").replace("}", "}}")
_ACK_NAMES = "an ack names the entity it comes from and the acked event id"


class AckEntitySerializer(serializers.Serializer):
    """The receiver's own entity in an ack: ``id`` (``-`` when it could not be created), ``key``, ``url``."""

    id = _WireString(_ACK_ENTITY_FMT, allow_blank=True)
    key = _WireString(_ACK_ENTITY_FMT, allow_blank=True)
    url = _WireString(_ACK_ENTITY_FMT, allow_blank=True)

    default_error_messages = {
        "invalid": _ACK_ENTITY_FMT,
        "required": _ACK_ENTITY_FMT,
        "null": _ACK_ENTITY_FMT,
    }


class SyncMessageSerializer(serializers.Serializer):
    """One message between nodes (protocol 1), a replica or an ack.

    Replica: ``replica`` (schema v1, its ``entity.id`` = ``entity_id``), ``changed`` (the
    synced fields changed on the sender's side since both last agreed), ``new_attachments``
    (ids of attachments not sent before). Ack: ``entity`` (the receiver's entity),
    ``acked_event_id``, ``error`` ('' when applied).
    """

    event_id = _WireUUID(error_messages=_same("event_id must be a uuid"))
    seq = _WireInteger(error_messages=_same("seq must be a whole number"))
    entity_id = _WireString(
        "entity_id must be a string of at most 64 characters",
        max_length=64,
        error_messages={"blank": "entity_id must not be empty"},
    )
    peer_entity_id = _WireString(
        "peer_entity_id must be a string of at most 64 characters", max_length=64, allow_blank=True
    )
    kind = serializers.ChoiceField(
        choices=[
            SyncEvent.Kind.REPLICA.value,
            SyncEvent.Kind.ACK.value,
            SyncEvent.Kind.UNEXALATE.value,  # issue 12: the sender ended its twin
        ],
        error_messages=_same("kind must be replica, ack or unexalate"),
    )
    replica = serializers.JSONField(
        required=False, allow_null=True, help_text="The sender's entity as a replica (schema v1)."
    )
    changed = serializers.ListField(
        child=serializers.ChoiceField(
            choices=list(rules.SYNCED_FIELDS), error_messages=_same(_CHANGED)
        ),
        required=False,
        error_messages=_same(_CHANGED),
    )
    new_attachments = serializers.ListField(
        child=_WireString(_NEW_ATTACHMENTS),
        required=False,
        error_messages=_same(_NEW_ATTACHMENTS),
        help_text="Ids of attachments new in this replica (the receiver needs only the replica).",
    )
    entity = AckEntitySerializer(required=False)
    acked_event_id = _WireUUID(required=False, error_messages=_same(_ACK_NAMES))
    error = _WireString("error must be a string", required=False, allow_blank=True)
    warning = _WireString("warning must be a string", required=False, allow_blank=True)
    error_code = _WireString(
        "error_code must be a string", required=False, allow_blank=True, max_length=40
    )  # issue 12: e.g. "entity_gone" when the receiver's incident no longer exists

    def validate(self, attrs):
        if attrs["kind"] == SyncEvent.Kind.REPLICA:
            if attrs["entity_id"] == NO_ENTITY:
                raise serializers.ValidationError("a replica names its entity")
            replica = self.initial_data.get("replica")
            try:
                replica_validate(replica)
            except ReplicaInvalid as exc:
                raise serializers.ValidationError(str(exc)) from None
            if replica["entity"]["id"] != attrs["entity_id"]:
                raise serializers.ValidationError("replica.entity.id differs from entity_id")
            if "changed" not in attrs:
                raise serializers.ValidationError(_CHANGED)
        elif attrs["kind"] == SyncEvent.Kind.UNEXALATE:
            if attrs["entity_id"] == NO_ENTITY and not attrs["peer_entity_id"]:
                raise serializers.ValidationError("an unexalate names the twin it ends")
        else:
            if "entity" not in attrs:
                raise serializers.ValidationError(_ACK_ENTITY)
            if attrs["entity"]["id"] != attrs["entity_id"] or "acked_event_id" not in attrs:
                raise serializers.ValidationError(_ACK_NAMES)
        return attrs


def _first_error(detail) -> str:
    if isinstance(detail, dict):
        return _first_error(next(iter(detail.values())))
    if isinstance(detail, list):
        return _first_error(detail[0])
    return str(detail)


def message_problem(message) -> str | None:
    """Why ``message`` is not a well-formed protocol-1 message (replica validated too), or None.

    The text is the first problem found, in the sender's terms (``event_id must be a uuid``,
    ``replica.summary: 5 is not of type 'string'``); it goes back in ``rejected``.
    """
    if not isinstance(message, dict):
        return "a message must be a JSON object"
    checked = SyncMessageSerializer(data=message)
    if checked.is_valid():
        return None
    return _first_error(checked.errors)


# --- the envelopes (documented in the OpenAPI schema) ---------------------------------


class RejectedSerializer(serializers.Serializer):
    """A refused message: its ``event_id`` (null when it had none) and why."""

    event_id = serializers.CharField(allow_null=True)
    error = serializers.CharField()


class MessagesRequestSerializer(serializers.Serializer):
    """``POST /api/node/v1/sync/messages``: each message is checked on its own (bad ones are
    answered in ``rejected``, the others stored)."""

    protocol = serializers.IntegerField(help_text=f"Always {PROTOCOL}.")
    messages = SyncMessageSerializer(many=True)


class MessagesAnswerSerializer(serializers.Serializer):
    """Event ids stored (or stored before: receipt is idempotent) and messages refused."""

    accepted = serializers.ListField(child=serializers.CharField())
    rejected = RejectedSerializer(many=True)


class PollRequestSerializer(MessagesRequestSerializer):
    """``POST /api/node/v1/sync/poll`` from a node without URL."""

    confirm = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="Event ids stored from our last answer.",
    )
    confirm_rejected = RejectedSerializer(
        many=True, required=False, help_text="Messages of our last answer it refused."
    )


class NeededAttachmentSerializer(serializers.Serializer):
    """Attachment bytes this node waits for: the poller's ``entity_id`` and ``attachment_id``."""

    entity_id = serializers.CharField()
    attachment_id = serializers.CharField()


class PollAnswerSerializer(MessagesAnswerSerializer):
    """The poll's answer: also this node's due messages and the bytes it still needs pushed."""

    messages = SyncMessageSerializer(many=True)
    need_attachments = NeededAttachmentSerializer(many=True)
