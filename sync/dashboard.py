"""The Dashboard's numbers and its chart (issue 12), read-only.

``dashboard_data(period=...)`` gives: incidents under sync per connection, sync activity
per day (last 14), week (last 12) or month (last 12) as bars of an SVG chart computed here
and drawn by a template (``sync/_activity_chart.svg``; no JavaScript, no chart library, no
CDN; colours come from classes in console.css, as the Content-Security-Policy forbids
inline styles), open errors by level, queue depth and the oldest waiting event.
The activity counts are cached for ``CACHE_SECONDS`` (one indexed COUNT per bar).
"""

from __future__ import annotations

from datetime import timedelta

from django.core.cache import cache
from django.db.models import Count
from django.utils import timezone

from connections.models import Connection

from .models import SyncError, SyncEvent, Twin
from .services.unexalate import live_twins

PERIODS = {"day": ("Days", 14), "week": ("Weeks", 12), "month": ("Months", 12)}
CACHE_SECONDS = 30
#: Chart geometry (SVG user units).
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 240, 44, 28, 12


def _buckets(period: str, now) -> list:
    today = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    _, n = PERIODS[period]
    if period == "day":
        return [today - timedelta(days=i) for i in range(n - 1, -1, -1)]
    if period == "week":
        monday = today - timedelta(days=today.weekday())
        return [monday - timedelta(weeks=i) for i in range(n - 1, -1, -1)]
    first = today.replace(day=1)
    months = []
    for _ in range(n):
        months.append(first)
        first = (first - timedelta(days=1)).replace(day=1)
    return list(reversed(months))


def activity(period: str = "day", *, now=None) -> list[dict]:
    """``[{"start": datetime, "label": str, "outgoing": n, "incoming": n}]``: changes
    delivered and applied (finished replica events) per bucket, oldest first."""
    now = now or timezone.now()
    key = f"sync-dashboard-activity-{period}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    buckets = _buckets(period, now)
    # One COUNT per bucket and direction, each a range of the (direction, status, kind,
    # done_at) index: no per-row date function, no grouping of every finished event.
    counts: dict = {}
    for direction in (SyncEvent.Direction.OUT, SyncEvent.Direction.IN):
        done = SyncEvent.objects.filter(
            direction=direction, status=SyncEvent.Status.DONE, kind=SyncEvent.Kind.REPLICA
        )
        for start, end in zip(buckets, [*buckets[1:], None], strict=True):
            in_bucket = done.filter(done_at__gte=start)
            if end is not None:
                in_bucket = in_bucket.filter(done_at__lt=end)
            counts[(start.date(), direction)] = in_bucket.count()
    fmt = {"day": "%d %b", "week": "%d %b", "month": "%b %Y"}[period]
    data = [
        {
            "start": b,
            "label": b.strftime(fmt),
            "outgoing": counts.get((b.date(), SyncEvent.Direction.OUT), 0),
            "incoming": counts.get((b.date(), SyncEvent.Direction.IN), 0),
        }
        for b in buckets
    ]
    cache.set(key, data, CACHE_SECONDS)
    return data


def chart(data: list[dict]) -> dict:
    """Bars of the activity chart: ``{"width", "height", "bars": [...], "ticks": [...]}``;
    each bar ``{"x", "y", "w", "h", "cls", "title"}``, two per bucket (out, in)."""
    top = max([1] + [max(d["outgoing"], d["incoming"]) for d in data])
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(1, len(data))
    bar_w = max(2.0, slot * 0.36)
    bars, labels = [], []
    for i, d in enumerate(data):
        x0 = LEFT + i * slot + slot * 0.12
        for j, (name, cls) in enumerate((("outgoing", "out"), ("incoming", "in"))):
            h = plot_h * d[name] / top
            bars.append(
                {
                    "x": round(x0 + j * bar_w, 1),
                    "y": round(TOP + plot_h - h, 1),
                    "w": round(bar_w, 1),
                    "h": round(h, 1),
                    "cls": cls,
                    "title": f"{d['label']}: {d[name]} {name}",
                }
            )
        labels.append({"x": round(LEFT + i * slot + slot / 2, 1), "text": d["label"]})
    levels = sorted({0, top // 2, top}) if top > 1 else [0, top]
    ticks = [{"y": round(TOP + plot_h - plot_h * v / top, 1), "text": str(v)} for v in levels]
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "bars": bars,
        "labels": labels[:: max(1, -(-len(labels) // 6))],  # at most 6 labels: no overlap
        "ticks": ticks,
        "left": LEFT,
        "right": WIDTH - 8,
        "base": TOP + plot_h,
        "label_y": HEIGHT - 8,
    }


def dashboard_data(*, period: str = "day") -> dict:
    """Everything the Dashboard page and ``GET /api/dashboard/`` show."""
    counts = dict(
        Twin.objects.filter(live_twins())
        .values("connection_id")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("connection_id", "n")
    )
    per_connection = [
        {**c, "incidents": counts.get(c["pk"], 0)}
        for c in Connection.objects.exclude(status=Connection.Status.PENDING)
        .order_by("name")
        .values("pk", "name", "status")
    ]
    errors = {
        level: SyncError.objects.filter(resolved_at__isnull=True, level=level).count()
        for level in SyncError.Level.values
    }
    statuses = [SyncEvent.Status.QUEUED, SyncEvent.Status.IN_PROGRESS, SyncEvent.Status.SENT]
    waiting = SyncEvent.objects.filter(status__in=statuses).exclude(kind=SyncEvent.Kind.ACK)
    directions = (SyncEvent.Direction.OUT, SyncEvent.Direction.IN)
    depth = {d: waiting.filter(direction=d).count() for d in directions}
    # The oldest waiting event is the one with the smallest id (ids grow with creation
    # time): the first entry of each (direction, status) in the queue index, not a scan.
    firsts = [
        waiting.filter(direction=d, status=s).order_by("id").values_list("id", flat=True).first()
        for d in directions
        for s in statuses
    ]
    oldest_id = min((i for i in firsts if i is not None), default=None)
    oldest_event = (
        SyncEvent.objects.select_related("twin").filter(pk=oldest_id).first() if oldest_id else None
    )
    data = activity(period)
    return {
        "period": period,
        "periods": {k: v[0] for k, v in PERIODS.items()},
        "per_connection": per_connection,
        "incidents_total": sum(c["incidents"] for c in per_connection),
        "errors": errors,
        "errors_total": sum(errors.values()),
        "depth": depth,
        "oldest": oldest_event,
        "activity": data,
        "chart": chart(data),
    }
