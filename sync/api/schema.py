"""OpenAPI post-processing (issue 12): every operation carries a summary.

drf-spectacular takes a view's docstring as the operation's *description*; an operation
without an explicit ``summary`` gets the first sentence of its description (or its
method and path), so the API document lists every endpoint with a one-line summary.
Set as ``SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]`` after the default enum hook.
"""

from __future__ import annotations


def summaries_everywhere(result, generator, request, public):
    """Fill ``summary`` of every operation in ``result`` (the schema dict) that lacks one."""
    for path, item in (result.get("paths") or {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or operation.get("summary"):
                continue
            text = (operation.get("description") or "").strip()
            first = text.split("\n\n", 1)[0].replace("\n", " ").strip()
            if ". " in first:
                first = first.split(". ", 1)[0]
            operation["summary"] = (first.rstrip(".") or f"{method.upper()} {path}")[:120]
    return result
