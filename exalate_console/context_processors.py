"""Template context shared by every console page: the left menu."""

MENU = [
    ("getting-started", "Getting started"),
    ("connections:list", "Connections"),
    ("sync:entity-status", "Entity sync status"),
    ("triggers", "Triggers"),
    ("sync:errors", "Errors"),
    ("sync:queue", "Sync queue"),
    ("bulk", "Bulk operations"),
    ("connections:general-settings", "General settings"),
]


def console(request):
    """Return ``{"menu": [(url_name, label), ...]}`` for base.html."""
    return {"menu": MENU}
