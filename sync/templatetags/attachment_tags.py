"""Template tags for the per-attachment states of issue 10 (connection page counts)."""

from __future__ import annotations

from django import template

register = template.Library()


@register.inclusion_tag("sync/_attachment_counts.html")
def attachment_summary(connection):
    """The connection's attachment states counted: mirrored, pending and each warning kind."""
    from sync.services.attachments import attachment_counts

    counts = attachment_counts(connection)
    warnings = counts["refused"] + counts["too_large"] + counts["skipped"]
    return {"counts": counts, "warnings": warnings}


@register.filter
def attachment_warnings(twin) -> list:
    """The twin's refused, too-large and skipped attachment states."""
    from sync.models import AttachmentState

    return list(twin.attachment_states.filter(state__in=AttachmentState.WARNINGS))
