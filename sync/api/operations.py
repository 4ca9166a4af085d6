"""Admin API of the console operations (issue 12): the same as the pages, for automation.

* ``GET /api/dashboard/?period=day|week|month``
* ``GET /api/twins/lookup/?q=`` (one row per connection), ``GET /api/twins/page/?q=&before=``
* ``POST /api/twins/connect/`` ``{"connection", "local_key", "remote_key"}``
* ``POST /api/twins/<id>/unexalate/`` ``{"at_once": false}``; ``GET /api/twins/<id>/replicas/``
* ``POST /api/errors/resolve/`` ``{"ids": [...], "retry": false}``
* ``GET /api/sync-queue/?tab=&status=&connection=&key=&before=``
* ``GET /api/connections/<uuid>/mapping/`` (JSON rows), ``POST .../unexalate-all/``,
  ``POST .../rename/`` ``{"name", "description"}``, ``GET .../check/``

Node-to-node (signed): ``POST /api/node/v1/sync/connect`` (the remote side of Connect) and
``POST /api/node/v1/sync/check`` (the live check).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from connections.models import Connection

from .. import dashboard, selectors, services
from ..models import Twin
from .serializers import TwinSerializer

_Error = inline_serializer("OperationError", {"error": serializers.CharField()})


def _connection(connection_id) -> Connection:
    connection = Connection.objects.filter(pk=connection_id).first()
    if connection is None:
        raise NotFound("No such connection on this node.")
    return connection


def _refused(exc) -> ValidationError:
    return ValidationError({"error": str(exc)})


class DashboardApi(APIView):
    """The Dashboard's numbers: incidents per connection, activity, errors, queue depth."""

    @extend_schema(
        summary="Dashboard numbers",
        parameters=[OpenApiParameter("period", str, enum=list(dashboard.PERIODS))],
        responses={
            200: inline_serializer(
                "Dashboard",
                {
                    "per_connection": serializers.ListField(child=serializers.DictField()),
                    "incidents_total": serializers.IntegerField(),
                    "errors": serializers.DictField(child=serializers.IntegerField()),
                    "depth": serializers.DictField(child=serializers.IntegerField()),
                    "oldest_waiting_at": serializers.DateTimeField(allow_null=True),
                    "activity": serializers.ListField(child=serializers.DictField()),
                },
            )
        },
    )
    def get(self, request):
        period = request.query_params.get("period", "day")
        if period not in dashboard.PERIODS:
            raise ValidationError({"period": [f"Choose one of {', '.join(dashboard.PERIODS)}."]})
        data = dashboard.dashboard_data(period=period)
        return Response(
            {
                "per_connection": [
                    {
                        "id": str(c["pk"]),
                        "name": c["name"],
                        "status": c["status"],
                        "incidents": c["incidents"],
                    }
                    for c in data["per_connection"]
                ],
                "incidents_total": data["incidents_total"],
                "errors": data["errors"],
                "depth": data["depth"],
                "oldest_waiting_at": data["oldest"].created_at if data["oldest"] else None,
                "activity": [
                    {"start": a["start"], "outgoing": a["outgoing"], "incoming": a["incoming"]}
                    for a in data["activity"]
                ],
            }
        )


class TwinLookupApi(APIView):
    """Look an incident up by number or sys_id: one row per connection (twin or null)."""

    @extend_schema(
        summary="Look up an incident's twins",
        parameters=[OpenApiParameter("q", str, required=True)],
        responses={
            200: inline_serializer(
                "TwinLookupRow",
                {
                    "connection": serializers.UUIDField(),
                    "connection_name": serializers.CharField(),
                    "twin": TwinSerializer(allow_null=True),
                },
                many=True,
            )
        },
    )
    def get(self, request):
        q = (request.query_params.get("q") or "").strip()
        if not q or len(q) > 64:
            raise ValidationError(
                {"q": ["Enter an incident number or sys_id (at most 64 characters)."]}
            )
        return Response(
            [
                {
                    "connection": str(r["connection"].pk),
                    "connection_name": r["connection"].name,
                    "twin": TwinSerializer(r["twin"]).data if r["twin"] else None,
                }
                for r in selectors.entity_lookup(q)
            ]
        )


class TwinPageApi(APIView):
    """Recent twins, newest first, by keyset pages (``before`` = ``next_before`` of the last page)."""

    @extend_schema(
        summary="Recent twins, paged",
        parameters=[
            OpenApiParameter("q", str),
            OpenApiParameter("before", int),
            OpenApiParameter("connection", str),
        ],
        responses={
            200: inline_serializer(
                "TwinPage",
                {
                    "results": TwinSerializer(many=True),
                    "next_before": serializers.IntegerField(allow_null=True),
                },
            )
        },
    )
    def get(self, request):
        before = request.query_params.get("before") or ""
        if before and not (before.isdigit() and len(before) < 19):
            raise ValidationError({"before": ["Use the next_before value of the previous page."]})
        twins, next_before = selectors.twin_page(
            query=(request.query_params.get("q") or "")[:64],
            connection_id=request.query_params.get("connection") or None,
            before=int(before) if before else None,
        )
        return Response(
            {"results": TwinSerializer(twins, many=True).data, "next_before": next_before}
        )


class ConnectInputSerializer(serializers.Serializer):
    """Connect: the connection, this node's incident number and the remote one's."""

    connection = serializers.UUIDField()
    local_key = serializers.CharField(max_length=64)
    remote_key = serializers.CharField(max_length=64)


class TwinConnectApi(APIView):
    """Connect a local incident to an existing remote one (no create; the first sync updates it)."""

    @extend_schema(
        summary="Connect two existing incidents",
        request=ConnectInputSerializer,
        responses={201: TwinSerializer, 400: _Error, 404: _Error},
    )
    def post(self, request):
        data = ConnectInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        connection = _connection(data.validated_data["connection"])
        try:
            twin = services.entity_connect(
                connection=connection,
                local_key=data.validated_data["local_key"],
                remote_key=data.validated_data["remote_key"],
                requested_by=str(request.user),
            )
        except services.SyncRefused as exc:
            raise _refused(exc) from None
        return Response(TwinSerializer(twin).data, status=status.HTTP_201_CREATED)


class UnexalateInputSerializer(serializers.Serializer):
    """``at_once``: drop what is still queued instead of waiting for the queue to drain."""

    at_once = serializers.BooleanField(default=False)


class TwinUnexalateApi(APIView):
    """Unexalate a twin (both nodes); ``ended`` tells whether it ended already."""

    @extend_schema(
        summary="Unexalate a twin",
        request=UnexalateInputSerializer,
        responses={
            202: inline_serializer(
                "Unexalated",
                {
                    "twin": serializers.IntegerField(),
                    "ended": serializers.BooleanField(),
                    "pending_outgoing": serializers.IntegerField(),
                    "pending_incoming": serializers.IntegerField(),
                },
            ),
            400: _Error,
            404: _Error,
        },
    )
    def post(self, request, twin_id):
        twin = Twin.objects.filter(pk=twin_id).first()
        if twin is None:
            raise NotFound("No such twin on this node.")
        data = UnexalateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            services.twin_unexalate(
                twin=twin, at_once=data.validated_data["at_once"], requested_by=str(request.user)
            )
        except services.SyncRefused as exc:
            raise _refused(exc) from None
        ending = selectors.twin_ending(twin)
        out, inc = services.unexalate.twin_pending_changes(twin.pk)
        return Response(
            {
                "twin": twin.pk,
                "ended": bool(ending and ending.ended_at),
                "pending_outgoing": out,
                "pending_incoming": inc,
            },
            status=status.HTTP_202_ACCEPTED,
        )


class TwinReplicasApi(APIView):
    """The twin's last sent (local) and last received (remote) replicas."""

    @extend_schema(
        summary="Show a twin's local and remote replicas",
        responses={
            200: inline_serializer(
                "Replicas",
                {
                    "local": serializers.JSONField(allow_null=True),
                    "remote": serializers.JSONField(allow_null=True),
                },
            ),
            404: _Error,
        },
    )
    def get(self, request, twin_id):
        twin = Twin.objects.filter(pk=twin_id).first()
        if twin is None:
            raise NotFound("No such twin on this node.")
        return Response({"local": twin.last_sent_replica, "remote": twin.last_received_replica})


class ErrorsResolveInputSerializer(serializers.Serializer):
    """The open errors to resolve (at most 1000) and whether to retry what failed."""

    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), min_length=1, max_length=1000
    )
    retry = serializers.BooleanField(default=False)


class ErrorsResolveApi(APIView):
    """Resolve, or Resolve and retry, one or many errors; answers how many."""

    @extend_schema(
        summary="Resolve (and retry) errors",
        request=ErrorsResolveInputSerializer,
        responses={
            200: inline_serializer("Resolved", {"resolved": serializers.IntegerField()}),
            400: _Error,
        },
    )
    def post(self, request):
        data = ErrorsResolveInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        done = services.errors_resolve(
            error_ids=data.validated_data["ids"],
            retry=data.validated_data["retry"],
            requested_by=str(request.user),
        )
        return Response({"resolved": done})


class QueueRowSerializer(serializers.Serializer):
    """One row of the Sync queue (see ``sync.queue_selectors``)."""

    id = serializers.IntegerField(allow_null=True)
    event = serializers.CharField()
    status = serializers.ChoiceField(choices=list(selectors.STATUSES))
    status_label = serializers.CharField()
    connection = serializers.CharField()
    connection_id = serializers.CharField()
    twin_id = serializers.IntegerField(allow_null=True)
    local_key = serializers.CharField()
    remote_key = serializers.CharField()
    attempts = serializers.IntegerField(allow_null=True)
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField()
    created_at = serializers.DateTimeField()


class QueueApi(APIView):
    """One page of a Sync queue tab; nonsense filters answer 400 with what is wrong."""

    @extend_schema(
        summary="Sync queue, one tab, paged",
        parameters=[
            OpenApiParameter("tab", str, enum=list(selectors.TABS)),
            OpenApiParameter("status", str, enum=[*selectors.STATUSES, "all"]),
            OpenApiParameter("connection", str),
            OpenApiParameter("key", str),
            OpenApiParameter("before", int),
        ],
        responses={
            200: inline_serializer(
                "QueuePage",
                {
                    "results": QueueRowSerializer(many=True),
                    "next_before": serializers.IntegerField(allow_null=True),
                },
            ),
            400: _Error,
        },
    )
    def get(self, request):
        flt, problems = selectors.queue_filter_parse(request.query_params)
        if problems:
            raise ValidationError({"error": " ".join(problems)})
        page = selectors.queue_page(
            tab=flt.tab,
            connection_id=flt.connection_id,
            key=flt.key,
            status=flt.status,
            before=flt.before,
        )
        return Response(
            {
                "results": QueueRowSerializer(page["rows"], many=True).data,
                "next_before": page["next_before"],
            }
        )


class MappingApi(APIView):
    """The connection's local ↔ remote mapping (before a clean-up), as JSON rows."""

    @extend_schema(
        summary="Local ↔ remote mapping of a connection",
        responses={
            200: inline_serializer(
                "MappingRow",
                {
                    "local_number": serializers.CharField(),
                    "local_sys_id": serializers.CharField(),
                    "remote_number": serializers.CharField(),
                    "remote_sys_id": serializers.CharField(),
                    "status": serializers.CharField(),
                    "last_synced_at": serializers.DateTimeField(allow_null=True),
                },
                many=True,
            ),
            404: _Error,
        },
    )
    def get(self, request, connection_id):
        connection = _connection(connection_id)
        keys = [
            "local_number",
            "local_sys_id",
            "remote_number",
            "remote_sys_id",
            "status",
            "last_synced_at",
        ]
        return Response(
            [dict(zip(keys, row, strict=True)) for row in selectors.twin_mapping_rows(connection)]
        )


class UnexalateAllApi(APIView):
    """Clean-up: unexalate every twin of a connection at once; answers how many ended."""

    @extend_schema(
        summary="Unexalate every incident of a connection",
        request=None,
        responses={
            200: inline_serializer("UnexalatedAll", {"unexalated": serializers.IntegerField()}),
            404: _Error,
        },
    )
    def post(self, request, connection_id):
        connection = _connection(connection_id)
        ended = services.connection_unexalate_all(
            connection=connection, requested_by=str(request.user)
        )
        return Response({"unexalated": ended})


class RenameInputSerializer(serializers.Serializer):
    """A connection's new name and description."""

    name = serializers.CharField(max_length=100)
    description = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default=""
    )


class ConnectionRenameApi(APIView):
    """Rename a connection and set its description."""

    @extend_schema(
        summary="Rename a connection",
        request=RenameInputSerializer,
        responses={
            200: inline_serializer(
                "Renamed",
                {
                    "id": serializers.UUIDField(),
                    "name": serializers.CharField(),
                    "description": serializers.CharField(),
                },
            ),
            400: _Error,
            404: _Error,
        },
    )
    def post(self, request, connection_id):
        connection = _connection(connection_id)
        data = RenameInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            connection = services.connection_rename(
                connection=connection, requested_by=str(request.user), **data.validated_data
            )
        except services.SyncRefused as exc:
            raise _refused(exc) from None
        return Response(
            {
                "id": str(connection.pk),
                "name": connection.name,
                "description": data.validated_data["description"],
            }
        )


_CHECK = inline_serializer(
    "RemoteCheck",
    {
        "ok": serializers.BooleanField(),
        "reachable": serializers.BooleanField(),
        "same_connection": serializers.BooleanField(),
        "rtt_ms": serializers.FloatField(allow_null=True),
        "remote_status": serializers.CharField(),
        "message": serializers.CharField(),
    },
)


class ConnectionCheckApi(APIView):
    """Live check of the remote node: reachable, same connection, round-trip time."""

    @extend_schema(summary="Check the remote node now", responses={200: _CHECK, 404: _Error})
    def get(self, request, connection_id):
        return Response(services.connection_check(connection=_connection(connection_id)))
