"""Sync API views.

Admin API (token or session auth, admins only; DRF defaults):

* ``POST /api/connections/<uuid>/exalate/`` ``{"number": "INC0010001"}`` → 202 with the
  exalate request (follow ``GET /api/exalate-requests/<id>/`` until ``twin`` is set);
* ``GET /api/twins/?connection=&q=`` and ``GET /api/twins/<id>/``: status and both links;
* ``POST /api/twins/<id>/retry/``; ``GET /api/errors/`` (open errors, ``?level=``).

Node-to-node API (``Authorization: Bearer <jwt>`` signed with the connection's secret;
the envelopes are the serializers of ``sync.protocol``, which also check every message):

* ``POST /api/node/v1/sync/messages`` ``{"protocol": 1, "messages": [...]}`` →
  ``{"accepted": [event ids], "rejected": [{"event_id", "error"}]}``;
* ``POST /api/node/v1/sync/poll`` (from a node without URL) → also ``"messages"`` and
  ``"need_attachments"``;
* ``GET /api/node/v1/sync/attachments/<entity_id>/<attachment_id>``: the bytes, streamed;
* ``PUT`` on the same path with ``?sha256=&size=``: a node without URL pushes bytes.

Webhook (checked by the adapter class; ServiceNow: ``Authorization: Bearer <webhook token>``):
``POST /api/webhooks/<tracker>/`` with the tracker's own announcement (ServiceNow:
``/api/webhooks/servicenow/`` ``{"sys_id": "...", "sys_mod_count": "7"}``) → 202.
"""

from __future__ import annotations

from django.http import JsonResponse, StreamingHttpResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from connections.models import Connection
from connections.node_auth import (
    IsRemoteNode,
    NodeAuthError,
    NodeJWTAuthentication,
    verify_node_request,
)
from trackers.errors import TrackerError, TrackerNotFound, TransientTrackerError
from trackers.registry import adapter_class

from .. import protocol, selectors, services
from ..models import ExalateRequest, SyncError, Twin
from .serializers import (
    ExalateInputSerializer,
    ExalateRequestSerializer,
    SyncErrorSerializer,
    TwinSerializer,
)

# --- admin API -------------------------------------------------------------------------


_Error = inline_serializer("SyncError400", {"error": serializers.CharField()})


class ExalateApi(APIView):
    """Exalate one incident by number on a connection; answers 202 with the request."""

    @extend_schema(
        request=ExalateInputSerializer,
        responses={202: ExalateRequestSerializer, 400: _Error, 404: _Error},
    )
    def post(self, request, connection_id):
        connection = Connection.objects.filter(pk=connection_id).first()
        if connection is None:
            return Response(
                {"error": "No such connection on this node."}, status=status.HTTP_404_NOT_FOUND
            )
        data = ExalateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            exalate = services.entity_exalate(
                connection=connection,
                key=data.validated_data["number"],
                requested_by=str(request.user),
            )
        except services.SyncRefused as exc:
            raise ValidationError({"number": [str(exc)]}) from None
        return Response(ExalateRequestSerializer(exalate).data, status=status.HTTP_202_ACCEPTED)


class ExalateRequestApi(RetrieveAPIView):
    """One exalate request; ``twin`` is set once the worker resolved the key."""

    serializer_class = ExalateRequestSerializer
    queryset = ExalateRequest.objects.select_related("twin")
    lookup_url_kwarg = "request_id"


class TwinListApi(ListAPIView):
    """Twins, newest first; ``?q=`` number or sys_id, ``?connection=`` uuid."""

    serializer_class = TwinSerializer

    def get_queryset(self):
        return selectors.twin_search(
            query=self.request.query_params.get("q", ""),
            connection_id=self.request.query_params.get("connection") or None,
            limit=200,
        )


class TwinApi(RetrieveAPIView):
    """One twin with its status and both sides' links."""

    serializer_class = TwinSerializer
    queryset = Twin.objects.all()
    lookup_url_kwarg = "twin_id"


class TwinRetryApi(APIView):
    """Retry a twin's failed events in order (the Retry button of the status page)."""

    @extend_schema(request=None, responses={202: TwinSerializer, 404: _Error})
    def post(self, request, twin_id):
        twin = selectors.twin_get(twin_id)
        services.twin_retry(twin=twin, requested_by=request.user.get_username())
        twin.refresh_from_db()
        return Response(TwinSerializer(twin).data, status=status.HTTP_202_ACCEPTED)


class ErrorListApi(ListAPIView):
    """Open errors, newest first; ``?level=entity|connection|node``."""

    serializer_class = SyncErrorSerializer

    def get_queryset(self):
        level = self.request.query_params.get("level")
        return selectors.errors_open(level=level if level in SyncError.Level.values else None)[:500]


# --- node-to-node API ------------------------------------------------------------------


class _NodeApi(APIView):
    authentication_classes = [NodeJWTAuthentication]
    permission_classes = [IsRemoteNode]

    def _connection(self, request) -> Connection:
        connection = request.auth
        if connection.status not in (Connection.Status.ACTIVE, Connection.Status.ERROR):
            raise _Refused(
                409, f"Connection {connection.name} is {connection.status} on this node."
            )
        return connection

    def handle_exception(self, exc):
        if isinstance(exc, _Refused):
            return Response({"error": exc.message}, status=exc.status)
        return super().handle_exception(exc)


class _Refused(Exception):
    def __init__(self, status_code: int, message: str):
        super().__init__(message)
        self.status = status_code
        self.message = message


class MessagesApi(_NodeApi):
    """Store messages from the remote node (validated, at most once) and answer at once."""

    @extend_schema(
        request=protocol.MessagesRequestSerializer,
        responses={
            200: protocol.MessagesAnswerSerializer,
            400: _Error,
            401: _Error,
            409: _Error,
        },
    )
    def post(self, request):
        connection = self._connection(request)
        body = request.data if isinstance(request.data, dict) else {}
        if body.get("protocol") != protocol.PROTOCOL:
            raise _Refused(400, f"This node speaks sync protocol {protocol.PROTOCOL}.")
        accepted, rejected = services.messages_receive(
            connection=connection, messages=body.get("messages")
        )
        return Response({"accepted": accepted, "rejected": rejected})


class PollApi(_NodeApi):
    """A remote node without URL sends its messages and collects ours."""

    @extend_schema(
        request=protocol.PollRequestSerializer,
        responses={
            200: protocol.PollAnswerSerializer,
            400: _Error,
            401: _Error,
            409: _Error,
        },
    )
    def post(self, request):
        connection = self._connection(request)
        body = request.data if isinstance(request.data, dict) else {}
        if body.get("protocol") != protocol.PROTOCOL:
            raise _Refused(400, f"This node speaks sync protocol {protocol.PROTOCOL}.")
        return Response(services.poll_answer(connection=connection, body=body))


@method_decorator(csrf_exempt, name="dispatch")
class AttachmentApi(View):
    """GET: stream an attachment we sent to the remote node. PUT: bytes pushed by a node without URL.

    A plain Django view so the body is streamed, never read whole: the node token is
    signed over an empty body (``bsha`` of ``b""``) and the bytes are checked by sha256.
    """

    def _connection(self, request) -> Connection:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or not token:
            raise _Refused(401, "This endpoint needs a node token: Authorization: Bearer <jwt>.")
        try:
            connection = verify_node_request(token, b"")
        except NodeAuthError as exc:
            raise _Refused(401, exc.message) from None
        if connection.status not in (Connection.Status.ACTIVE, Connection.Status.ERROR):
            raise _Refused(
                409, f"Connection {connection.name} is {connection.status} on this node."
            )
        return connection

    def dispatch(self, request, *args, **kwargs):
        try:
            return super().dispatch(request, *args, **kwargs)
        except _Refused as exc:
            return JsonResponse({"error": exc.message}, status=exc.status)

    def get(self, request, entity_id: str, attachment_id: str):
        connection = self._connection(request)
        try:
            meta, chunks = services.attachment_stream_for_remote(
                connection=connection, entity_id=entity_id, attachment_id=attachment_id
            )
            first = next(chunks, b"")  # surface the instance's errors before the 200
        except TrackerNotFound as exc:
            return JsonResponse({"error": str(exc)}, status=404)
        except TransientTrackerError as exc:
            response = JsonResponse({"error": str(exc)}, status=503)
            if exc.retry_after:
                response["Retry-After"] = str(int(exc.retry_after))
            return response
        except TrackerError as exc:
            return JsonResponse({"error": str(exc)}, status=502)

        def body():
            if first:
                yield first
            yield from chunks

        response = StreamingHttpResponse(
            body(), content_type=meta.get("content_type") or "application/octet-stream"
        )
        response["X-Content-SHA256"] = meta["sha256"]
        return response

    def put(self, request, entity_id: str, attachment_id: str):
        connection = self._connection(request)
        try:
            size = int(request.GET.get("size", ""))
        except ValueError:
            return JsonResponse({"error": "size must be a whole number of bytes"}, status=400)

        # With Content-Length, Django's request stream is limited to it; a chunked body has
        # none, so read the server's (decoded) input stream directly.
        stream = request if request.META.get("CONTENT_LENGTH") else request.META["wsgi.input"]

        def chunks():
            while chunk := stream.read(services.CHUNK):
                yield chunk

        try:
            services.pushed_attachment_store(
                connection=connection,
                attachment_id=attachment_id,
                sha256=request.GET.get("sha256", ""),
                size=size,
                chunks=chunks(),
            )
        except services.SyncRefused as exc:
            return JsonResponse({"error": str(exc)}, status=400)
        return JsonResponse({"stored": attachment_id}, status=201)


@method_decorator(csrf_exempt, name="dispatch")
class TrackerWebhook(View):
    """A tracker announces changed entities: ``POST /api/webhooks/<tracker>/``.

    Authenticated by the adapter class (``authenticate_webhook``: by default this node's
    webhook token as a Bearer token, compared in constant time; or a signature of the body),
    at most ``webhook_max_bytes`` of body (413 above). The body is the tracker's own (ServiceNow's business rule sends ``{"sys_id",
    "sys_mod_count"}``), read by ``adapter_class(tracker).parse_webhook``. Answers 202
    ``{"twins": n}`` with the number of twins marked for a scan (0 when the entity is not
    exalated); 400 with the adapter's reason when the body is wrong; 404 for a tracker no
    adapter is installed for. The business rule to paste into ServiceNow is in the README
    ("Instant change detection").
    """

    def post(self, request, tracker: str):
        from connections.selectors import node_settings_get

        try:
            cls = adapter_class(tracker)
        except TrackerError as exc:
            return JsonResponse({"error": str(exc)}, status=404)
        length = int(request.headers.get("Content-Length") or 0)
        if length > cls.webhook_max_bytes or len(request.body) > cls.webhook_max_bytes:
            return JsonResponse({"error": "The announcement is too large."}, status=413)
        try:  # the adapter class knows how its tracker signs (Bearer token, X-Hub-Signature)
            cls.authenticate_webhook(
                request.headers, request.body, node_settings_get().webhook_token or ""
            )
        except ValueError as exc:
            return JsonResponse({"error": str(exc)}, status=401)
        try:
            hints = cls.parse_webhook(request.body)
        except ValueError as exc:
            return JsonResponse({"error": str(exc)}, status=400)
        marked = sum(
            services.webhook_receive(entity_id=hint.entity_id, mod_count=hint.mod_count)
            for hint in hints
        )
        return JsonResponse({"twins": marked}, status=202)
