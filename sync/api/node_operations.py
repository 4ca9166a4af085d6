"""Signed node-to-node API of the console operations (issue 12).

* ``POST /api/node/v1/sync/connect``: the remote side of Connect (``sync.services.connect``);
* ``POST /api/node/v1/sync/check``: the live check of the connection page.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from connections.node_auth import IsRemoteNode, NodeJWTAuthentication

from .. import services

_Error = inline_serializer("NodeOperationError", {"error": serializers.CharField()})

# --- node-to-node ----------------------------------------------------------------------


class _Node(APIView):
    authentication_classes = [NodeJWTAuthentication]
    permission_classes = [IsRemoteNode]


class NodeConnectRequestSerializer(serializers.Serializer):
    """The asking node's entity and the key of ours to twin it with."""

    protocol = serializers.IntegerField()
    key = serializers.CharField(max_length=64)
    entity = inline_serializer(
        "ConnectEntity",
        {
            "id": serializers.CharField(max_length=64),
            "key": serializers.CharField(max_length=64, allow_blank=True),
            "url": serializers.CharField(max_length=1000, allow_blank=True),
        },
    )


class NodeConnectApi(_Node):
    """The remote side of Connect: twin our incident ``key`` with the asking node's entity."""

    @extend_schema(
        summary="Node: connect an existing incident",
        request=NodeConnectRequestSerializer,
        responses={
            200: inline_serializer("ConnectAnswer", {"entity": serializers.DictField()}),
            404: _Error,
            409: _Error,
        },
    )
    def post(self, request):
        data = NodeConnectRequestSerializer(data=request.data)
        if not data.is_valid():
            return Response(
                {
                    "error": "A connect request names a key and the asking node's entity {id, key, url}."
                },
                status=400,
            )
        try:
            answer = services.connect_answer(
                connection=request.auth,
                key=data.validated_data["key"],
                remote=data.validated_data["entity"],
            )
        except services.SyncRefused as exc:
            code = 404 if str(exc).startswith("There is no") else 409
            return Response({"error": str(exc)}, status=code)
        return Response(answer)


class NodeCheckApi(_Node):
    """The live check: this node verified the signature, so it is the same connection."""

    @extend_schema(
        summary="Node: live check",
        request=None,
        responses={
            200: inline_serializer(
                "CheckAnswer",
                {
                    "connection": serializers.UUIDField(),
                    "name": serializers.CharField(),
                    "status": serializers.CharField(),
                },
            )
        },
    )
    def post(self, request):
        connection = request.auth
        return Response(
            {"connection": str(connection.pk), "name": connection.name, "status": connection.status}
        )
