"""Serializers of the sync API (read shapes; input is validated by small request serializers)."""

from __future__ import annotations

from rest_framework import serializers

from ..models import ExalateRequest, SyncError, SyncEvent, Twin


class TwinSerializer(serializers.ModelSerializer):
    """A twin with both sides' links: ``local`` / ``remote`` = ``{"id", "key", "url"}``."""

    local = serializers.SerializerMethodField()
    remote = serializers.SerializerMethodField()
    connection = serializers.UUIDField(source="connection_id")
    status_label = serializers.CharField(source="get_status_display")
    needs_scan = serializers.BooleanField(read_only=True)

    class Meta:
        model = Twin
        fields = [
            "id",
            "connection",
            "status",
            "status_label",
            "entity_type",
            "local",
            "remote",
            "last_error",
            "remote_error",
            "last_seen_mod_count",
            "needs_scan",
            "last_synced_at",
            "created_at",
            "updated_at",
        ]

    def get_local(self, twin: Twin) -> dict:
        return {"id": twin.local_entity_id, "key": twin.local_key, "url": twin.local_url}

    def get_remote(self, twin: Twin) -> dict:
        return {"id": twin.remote_entity_id, "key": twin.remote_key, "url": twin.remote_url}


class ExalateRequestSerializer(serializers.ModelSerializer):
    """An exalate request; ``twin`` is null until the worker resolved the number."""

    connection = serializers.UUIDField(source="connection_id")
    twin = TwinSerializer(read_only=True)

    class Meta:
        model = ExalateRequest
        fields = ["id", "connection", "key", "status", "error", "twin", "created_at", "updated_at"]


class ExalateInputSerializer(serializers.Serializer):
    """``{"number": "INC0010001"}``: the key of the entity to exalate (checked by the service)."""

    number = serializers.CharField(max_length=64)


class SyncErrorSerializer(serializers.ModelSerializer):
    """An entity-, connection- or node-level error with its occurrences and resolution time.

    ``code``: ``entity_gone`` (an incident no longer exists), ``exalate_failed`` (a number
    that could not be exalated) or ''; ``remote``: the other node reported it (it failed
    applying our change there)."""

    connection = serializers.UUIDField(source="connection_id", allow_null=True)
    twin = serializers.IntegerField(source="twin_id", allow_null=True)
    event = serializers.IntegerField(source="event_id", allow_null=True)

    class Meta:
        model = SyncError
        fields = [
            "id",
            "level",
            "connection",
            "twin",
            "event",
            "message",
            "code",
            "remote",
            "occurrences",
            "created_at",
            "last_seen_at",
            "resolved_at",
        ]


class SyncEventSerializer(serializers.ModelSerializer):
    """One row of the sync queue: direction, kind, status, attempts, next attempt, last error."""

    class Meta:
        model = SyncEvent
        fields = [
            "id",
            "event_id",
            "direction",
            "kind",
            "status",
            "attempts",
            "next_attempt_at",
            "last_error",
            "created_at",
            "done_at",
        ]
