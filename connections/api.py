"""REST API of connections: the admins' automation API and the node-to-node setup endpoints.

Admin endpoints (``/api/connections/...``) take token or session authentication and
need a staff user. Node endpoints (``/api/node/v1/info`` and ``/handshake``) are called
by other nodes. Every error answers 4xx/5xx with ``{"error": "..."}``.
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from .forms import accepted_name_validate
from .models import Connection
from .node_auth import InvitationJWTAuthentication
from .selectors import connection_get, connection_list, node_info_get
from .services import (
    ConnectionSetupError,
    connection_activate,
    connection_deactivate,
    connection_delete,
    connection_initiate,
    handshake_receive,
    invitation_accept,
    invitation_check,
    invitation_revoke,
)


class ErrorJSONMixin:
    # Maps ConnectionSetupError to {"error": ...}; every other error already gets that shape
    # from the project-wide handler exalate_console.api_errors.error_exception_handler.
    # (A comment, not a docstring: drf-spectacular would show a docstring as the
    # description of every view that has none of its own.)

    def handle_exception(self, exc):
        if isinstance(exc, ConnectionSetupError):
            return Response({"error": exc.message}, status=exc.status)
        return super().handle_exception(exc)


ErrorSerializer = inline_serializer("Error", {"error": serializers.CharField()})


class ConnectionSerializer(serializers.ModelSerializer):
    """A connection as the API shows it (never its secret)."""

    class Meta:
        model = Connection
        fields = [
            "id",
            "name",
            "type",
            "mode",
            "status",
            "is_initiator",
            "remote_node_id",
            "remote_url",
            "remote_name",
            "remote_tracker",
            "polls_remote",
            "incoming_project_key",
            "incoming_project_name",
            "local_peer",
            "last_error",
            "last_error_at",
            "last_synced_at",
            "established_at",
            "created_at",
        ]
        read_only_fields = fields


class InitiateSerializer(serializers.Serializer):
    destination_url = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="The destination node's Exalate URL.",
    )
    no_url = serializers.BooleanField(
        required=False,
        default=False,
        help_text="True when the destination has no URL (a private connection).",
    )
    mode = serializers.ChoiceField(choices=["basic", "visual", "script"], default="basic")
    name = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="Empty for the default Local_to_Remote name.",
    )


class AcceptSerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="The invitation code the initiating node made.", trim_whitespace=True
    )
    project = serializers.CharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=255,
        help_text="On a node whose tracker has projects: the key of the project for the"
        " incoming sync (required there; ignored elsewhere).",
    )


class InitiatedSerializer(serializers.Serializer):
    connection = ConnectionSerializer()
    invitation_code = serializers.CharField()


class AcceptedSerializer(serializers.Serializer):
    connection = ConnectionSerializer()


def _get(connection_id) -> Connection:
    try:
        return connection_get(connection_id)
    except Connection.DoesNotExist:
        raise Http404("No connection with this id on this node.") from None


@extend_schema(tags=["connections"])
class ConnectionListApi(ErrorJSONMixin, APIView):
    @extend_schema(
        summary="List this node's connections", responses=ConnectionSerializer(many=True)
    )
    def get(self, request):
        return Response(ConnectionSerializer(connection_list(), many=True).data)


@extend_schema(tags=["connections"])
class ConnectionInitiateApi(ErrorJSONMixin, APIView):
    @extend_schema(
        summary="Initiate a connection and get its invitation code",
        description=(
            "Checks the destination URL (it must be a node of this console; this node's own URL makes a"
            " local connection; no_url makes a private one) and creates a Pending connection. Hand the"
            " invitation_code to the destination's admin, or POST it to the destination's"
            " /api/connections/accept/."
        ),
        request=InitiateSerializer,
        responses={201: InitiatedSerializer, 400: ErrorSerializer},
    )
    def post(self, request):
        form = InitiateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        connection, code = connection_initiate(user=request.user, **form.validated_data)
        return Response(
            {"connection": ConnectionSerializer(connection).data, "invitation_code": code},
            status=status.HTTP_201_CREATED,
        )


@extend_schema(tags=["connections"])
class ConnectionAcceptApi(ErrorJSONMixin, APIView):
    @extend_schema(
        summary="Accept an invitation code",
        description="Runs the handshake with the initiating node; both ends are Active afterwards.",
        request=AcceptSerializer,
        responses={
            201: AcceptedSerializer,
            400: ErrorSerializer,
            403: ErrorSerializer,
            409: ErrorSerializer,
            410: ErrorSerializer,
            502: ErrorSerializer,
        },
    )
    def post(self, request):
        form = AcceptSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        accepted_name_validate(invitation_check(code=form.validated_data["code"]))
        connection = invitation_accept(
            code=form.validated_data["code"],
            user=request.user,
            project=form.validated_data["project"],
        )
        return Response(
            {"connection": ConnectionSerializer(connection).data}, status=status.HTTP_201_CREATED
        )


@extend_schema(tags=["connections"])
class ConnectionDetailApi(ErrorJSONMixin, APIView):
    @extend_schema(
        summary="One connection", responses={200: ConnectionSerializer, 404: ErrorSerializer}
    )
    def get(self, request, connection_id):
        return Response(ConnectionSerializer(_get(connection_id)).data)

    @extend_schema(
        summary="Delete a connection",
        description=(
            "Deletes this node's end (both ends of a local connection). The synced incidents stay as they"
            " are in both instances; they just stop syncing. A pending invitation is revoked."
        ),
        responses={204: None, 404: ErrorSerializer},
    )
    def delete(self, request, connection_id):
        connection_delete(connection=_get(connection_id), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["connections"])
class ConnectionActivateApi(ErrorJSONMixin, APIView):
    @extend_schema(
        summary="Activate a connection",
        request=None,
        responses={200: ConnectionSerializer, 404: ErrorSerializer, 409: ErrorSerializer},
    )
    def post(self, request, connection_id):
        connection = connection_activate(connection=_get(connection_id), user=request.user)
        return Response(ConnectionSerializer(connection).data)


@extend_schema(tags=["connections"])
class ConnectionDeactivateApi(ErrorJSONMixin, APIView):
    @extend_schema(
        summary="Deactivate a connection (changes stay queued)",
        request=None,
        responses={200: ConnectionSerializer, 404: ErrorSerializer, 409: ErrorSerializer},
    )
    def post(self, request, connection_id):
        connection = connection_deactivate(connection=_get(connection_id), user=request.user)
        return Response(ConnectionSerializer(connection).data)


@extend_schema(tags=["connections"])
class InvitationRevokeApi(ErrorJSONMixin, APIView):
    @extend_schema(
        summary="Revoke the pending invitation of a connection",
        description="The code stops working and the pending connection is deleted.",
        request=None,
        responses={204: None, 404: ErrorSerializer, 409: ErrorSerializer},
    )
    def post(self, request, connection_id):
        invitation_revoke(connection=_get(connection_id), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


NodeInfoSerializer = inline_serializer(
    "NodeInfo",
    {
        "product": serializers.CharField(),
        "node_id": serializers.UUIDField(),
        "name": serializers.CharField(),
        "tracker": serializers.CharField(),
        "url": serializers.CharField(),
        "modes": inline_serializer(
            "NodeModes",
            {
                "basic": serializers.BooleanField(),
                "visual": serializers.BooleanField(),
                "script": serializers.BooleanField(),
            },
        ),
        "api_version": serializers.IntegerField(),
    },
)


@extend_schema(tags=["node-to-node"])
class NodeInfoApi(ErrorJSONMixin, APIView):
    """Public information about this node; the Initiate wizard of another node reads it."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="This node's public information (no authentication)",
        responses=NodeInfoSerializer,
        auth=[],
    )
    def get(self, request):
        return Response(node_info_get())


class HandshakeRequestSerializer(serializers.Serializer):
    invitation_id = serializers.UUIDField()
    connection_id = serializers.UUIDField()
    node = inline_serializer(
        "HandshakeNode",
        {
            "id": serializers.UUIDField(),
            "name": serializers.CharField(),
            "url": serializers.CharField(allow_blank=True),
            "tracker": serializers.CharField(),
        },
    )


@extend_schema(tags=["node-to-node"])
class HandshakeApi(ErrorJSONMixin, APIView):
    """The initiating node's end of the invitation handshake."""

    authentication_classes = [InvitationJWTAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Accept an invitation (called by the accepting node)",
        description=(
            "Authorization: Bearer <HS256 JWT signed with the invitation's one-time secret> with claims iss,"
            " aud, cid, iid, iat, exp (at most 60 s), jti (used once) and bsha (sha256 of the body). The"
            " pending connection turns Active."
        ),
        request=HandshakeRequestSerializer,
        responses={
            200: inline_serializer(
                "HandshakeAnswer",
                {
                    "node": NodeInfoSerializer,
                    "connection": inline_serializer(
                        "HandshakeConnection",
                        {"id": serializers.UUIDField(), "name": serializers.CharField()},
                    ),
                },
            ),
            400: ErrorSerializer,
            401: ErrorSerializer,
            403: ErrorSerializer,
            409: ErrorSerializer,
            410: ErrorSerializer,
        },
    )
    def post(self, request):
        invitation, claims = request.auth
        return Response(handshake_receive(invitation=invitation, claims=claims, body=request.body))


class NodeJWTScheme(OpenApiAuthenticationExtension):
    """Documents ``NodeJWTAuthentication`` in the OpenAPI schema as the ``NodeJWT`` scheme."""

    target_class = "connections.node_auth.NodeJWTAuthentication"
    name = "NodeJWT"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": (
                "HS256 JWT signed with the connection's shared secret: iss (sender node id), aud (receiver"
                " node id), cid (connection id), iat, exp (at most 60 s), jti (accepted once), bsha (hex"
                " sha256 of the request body)."
            ),
        }


class InvitationJWTScheme(OpenApiAuthenticationExtension):
    """Documents ``InvitationJWTAuthentication`` (the handshake's token) in the OpenAPI schema."""

    target_class = "connections.node_auth.InvitationJWTAuthentication"
    name = "InvitationJWT"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": (
                "HS256 JWT signed with the invitation's one-time secret: the NodeJWT claims plus iid (the"
                " invitation id). Proves the accepting node holds the invitation code."
            ),
        }
