"""The Dashboard's numbers and its chart (issue 12), read-only.

``dashboard_data(period=...)`` gives: incidents under sync per connection, sync activity
per day (last 14), week (last 12) or month (last 12) as bars of an SVG chart computed here
and drawn by a template (``sync/_activity_chart.svg``; no JavaScript, no chart library, no
CDN; colours come from classes in console.css, as the Content-Security-Policy forbids
inline styles), open errors by level, queue depth and the oldest waiting event.
The activity counts are cached for ``CACHE_SECONDS`` (they scan finished events).
"""

from __future__ import annotations

from datetime import timedelta

from django.core.cache import cache
from django.db.models import Count, Min
from django.db.models.functions import TruncDay, TruncMonth, TruncWeek
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
    trunc = {"day": TruncDay, "week": TruncWeek, "month": TruncMonth}[period]("done_at")
    rows = (
        SyncEvent.objects.filter(
            kind=SyncEvent.Kind.REPLICA, status=SyncEvent.Status.DONE, done_at__gte=buckets[0]
        )
        .annotate(bucket=trunc)
        .values("bucket", "direction")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts: dict = {}
    for r in rows:
        if r["bucket"] is None:
            continue
        b = timezone.localtime(r["bucket"]) if timezone.is_aware(r["bucket"]) else r["bucket"]
        counts[(b.date(), r["direction"])] = r["n"]
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
    waiting = SyncEvent.objects.filter(
        status__in=[SyncEvent.Status.QUEUED, SyncEvent.Status.IN_PROGRESS, SyncEvent.Status.SENT]
    ).exclude(kind=SyncEvent.Kind.ACK)
    depth = {
        d: waiting.filter(direction=d).count()
        for d in (SyncEvent.Direction.OUT, SyncEvent.Direction.IN)
    }
    oldest = waiting.aggregate(oldest=Min("created_at"))["oldest"]
    oldest_event = (
        waiting.filter(created_at=oldest).select_related("twin").first() if oldest else None
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
