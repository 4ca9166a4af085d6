"""REST API of triggers, bulk runs and Bulk Connect (issue 13; token or session, admins only).

* ``GET/POST /api/triggers/``; ``GET/PUT/PATCH/DELETE /api/triggers/<id>/`` — a save answers
  with ``match_count``; a bad query 400 ``{"error", "fields": {"query": [...]}}``; an empty
  query 400 with ``"confirm_count"`` unless ``"confirm_all": true``;
* ``GET /api/triggers/<id>/preview/`` — the first matches (number, summary, url);
* ``POST /api/triggers/<id>/bulk-exalate/`` and ``/bulk-unexalate/`` → 202 with the run;
* ``GET /api/bulk-runs/<id>/`` — status, progress (done, failed, remaining, percent, rate per
  minute, seconds left) and every failure in words; ``POST /api/bulk-runs/<id>/cancel/``;
* ``POST /api/bulk-connect/`` (multipart ``connection``, ``file``) → 202, run in
  ``validating`` then ``preview`` (``valid`` and ``bad`` rows); ``POST
  /api/bulk-runs/<id>/confirm/``; ``GET /api/bulk-runs/<id>/result.csv``.
"""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from connections.models import Connection

from .. import services
from ..models import BulkItem, BulkRun, Trigger
from ..services.bulk_csv import MAX_BYTES

_Error = inline_serializer("TriggerError400", {"error": serializers.CharField()})


class TriggerSerializer(serializers.ModelSerializer):
    """A trigger as stored; ``match_count`` is the count of its last save."""

    connection = serializers.PrimaryKeyRelatedField(
        queryset=Connection.objects.exclude(status=Connection.Status.PENDING)
    )
    match_count = serializers.IntegerField(source="last_count", read_only=True)
    twins = serializers.SerializerMethodField()
    confirm_all = serializers.BooleanField(write_only=True, required=False, default=False)

    class Meta:
        model = Trigger
        fields = [
            "id", "entity_type", "query", "connection", "notes", "active", "match_count",
            "twins", "last_poll_at", "last_error", "created_at", "updated_at", "confirm_all",
        ]  # fmt: skip
        read_only_fields = ["last_poll_at", "last_error", "created_at", "updated_at"]
        extra_kwargs = {"query": {"allow_blank": True, "trim_whitespace": True}}

    def get_twins(self, trigger: Trigger) -> int:
        return trigger.links.count()


class ItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = BulkItem
        fields = ["line", "local_key", "remote_key", "status", "error", "twin"]


class BulkRunSerializer(serializers.ModelSerializer):
    """A run: status, progress, failures (every one, in words) and, for Bulk Connect, its rows."""

    progress = serializers.SerializerMethodField()
    failures = serializers.SerializerMethodField()
    bad = serializers.SerializerMethodField()
    valid = serializers.SerializerMethodField()

    class Meta:
        model = BulkRun
        fields = [
            "id", "kind", "status", "trigger", "connection", "file_name", "error", "progress",
            "failures", "bad", "valid", "created_at", "started_at", "finished_at",
        ]  # fmt: skip

    def _items(self, run, status_):
        return ItemSerializer(run.items.filter(status=status_)[:10000], many=True).data

    def get_progress(self, run) -> dict:
        return services.bulk_progress(run)

    def get_failures(self, run) -> list[dict]:
        return self._items(run, BulkItem.Status.FAILED)

    def get_bad(self, run) -> list[dict]:
        return self._items(run, BulkItem.Status.BAD)

    def get_valid(self, run) -> list[dict]:
        return self._items(run, BulkItem.Status.PENDING) if run.status == "preview" else []


def _refused(exc) -> Response:
    body = {"error": str(exc), "fields": {"query": [str(exc)]}}
    if isinstance(exc, services.ConfirmAll):
        body["confirm_count"] = exc.count
    return Response(body, status=status.HTTP_400_BAD_REQUEST)


def _save(request, trigger: Trigger | None, partial: bool) -> Response:
    data = TriggerSerializer(trigger, data=request.data, partial=partial)
    data.is_valid(raise_exception=True)
    v = {**(TriggerSerializer(trigger).data if trigger else {}), **data.validated_data}
    connection = v["connection"]
    if not isinstance(connection, Connection):
        connection = Connection.objects.get(pk=connection)
    try:
        saved, _ = services.trigger_save(
            trigger=trigger,
            connection=connection,
            query=v.get("query", ""),
            entity_type=v.get("entity_type", "incident"),
            notes=v.get("notes", ""),
            active=v.get("active", True),
            confirm_all=v.get("confirm_all", False),
            requested_by=str(request.user),
        )
    except services.SyncRefused as exc:
        return _refused(exc)
    return Response(
        TriggerSerializer(saved).data,
        status=status.HTTP_201_CREATED if trigger is None else status.HTTP_200_OK,
    )


class TriggerListApi(APIView):
    """Triggers; ``POST`` checks the query on the instance, saves, answers with its match count."""

    @extend_schema(responses=TriggerSerializer(many=True))
    def get(self, request):
        return Response(TriggerSerializer(Trigger.objects.all(), many=True).data)

    @extend_schema(request=TriggerSerializer, responses={201: TriggerSerializer, 400: _Error})
    def post(self, request):
        return _save(request, None, partial=False)


class TriggerApi(APIView):
    """One trigger: read, change (the query is checked again), delete (its twins go on)."""

    @extend_schema(responses=TriggerSerializer)
    def get(self, request, trigger_id):
        return Response(TriggerSerializer(get_object_or_404(Trigger, pk=trigger_id)).data)

    @extend_schema(request=TriggerSerializer, responses={200: TriggerSerializer, 400: _Error})
    def put(self, request, trigger_id):
        return _save(request, get_object_or_404(Trigger, pk=trigger_id), partial=False)

    @extend_schema(request=TriggerSerializer, responses={200: TriggerSerializer, 400: _Error})
    def patch(self, request, trigger_id):
        return _save(request, get_object_or_404(Trigger, pk=trigger_id), partial=True)

    @extend_schema(responses={204: None})
    def delete(self, request, trigger_id):
        services.trigger_delete(
            trigger=get_object_or_404(Trigger, pk=trigger_id), requested_by=str(request.user)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class TriggerPreviewApi(APIView):
    """The first matches of the trigger's query (``?limit=``, at most 50)."""

    @extend_schema(
        responses=inline_serializer(
            "TriggerMatch",
            {
                "key": serializers.CharField(),
                "summary": serializers.CharField(),
                "url": serializers.URLField(),
            },
            many=True,
        )
    )
    def get(self, request, trigger_id):
        trigger = get_object_or_404(Trigger, pk=trigger_id)
        try:
            limit = max(1, min(50, int(request.query_params.get("limit", 10))))
        except ValueError:
            limit = 10
        try:
            matches = services.trigger_preview(query=trigger.query, limit=limit)
        except services.SyncRefused as exc:
            return Response({"error": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response([{"key": m.key, "summary": m.summary, "url": m.url} for m in matches])


class TriggerBulkApi(APIView):
    """Start Bulk Exalate / Bulk Unexalate of a trigger; 202 with the run (one open run per kind)."""

    kind = "exalate"

    @extend_schema(request=None, responses={202: BulkRunSerializer, 400: _Error})
    def post(self, request, trigger_id):
        trigger = get_object_or_404(Trigger.objects.select_related("connection"), pk=trigger_id)
        start = (
            services.bulk_exalate_start if self.kind == "exalate" else services.bulk_unexalate_start
        )
        try:
            run = start(trigger=trigger, requested_by=str(request.user))
        except services.SyncRefused as exc:
            return Response({"error": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(BulkRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class BulkRunApi(APIView):
    """One run with its live progress and every failure."""

    @extend_schema(responses=BulkRunSerializer)
    def get(self, request, run_id):
        return Response(BulkRunSerializer(get_object_or_404(BulkRun, pk=run_id)).data)


class BulkRunCancelApi(APIView):
    """Cancel a run (it stops before its next item)."""

    @extend_schema(request=None, responses=BulkRunSerializer)
    def post(self, request, run_id):
        run = services.bulk_cancel(
            run=get_object_or_404(BulkRun, pk=run_id), requested_by=str(request.user)
        )
        return Response(BulkRunSerializer(run).data)


class BulkConnectConfirmApi(APIView):
    """Confirm a previewed Bulk Connect: link the valid rows only."""

    @extend_schema(request=None, responses={202: BulkRunSerializer, 400: _Error})
    def post(self, request, run_id):
        try:
            run = services.bulk_connect_confirm(
                run=get_object_or_404(BulkRun, pk=run_id), requested_by=str(request.user)
            )
        except services.SyncRefused as exc:
            return Response({"error": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(BulkRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class BulkConnectResultApi(APIView):
    """The rows of a Bulk Connect run and what became of each, as CSV."""

    @extend_schema(responses={(200, "text/csv"): str})
    def get(self, request, run_id):
        run = get_object_or_404(BulkRun, pk=run_id, kind=BulkRun.Kind.CONNECT)
        response = HttpResponse(
            services.bulk_connect_result_csv(run), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="bulk-connect-{run.pk}.csv"'
        return response


class BulkConnectApi(APIView):
    """Upload a CSV of local number ↔ remote key pairs; 202 with the run (then ``preview``)."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request=inline_serializer(
            "BulkConnectUpload",
            {"connection": serializers.UUIDField(), "file": serializers.FileField()},
        ),
        responses={202: BulkRunSerializer, 400: _Error},
    )
    def post(self, request):
        connection = Connection.objects.filter(pk=request.data.get("connection") or None).first()
        upload = request.FILES.get("file")
        if connection is None or upload is None:
            return Response(
                {"error": "Send connection (a connection id) and file (the CSV)."},
                status=status.HTTP_400_BAD_REQUEST,
            )
        try:
            run = services.bulk_connect_upload(
                connection=connection,
                data=upload.read(MAX_BYTES + 1),
                file_name=upload.name,
                requested_by=str(request.user),
            )
        except services.SyncRefused as exc:
            return Response({"error": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(BulkRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)
